"""Codec and keyring: strict decoding, size limits, sealing; fuzzed with hypothesis."""

from __future__ import annotations

import os

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.gossip import codec
from agent.gossip.config import LAN
from agent.gossip.errors import CodecError, GossipInvariantError, KeyringError
from agent.gossip.keyring import SEAL_OVERHEAD_BYTES, Keyring
from agent.gossip.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MemberRecord,
    MemberState,
    MsgType,
    Nack,
    Ping,
    PushPull,
    Suspect,
)

C = codec.Codec(LAN.max_packet_bytes, LAN.max_meta_bytes, LAN.max_stream_bytes)

names = st.text(min_size=1, max_size=20)
ints = st.integers(min_value=0, max_value=2**63 - 1)
addrs = st.tuples(st.text(min_size=1, max_size=40), st.integers(min_value=1, max_value=65535))
metas = st.binary(max_size=LAN.max_meta_bytes)
messages = st.one_of(
    st.builds(Ping, ints, names),
    st.builds(IndirectPing, ints, names, addrs, st.booleans()),
    st.builds(Ack, ints),
    st.builds(Nack, ints),
    st.builds(Alive, ints, names, addrs, ints, st.one_of(st.none(), st.binary(max_size=100))),
    st.builds(Suspect, ints, names, names),
    st.builds(Dead, ints, names, names),
)
records = st.builds(MemberRecord, names, addrs, ints, st.sampled_from(list(MemberState)), ints, metas)


def valid_packet() -> bytes:
    return codec.encode_packet(
        [Ping(1, "n1"), Alive(3, "n2", ("10.0.0.2", 7946), 1, b"meta"), Suspect(2, "n3", "n1"), Dead(1, "n4", "n4")],
        LAN.max_packet_bytes,
    )


@settings(deadline=None)
@given(st.lists(messages, min_size=1, max_size=8))
def test_roundtrip_every_message_type(msgs):
    data = codec.encode_packet(msgs, 65000)
    decoded = codec.Codec(65000, LAN.max_meta_bytes, LAN.max_stream_bytes).decode_packet(data)
    assert list(decoded.messages) == msgs and decoded.unknown_types == 0


@settings(deadline=None)
@given(st.builds(PushPull, st.booleans(), names, st.lists(records, max_size=20).map(tuple)))
def test_roundtrip_push_pull(pp):
    assert C.decode_stream(codec.encode_stream(pp)) == pp


def test_type_numbers_are_fixed():
    """Wire numbers are append-only: changing one breaks mixed-version clusters."""
    assert [(t.name, t.value) for t in MsgType] == [
        ("PING", 1), ("INDIRECT_PING", 2), ("ACK", 3), ("NACK", 4),
        ("ALIVE", 5), ("SUSPECT", 6), ("DEAD", 7), ("PUSH_PULL", 8),
    ]
    assert msgpack.unpackb(codec.encode_packet([Ack(7)], 100)) == [1, [[3, 7]]]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_the_decoder(data):
    try:
        C.decode_packet(data)
    except CodecError as e:
        assert e.reason in ("malformed", "oversized", "version")


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_mutated_valid_packets_decode_or_are_rejected(data):
    pkt = bytearray(valid_packet())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, len(pkt) - 1))
        if op == "flip":
            pkt[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del pkt[i:]
            if not pkt:
                pkt = bytearray(b"\x00")
        else:
            pkt[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        out = C.decode_packet(bytes(pkt))
    except CodecError:
        return
    # Whatever decodes is well-typed.
    for m in out.messages:
        assert isinstance(m, (Ping, IndirectPing, Ack, Nack, Alive, Suspect, Dead))


@settings(max_examples=300, deadline=None)
@given(st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=10), st.binary(max_size=10), st.floats()),
    lambda inner: st.lists(inner, max_size=6),
    max_leaves=30,
))
def test_well_formed_msgpack_of_wrong_shape_is_rejected(obj):
    data = msgpack.packb([1, [[1, obj], [5, obj, obj, obj, obj, obj], obj]], use_bin_type=True)
    try:
        C.decode_packet(data)
    except CodecError:
        pass


def test_specific_malformed_inputs_are_rejected():
    bad = [
        b"",
        b"\xc1",  # reserved msgpack byte
        msgpack.packb([2, [[3, 1]]]),  # unknown protocol version
        msgpack.packb([1, []]),  # no messages
        msgpack.packb([1, [[3]]]),  # missing field
        msgpack.packb([1, [[3, 1, 2]]]),  # extra field
        msgpack.packb([1, [[3, -1]]]),  # negative seq
        msgpack.packb([1, [[3, True]]]),  # bool is not an int
        msgpack.packb([1, [[1, 5, ""]]]),  # empty name
        msgpack.packb([1, [[5, 1, "n", ["h", 70000], 0, None]]]),  # bad port
        msgpack.packb([1, [[5, 1, "n", ["h", 1], 0, "text"]]]),  # meta must be bytes
        msgpack.packb([1, [[8, False, "n", []]]]),  # push-pull is not a UDP message
        msgpack.packb({"a": 1}),
        msgpack.packb([1, [[3, 1]]]) + b"\x00",  # trailing bytes
    ]
    for data in bad:
        with pytest.raises(CodecError):
            C.decode_packet(data)


def test_oversized_and_unknown_types():
    with pytest.raises(CodecError) as e:
        C.decode_packet(b"\x90" * (LAN.max_packet_bytes + 1))
    assert e.value.reason == "oversized"
    big_meta = msgpack.packb([1, [[5, 1, "n", ["h", 1], 0, b"x" * (LAN.max_meta_bytes + 1)]]], use_bin_type=True)
    with pytest.raises(CodecError):
        C.decode_packet(big_meta)
    # A message type from a newer version is skipped and counted; the rest of the packet is kept.
    out = C.decode_packet(msgpack.packb([1, [[99, "future"], [3, 5]]]))
    assert out.messages == (Ack(5),) and out.unknown_types == 1
    with pytest.raises(GossipInvariantError):
        codec.encode_packet([Alive(1, "n", ("h", 1), 1, b"x" * 500)] * 3, LAN.max_packet_bytes)


# ------------------------------------------------------------------ keyring

def test_keyring_seal_open_and_rotation():
    k1, k2 = os.urandom(32), os.urandom(16)
    a = Keyring([k1])
    b = Keyring([k1])
    sealed = a.seal(b"hello")
    assert len(sealed) == len(b"hello") + SEAL_OVERHEAD_BYTES
    assert b.open(sealed) == b"hello"
    # Rotation: install everywhere, then use, then remove the old key; no step partitions the pair.
    a.install(k2)
    b.install(k2)
    assert b.open(a.seal(b"x")) == b"x"
    a.use(k2)
    assert b.open(a.seal(b"y")) == b"y"  # b still primary k1 but accepts k2
    assert a.open(b.seal(b"z")) == b"z"
    b.use(k2)
    a.remove(k1)
    b.remove(k1)
    assert a.open(b.seal(b"w")) == b"w"
    with pytest.raises(KeyringError):
        a.remove(k2)  # the primary stays
    with pytest.raises(KeyringError):
        a.use(os.urandom(32))
    with pytest.raises(KeyringError):
        a.install(b"short")


def test_wrong_key_and_tampering_are_rejected():
    a, b = Keyring([os.urandom(32)]), Keyring([os.urandom(32)])
    sealed = a.seal(valid_packet())
    with pytest.raises(KeyringError):
        b.open(sealed)
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(KeyringError):
        a.open(bytes(tampered))
    with pytest.raises(KeyringError):
        a.open(valid_packet())  # plaintext is refused when a keyring is in use


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_under_a_keyring_are_rejected(data):
    ring = Keyring([b"k" * 32])
    with pytest.raises(KeyringError):
        ring.open(data)
