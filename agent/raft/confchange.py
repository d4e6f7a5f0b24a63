"""Membership: single-server changes, the configurations a node holds, and how a
configuration is written down.

Owns: `ConfChange` and `changed_conf`, which applies one change to a configuration or
refuses it (thesis §4.1); `ConfigHistory`, the configurations a node's log holds; and
`encode_conf_state` / `decode_conf_state`, the one byte encoding of a ConfState, used by
CONFIG entries, snapshot files and InstallSnapshot messages alike.

Rules it keeps:
- A configuration takes effect on every node as soon as its CONFIG entry is appended,
  committed or not (thesis §4.1); truncating the entry brings the one before it back.
  The configurations that may still come back are the newest committed one and every
  one after it.
- A change is refused, never half applied: an unknown node, a second voter removal
  leaving none, a malformed node id all raise ConfChangeRejected.
- Decoding is strict: the exact length, known version, valid and distinct node ids, or
  ValueError. Nothing here does I/O.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from agent.raft.errors import ConfChangeRejected, RaftInvariantError
from agent.raft.types import ConfState, is_node_id

__all__ = [
    "ConfChange",
    "ConfChangeKind",
    "ConfigHistory",
    "changed_conf",
    "conf_problem",
    "decode_conf_state",
    "encode_conf_state",
]


class ConfChangeKind(enum.IntEnum):
    ADD_LEARNER = 0
    PROMOTE = 1  # learner -> voter, only once it has caught up
    REMOVE = 2  # voter or learner leaves


@dataclass(frozen=True, slots=True)
class ConfChange:
    kind: ConfChangeKind
    node_id: str


def changed_conf(conf: ConfState, change: ConfChange) -> ConfState:
    """`conf` with `change` applied (thesis §4.1), or ConfChangeRejected. Whether a learner
    has caught up enough to be promoted is the leader's to check, not this function's."""
    node = change.node_id
    if not is_node_id(node):
        raise ConfChangeRejected(f"bad node id {node!r:.80}")
    voters, learners = list(conf.voters), list(conf.learners)
    if change.kind == ConfChangeKind.ADD_LEARNER:
        if node in voters or node in learners:
            raise ConfChangeRejected(f"{node} is already a member")
        learners.append(node)
    elif change.kind == ConfChangeKind.PROMOTE:
        if node not in learners:
            raise ConfChangeRejected(f"{node} is not a learner")
        learners.remove(node)
        voters.append(node)
    elif change.kind == ConfChangeKind.REMOVE:
        if node in voters:
            if len(voters) == 1:
                raise ConfChangeRejected("cannot remove the last voter")
            voters.remove(node)
        elif node in learners:
            learners.remove(node)
        else:
            raise ConfChangeRejected(f"{node} is not a member")
    else:
        raise ConfChangeRejected(f"unknown change {change.kind!r}")
    return ConfState(tuple(voters), tuple(learners))


class ConfigHistory:
    """The configurations a node holds, oldest first: its snapshot's (the base), then one
    per CONFIG entry of its log after the snapshot. The newest is in effect."""

    __slots__ = ("_items",)

    def __init__(self, index: int, conf: ConfState) -> None:
        self._items: list[tuple[int, ConfState]] = [(index, conf)]

    @property
    def latest(self) -> ConfState:
        return self._items[-1][1]

    @property
    def latest_index(self) -> int:
        """Index of the entry (or snapshot) that set the configuration in effect."""
        return self._items[-1][0]

    def add(self, index: int, conf: ConfState) -> None:
        if index <= self._items[-1][0]:
            raise RaftInvariantError(f"configuration at {index} after one at {self._items[-1][0]}")
        self._items.append((index, conf))

    def truncate_from(self, first_replaced: int) -> bool:
        """Forget the configurations of entries at or after `first_replaced` (they are being
        replaced); True when the one in effect changed."""
        items = self._items
        if items[-1][0] < first_replaced:
            return False
        while items[-1][0] >= first_replaced:
            if len(items) == 1:
                raise RaftInvariantError("truncating the snapshot's configuration")
            items.pop()
        return True

    def reset(self, index: int, conf: ConfState) -> None:
        """A snapshot replaced the whole log: its configuration is all there is."""
        self._items = [(index, conf)]

    def at(self, index: int) -> ConfState | None:
        """The configuration in effect at `index`; None below the base."""
        found = None
        for conf_index, conf in self._items:
            if conf_index > index:
                break
            found = conf
        return found

    def members_since(self, commit: int) -> tuple[frozenset[str], int | None]:
        """The voters and learners of the configurations that are or may again be in
        effect: the newest at or below `commit` (committed: no truncation goes past it)
        and every later one. Also the index of the first later one, where the answer
        changes once `commit` reaches it (None when there is none)."""
        items = self._items
        start = 0
        for position in range(len(items) - 1, -1, -1):
            if items[position][0] <= commit:
                start = position
                break
        found: set[str] = set()
        for _, conf in items[start:]:
            found.update(conf.voters)
            found.update(conf.learners)
        return frozenset(found), items[start + 1][0] if start + 1 < len(items) else None


# ------------------------------------------------------------------------ the encoding
#
#   version:u8 = 1 | voters:u16 | learners:u16 | per id (voters first): length:u16 | utf-8
#
# Little-endian. An id is 1..255 characters (types.is_node_id), no id appears twice.

_VERSION = 1
_HEAD = struct.Struct("<BHH")
_LENGTH = struct.Struct("<H")


def conf_problem(conf: object) -> str | None:
    """Why `conf` is not a well-formed ConfState, or None."""
    if type(conf) is not ConfState or type(conf.voters) is not tuple or type(conf.learners) is not tuple:
        return "not a ConfState"
    members = conf.voters + conf.learners
    if len(conf.voters) > 0xFFFF or len(conf.learners) > 0xFFFF:
        return "too many members"
    if not all(map(is_node_id, members)):
        return "bad node id"
    if len(set(members)) != len(members):
        return "duplicate member"
    return None


def encode_conf_state(conf: ConfState) -> bytes:
    problem = conf_problem(conf)
    if problem is not None:
        raise RaftInvariantError(f"cannot encode {conf!r:.200}: {problem}")
    parts = [_HEAD.pack(_VERSION, len(conf.voters), len(conf.learners))]
    for node in conf.voters + conf.learners:
        raw = node.encode("utf-8")
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def decode_conf_state(data: bytes) -> ConfState:
    """The ConfState `data` encodes; ValueError when it is not exactly a well-formed one."""
    if len(data) < _HEAD.size:
        raise ValueError("configuration truncated")
    version, voter_count, learner_count = _HEAD.unpack_from(data, 0)
    if version != _VERSION:
        raise ValueError(f"configuration version {version}")
    offset = _HEAD.size
    members: list[str] = []
    for _ in range(voter_count + learner_count):
        if offset + _LENGTH.size > len(data):
            raise ValueError("configuration truncated")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if offset + length > len(data):
            raise ValueError("configuration truncated")
        try:
            members.append(data[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError("configuration holds an id that is not UTF-8") from None
        offset += length
    if offset != len(data):
        raise ValueError("bytes after the configuration")
    conf = ConfState(tuple(members[:voter_count]), tuple(members[voter_count:]))
    problem = conf_problem(conf)
    if problem is not None:
        raise ValueError(f"configuration has a {problem}")
    return conf
