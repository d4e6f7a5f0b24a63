"""The status fan-out: every subscriber gets the latest status of each Pod that changed.

Owns: StatusFeed (what the runtime publishes to) and StatusSubscription (one reader).
Rules:
  - publishing never blocks and never drops the last state of a Pod: a subscription
    holds at most one pending status per Pod, the newest (a newer one replaces it in
    place), so a slow subscriber skips intermediate states but always reads the last
    state of every Pod that changed, its deletion included;
  - a subscription's memory is bounded by the number of Pods that changed since it last
    read (the node's Pods, plus those deleted meanwhile), never by a buffer size;
  - Pods come out in the order they first changed since they were last read, so a Pod
    that changes all the time cannot starve the others.
"""

from __future__ import annotations

from typing import Any

import trio

from .status import PodStatus


class StatusSubscription:
    """Statuses for one reader: `async for status in sub`, or `await sub.receive_batch()`;
    `async with sub:` (or `close()`) ends it."""

    def __init__(self, feed: StatusFeed) -> None:
        self._feed = feed
        self._pending: dict[str, PodStatus] = {}  # uid -> newest unread status, in order of first change
        self._wakeup = trio.Event()
        self._closed = False

    def offer(self, status: PodStatus) -> None:
        self._pending[status.uid] = status
        self._wakeup.set()

    @property
    def pending(self) -> int:
        """Pods with an unread status."""
        return len(self._pending)

    async def _wait_for_pending(self) -> None:
        while not self._pending:
            if self._closed:
                raise trio.EndOfChannel
            self._wakeup = trio.Event()
            await self._wakeup.wait()

    async def receive(self) -> PodStatus:
        """The newest status of the Pod that changed first; trio.EndOfChannel once closed."""
        await self._wait_for_pending()
        return self._pending.pop(next(iter(self._pending)))

    async def receive_batch(self) -> list[PodStatus]:
        """The newest status of every Pod that changed (at least one); trio.EndOfChannel once closed."""
        await self._wait_for_pending()
        batch = list(self._pending.values())
        self._pending.clear()
        return batch

    def close(self) -> None:
        self._closed = True
        self._pending.clear()
        self._wakeup.set()
        self._feed.unsubscribe(self)

    def __aiter__(self) -> StatusSubscription:
        return self

    async def __anext__(self) -> PodStatus:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> StatusSubscription:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()


class StatusFeed:
    def __init__(self) -> None:
        self._subscriptions: list[StatusSubscription] = []

    def subscribe(self) -> StatusSubscription:
        subscription = StatusSubscription(self)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: StatusSubscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def publish(self, status: PodStatus) -> None:
        for subscription in self._subscriptions:
            subscription.offer(status)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)
