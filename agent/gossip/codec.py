"""Strict msgpack codec for gossip packets (UDP) and push-pull streams (TCP).

Owns: the wire layout. A packet is msgpack `[PROTOCOL_VERSION, [message, ...]]` (so
every packet is a compound of one or more messages) and a message is
`[type_number, field, ...]`; a stream payload is `[PROTOCOL_VERSION, push_pull]`.
Rules: decoding trusts nothing. Any malformed, oversized or wrongly typed input raises
CodecError (whole packet dropped) with a stable `reason`; a message with an unknown type
number (a newer peer) is skipped and counted, the rest of the packet is kept. Encoding
our own messages never fails for valid messages; a packet over the limit is a bug in
the caller and raises GossipInvariantError. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import msgpack

from .errors import CodecError, GossipInvariantError
from .messages import (
    Ack,
    Addr,
    Alive,
    Dead,
    IndirectPing,
    MemberRecord,
    MemberState,
    Message,
    MsgType,
    Nack,
    Ping,
    PushPull,
    Suspect,
)

PROTOCOL_VERSION = 1
MAX_NAME_BYTES = 128
MAX_HOST_BYTES = 255
MAX_INT = 2**63 - 1
PACKET_OVERHEAD_BYTES = 8
"""Outer array, version and message-array headers, rounded up."""

# The sealed envelope around a packet or stream payload when a keyring is in use
# (keyring.py seals and opens it): version byte | nonce | ciphertext | tag.
SEAL_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
SEAL_OVERHEAD_BYTES = 1 + NONCE_BYTES + TAG_BYTES


@dataclass(frozen=True, slots=True)
class DecodedPacket:
    messages: tuple[Message, ...]
    unknown_types: int  # messages skipped because their type number is unknown here


# ---------------------------------------------------------------- encoding

def _addr(a: Addr) -> list[Any]:
    return [a[0], a[1]]


def to_wire(msg: Message) -> list[Any]:
    """The msgpack-ready list for one message."""
    if isinstance(msg, Ping):
        return [MsgType.PING, msg.seq, msg.target]
    if isinstance(msg, IndirectPing):
        return [MsgType.INDIRECT_PING, msg.seq, msg.target, _addr(msg.target_addr), msg.want_nack]
    if isinstance(msg, Ack):
        return [MsgType.ACK, msg.seq]
    if isinstance(msg, Nack):
        return [MsgType.NACK, msg.seq]
    if isinstance(msg, Alive):
        return [MsgType.ALIVE, msg.incarnation, msg.name, _addr(msg.addr), msg.meta_version, msg.meta]
    if isinstance(msg, Suspect):
        return [MsgType.SUSPECT, msg.incarnation, msg.name, msg.by]
    if isinstance(msg, Dead):
        return [MsgType.DEAD, msg.incarnation, msg.name, msg.by]
    if isinstance(msg, PushPull):
        return [
            MsgType.PUSH_PULL,
            msg.join,
            msg.sender,
            [[m.name, _addr(m.addr), m.incarnation, int(m.state), m.meta_version, m.meta] for m in msg.members],
        ]
    raise GossipInvariantError(f"not a message: {msg!r}")


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def encoded_size(msg: Message) -> int:
    """Bytes this message takes inside a packet (used to fill packets with piggybacked gossip)."""
    return len(_pack(to_wire(msg)))


def encode_packet(messages: tuple[Message, ...] | list[Message], max_bytes: int) -> bytes:
    if not messages:
        raise GossipInvariantError("empty packet")
    data = _pack([PROTOCOL_VERSION, [to_wire(m) for m in messages]])
    if len(data) > max_bytes:
        raise GossipInvariantError(f"packet of {len(data)} B exceeds {max_bytes} B")
    return data


def encode_stream(msg: PushPull) -> bytes:
    return _pack([PROTOCOL_VERSION, to_wire(msg)])


# ---------------------------------------------------------------- decoding

def _bad(detail: str) -> CodecError:
    return CodecError("malformed", detail)


def _int(v: Any) -> int:
    if type(v) is not int or not 0 <= v <= MAX_INT:
        raise _bad("expected a non-negative int")
    return v


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise _bad("expected a bool")
    return v


def _name(v: Any) -> str:
    if type(v) is not str or not v or len(v.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise _bad("bad member name")
    return v


def _addr_in(v: Any) -> Addr:
    if type(v) is not list or len(v) != 2:
        raise _bad("bad address")
    host, port = v
    if type(host) is not str or not host or len(host) > MAX_HOST_BYTES:
        raise _bad("bad host")
    if type(port) is not int or not 0 < port < 65536:
        raise _bad("bad port")
    return (host, port)


class Codec:
    """Decoder with the limits of one configuration (packet size, metadata size, stream size)."""

    def __init__(self, max_packet_bytes: int, max_meta_bytes: int, max_stream_bytes: int) -> None:
        self.max_packet_bytes = max_packet_bytes
        self.max_meta_bytes = max_meta_bytes
        self.max_stream_bytes = max_stream_bytes
        self._parsers: dict[int, Callable[[list[Any]], Message]] = {
            MsgType.PING: self._ping,
            MsgType.INDIRECT_PING: self._indirect,
            MsgType.ACK: lambda f: Ack(_int(self._one(f))),
            MsgType.NACK: lambda f: Nack(_int(self._one(f))),
            MsgType.ALIVE: self._alive,
            MsgType.SUSPECT: self._suspect,
            MsgType.DEAD: self._dead,
        }

    # -- field groups
    @staticmethod
    def _arity(fields: list[Any], n: int) -> list[Any]:
        if len(fields) != n:
            raise _bad(f"expected {n} fields, got {len(fields)}")
        return fields

    def _one(self, f: list[Any]) -> Any:
        return self._arity(f, 1)[0]

    def _meta(self, v: Any, optional: bool) -> bytes | None:
        if v is None and optional:
            return None
        if type(v) is not bytes or len(v) > self.max_meta_bytes:
            raise _bad("bad metadata")
        return v

    def _ping(self, f: list[Any]) -> Ping:
        seq, target = self._arity(f, 2)
        return Ping(_int(seq), _name(target))

    def _indirect(self, f: list[Any]) -> IndirectPing:
        seq, target, addr, want_nack = self._arity(f, 4)
        return IndirectPing(_int(seq), _name(target), _addr_in(addr), _bool(want_nack))

    def _alive(self, f: list[Any]) -> Alive:
        inc, name, addr, meta_version, meta = self._arity(f, 5)
        return Alive(_int(inc), _name(name), _addr_in(addr), _int(meta_version), self._meta(meta, True))

    def _suspect(self, f: list[Any]) -> Suspect:
        inc, name, by = self._arity(f, 3)
        return Suspect(_int(inc), _name(name), _name(by))

    def _dead(self, f: list[Any]) -> Dead:
        inc, name, by = self._arity(f, 3)
        return Dead(_int(inc), _name(name), _name(by))

    def _record(self, v: Any) -> MemberRecord:
        if type(v) is not list:
            raise _bad("bad member record")
        name, addr, inc, state, meta_version, meta = self._arity(v, 6)
        if type(state) is not int or state not in MemberState._value2member_map_:
            raise _bad("bad member state")
        return MemberRecord(
            _name(name), _addr_in(addr), _int(inc), MemberState(state), _int(meta_version), self._meta(meta, False)
        )

    # -- top level
    def _unpack(self, data: bytes, limit: int) -> Any:
        if len(data) > limit:
            raise CodecError("oversized", f"{len(data)} B > {limit} B")
        try:
            obj = msgpack.unpackb(
                data,
                raw=False,
                use_list=True,
                strict_map_key=True,
                max_map_len=0,
                max_ext_len=0,
                max_bin_len=self.max_meta_bytes,
                max_str_len=MAX_HOST_BYTES,
            )
        except Exception as exc:  # msgpack raises many kinds (ValueError, ExtraData, UnicodeDecodeError, ...)
            raise CodecError("malformed", type(exc).__name__) from None
        if type(obj) is not list or len(obj) != 2:
            raise _bad("bad envelope")
        if type(obj[0]) is not int or obj[0] != PROTOCOL_VERSION:
            raise CodecError("version", repr(obj[0])[:20])
        return obj[1]

    def decode_packet(self, data: bytes) -> DecodedPacket:
        body = self._unpack(data, self.max_packet_bytes)
        if type(body) is not list or not body:
            raise _bad("bad message list")
        out: list[Message] = []
        unknown = 0
        for item in body:
            if type(item) is not list or not item or type(item[0]) is not int:
                raise _bad("bad message")
            parser = self._parsers.get(item[0])
            if parser is None:
                if item[0] == MsgType.PUSH_PULL:
                    raise _bad("push-pull is not allowed in a packet")
                unknown += 1
                continue
            out.append(parser(item[1:]))
        return DecodedPacket(tuple(out), unknown)

    def decode_stream(self, data: bytes) -> PushPull:
        body = self._unpack(data, self.max_stream_bytes)
        if type(body) is not list or len(body) != 4 or body[0] != MsgType.PUSH_PULL or type(body[0]) is not int:
            raise _bad("expected a push-pull")
        _, join, sender, records = body
        if type(records) is not list:
            raise _bad("bad member list")
        return PushPull(_bool(join), _name(sender), tuple(self._record(r) for r in records))
