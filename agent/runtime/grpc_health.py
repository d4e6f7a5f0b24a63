"""The grpc.health.v1 Check call of a gRPC probe, with hand-built messages.

Owns: encoding HealthCheckRequest {string service = 1}, decoding HealthCheckResponse
{ServingStatus status = 1} (protobuf wire format: these two one-field messages need no
generated code and no extra package), and one Check call over grpcio.
Rules: success is status SERVING (1), as kubelet's probe has it; any other status, an
RPC error, a timeout or an unreadable answer is a failure, never an exception. The call
is blocking (grpcio): the async caller runs it in a thread, bounded by its deadline.
"""

from __future__ import annotations

import grpc

CHECK_METHOD = "/grpc.health.v1.Health/Check"
SERVING = 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_request(service: str) -> bytes:
    """HealthCheckRequest: field 1 (service), length-delimited; "" is the empty message."""
    data = service.encode()
    return b"\x0a" + _varint(len(data)) + data if data else b""


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_status(data: bytes) -> int:
    """HealthCheckResponse.status (0 UNKNOWN when absent); unknown fields are skipped. ValueError if malformed."""
    status, pos = 0, 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            if field == 1:
                status = value
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")
    if pos != len(data):
        raise ValueError("truncated field")
    return status


def encode_response(status: int) -> bytes:
    """HealthCheckResponse with `status` (for servers in tests)."""
    return b"\x08" + _varint(status) if status else b""


def decode_request(data: bytes) -> str:
    """HealthCheckRequest.service (for servers in tests)."""
    pos, service = 0, ""
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        if tag & 7 != 2:
            _, pos = _read_varint(data, pos)
            continue
        length, pos = _read_varint(data, pos)
        if tag >> 3 == 1:
            service = data[pos:pos + length].decode()
        pos += length
    return service


def check(host: str, port: int, service: str, timeout_s: float) -> bool:
    """One Check call (plaintext, as kubelet's probe); True when the answer is SERVING."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with grpc.insecure_channel(target) as channel:
            call = channel.unary_unary(CHECK_METHOD)  # bytes in, bytes out: no (de)serializers
            answer = call(encode_request(service), timeout=timeout_s)
        return decode_status(answer) == SERVING
    except (grpc.RpcError, ValueError):
        return False
