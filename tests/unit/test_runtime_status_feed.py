"""The status fan-out with slow subscribers: coalesced per Pod, latest wins, the last state never lost."""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio
import trio.testing

from agent.runtime import PodRuntime, RuntimeConfig
from agent.runtime.status import PodStatus
from agent.runtime.status_feed import StatusFeed

PODS = 50
UPDATES_PER_POD = 200  # 10,000 updates in all: far more than any buffer would have held


def status(uid: str, version: int) -> PodStatus:
    return PodStatus(uid=uid, namespace="default", name=uid, phase="Running", message=f"v{version}")


def publish_many(publish) -> dict[str, PodStatus]:
    """Interleaved updates of PODS Pods; returns the last status of each."""
    last = {}
    for version in range(UPDATES_PER_POD):
        for i in range(PODS):
            last[f"pod-{i}"] = status(f"pod-{i}", version)
            publish(last[f"pod-{i}"])
    return last


async def test_a_subscriber_that_reads_nothing_for_a_while_gets_the_last_state_of_every_pod() -> None:
    feed = StatusFeed()
    slow = feed.subscribe()
    last = publish_many(feed.publish)
    assert slow.pending == PODS  # bounded by the Pods, not by the updates
    received = [await slow.receive() for _ in range(PODS)]
    assert {s.uid: s for s in received} == last
    with trio.move_on_after(0.1) as nothing_more:
        await slow.receive()
    assert nothing_more.cancelled_caught


async def test_the_runtime_fan_out_never_drops_the_last_state_for_a_slow_subscriber() -> None:
    runtime = PodRuntime(node_name="n1", config=RuntimeConfig(), host_ip="10.0.0.1")
    slow = runtime.subscribe()
    last = publish_many(runtime.publish)
    latest: dict[str, PodStatus] = {}
    with trio.fail_after(5):  # a fan-out that dropped the last states would leave this waiting
        while latest != last:
            s = await slow.receive()
            latest[s.uid] = s
    assert latest == runtime.statuses()


async def test_a_deletion_is_a_last_state_too() -> None:
    feed = StatusFeed()
    sub = feed.subscribe()
    feed.publish(status("a", 1))
    feed.publish(replace(status("a", 1), deleted=True))
    (only,) = await sub.receive_batch()
    assert only.deleted


async def test_pods_come_out_in_the_order_they_first_changed() -> None:
    """A Pod that keeps changing keeps its place in the queue: it cannot starve the others."""
    feed = StatusFeed()
    sub = feed.subscribe()
    feed.publish(status("busy", 1))
    feed.publish(status("quiet", 1))
    feed.publish(status("busy", 2))
    assert [(s.uid, s.message) for s in (await sub.receive(), await sub.receive())] == [("busy", "v2"),
                                                                                          ("quiet", "v1")]


async def test_a_waiting_subscriber_is_woken_by_a_publish() -> None:
    feed = StatusFeed()
    sub = feed.subscribe()
    got = []
    async with trio.open_nursery() as nursery:
        async def read() -> None:
            got.append(await sub.receive())
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        feed.publish(status("a", 7))
    assert got == [status("a", 7)]


async def test_a_closed_subscription_ends_its_iteration_and_leaves_the_feed() -> None:
    feed = StatusFeed()
    kept, closed = feed.subscribe(), feed.subscribe()
    async with closed:
        feed.publish(status("a", 1))
    assert feed.subscribers == 1
    feed.publish(status("a", 2))
    assert [s async for s in _take(kept, 1)] == [status("a", 2)]
    assert [s async for s in closed] == []
    with pytest.raises(trio.EndOfChannel):
        await closed.receive_batch()


async def _take(sub, n: int):
    async for s in sub:
        yield s
        n -= 1
        if n == 0:
            return
