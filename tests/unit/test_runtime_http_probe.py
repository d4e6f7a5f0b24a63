"""The httpGet probe against real sockets on loopback: HTTP and HTTPS (unverified, as kubelet)."""

from __future__ import annotations

import datetime as dt
import ssl
from functools import partial

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.runtime.probe_executors import run_probe
from agent.state.pod import Container, HTTPGetAction, Probe


def _self_signed(tmp_path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe-test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


async def _answer(status: int, stream: trio.abc.Stream) -> None:
    async with stream:
        try:
            await stream.receive_some(4096)
            await stream.send_all(f"HTTP/1.0 {status} X\r\n\r\n".encode())
        except trio.BrokenResourceError:
            pass


async def _serve(nursery: trio.Nursery, status: int, tls: ssl.SSLContext | None) -> int:
    handler = partial(_answer, status)
    if tls is None:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        return listeners[0].socket.getsockname()[1]
    listeners = await nursery.start(partial(trio.serve_ssl_over_tcp, handler, 0, tls, host="127.0.0.1"))
    return listeners[0].transport_listener.socket.getsockname()[1]


def _probe(port: int, scheme: str) -> tuple[Probe, Container]:
    probe = Probe(http_get=HTTPGetAction(port=port, path="/healthz", scheme=scheme), timeout_seconds=2)
    return probe, Container(name="c", image="busybox:local", readiness_probe=probe)


async def test_http_probe_success_and_failure_status(tmp_path) -> None:
    async with trio.open_nursery() as nursery:
        ok_port = await _serve(nursery, 200, None)
        bad_port = await _serve(nursery, 500, None)
        for port, expected in ((ok_port, True), (bad_port, False)):
            probe, container = _probe(port, "HTTP")
            assert await run_probe(None, probe, container, container_id="x", pod_ip="127.0.0.1") is expected
        nursery.cancel_scope.cancel()


async def test_https_probe_skips_certificate_verification(tmp_path) -> None:
    tls = _self_signed(tmp_path)
    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, 204, tls)
        probe, container = _probe(port, "HTTPS")
        assert await run_probe(None, probe, container, container_id="x", pod_ip="127.0.0.1") is True
        # Plain HTTP against a TLS server is a failed probe, not an error.
        probe, container = _probe(port, "HTTP")
        assert await run_probe(None, probe, container, container_id="x", pod_ip="127.0.0.1") is False
        nursery.cancel_scope.cancel()


async def test_http_probe_refused_is_failure() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    probe, container = _probe(port, "HTTPS")
    assert await run_probe(None, probe, container, container_id="x", pod_ip="127.0.0.1") is False
