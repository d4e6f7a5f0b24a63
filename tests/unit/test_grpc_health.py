"""The gRPC probe's Check call: hand-built messages, against a real grpcio health server."""

from __future__ import annotations

import socket

import pytest

from agent.runtime.grpc_health import check, decode_request, decode_status, encode_request, encode_response
from agent.state.pod import ManifestError, parse_pod, pod_to_dict
from tests.grpc_health_server import serve
from tests.unit.state_helpers import pod


def test_messages_match_the_protobuf_wire_format():
    assert encode_request("") == b""
    assert encode_request("my.Svc") == b"\x0a\x06my.Svc"
    assert decode_request(encode_request("x" * 200)) == "x" * 200  # a two-byte length
    assert decode_status(b"") == 0
    assert decode_status(b"\x08\x01") == 1
    assert decode_status(b"\x12\x02hi\x08\x02") == 2  # an unknown field is skipped
    with pytest.raises(ValueError):
        decode_status(b"\x08")
    assert encode_response(1) == b"\x08\x01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_against_a_real_health_server(tmp_path):
    status = tmp_path / "status"
    status.write_text("1")
    port = free_port()
    server = serve(port, str(status), ("probe.Svc",), host="127.0.0.1")
    try:
        assert check("127.0.0.1", port, "", 2.0)
        assert check("127.0.0.1", port, "probe.Svc", 2.0)
        assert not check("127.0.0.1", port, "other.Svc", 2.0)  # NOT_FOUND
        status.write_text("2")
        assert not check("127.0.0.1", port, "", 2.0)  # NOT_SERVING
        status.write_text("0")
        assert not check("127.0.0.1", port, "", 2.0)  # UNKNOWN
    finally:
        server.stop(None)
    assert not check("127.0.0.1", port, "", 0.5)  # nobody listening


def with_probe(probe: dict) -> dict:
    doc = pod("g")
    doc["spec"]["containers"][0]["readinessProbe"] = probe
    return doc


def test_grpc_probe_parses_round_trips_and_names_its_errors():
    p = parse_pod(with_probe({"grpc": {"port": 50051, "service": "probe.Svc"}, "periodSeconds": 2}))
    probe = p.spec.containers[0].readiness_probe
    assert (probe.grpc.port, probe.grpc.service) == (50051, "probe.Svc")
    assert pod_to_dict(p)["spec"]["containers"][0]["readinessProbe"]["grpc"] == {"port": 50051,
                                                                                 "service": "probe.Svc"}
    assert parse_pod(pod_to_dict(p)) == p
    assert parse_pod(with_probe({"grpc": {"port": 9}})).spec.containers[0].readiness_probe.grpc.service == ""
    with pytest.raises(ManifestError) as err:
        parse_pod(with_probe({"grpc": {"port": "grpc", "svc": "x"}}))
    assert {e.path for e in err.value.errors} == {"spec.containers[0].readinessProbe.grpc.port",
                                                  "spec.containers[0].readinessProbe.grpc.svc"}
    with pytest.raises(ManifestError, match="exactly one handler of exec, httpGet, tcpSocket, grpc"):
        parse_pod(with_probe({"grpc": {"port": 9}, "tcpSocket": {"port": 9}}))
