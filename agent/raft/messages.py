"""Messages Raft nodes exchange.

Owns: one frozen, slotted dataclass per message kind, their explicit wire numbers
(`MsgType`, only ever appended), and `validate`, which a node runs on every message
from outside before acting on it. Rules: messages are plain values (ints, strings,
bytes, tuples); a message that fails `validate` is counted and dropped by the core,
never allowed to crash it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from operator import attrgetter
from typing import ClassVar, Union

from agent.raft.confchange import conf_problem, decode_conf_state
from agent.raft.types import NUMBER_LIMIT, Entry, EntryKind, SnapshotMeta, is_node_id


class MsgType(enum.IntEnum):
    """Wire numbers. Only ever append."""

    APPEND = 1
    APPEND_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    HEARTBEAT = 5
    HEARTBEAT_RESP = 6
    SNAPSHOT = 7
    SNAPSHOT_RESP = 8
    TIMEOUT_NOW = 9
    READ_INDEX = 10
    READ_INDEX_RESP = 11


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Leader -> follower: entries after (prev_index, prev_term), and the leader's commit (Raft §5.3)."""

    TYPE: ClassVar[MsgType] = MsgType.APPEND
    src: str
    dst: str
    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class AppendResponse:
    """Follower -> leader. On success `index` is the last index now known to match.

    On rejection `index` is the rejected prev_index, and the hint lets the leader skip a
    whole term at once: `hint_term` is the follower's term at min(prev_index, its last
    index) (0 when its log is shorter) and `hint_index` is the first index the follower
    holds with that term (its last index + 1 when its log is shorter).
    """

    TYPE: ClassVar[MsgType] = MsgType.APPEND_RESP
    src: str
    dst: str
    term: int
    index: int
    reject: bool = False
    hint_term: int = 0
    hint_index: int = 0


@dataclass(frozen=True, slots=True)
class VoteRequest:
    """Candidate -> voter (Raft §5.2). With `pre_vote` it is a PreVote probe (thesis §9.6):
    `term` is the term the sender would campaign in, and nobody changes state."""

    TYPE: ClassVar[MsgType] = MsgType.VOTE
    src: str
    dst: str
    term: int
    last_index: int
    last_term: int
    pre_vote: bool = False
    transfer: bool = False  # sent after TimeoutNow: voters must not ignore it (thesis §3.10)


@dataclass(frozen=True, slots=True)
class VoteResponse:
    TYPE: ClassVar[MsgType] = MsgType.VOTE_RESP
    src: str
    dst: str
    term: int
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader -> follower: keeps the follower's timer quiet. `commit` never exceeds what
    the follower is known to match. `context` numbers a ReadIndex round (thesis §6.4)."""

    TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT
    src: str
    dst: str
    term: int
    commit: int
    context: int = 0


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT_RESP
    src: str
    dst: str
    term: int
    context: int = 0


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Leader -> follower: one chunk of a snapshot (Raft §7). `done` marks the last chunk."""

    TYPE: ClassVar[MsgType] = MsgType.SNAPSHOT
    src: str
    dst: str
    term: int
    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


@dataclass(frozen=True, slots=True)
class SnapshotResponse:
    """Follower -> leader: `next_offset` is the byte the follower wants next; `done` says
    the whole snapshot at `index` is installed (or was not needed)."""

    TYPE: ClassVar[MsgType] = MsgType.SNAPSHOT_RESP
    src: str
    dst: str
    term: int
    index: int
    next_offset: int
    done: bool = False


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leader -> transfer target: start an election now (thesis §3.10)."""

    TYPE: ClassVar[MsgType] = MsgType.TIMEOUT_NOW
    src: str
    dst: str
    term: int


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """Follower -> leader: please confirm a read point for `context` (thesis §6.4)."""

    TYPE: ClassVar[MsgType] = MsgType.READ_INDEX
    src: str
    dst: str
    term: int
    context: bytes


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    """Leader -> follower: the read `context` may be served once applied >= `index`;
    `reject` means the leader could not serve it (the follower fails the read)."""

    TYPE: ClassVar[MsgType] = MsgType.READ_INDEX_RESP
    src: str
    dst: str
    term: int
    context: bytes
    index: int
    reject: bool = False


Message = Union[
    AppendEntries,
    AppendResponse,
    VoteRequest,
    VoteResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    SnapshotResponse,
    TimeoutNow,
    ReadIndexRequest,
    ReadIndexResponse,
]

MESSAGE_CLASSES: dict[MsgType, type] = {
    cls.TYPE: cls
    for cls in (
        AppendEntries,
        AppendResponse,
        VoteRequest,
        VoteResponse,
        Heartbeat,
        HeartbeatResponse,
        InstallSnapshot,
        SnapshotResponse,
        TimeoutNow,
        ReadIndexRequest,
        ReadIndexResponse,
    )
}

_INT_FIELDS = (
    "term",
    "prev_index",
    "prev_term",
    "commit",
    "index",
    "hint_term",
    "hint_index",
    "last_index",
    "last_term",
    "context",
    "offset",
    "next_offset",
)


def _number_problem(value: object, name: str) -> str | None:
    if type(value) is not int or value < 0:
        return f"bad_{name}"
    if value >= NUMBER_LIMIT:
        return f"out_of_range_{name}"
    return None


_index_of = attrgetter("index")
_term_of = attrgetter("term")
_kind_of = attrgetter("kind")
_data_of = attrgetter("data")


def _validate_entries(msg: AppendEntries) -> str | None:
    """Entries must be Entry values numbered prev_index+1, +2, ... below NUMBER_LIMIT,
    with terms between prev_term and the message's term, and a CONFIG entry must hold a
    configuration (confchange.py's encoding). Checked with C-speed passes: appends carry
    thousands of entries and this runs on every one of them."""
    entries = msg.entries
    if type(entries) is not tuple:
        return "bad_entries"
    if not entries:
        return None
    if any(type(entry) is not Entry for entry in entries):
        return "bad_entry"
    first = msg.prev_index + 1
    indexes = list(map(_index_of, entries))
    if set(map(type, indexes)) != {int} or indexes != list(range(first, first + len(entries))):
        return "bad_entry_index"
    if indexes[-1] >= NUMBER_LIMIT:
        return "out_of_range_entry_index"
    terms = list(map(_term_of, entries))
    if set(map(type, terms)) != {int} or min(terms) < msg.prev_term or max(terms) > msg.term:
        return "bad_entry_term"
    if terms[0] != terms[-1] and terms != sorted(terms):  # terms never decrease along a log
        return "bad_entry_term"
    kinds = set(map(_kind_of, entries))
    if not set(map(type, kinds)) <= {EntryKind}:
        return "bad_entry_kind"
    if set(map(type, map(_data_of, entries))) != {bytes}:
        return "bad_entry_data"
    if EntryKind.CONFIG in kinds:  # the one payload the core parses: check it before anything is appended
        for entry in entries:
            if entry.kind == EntryKind.CONFIG:
                try:
                    decode_conf_state(entry.data)
                except ValueError:
                    return "bad_config_entry"
    return None


def _validate_snapshot(msg: InstallSnapshot) -> str | None:
    meta = msg.meta
    if type(meta) is not SnapshotMeta:
        return "bad_snapshot_meta"
    problem = _number_problem(meta.index, "snapshot_index") or _number_problem(meta.term, "snapshot_term")
    if problem is not None:
        return problem
    if conf_problem(meta.conf) is not None:
        return "bad_snapshot_conf"
    if type(msg.data) is not bytes:
        return "bad_data"
    return None


def validate(msg: object) -> str | None:
    """Return why `msg` is malformed, or None when it is well formed.

    Checks shapes only (types, node ids, numbers in [0, NUMBER_LIMIT), contiguous
    entries, the configuration a CONFIG entry carries); whether the content makes sense for the receiver's state is the core's
    business. The reason names the first field found wrong: `bad_<field>` for a wrong
    type or sign, `out_of_range_<field>` for a number at or past the limit.
    """
    cls = type(msg)
    if MESSAGE_CLASSES.get(getattr(cls, "TYPE", None)) is not cls:
        return "unknown_type"
    if not is_node_id(msg.src):
        return "bad_src"
    if not is_node_id(msg.dst):
        return "bad_dst"
    int_fields, flag_fields = _FIELDS_OF[cls]
    for name in int_fields:
        value = getattr(msg, name)
        if type(value) is not int or not 0 <= value < NUMBER_LIMIT:
            return _number_problem(value, name)
    for flag in flag_fields:
        if type(getattr(msg, flag)) is not bool:
            return f"bad_{flag}"
    if cls is AppendEntries:
        return _validate_entries(msg)
    if cls is InstallSnapshot:
        return _validate_snapshot(msg)
    if cls in (ReadIndexRequest, ReadIndexResponse) and type(msg.context) is not bytes:
        return "bad_context"
    return None


_FLAG_FIELDS = ("reject", "granted", "pre_vote", "transfer", "done")
# Per class: its number fields (ints in [0, NUMBER_LIMIT); a read context is bytes
# instead) and its flags.
_FIELDS_OF = {
    cls: (
        tuple(
            name
            for name in _INT_FIELDS
            if name in cls.__dataclass_fields__
            and not (name == "context" and cls in (ReadIndexRequest, ReadIndexResponse))
        ),
        tuple(name for name in _FLAG_FIELDS if name in cls.__dataclass_fields__),
    )
    for cls in MESSAGE_CLASSES.values()
}
