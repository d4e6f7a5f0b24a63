"""What a leader knows of each follower's log (Raft §5.3 nextIndex and matchIndex).

Owns: `Progress`, one per follower, and its three states: PROBE (one append at a time
until the point where the logs match is found), REPLICATE (appends go out optimistically,
pipelined up to a bound) and SNAPSHOT (a snapshot transfer is under way). Rules: plain
data with no I/O; the leader in core.py decides every transition, this module only holds
the state and the one reset all paths share (`become_probe`).
"""

from __future__ import annotations

import enum
from collections import deque

__all__ = ["Progress", "ProgressState"]


class ProgressState(enum.IntEnum):
    PROBE = 0  # one append at a time until the follower's match point is found
    REPLICATE = 1  # optimistic: next advances as appends go out, up to the inflight bound
    SNAPSHOT = 2  # an InstallSnapshot transfer is under way


class Progress:
    """What the leader knows of one follower."""

    __slots__ = (
        "match",
        "next",
        "state",
        "inflight",
        "paused",
        "recent_active",
        "snap_index",
        "snap_offset",
        "idle_ticks",
    )

    def __init__(self, next_index: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.inflight: deque[int] = deque()  # last index of each append in flight
        self.paused = False  # PROBE: an append is out, wait for its answer or a heartbeat ack
        self.recent_active = False
        self.snap_index = 0
        self.snap_offset = 0
        # PROBE (paused) or SNAPSHOT: heartbeat intervals the probe or chunk sent last
        # has gone unanswered
        self.idle_ticks = 0

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.next = self.match + 1
        self.paused = False
        self.inflight.clear()
