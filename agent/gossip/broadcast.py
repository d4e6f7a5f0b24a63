"""Queue of membership updates waiting to be piggybacked (SWIM §4.1).

Owns: the pending Alive/Suspect/Dead messages and how often each was sent. Rules: at
most one update per member name (a newer one replaces the older, which is then
obsolete); the least-sent updates go first, newest first among equals; an update is
dropped after `limit` transmissions, and goes at most `per_peer` times to any one
member, so its transmissions reach many members instead of the few a member happens
to talk to most (its probe target, its helpers) in the moment after it learns of it;
a packet only takes what fits in its byte budget; an update the packet already
carries (a forwarded death or metadata change, a reminder to a suspect) is not taken
again, only recorded as sent to that member.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from .codec import encoded_size
from .messages import Addr, Broadcast


@dataclass(slots=True)
class _Entry:
    msg: Broadcast
    size: int
    transmits: int
    order: int  # larger = newer
    sent_to: Counter[Addr] = field(default_factory=Counter)


class BroadcastQueue:
    def __init__(self) -> None:
        self._by_name: dict[str, _Entry] = {}
        self._counter = 0

    def __len__(self) -> int:
        return len(self._by_name)

    def queue(self, msg: Broadcast) -> None:
        """Add an update; any older update about the same member is invalidated."""
        self._counter += 1
        self._by_name[msg.name] = _Entry(msg, encoded_size(msg), 0, self._counter)

    def pending(self) -> list[Broadcast]:
        return [e.msg for e in self._by_name.values()]

    def take(
        self, to: Addr, budget_bytes: int, limit: int, per_peer: int, carried: Collection[object] = ()
    ) -> list[Broadcast]:
        """Updates for a packet to `to`: least-transmitted first, that fit in `budget_bytes`,
        not yet sent `per_peer` times to `to`, not in `carried`; counts them as sent."""
        out: list[Broadcast] = []
        for e in sorted(self._by_name.values(), key=lambda e: (e.transmits, -e.order)):
            if e.msg in carried:
                e.sent_to[to] += 1
                continue
            if budget_bytes < 8:
                continue
            if e.size > budget_bytes or e.sent_to[to] >= per_peer:
                continue
            out.append(e.msg)
            budget_bytes -= e.size
            e.sent_to[to] += 1
            e.transmits += 1
            if e.transmits >= limit:
                del self._by_name[e.msg.name]
        return out
