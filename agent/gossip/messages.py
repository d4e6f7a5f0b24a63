"""Wire messages of the membership protocol.

Owns: the message dataclasses and their wire type numbers. Rules: every message is a
frozen, slotted dataclass of ints, strings, bytes, bools and tuples; type numbers are
explicit and only ever appended (never reuse or renumber one); an address is a
(host, port) tuple; every number has a stated range (below), which the codec enforces
on what peers send and the core keeps in what it sends. Nothing here encodes or does
I/O (see codec.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Union

Addr = tuple[str, int]

MAX_INCARNATION = 2**48
"""Highest incarnation a member may hold.

A member raises its incarnation by one to refute a suspicion or to publish new
metadata: a few times a minute in honest use, and even a thousand times a second it
would take 8,900 years to get here. A number beyond it can only be forged, and a
forged one is dangerous: a member refutes an accusation at incarnation i with i + 1,
so an accusation near the top of what the wire can carry (2^64 - 1) would expel it
for good. Below 2^53, every incarnation is also exact in a JSON number.
"""

MAX_ACCUSED_INCARNATION = MAX_INCARNATION - 1
"""Highest incarnation a Suspect or Dead may carry: its subject answers with one more."""

MAX_META_VERSION = MAX_INCARNATION
"""Highest metadata version; it rises at most once per incarnation (set_meta raises both)."""

MAX_SEQ = 2**31 - 1
"""Probe sequence numbers are 31 bits; a member's own wrap around (core._next_seq)."""


class MsgType(enum.IntEnum):
    """Wire type numbers. Append only."""

    PING = 1
    INDIRECT_PING = 2
    ACK = 3
    NACK = 4
    ALIVE = 5
    SUSPECT = 6
    DEAD = 7
    PUSH_PULL = 8


class MemberState(enum.IntEnum):
    """A member's state as one node sees it. Numbers are wire values (push-pull)."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


@dataclass(frozen=True, slots=True)
class Ping:
    """SWIM §3.1 direct probe; `target` names the member meant, so a new process on an old address does not answer for it."""

    seq: int
    target: str


@dataclass(frozen=True, slots=True)
class IndirectPing:
    """SWIM §3.1 ping-req: please ping `target` at `target_addr` and relay its ack (seq is the requester's)."""

    seq: int
    target: str
    target_addr: Addr
    want_nack: bool


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int


@dataclass(frozen=True, slots=True)
class Nack:
    """Lifeguard §IV-A: the intermediary is alive but the target did not answer it."""

    seq: int


@dataclass(frozen=True, slots=True)
class Alive:
    """`name` is alive at `incarnation`. `meta` is None when it did not change (refutations)."""

    incarnation: int
    name: str
    addr: Addr
    meta_version: int
    meta: bytes | None


@dataclass(frozen=True, slots=True)
class Suspect:
    """SWIM §4.2: `by` suspects `name` at `incarnation`."""

    incarnation: int
    name: str
    by: str


@dataclass(frozen=True, slots=True)
class Dead:
    """`by` declares `name` dead at `incarnation`; when by == name it is a graceful leave."""

    incarnation: int
    name: str
    by: str

    @property
    def is_leave(self) -> bool:
        return self.by == self.name


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One member in a full-state exchange."""

    name: str
    addr: Addr
    incarnation: int
    state: MemberState
    meta_version: int
    meta: bytes


@dataclass(frozen=True, slots=True)
class PushPull:
    """Full state sent both ways over TCP (anti-entropy); `join` marks a joining node's first exchange."""

    join: bool
    sender: str
    members: tuple[MemberRecord, ...]


Message = Union[Ping, IndirectPing, Ack, Nack, Alive, Suspect, Dead, PushPull]
Broadcast = Union[Alive, Suspect, Dead]
