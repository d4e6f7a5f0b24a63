"""Queue of membership updates waiting to be piggybacked (SWIM §4.1).

Owns: the pending Alive/Suspect/Dead messages and how often each was sent. Rules: at
most one update per member name (a newer one replaces the older, which is then
obsolete); the least-sent updates go first, newest first among equals; an update is
dropped after `limit` transmissions; a packet only takes what fits in its byte budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codec import encoded_size
from .messages import Broadcast


@dataclass(slots=True)
class _Entry:
    msg: Broadcast
    size: int
    transmits: int
    order: int  # larger = newer


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

    def take(self, budget_bytes: int, limit: int, skip_name: str | None = None) -> list[Broadcast]:
        """Updates that fit in `budget_bytes`, least-transmitted first; counts them as sent."""
        if not self._by_name or budget_bytes <= 0:
            return []
        out: list[Broadcast] = []
        entries = sorted(self._by_name.values(), key=lambda e: (e.transmits, -e.order))
        for e in entries:
            if e.size > budget_bytes:
                continue
            if skip_name is not None and e.msg.name == skip_name:
                continue
            out.append(e.msg)
            budget_bytes -= e.size
            e.transmits += 1
            if e.transmits >= limit:
                del self._by_name[e.msg.name]
            if budget_bytes < 8:
                break
        return out
