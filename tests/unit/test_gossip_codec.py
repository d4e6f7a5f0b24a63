"""Codec and keyring: strict decoding, number ranges, size limits, sealing; fuzzed with hypothesis."""

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
    MAX_ACCUSED_INCARNATION,
    MAX_INCARNATION,
    MAX_META_VERSION,
    MAX_SEQ,
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
WIDE = codec.Codec(65000, LAN.max_meta_bytes, LAN.max_stream_bytes)

WIRE_INTS = st.integers(-(2**63), 2**64 - 1)
"""Every integer msgpack can carry: what a forger can put in any numeric field."""

names = st.text(min_size=1, max_size=20)
hosts = st.ip_addresses().filter(lambda ip: not (ip.is_unspecified or ip.is_multicast)).map(str)
addrs = st.tuples(hosts, st.integers(min_value=1, max_value=65535))
seqs = st.integers(0, MAX_SEQ)
incarnations = st.integers(0, MAX_INCARNATION)
accused = st.integers(0, MAX_ACCUSED_INCARNATION)
meta_versions = st.integers(0, MAX_META_VERSION)
metas = st.binary(max_size=LAN.max_meta_bytes)
messages = st.one_of(
    st.builds(Ping, seqs, names),
    st.builds(IndirectPing, seqs, names, addrs, st.booleans()),
    st.builds(Ack, seqs),
    st.builds(Nack, seqs),
    st.builds(Alive, incarnations, names, addrs, meta_versions, st.one_of(st.none(), st.binary(max_size=100))),
    st.builds(Suspect, accused, names, names),
    st.builds(Dead, accused, names, names),
)
states = st.sampled_from(list(MemberState))


@st.composite
def records(draw) -> MemberRecord:
    state = draw(states)
    inc = draw(incarnations if state is MemberState.ALIVE else accused)
    return MemberRecord(draw(names), draw(addrs), inc, state, draw(meta_versions), draw(metas))


def valid_packet() -> bytes:
    return codec.encode_packet(
        [Ping(1, "n1"), Alive(3, "n2", ("10.0.0.2", 7946), 1, b"meta"), Suspect(2, "n3", "n1"), Dead(1, "n4", "n4")],
        LAN.max_packet_bytes,
    )


def assert_sound(decoded: codec.DecodedPacket) -> None:
    """What a decoder lets through is in range, well typed, and survives a round trip unchanged."""
    for m in decoded.messages:
        assert isinstance(m, (Ping, IndirectPing, Ack, Nack, Alive, Suspect, Dead)) and codec.in_range(m), m
    if decoded.messages:
        again = WIDE.decode_packet(codec.encode_packet(decoded.messages, 65000))
        assert again.messages == decoded.messages and again.out_of_range == 0


# ------------------------------------------------------------------ round trips

@settings(deadline=None)
@given(st.lists(messages, min_size=1, max_size=8))
def test_roundtrip_every_message_type(msgs):
    decoded = WIDE.decode_packet(codec.encode_packet(msgs, 65000))
    assert list(decoded.messages) == msgs
    assert (decoded.unknown_types, decoded.out_of_range) == (0, 0)


@settings(deadline=None)
@given(st.builds(PushPull, st.booleans(), names, st.lists(records(), max_size=20).map(tuple)))
def test_roundtrip_push_pull(pp):
    decoded = C.decode_stream(codec.encode_stream(pp))
    assert decoded.state == pp and decoded.out_of_range == 0


def test_type_numbers_are_fixed():
    """Wire numbers are append-only: changing one breaks mixed-version clusters."""
    assert [(t.name, t.value) for t in MsgType] == [
        ("PING", 1), ("INDIRECT_PING", 2), ("ACK", 3), ("NACK", 4),
        ("ALIVE", 5), ("SUSPECT", 6), ("DEAD", 7), ("PUSH_PULL", 8),
    ]
    assert msgpack.unpackb(codec.encode_packet([Ack(7)], 100)) == [1, [[3, 7]]]


# ------------------------------------------------------------------ number ranges

A = ("10.0.0.9", 7946)
# One builder per numeric field a peer sends: (field, highest value accepted, message with that field = v).
NUMERIC_FIELDS = [
    ("Ping.seq", MAX_SEQ, lambda v: Ping(v, "n")),
    ("IndirectPing.seq", MAX_SEQ, lambda v: IndirectPing(v, "n", A, True)),
    ("IndirectPing.port", 65535, lambda v: IndirectPing(1, "n", ("10.0.0.9", v), True)),
    ("Ack.seq", MAX_SEQ, lambda v: Ack(v)),
    ("Nack.seq", MAX_SEQ, lambda v: Nack(v)),
    ("Alive.incarnation", MAX_INCARNATION, lambda v: Alive(v, "n", A, 0, None)),
    ("Alive.meta_version", MAX_META_VERSION, lambda v: Alive(1, "n", A, v, b"m")),
    ("Alive.port", 65535, lambda v: Alive(1, "n", ("10.0.0.9", v), 0, None)),
    ("Suspect.incarnation", MAX_ACCUSED_INCARNATION, lambda v: Suspect(v, "n", "x")),
    ("Dead.incarnation", MAX_ACCUSED_INCARNATION, lambda v: Dead(v, "n", "x")),
]
LOWEST = {"IndirectPing.port": 1, "Alive.port": 1}


@pytest.mark.parametrize("field,highest,build", NUMERIC_FIELDS, ids=[f[0] for f in NUMERIC_FIELDS])
def test_each_number_is_accepted_exactly_within_its_range(field, highest, build):
    lowest = LOWEST.get(field, 0)
    for v, accepted in ((lowest, True), (highest, True), (lowest - 1, False), (highest + 1, False),
                        (2**63 - 1, False), (2**64 - 1, False), (-(2**63), False)):
        decoded = C.decode_packet(codec.encode_packet([Ack(5), build(v), Ping(6, "me")], LAN.max_packet_bytes))
        kept = (Ack(5), build(v), Ping(6, "me")) if accepted else (Ack(5), Ping(6, "me"))
        assert decoded.messages == kept and decoded.out_of_range == (0 if accepted else 1), (field, v)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NUMERIC_FIELDS), WIRE_INTS)
def test_an_out_of_range_number_skips_only_its_message(spec, value):
    field, highest, build = spec
    in_range = LOWEST.get(field, 0) <= value <= highest
    decoded = C.decode_packet(codec.encode_packet([Ack(5), build(value), Ping(6, "me")], LAN.max_packet_bytes))
    assert decoded.out_of_range == (0 if in_range else 1)
    assert decoded.messages[0] == Ack(5) and decoded.messages[-1] == Ping(6, "me")
    assert len(decoded.messages) == (3 if in_range else 2)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(MemberState)), WIRE_INTS, WIRE_INTS)
def test_an_out_of_range_record_skips_only_itself(state, incarnation, meta_version):
    bad = MemberRecord("x", A, incarnation, state, meta_version, b"")
    good = MemberRecord("y", A, 1, MemberState.ALIVE, 1, b"m")
    decoded = C.decode_stream(codec.encode_stream(PushPull(False, "s", (good, bad, good))))
    highest = MAX_INCARNATION if state is MemberState.ALIVE else MAX_ACCUSED_INCARNATION
    ok = 0 <= incarnation <= highest and 0 <= meta_version <= MAX_META_VERSION
    assert decoded.state.members == ((good, bad, good) if ok else (good, good))
    assert decoded.out_of_range == (0 if ok else 1)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["suspect", "dead", "leave", MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT]),
       WIRE_INTS)
def test_every_accepted_accusation_can_be_refuted_swim_4_2(kind, incarnation):
    """SWIM §4.2: a member refutes an accusation at i with Alive(i + 1); the codec never
    accepts an accusation whose refutation it would refuse."""
    if isinstance(kind, MemberState):
        record = MemberRecord("victim", A, incarnation, kind, 0, b"")
        decoded = C.decode_stream(codec.encode_stream(PushPull(False, "forger", (record,))))
        accepted = [r.incarnation for r in decoded.state.members]
    else:
        msg = {"suspect": Suspect(incarnation, "victim", "forger"), "dead": Dead(incarnation, "victim", "forger"),
               "leave": Dead(incarnation, "victim", "victim")}[kind]
        accepted = [m.incarnation for m in C.decode_packet(codec.encode_packet([msg], 1400)).messages]
    assert bool(accepted) == (0 <= incarnation <= MAX_ACCUSED_INCARNATION)
    for i in accepted:
        refutation = Alive(i + 1, "victim", A, 1, b"meta")
        assert C.decode_packet(codec.encode_packet([refutation], 1400)).messages == (refutation,)
        record = MemberRecord("victim", A, i + 1, MemberState.ALIVE, 1, b"meta")
        assert C.decode_stream(codec.encode_stream(PushPull(False, "victim", (record,)))).state.members == (record,)


def test_the_incarnation_bound_is_far_above_honest_use_and_exact_in_json():
    # A thousand refutations or metadata changes a second for a thousand years stay below it.
    assert 1000 * 3600 * 24 * 366 * 1000 < MAX_INCARNATION < 2**53
    assert MAX_ACCUSED_INCARNATION + 1 == MAX_INCARNATION


def test_a_member_address_is_an_ip_literal():
    for host in ("10.0.0.1", "127.0.0.1", "::1", "fe80::1"):
        assert codec.is_member_host(host), host
    for host in ("localhost", "example.com", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "10.0.0", ""):
        assert not codec.is_member_host(host), host
        with pytest.raises(CodecError):
            C.decode_packet(msgpack.packb([1, [[5, 1, "n", [host, 7946], 0, None]]]))


# ------------------------------------------------------------------ malformed input and fuzzing

@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_are_rejected_or_decode_soundly(data):
    try:
        decoded = C.decode_packet(data)
    except CodecError as e:
        assert e.reason in ("malformed", "oversized", "version")
        return
    assert_sound(decoded)


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_mutated_valid_packets_are_rejected_or_decode_soundly(data):
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
        decoded = C.decode_packet(bytes(pkt))
    except CodecError:
        return
    assert_sound(decoded)


wire_values = st.recursive(
    st.one_of(st.none(), st.booleans(), WIRE_INTS, st.text(max_size=10), st.binary(max_size=10), st.floats(),
              hosts, st.sampled_from(list(range(1, 9)))),
    lambda inner: st.lists(inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(list(range(1, 8))), st.lists(wire_values, max_size=7))
def test_arbitrary_fields_are_rejected_or_decode_soundly(type_number, fields):
    """Any msgpack value in any field of any message type, numbers of every size included."""
    try:
        decoded = C.decode_packet(msgpack.packb([1, [[type_number, *fields]]], use_bin_type=True))
    except CodecError as e:
        assert e.reason == "malformed"
        return
    assert_sound(decoded)
    assert len(decoded.messages) + decoded.out_of_range == 1


# A valid wire form of each message type, and a value of a wrong type for each field.
VALID_WIRE = {
    MsgType.PING: [1, "n"],
    MsgType.INDIRECT_PING: [1, "n", ["10.0.0.1", 7946], True],
    MsgType.ACK: [1],
    MsgType.NACK: [1],
    MsgType.ALIVE: [1, "n", ["10.0.0.1", 7946], 1, b"m"],
    MsgType.SUSPECT: [1, "n", "x"],
    MsgType.DEAD: [1, "n", "x"],
}
WRONG_TYPE = {int: ["1", 1.0, True, None, b"\x01", [1]], str: [1, b"n", None, True, ["n"], ""],
              bool: [1, 0, "true", None], bytes: ["m", 1, [b"m"]], list: ["10.0.0.1:7946", 7946, None, ["10.0.0.1"]]}


def test_a_wrongly_typed_field_rejects_the_whole_packet():
    cases = 0
    for type_number, fields in VALID_WIRE.items():
        assert C.decode_packet(msgpack.packb([1, [[type_number, *fields]]], use_bin_type=True)).messages
        for i, value in enumerate(fields):
            for wrong in WRONG_TYPE[type(value)]:
                if type_number == MsgType.ALIVE and i == 4 and wrong is None:
                    continue  # no metadata is allowed in an Alive
                bad = [*fields[:i], wrong, *fields[i + 1:]]
                data = msgpack.packb([1, [[MsgType.ACK, 9], [type_number, *bad]]], use_bin_type=True)
                with pytest.raises(CodecError) as e:
                    C.decode_packet(data)
                assert e.value.reason == "malformed", (type_number, i, wrong)
                cases += 1
        for arity in (len(fields) - 1, len(fields) + 1):
            data = msgpack.packb([1, [[type_number, *(fields + [1])[:arity]]]], use_bin_type=True)
            with pytest.raises(CodecError):
                C.decode_packet(data)
    assert cases > 50


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(wire_values, max_size=7), max_size=5), st.booleans(), wire_values)
def test_arbitrary_push_pull_records_are_rejected_or_decode_soundly(rows, join, sender):
    data = msgpack.packb([1, [MsgType.PUSH_PULL, join, sender, rows]], use_bin_type=True)
    try:
        decoded = C.decode_stream(data)
    except CodecError as e:
        assert e.reason == "malformed"
        return
    assert all(codec.in_range(r) for r in decoded.state.members)
    assert len(decoded.state.members) + decoded.out_of_range == len(rows)
    assert C.decode_stream(codec.encode_stream(decoded.state)).state == decoded.state


def test_specific_malformed_inputs_are_rejected():
    bad = [
        b"",
        b"\xc1",  # reserved msgpack byte
        msgpack.packb([2, [[3, 1]]]),  # unknown protocol version
        msgpack.packb([1, []]),  # no messages
        msgpack.packb([1, [[3]]]),  # missing field
        msgpack.packb([1, [[3, 1, 2]]]),  # extra field
        msgpack.packb([1, [[3, True]]]),  # bool is not an int
        msgpack.packb([1, [[1, 5, ""]]]),  # empty name
        msgpack.packb([1, [[5, 1, "n", ["10.0.0.1", 1], 0, "text"]]]),  # meta must be bytes
        msgpack.packb([1, [[5, 1, "n", ["host.example", 1], 0, None]]]),  # a name, not an address
        msgpack.packb([1, [[8, False, "n", []]]]),  # push-pull is not a UDP message
        msgpack.packb({"a": 1}),
        msgpack.packb([1, [[3, 1]]]) + b"\x00",  # trailing bytes
    ]
    for data in bad:
        with pytest.raises(CodecError):
            C.decode_packet(data)
    with pytest.raises(CodecError):
        C.decode_stream(msgpack.packb([1, [True, False, "n", []]]))  # a bool where the type number goes


def test_oversized_and_unknown_types():
    with pytest.raises(CodecError) as e:
        C.decode_packet(b"\x90" * (LAN.max_packet_bytes + 1))
    assert e.value.reason == "oversized"
    big_meta = msgpack.packb([1, [[5, 1, "n", ["10.0.0.1", 1], 0, b"x" * (LAN.max_meta_bytes + 1)]]],
                             use_bin_type=True)
    with pytest.raises(CodecError) as e:
        C.decode_packet(big_meta)
    assert e.value.reason == "malformed"
    # A message type from a newer version is skipped and counted; the rest of the packet is kept.
    out = C.decode_packet(msgpack.packb([1, [[99, "future"], [3, 5]]]))
    assert out.messages == (Ack(5),) and out.unknown_types == 1 and out.out_of_range == 0
    with pytest.raises(GossipInvariantError):
        codec.encode_packet([Alive(1, "n", ("10.0.0.1", 1), 1, b"x" * 500)] * 3, LAN.max_packet_bytes)


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
