"""A change counter that Trio tasks can wait on.

Owns: `Changes`, the one way agentd's parts tell each other "something changed, look
again" (the state applied an entry, gossip saw an event, Raft's leader moved). Rules: a
waiter names the version it has seen and returns as soon as there is a newer one, so no
wake-up is ever lost between looking and waiting; nothing is queued (the waiter reads
the current state itself), so a slow waiter costs nothing.
"""

from __future__ import annotations

import trio


class Changes:
    def __init__(self) -> None:
        self.version = 0
        self._event = trio.Event()

    def notify(self) -> None:
        """Record a change (safe from any Trio task; never blocks)."""
        self.version += 1
        self._event.set()
        self._event = trio.Event()

    async def wait(self, seen: int) -> int:
        """Return the current version once it is newer than `seen`."""
        while self.version <= seen:
            await self._event.wait()
        return self.version


async def wait_any(watched: list[tuple[Changes, int]], *, timeout_s: float) -> None:
    """Return when any of the watched counters is newer than the version given with it,
    or after `timeout_s`."""
    if any(changes.version > seen for changes, seen in watched):
        return
    with trio.move_on_after(timeout_s):
        async with trio.open_nursery() as nursery:
            async def wake_on(changes: Changes, seen: int) -> None:
                await changes.wait(seen)
                nursery.cancel_scope.cancel()

            for changes, seen in watched:
                nursery.start_soon(wake_on, changes, seen)
