"""A leader's ReadIndex bookkeeping (thesis §6.4): linearizable reads without writing the log.

Owns: `ReadState`, the answer a read gets (serve it once applied reaches `index`), and
`ReadOnly`, the reads a leader holds: those waiting for a heartbeat round that a quorum
acknowledges, and those waiting for the leader's first commit in its term. Rules: a
round is numbered (`seq`, the heartbeats' context); a read joins the next round and is
released only once a quorum of voters acknowledged that round or a later one, oldest
first. No I/O; which node answers whom is core.py's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["PendingRead", "ReadOnly", "ReadState"]


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read identified by `context` may be served once applied >= `index` (thesis §6.4)."""

    context: bytes
    index: int


@dataclass(slots=True)
class PendingRead:
    seq: int  # the ReadIndex round that must be acknowledged by a quorum
    context: bytes
    origin: str  # node to answer (the leader itself for local reads)
    index: int  # commit index when the read arrived


class ReadOnly:
    """The reads one leader holds in its term."""

    __slots__ = ("seq", "round_needed", "acks", "pending", "awaiting_term_commit")

    def __init__(self) -> None:
        self.seq = 0  # last round number sent
        self.round_needed = False
        self.acks: dict[str, int] = {}  # voter -> newest round it acknowledged
        self.pending: deque[PendingRead] = deque()
        self.awaiting_term_commit: list[tuple[bytes, str]] = []

    def reset(self) -> None:
        self.__init__()

    def add(self, context: bytes, origin: str, index: int) -> None:
        """Hold a read for the next round."""
        self.pending.append(PendingRead(self.seq + 1, context, origin, index))
        self.round_needed = True

    def start_round(self) -> bool:
        """True (and the round numbered `seq`) when held reads need a new round."""
        if not self.round_needed:
            return False
        self.round_needed = False
        self.seq += 1
        return True

    def ack(self, node: str, context: int) -> bool:
        """`node` acknowledged round `context`; True when that is news."""
        if context and context > self.acks.get(node, 0):
            self.acks[node] = context
            return True
        return False

    def release(self, voters: tuple[str, ...], self_id: str, quorum: int) -> list[PendingRead]:
        """The held reads, oldest first, whose round a quorum of `voters` acknowledged."""
        acks = self.acks
        released = []
        pending = self.pending
        while pending:
            read = pending[0]
            count = 0
            for voter in voters:
                if voter == self_id or acks.get(voter, 0) >= read.seq:
                    count += 1
            if count < quorum:
                break
            released.append(pending.popleft())
        return released

    def take_all(self) -> list[tuple[bytes, str]]:
        """Every read held, as (context, origin), for failing them: the leader stepped down."""
        held = [(r.context, r.origin) for r in self.pending] + self.awaiting_term_commit
        self.pending.clear()
        self.awaiting_term_commit = []
        self.round_needed = False
        return held
