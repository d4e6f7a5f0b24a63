"""Membership events the core reports to the agent.

Owns: EventKind and MemberEvent. Rules: an event is emitted once per state change seen
by this node, in the order the changes happened; it carries a full copy of what the
agent needs (address, incarnation, metadata) so the receiver never reads core state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .messages import Addr


class EventKind(str, enum.Enum):
    JOINED = "joined"  # first seen, or back after dead/left
    ALIVE = "alive"  # a suspected member refuted the suspicion
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"  # graceful leave, distinct from failure
    UPDATED = "updated"  # metadata changed


@dataclass(frozen=True, slots=True)
class MemberEvent:
    kind: EventKind
    name: str
    addr: Addr
    incarnation: int
    meta_version: int
    meta: bytes
    at_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "event": self.kind.value,
            "name": self.name,
            "addr": f"{self.addr[0]}:{self.addr[1]}",
            "incarnation": self.incarnation,
            "meta_version": self.meta_version,
            "meta": self.meta.decode("utf-8", "replace"),
            "at_s": round(self.at_s, 4),
        }
