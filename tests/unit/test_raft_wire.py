"""agent/raft/wire.py: core messages <-> protobuf, strict on the way in."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.raft.confchange import encode_conf_state
from agent.raft.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    MsgType,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from agent.raft.types import ConfState, Entry, EntryKind, SnapshotMeta
from agent.raft.types import MAX_NODE_ID_CHARS
from agent.raft.wire import WireError, decode_message, encode_message
from agent.rpc import raft_pb2

META = SnapshotMeta(40, 3, ConfState(voters=("n1", "n2", "n3"), learners=("n4",)))

EVERY_KIND = [
    AppendEntries("n1", "n2", 5, 10, 4, (Entry(11, 4, EntryKind.NORMAL, b"a"), Entry(12, 5, EntryKind.NOOP, b""),
                                          Entry(13, 5, EntryKind.CONFIG, encode_conf_state(META.conf))), 9),
    AppendEntries("n1", "n2", 5, 10, 4, (), 9),
    AppendResponse("n2", "n1", 5, 13),
    AppendResponse("n2", "n1", 5, 10, reject=True, hint_term=3, hint_index=7),
    VoteRequest("n3", "n1", 6, 13, 5, pre_vote=True),
    VoteRequest("n3", "n1", 6, 13, 5, transfer=True),
    VoteResponse("n1", "n3", 6, True, pre_vote=True),
    VoteResponse("n1", "n3", 6, False),
    Heartbeat("n1", "n2", 5, 9, context=4),
    HeartbeatResponse("n2", "n1", 5, context=4),
    InstallSnapshot("n1", "n2", 5, META, 1024, b"chunk", False),
    InstallSnapshot("n1", "n2", 5, SnapshotMeta(), 0, b"", True),
    SnapshotResponse("n2", "n1", 5, 40, 2048),
    SnapshotResponse("n2", "n1", 5, 40, 0, done=True),
    TimeoutNow("n1", "n2", 5),
    ReadIndexRequest("n2", "n1", 5, b"\x00\x01"),
    ReadIndexResponse("n1", "n2", 5, b"\x00\x01", 12),
    ReadIndexResponse("n1", "n2", 5, b"\x00\x01", 0, reject=True),
]


@pytest.mark.parametrize("msg", EVERY_KIND, ids=lambda m: type(m).__name__)
def test_every_message_kind_survives_the_round_trip(msg):
    pb = encode_message(msg)
    assert pb.type == int(msg.TYPE)
    again = raft_pb2.RaftMessage.FromString(pb.SerializeToString())
    assert decode_message(again) == msg


def test_every_message_type_number_has_a_case():
    covered = {m.TYPE for m in EVERY_KIND}
    assert covered == set(MsgType)


def raw_conf(voters, learners=()) -> bytes:
    """A configuration in confchange.py's byte layout, valid or not."""
    ids = [n.encode() for n in list(voters) + list(learners)]
    return struct.pack("<BHH", 1, len(voters), len(learners)) + b"".join(struct.pack("<H", len(i)) + i for i in ids)


def _pb(**fields) -> raft_pb2.RaftMessage:
    base = dict(type=int(MsgType.HEARTBEAT), src="n1", dst="n2", term=3)
    base.update(fields)
    return raft_pb2.RaftMessage(**base)


@pytest.mark.parametrize(
    "pb, reason",
    [
        (_pb(type=0), "unknown_type"),
        (_pb(type=99), "unknown_type"),
        (_pb(src=""), "bad_src"),
        (_pb(dst="x" * (MAX_NODE_ID_CHARS + 1)), "bad_dst"),
        # A field the type does not use: a confused or hostile sender.
        (_pb(data=b"x"), "unexpected_data"),
        (_pb(type=int(MsgType.VOTE), entries=[raft_pb2.LogEntry(index=1, term=1)]), "unexpected_entries"),
        (_pb(type=int(MsgType.APPEND), prev_index=1, entries=[raft_pb2.LogEntry(index=2, term=1, kind=7)]),
         "bad_entry_kind"),
        # Entries must follow prev_index one by one and never exceed the message's term.
        (_pb(type=int(MsgType.APPEND), prev_index=1, entries=[raft_pb2.LogEntry(index=5, term=1)]), "bad_entry"),
        (_pb(type=int(MsgType.APPEND), prev_index=1, entries=[raft_pb2.LogEntry(index=2, term=9)]), "bad_entry"),
        (_pb(type=int(MsgType.SNAPSHOT), offset=0, done=True), "missing_meta"),
        (_pb(type=int(MsgType.SNAPSHOT), meta=raft_pb2.SnapshotPoint(
            index=1, term=1, membership=raw_conf(["n1", "n1"]))), "bad_membership"),
        (_pb(type=int(MsgType.SNAPSHOT), meta=raft_pb2.SnapshotPoint(
            index=1, term=1, membership=raw_conf([""]))), "bad_membership"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(pb, reason):
    with pytest.raises(WireError) as info:
        decode_message(raft_pb2.RaftMessage.FromString(pb.SerializeToString()))
    # messages.validate may name the entry problem more precisely (bad_entry_index...).
    assert info.value.reason == reason or info.value.reason.startswith(reason + "_")


_fields = st.fixed_dictionaries(
    {},
    optional={
        "type": st.integers(0, 14),
        "src": st.sampled_from(["", "n1", "n2", "x" * 300]),
        "dst": st.sampled_from(["", "n1", "n2"]),
        "term": st.integers(0, 2**64 - 1),
        "prev_index": st.integers(0, 50),
        "prev_term": st.integers(0, 5),
        "commit": st.integers(0, 2**64 - 1),
        "index": st.integers(0, 50),
        "reject": st.booleans(),
        "pre_vote": st.booleans(),
        "heartbeat_context": st.integers(0, 10),
        "read_context": st.binary(max_size=8),
        "data": st.binary(max_size=8),
        "done": st.booleans(),
        "entries": st.lists(
            st.builds(raft_pb2.LogEntry, index=st.integers(0, 60), term=st.integers(0, 6),
                      kind=st.integers(0, 4), data=st.binary(max_size=4)),
            max_size=4,
        ),
        "meta": st.builds(raft_pb2.SnapshotPoint, index=st.integers(0, 9), term=st.integers(0, 9),
                          membership=st.lists(st.sampled_from(["", "n1", "n2"]), max_size=3).map(raw_conf)),
    },
)


@settings(max_examples=400, deadline=None)
@given(_fields)
def test_any_field_combination_decodes_to_a_valid_message_or_a_wire_error(fields):
    pb = raft_pb2.RaftMessage(**fields)
    try:
        msg = decode_message(pb)
    except WireError as exc:
        assert exc.reason
        return
    # Whatever is accepted re-encodes to the same protobuf: nothing was silently lost.
    assert encode_message(msg).SerializeToString(deterministic=True) == pb.SerializeToString(deterministic=True)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_anything_but_a_parse_error_or_wire_error(blob):
    try:
        pb = raft_pb2.RaftMessage.FromString(blob)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError; grpc refuses such a request
        return
    try:
        decode_message(pb)
    except WireError:
        pass
