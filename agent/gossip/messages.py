"""Wire messages of the membership protocol.

Owns: the message dataclasses and their wire type numbers. Rules: every message is a
frozen, slotted dataclass of ints, strings, bytes, bools and tuples; type numbers are
explicit and only ever appended (never reuse or renumber one); an address is a
(host, port) tuple. Nothing here encodes or does I/O (see codec.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Union

Addr = tuple[str, int]


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
