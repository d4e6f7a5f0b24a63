"""Strict msgpack codec for gossip packets (UDP) and push-pull streams (TCP).

Owns: the wire layout and the ranges of the numbers on it. A packet is msgpack
`[PROTOCOL_VERSION, [message, ...]]` (so every packet is a compound of one or more
messages) and a message is `[type_number, field, ...]`; a stream payload is
`[PROTOCOL_VERSION, push_pull]`.
Rules: decoding trusts nothing. Malformed, oversized or wrongly typed input raises
CodecError (the whole packet or stream is dropped) with a stable `reason`. A message
with an unknown type number (a newer peer) is skipped and counted, the rest kept. A
number of the right type outside its range (messages.py states each: incarnations,
metadata versions, sequence numbers, ports) invalidates only its message, or its
member record in a push-pull: skipped and counted as out of range, the rest kept, so a
member that holds a number only a forger could have produced is not silenced whole.
An accusation (Suspect, Dead, a suspect, dead or left record) is accepted only up to
MAX_ACCUSED_INCARNATION: whatever accusation the codec accepts, its subject can refute
with an incarnation the codec accepts. A member address is an IP address literal
(never a name the driver would resolve). Encoding our own messages never fails for
valid messages; a packet over the limit is a bug in the caller and raises
GossipInvariantError. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Callable

import msgpack

from .errors import CodecError, GossipInvariantError
from .messages import (
    MAX_ACCUSED_INCARNATION,
    MAX_INCARNATION,
    MAX_META_VERSION,
    MAX_SEQ,
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
    out_of_range: int  # messages skipped because a number in them is out of its range


@dataclass(frozen=True, slots=True)
class DecodedStream:
    state: PushPull
    out_of_range: int  # member records skipped because a number in them is out of its range


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
    if type(v) is not int:
        raise _bad("expected an int")
    return v


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise _bad("expected a bool")
    return v


def _name(v: Any) -> str:
    if type(v) is not str or not v or len(v.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise _bad("bad member name")
    return v


def is_member_host(host: str) -> bool:
    """An IP address literal a member can be reached at (not unspecified, not multicast)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not (ip.is_unspecified or ip.is_multicast)


def _addr_in(v: Any) -> Addr:
    if type(v) is not list or len(v) != 2:
        raise _bad("bad address")
    host, port = v
    if type(host) is not str or not is_member_host(host):
        raise _bad("bad host")
    if type(port) is not int:
        raise _bad("bad port")
    return (host, port)


def _port_ok(addr: Addr) -> bool:
    return 0 < addr[1] < 65536


def in_range(item: Message | MemberRecord) -> bool:
    """Every number in a message or member record lies within its range (see messages.py)."""
    if isinstance(item, (Ping, Ack, Nack)):
        return 0 <= item.seq <= MAX_SEQ
    if isinstance(item, IndirectPing):
        return 0 <= item.seq <= MAX_SEQ and _port_ok(item.target_addr)
    if isinstance(item, Alive):
        return (0 <= item.incarnation <= MAX_INCARNATION and 0 <= item.meta_version <= MAX_META_VERSION
                and _port_ok(item.addr))
    if isinstance(item, (Suspect, Dead)):
        return 0 <= item.incarnation <= MAX_ACCUSED_INCARNATION
    if isinstance(item, MemberRecord):
        highest = MAX_INCARNATION if item.state is MemberState.ALIVE else MAX_ACCUSED_INCARNATION
        return 0 <= item.incarnation <= highest and 0 <= item.meta_version <= MAX_META_VERSION and _port_ok(item.addr)
    raise GossipInvariantError(f"no range rule for {item!r}")


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
        unknown = out_of_range = 0
        for item in body:
            if type(item) is not list or not item or type(item[0]) is not int:
                raise _bad("bad message")
            parser = self._parsers.get(item[0])
            if parser is None:
                if item[0] == MsgType.PUSH_PULL:
                    raise _bad("push-pull is not allowed in a packet")
                unknown += 1
                continue
            msg = parser(item[1:])
            if in_range(msg):
                out.append(msg)
            else:
                out_of_range += 1
        return DecodedPacket(tuple(out), unknown, out_of_range)

    def decode_stream(self, data: bytes) -> DecodedStream:
        body = self._unpack(data, self.max_stream_bytes)
        if type(body) is not list or len(body) != 4 or type(body[0]) is not int or body[0] != MsgType.PUSH_PULL:
            raise _bad("expected a push-pull")
        _, join, sender, records = body
        if type(records) is not list:
            raise _bad("bad member list")
        kept: list[MemberRecord] = []
        out_of_range = 0
        for r in records:
            record = self._record(r)
            if in_range(record):
                kept.append(record)
            else:
                out_of_range += 1
        return DecodedStream(PushPull(_bool(join), _name(sender), tuple(kept)), out_of_range)
