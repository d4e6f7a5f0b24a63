"""agent/raft/wire.py: core messages <-> protobuf, strict on the way in.

Every malformed case names the exact rejection it must get (WireError and its reason);
the fuzzers check that whatever decodes is a valid message that re-encodes to the same
bytes, and that whatever is refused is refused for a reason the input really has --
out-of-range numbers included.
"""

from __future__ import annotations

import re
import struct

import pytest
from google.protobuf.message import DecodeError
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
    validate,
)
from agent.raft.types import MAX_NODE_ID_CHARS, NUMBER_LIMIT, ConfState, Entry, EntryKind, SnapshotMeta
from agent.raft.wire import WireError, decode_message, encode_message
from agent.rpc import raft_pb2

META = SnapshotMeta(40, 3, ConfState(voters=("n1", "n2", "n3"), learners=("n4",)))
CONF = encode_conf_state(META.conf)

EVERY_KIND = [
    AppendEntries("n1", "n2", 5, 10, 4, (Entry(11, 4, EntryKind.NORMAL, b"a"), Entry(12, 5, EntryKind.NOOP, b""),
                                          Entry(13, 5, EntryKind.CONFIG, CONF)), 9),
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
    # The largest numbers a node accepts.
    Heartbeat("n1", "n2", NUMBER_LIMIT - 1, NUMBER_LIMIT - 1, context=NUMBER_LIMIT - 1),
    AppendEntries("n1", "n2", NUMBER_LIMIT - 1, NUMBER_LIMIT - 2, NUMBER_LIMIT - 1,
                  (Entry(NUMBER_LIMIT - 1, NUMBER_LIMIT - 1),), NUMBER_LIMIT - 1),
]

# Every reason decode_message can give for bytes off the wire (validate's reasons that
# only a Python caller can provoke, such as a str where bytes belong, are not here).
WIRE_REASON = re.compile(
    r"unknown_type|unexpected_\w+|out_of_range_\w+|bad_src|bad_dst|bad_entry_kind|missing_meta|bad_membership"
    r"|bad_entry_index|bad_entry_term|bad_config_entry"
)
NUMBER_FIELDS = ("term", "prev_index", "prev_term", "commit", "index", "hint_term", "hint_index", "last_index",
                 "last_term", "heartbeat_context", "offset", "next_offset")
OUT_OF_RANGE = (NUMBER_LIMIT, NUMBER_LIMIT + 1, 2**63, 2**64 - 1)


def raw_conf(voters, learners=()) -> bytes:
    """A configuration in confchange.py's byte layout, valid or not."""
    ids = [n.encode() for n in list(voters) + list(learners)]
    return struct.pack("<BHH", 1, len(voters), len(learners)) + b"".join(struct.pack("<H", len(i)) + i for i in ids)


def _pb(**fields) -> raft_pb2.RaftMessage:
    base = dict(type=int(MsgType.HEARTBEAT), src="n1", dst="n2", term=3)
    base.update(fields)
    return raft_pb2.RaftMessage(**base)


def _append(prev_index=1, term=3, **fields) -> raft_pb2.RaftMessage:
    return _pb(type=int(MsgType.APPEND), prev_index=prev_index, term=term, **fields)


def _snapshot(index=1, term=1, membership=CONF) -> raft_pb2.RaftMessage:
    return _pb(type=int(MsgType.SNAPSHOT), meta=raft_pb2.SnapshotPoint(index=index, term=term, membership=membership),
               done=True)


def _decode(pb: raft_pb2.RaftMessage):
    """What a receiver gets: the protobuf travels as bytes first."""
    return decode_message(raft_pb2.RaftMessage.FromString(pb.SerializeToString()))


def _reason(pb: raft_pb2.RaftMessage) -> str:
    with pytest.raises(WireError) as info:
        _decode(pb)
    return info.value.reason


# ------------------------------------------------------------------------- well formed


@pytest.mark.parametrize("msg", EVERY_KIND, ids=lambda m: type(m).__name__)
def test_every_message_kind_survives_the_round_trip(msg):
    pb = encode_message(msg)
    assert pb.type == int(msg.TYPE)
    assert _decode(pb) == msg


def test_every_message_type_number_has_a_case():
    covered = {m.TYPE for m in EVERY_KIND}
    assert covered == set(MsgType)


# ------------------------------------------------------------------------- malformed

MALFORMED = [
    (_pb(type=0), "unknown_type"),
    (_pb(type=99), "unknown_type"),
    (_pb(src=""), "bad_src"),
    (_pb(src="x" * (MAX_NODE_ID_CHARS + 1)), "bad_src"),
    (_pb(dst=""), "bad_dst"),
    (_pb(dst="x" * (MAX_NODE_ID_CHARS + 1)), "bad_dst"),
    # A field the type does not use: a confused or hostile sender.
    (_pb(data=b"x"), "unexpected_data"),
    (_pb(type=int(MsgType.VOTE), entries=[raft_pb2.LogEntry(index=1, term=1)]), "unexpected_entries"),
    (_pb(type=int(MsgType.TIMEOUT_NOW), commit=1), "unexpected_commit"),
    (_append(entries=[raft_pb2.LogEntry(index=2, term=1, kind=7)]), "bad_entry_kind"),
    # Entries follow prev_index one by one, below the limit; terms never exceed the
    # message's, never go below prev_term, never decrease.
    (_append(entries=[raft_pb2.LogEntry(index=5, term=1)]), "bad_entry_index"),
    (_append(entries=[raft_pb2.LogEntry(index=2, term=1), raft_pb2.LogEntry(index=4, term=1)]), "bad_entry_index"),
    (_append(prev_index=NUMBER_LIMIT - 1, entries=[raft_pb2.LogEntry(index=NUMBER_LIMIT, term=1)]),
     "out_of_range_entry_index"),
    (_append(entries=[raft_pb2.LogEntry(index=2, term=9)]), "bad_entry_term"),
    (_append(prev_term=2, entries=[raft_pb2.LogEntry(index=2, term=1)]), "bad_entry_term"),
    (_append(entries=[raft_pb2.LogEntry(index=2, term=3), raft_pb2.LogEntry(index=3, term=2)]), "bad_entry_term"),
    (_append(entries=[raft_pb2.LogEntry(index=2, term=2**64 - 1)]), "bad_entry_term"),
    # A CONFIG entry must hold a configuration: the core parses it.
    (_append(entries=[raft_pb2.LogEntry(index=2, term=1, kind=int(EntryKind.CONFIG), data=b"garbage")]),
     "bad_config_entry"),
    (_append(entries=[raft_pb2.LogEntry(index=2, term=1, kind=int(EntryKind.CONFIG), data=CONF[:-1])]),
     "bad_config_entry"),
    (_append(entries=[raft_pb2.LogEntry(index=2, term=1, kind=int(EntryKind.CONFIG))]), "bad_config_entry"),
    (_pb(type=int(MsgType.SNAPSHOT), offset=0, done=True), "missing_meta"),
    (_snapshot(membership=raw_conf(["n1", "n1"])), "bad_membership"),
    (_snapshot(membership=raw_conf(["n1"], ["n1"])), "bad_membership"),
    (_snapshot(membership=raw_conf([""])), "bad_membership"),
    (_snapshot(membership=raw_conf(["x" * (MAX_NODE_ID_CHARS + 1)])), "bad_membership"),
    (_snapshot(membership=CONF + b"\x00"), "bad_membership"),
    (_snapshot(membership=b""), "bad_membership"),
    (_snapshot(membership=b"\x02" + CONF[1:]), "bad_membership"),  # an unknown version
    (_snapshot(index=NUMBER_LIMIT), "out_of_range_snapshot_index"),
    (_snapshot(term=2**64 - 1), "out_of_range_snapshot_term"),
]


@pytest.mark.parametrize("pb, reason", MALFORMED, ids=[reason for _, reason in MALFORMED])
def test_malformed_messages_are_rejected_with_their_reason(pb, reason):
    assert _reason(pb) == reason


# The number fields each message type carries on the wire (besides `term`).
NUMBERS_OF = {
    MsgType.APPEND: ("prev_index", "prev_term", "commit"),
    MsgType.APPEND_RESP: ("index", "hint_term", "hint_index"),
    MsgType.VOTE: ("last_index", "last_term"),
    MsgType.VOTE_RESP: (),
    MsgType.HEARTBEAT: ("commit", "heartbeat_context"),
    MsgType.HEARTBEAT_RESP: ("heartbeat_context",),
    MsgType.SNAPSHOT: ("offset",),
    MsgType.SNAPSHOT_RESP: ("index", "next_offset"),
    MsgType.TIMEOUT_NOW: (),
    MsgType.READ_INDEX: (),
    MsgType.READ_INDEX_RESP: ("index",),
}


def _uses(kind: MsgType, field: str) -> bool:
    return field == "term" or field in NUMBERS_OF[kind]


def _number_cases():
    """Each number field of each message type, set to each out-of-range value, in an
    otherwise well-formed message of that type."""
    for msg in EVERY_KIND[:18]:
        for field in NUMBER_FIELDS:
            if not _uses(msg.TYPE, field):
                continue
            for value in OUT_OF_RANGE:
                bad = encode_message(msg)
                setattr(bad, field, value)
                yield pytest.param(bad, f"out_of_range_{field}", id=f"{type(msg).__name__}-{field}-{value}")


@pytest.mark.parametrize("pb, reason", list(_number_cases()))
def test_every_number_field_at_or_past_the_limit_is_rejected_by_name(pb, reason):
    assert _reason(pb) == reason


def test_the_cases_cover_every_reason_the_wire_gives():
    given_reasons = {reason for _, reason in MALFORMED} | {p.values[1] for p in _number_cases()}
    assert all(WIRE_REASON.fullmatch(r) for r in given_reasons)
    fixed = set(WIRE_REASON.pattern.split("|")) - {r"unexpected_\w+", r"out_of_range_\w+"}
    assert fixed <= given_reasons
    assert {f"out_of_range_{f}" for f in NUMBER_FIELDS} <= given_reasons


# ------------------------------------------------------------------------- fuzzing

_number = st.one_of(st.integers(0, 60), st.sampled_from((NUMBER_LIMIT - 1,) + OUT_OF_RANGE))
_fields = st.fixed_dictionaries(
    {},
    optional={
        "type": st.integers(0, 14),
        "src": st.sampled_from(["", "n1", "n2", "x" * 300]),
        "dst": st.sampled_from(["", "n1", "n2"]),
        "term": _number,
        "prev_index": _number,
        "prev_term": _number,
        "commit": _number,
        "index": _number,
        "hint_term": _number,
        "hint_index": _number,
        "last_index": _number,
        "last_term": _number,
        "reject": st.booleans(),
        "pre_vote": st.booleans(),
        "heartbeat_context": _number,
        "read_context": st.binary(max_size=8),
        "offset": _number,
        "next_offset": _number,
        "data": st.binary(max_size=8),
        "done": st.booleans(),
        "entries": st.lists(
            st.builds(raft_pb2.LogEntry, index=_number, term=_number, kind=st.integers(0, 4),
                      data=st.one_of(st.binary(max_size=4), st.just(CONF))),
            max_size=4,
        ),
        "meta": st.builds(raft_pb2.SnapshotPoint, index=_number, term=_number,
                          membership=st.lists(st.sampled_from(["", "n1", "n2"]), max_size=3).map(raw_conf)),
    },
)


def _numbers_of(pb: raft_pb2.RaftMessage) -> dict[str, int]:
    found = {name: getattr(pb, name) for name in NUMBER_FIELDS}
    found.update(snapshot_index=pb.meta.index, snapshot_term=pb.meta.term)
    for entry in pb.entries:
        found.setdefault("entry_index", 0)
        found["entry_index"] = max(found["entry_index"], entry.index)
    return found


def _check(pb: raft_pb2.RaftMessage) -> None:
    """Decoded: valid, in range, the same bytes again. Refused: for a reason the wire
    gives, and an out-of-range refusal names a number that really is out of range."""
    try:
        msg = decode_message(pb)
    except WireError as exc:
        assert WIRE_REASON.fullmatch(exc.reason), exc.reason
        if exc.reason.startswith("out_of_range_"):
            assert _numbers_of(pb)[exc.reason.removeprefix("out_of_range_")] >= NUMBER_LIMIT
        return
    assert validate(msg) is None
    assert all(value < NUMBER_LIMIT for value in _numbers_of(pb).values())
    # Whatever is accepted re-encodes to the same protobuf: nothing was silently lost.
    assert encode_message(msg).SerializeToString(deterministic=True) == pb.SerializeToString(deterministic=True)


@settings(max_examples=600, deadline=None)
@given(_fields)
def test_any_field_combination_decodes_to_a_valid_message_or_is_refused_for_what_it_holds(fields):
    _check(raft_pb2.RaftMessage(**fields))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EVERY_KIND[:18]), st.sampled_from(NUMBER_FIELDS), st.integers(NUMBER_LIMIT, 2**64 - 1))
def test_any_out_of_range_number_in_a_valid_message_is_refused_by_name(msg, field, value):
    pb = encode_message(msg)
    if not _uses(msg.TYPE, field):
        return
    setattr(pb, field, value)
    assert _reason(pb) == f"out_of_range_{field}"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_a_parse_error_or_checked_like_any_message(blob):
    try:
        pb = raft_pb2.RaftMessage.FromString(blob)
    except DecodeError:
        return  # grpc refuses such a request before any handler
    _check(pb)
