"""Raft messages <-> protobuf (agent/rpc/raft.proto).

Owns: the translation between the message dataclasses of messages.py and the
`RaftMessage` protobuf the transport carries, both ways.

Rules it keeps:
- Encoding is total: every well-formed core message encodes.
- Decoding is strict: an unknown type, a field the type does not use, a number at or
  past types.NUMBER_LIMIT, an unknown entry kind, a malformed configuration or node id
  raises `WireError`, and the decoded message must also pass `messages.validate` (whose
  reason the WireError then carries). The transport counts and drops whatever raises;
  nothing a peer sends can crash the node.
- No I/O here; plain functions over values.
"""

from __future__ import annotations

from agent.raft.confchange import decode_conf_state, encode_conf_state
from agent.raft.errors import RaftError
from agent.raft.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    MsgType,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    validate,
)
from agent.raft.types import NUMBER_LIMIT, Entry, EntryKind, SnapshotMeta, is_node_id
from agent.rpc import raft_pb2

__all__ = ["WireError", "decode_message", "encode_message"]

_ENTRY_KINDS = frozenset(int(k) for k in EntryKind)


class WireError(RaftError):
    """A message from the network is malformed; `reason` is a short counter name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Per message type: the protobuf fields it may set besides type/src/dst/term, and how
# each dataclass field maps to one. A protobuf field outside this set makes it malformed.
_FIELDS: dict[MsgType, tuple[str, ...]] = {
    MsgType.APPEND: ("prev_index", "prev_term", "entries", "commit"),
    MsgType.APPEND_RESP: ("index", "reject", "hint_term", "hint_index"),
    MsgType.VOTE: ("last_index", "last_term", "pre_vote", "transfer"),
    MsgType.VOTE_RESP: ("granted", "pre_vote"),
    MsgType.HEARTBEAT: ("commit", "heartbeat_context"),
    MsgType.HEARTBEAT_RESP: ("heartbeat_context",),
    MsgType.SNAPSHOT: ("meta", "offset", "data", "done"),
    MsgType.SNAPSHOT_RESP: ("index", "next_offset", "done"),
    MsgType.TIMEOUT_NOW: (),
    MsgType.READ_INDEX: ("read_context",),
    MsgType.READ_INDEX_RESP: ("read_context", "index", "reject"),
}
_COMMON = frozenset(("type", "src", "dst", "term"))
_ALLOWED: dict[int, frozenset[str]] = {int(t): _COMMON | frozenset(f) for t, f in _FIELDS.items()}
_NUMBER_FIELDS = frozenset(
    ("term", "prev_index", "prev_term", "commit", "index", "hint_term", "hint_index", "last_index", "last_term",
     "heartbeat_context", "offset", "next_offset")
)
# Per message type: its number fields, checked against NUMBER_LIMIT before anything else.
_NUMBERS: dict[int, tuple[str, ...]] = {
    int(t): ("term", *(f for f in fields if f in _NUMBER_FIELDS)) for t, fields in _FIELDS.items()
}


# ---------------------------------------------------------------------------- encoding
def _encode_entry(out: raft_pb2.LogEntry, entry: Entry) -> None:
    out.index = entry.index
    out.term = entry.term
    out.kind = int(entry.kind)
    out.data = entry.data


def _encode_meta(out: raft_pb2.SnapshotPoint, meta: SnapshotMeta) -> None:
    out.index = meta.index
    out.term = meta.term
    out.membership = encode_conf_state(meta.conf)


def encode_message(msg: Message, out: raft_pb2.RaftMessage | None = None) -> raft_pb2.RaftMessage:
    """The protobuf form of a core message (fills `out` when given, e.g. a batch slot)."""
    pb = raft_pb2.RaftMessage() if out is None else out
    pb.type = int(msg.TYPE)
    pb.src = msg.src
    pb.dst = msg.dst
    pb.term = msg.term
    kind = msg.TYPE
    if kind == MsgType.APPEND:
        pb.prev_index = msg.prev_index
        pb.prev_term = msg.prev_term
        pb.commit = msg.commit
        entries = pb.entries
        for entry in msg.entries:
            _encode_entry(entries.add(), entry)
    elif kind == MsgType.APPEND_RESP:
        pb.index = msg.index
        pb.reject = msg.reject
        pb.hint_term = msg.hint_term
        pb.hint_index = msg.hint_index
    elif kind == MsgType.VOTE:
        pb.last_index = msg.last_index
        pb.last_term = msg.last_term
        pb.pre_vote = msg.pre_vote
        pb.transfer = msg.transfer
    elif kind == MsgType.VOTE_RESP:
        pb.granted = msg.granted
        pb.pre_vote = msg.pre_vote
    elif kind == MsgType.HEARTBEAT:
        pb.commit = msg.commit
        pb.heartbeat_context = msg.context
    elif kind == MsgType.HEARTBEAT_RESP:
        pb.heartbeat_context = msg.context
    elif kind == MsgType.SNAPSHOT:
        _encode_meta(pb.meta, msg.meta)
        pb.offset = msg.offset
        pb.data = msg.data
        pb.done = msg.done
    elif kind == MsgType.SNAPSHOT_RESP:
        pb.index = msg.index
        pb.next_offset = msg.next_offset
        pb.done = msg.done
    elif kind == MsgType.READ_INDEX:
        pb.read_context = msg.context
    elif kind == MsgType.READ_INDEX_RESP:
        pb.read_context = msg.context
        pb.index = msg.index
        pb.reject = msg.reject
    elif kind != MsgType.TIMEOUT_NOW:
        raise WireError(f"cannot encode type {kind!r}")
    return pb


# ---------------------------------------------------------------------------- decoding
def _node_id(value: str, what: str) -> str:
    if not is_node_id(value):
        raise WireError(f"bad_{what}")
    return value


def _decode_entries(pb: raft_pb2.RaftMessage) -> tuple[Entry, ...]:
    kinds = _ENTRY_KINDS
    out = []
    for e in pb.entries:
        if e.kind not in kinds:
            raise WireError("bad_entry_kind")
        out.append(Entry(e.index, e.term, EntryKind(e.kind), e.data))
    return tuple(out)


def _decode_meta(pb: raft_pb2.RaftMessage) -> SnapshotMeta:
    if not pb.HasField("meta"):
        raise WireError("missing_meta")
    meta = pb.meta
    if meta.index >= NUMBER_LIMIT:
        raise WireError("out_of_range_snapshot_index")
    if meta.term >= NUMBER_LIMIT:
        raise WireError("out_of_range_snapshot_term")
    try:
        conf = decode_conf_state(meta.membership)
    except ValueError:
        raise WireError("bad_membership") from None
    return SnapshotMeta(meta.index, meta.term, conf)


def decode_message(pb: raft_pb2.RaftMessage) -> Message:
    """The core message a protobuf carries. Raises WireError when it is malformed."""
    allowed = _ALLOWED.get(pb.type)
    if allowed is None:
        raise WireError("unknown_type")
    for descriptor, _ in pb.ListFields():
        if descriptor.name not in allowed:
            raise WireError(f"unexpected_{descriptor.name}")
    for name in _NUMBERS[pb.type]:
        if getattr(pb, name) >= NUMBER_LIMIT:
            raise WireError(f"out_of_range_{name}")
    src = _node_id(pb.src, "src")
    dst = _node_id(pb.dst, "dst")
    term = pb.term
    kind = pb.type
    msg: Message
    if kind == MsgType.APPEND:
        msg = AppendEntries(src, dst, term, pb.prev_index, pb.prev_term, _decode_entries(pb), pb.commit)
    elif kind == MsgType.APPEND_RESP:
        msg = AppendResponse(src, dst, term, pb.index, pb.reject, pb.hint_term, pb.hint_index)
    elif kind == MsgType.VOTE:
        msg = VoteRequest(src, dst, term, pb.last_index, pb.last_term, pb.pre_vote, pb.transfer)
    elif kind == MsgType.VOTE_RESP:
        msg = VoteResponse(src, dst, term, pb.granted, pb.pre_vote)
    elif kind == MsgType.HEARTBEAT:
        msg = Heartbeat(src, dst, term, pb.commit, pb.heartbeat_context)
    elif kind == MsgType.HEARTBEAT_RESP:
        msg = HeartbeatResponse(src, dst, term, pb.heartbeat_context)
    elif kind == MsgType.SNAPSHOT:
        msg = InstallSnapshot(src, dst, term, _decode_meta(pb), pb.offset, pb.data, pb.done)
    elif kind == MsgType.SNAPSHOT_RESP:
        msg = SnapshotResponse(src, dst, term, pb.index, pb.next_offset, pb.done)
    elif kind == MsgType.TIMEOUT_NOW:
        msg = TimeoutNow(src, dst, term)
    elif kind == MsgType.READ_INDEX:
        msg = ReadIndexRequest(src, dst, term, pb.read_context)
    else:
        msg = ReadIndexResponse(src, dst, term, pb.read_context, pb.index, pb.reject)
    problem = validate(msg)
    if problem is not None:
        raise WireError(problem)
    return msg
