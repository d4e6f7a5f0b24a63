"""Raft's shared value types: log entries, the hard state, snapshot metadata.

Owns: the plain data that the pure core (core.py), the storage (storage.py) and the
transport exchange, and the two limits every number and node id obeys. Rules: every
type is a frozen, slotted dataclass holding only ints, strings, bytes and tuples, so it
can be compared, hashed and encoded without surprises. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Every term, index, offset and count a node accepts or creates lies in [0, NUMBER_LIMIT).
# A number at or past it from a peer is refused before it reaches the core, a hard state
# holding one is unusable, and the core never raises its term (or its log) to it. 2**62
# is far beyond honest use (a new term every microsecond for 146,000 years), and leaves
# room to add to any accepted number and still fit every encoding that holds it: uint64
# on the wire and in log records, int64 in the storage's index. Without authentication a
# forger can still push terms up to the limit and stop elections there; it can no longer
# make a node crash, or a data directory unusable.
NUMBER_LIMIT = 2**62

# A node id is a short name ("n1", a host name): 1 to this many characters.
MAX_NODE_ID_CHARS = 255


def is_node_id(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_NODE_ID_CHARS


class EntryKind(enum.IntEnum):
    """What a log entry carries. Numbers are wire values: only ever append."""

    NORMAL = 0  # a state-machine command (opaque bytes)
    NOOP = 1  # the empty entry a new leader appends to commit its term (Raft §5.4.2, §8)
    CONFIG = 2  # a membership change; data encodes the new ConfState


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before a node answers or sends anything that depends on it (Raft §5, Figure 2)."""

    term: int = 0
    voted_for: str | None = None
    commit: int = 0  # may be persisted lazily: it is recomputable, never required for safety


@dataclass(frozen=True, slots=True)
class ConfState:
    """Cluster membership: voters decide elections and commitment; learners only receive the log."""

    voters: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """The point a snapshot covers: everything up to and including `index` (of `term`)."""

    index: int = 0
    term: int = 0
    conf: ConfState = ConfState()
