"""The faults of the chaos matrix, as Jepsen's nemesis: each one a scenario body that injects
a fault, waits for the cluster to cope with it, heals it and waits for health again.

Owns: which nodes each fault hits (chosen from what the monitor saw: the leader, the
busiest nodes), how long it lasts (`Timing`), and what "coped" means while it lasts
(`Scenario.wait_healthy` with the nodes it took away). The test matrix runs each once
(test_scenarios.py); the soak (bench/chaos_soak.py) draws them at random.

Rules it keeps: every fault ends healed, with every node on and Ready, so the next fault
may start on the same cluster.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from agent.agentd.config import DEFAULT_FENCE_AFTER_S
from tests.chaos.scenario import Chaos, Scenario


@dataclass(frozen=True, slots=True)
class Timing:
    loss_p: float = 0.2  # the matrix's packet loss, on every node's link
    loss_s: float = 30.0  # how long it lasts
    pause_s: float = 5.0  # longer than an election (the election timeout is well under a second)
    # A partition is held well past the fencing window, so that a copy that failed to fence
    # would run twice for longer than the duplicate bound allows.
    partition_s: float = DEFAULT_FENCE_AFTER_S + 15.0


Fault = Callable[[Chaos, Scenario, Timing], Awaitable[None]]


async def kill_worker(chaos: Chaos, s: Scenario, timing: Timing) -> None:
    [victim] = s.busiest(chaos.workers)
    assert s.pods_by_node().get(victim), f"no workload Pod on a worker: {s.pods_by_node()}"
    await s.fault(f"kill {victim} (runs {sorted(s.pods_by_node()[victim])})", chaos.cluster.kill, victim)
    await s.wait_healthy(f"every Pod back without {victim}", down=[victim])
    await s.fault(f"start {victim}", chaos.cluster.start, victim)
    await s.wait_healthy(f"{victim} back")


async def kill_two_workers(chaos: Chaos, s: Scenario, timing: Timing) -> None:
    victims = s.busiest(chaos.workers, 2)
    s.timeline.add(f"{victims} run {[p for n in victims for p in s.pods_by_node().get(n, [])]}")
    await s.fault(f"kill {victims}", lambda: [chaos.cluster.kill(v) for v in victims])
    await s.wait_healthy(f"every Pod back without {victims}", down=victims)
    await s.fault(f"start {victims}", lambda: [chaos.cluster.start(v) for v in victims])
    await s.wait_healthy(f"{victims} back")


async def kill_leader(chaos: Chaos, s: Scenario, timing: Timing) -> None:
    leader = await s.leader()
    await s.fault(f"kill {leader} (the leader; runs {sorted(s.pods_by_node().get(leader, []))})",
                  chaos.cluster.kill, leader)
    await s.wait_healthy(f"a new leader, every Pod back without {leader}", down=[leader])
    new = await s.leader()
    assert new != leader, f"{leader} was killed but is still named leader"
    await s.fault(f"start {leader}", chaos.cluster.start, leader)
    await s.wait_healthy(f"{leader} back")


async def _partition(chaos: Chaos, s: Scenario, timing: Timing, minority: list[str]) -> None:
    majority = [n for n in chaos.node_names if n not in minority]
    for node in minority:
        pods = s.pods_by_node().get(node, [])
        s.timeline.add(f"{node} runs {pods}" if pods else f"{node} runs no workload Pod: its fencing goes untested")
    began = await s.fault(f"partition {minority} / {majority}", chaos.cluster.partition, [minority, majority])
    await s.wait_healthy("a leader in the majority, every Pod Running there", down=minority)
    leader = await s.leader()
    assert leader in majority, f"the leader is {leader}, not in the majority {majority}"
    await trio.sleep(max(0.0, began + timing.partition_s - time.monotonic()))
    await s.heal()
    await s.wait_healthy("healed")


async def partition_minority(chaos: Chaos, s: Scenario, timing: Timing) -> None:
    """One server (not the leader) and one worker cut off from the other three."""
    leader = await s.leader()
    [server] = s.busiest([n for n in chaos.servers if n != leader])
    [worker] = s.busiest(chaos.workers)
    await _partition(chaos, s, timing, [server, worker])


async def partition_leader_minority(chaos: Chaos, s: Scenario, timing: Timing) -> None:
    """The leader and one worker cut off from the other three."""
    leader = await s.leader()
    [worker] = s.busiest(chaos.workers)
    await _partition(chaos, s, timing, [leader, worker])


async def packet_loss(chaos: Chaos, s: Scenario, timing: Timing) -> None:
    await s.fault(f"loss {timing.loss_p:g} on every node for {timing.loss_s:g}s",
                  lambda: [chaos.cluster.loss(n, timing.loss_p) for n in chaos.node_names])
    await trio.sleep(timing.loss_s)
    await s.heal()
    await s.wait_healthy("healed")


async def pause_leader(chaos: Chaos, s: Scenario, timing: Timing) -> None:
    leader = await s.leader()
    await s.fault(f"pause {leader}'s agentd for {timing.pause_s:g}s (the leader)", chaos.cluster.pause, leader,
                  for_s=timing.pause_s)
    await trio.sleep(timing.pause_s)
    await s.wait_healthy("resumed and settled")
    assert not chaos.cluster.state().faults.pauses, "the timed pause did not end"


async def rolling_restart(chaos: Chaos, s: Scenario, timing: Timing) -> None:
    for node in chaos.node_names:
        await s.fault(f"restart {node}", chaos.cluster.restart, node)
        await s.wait_healthy(f"{node} restarted")


async def stop_all_start_all(chaos: Chaos, s: Scenario, timing: Timing) -> None:
    await s.fault("stop every node", lambda: [chaos.cluster.stop(n) for n in chaos.node_names])
    await s.fault("start every node", lambda: [chaos.cluster.start(n) for n in chaos.node_names])
    s.count_from_now("every node was off on purpose")
    await s.wait_healthy("the whole cluster back")


# The matrix, by title, in the order the test module runs it.
MATRIX: dict[str, Fault] = {
    "kill a worker running Pods": kill_worker,
    "partition a minority (one server, one worker) away, then heal": partition_minority,
    "partition the leader and a worker away, then heal": partition_leader_minority,
    "pause the leader's agentd, then resume": pause_leader,
    "kill the leader's machine": kill_leader,
    "kill both workers at once": kill_two_workers,
    "packet loss on every node": packet_loss,
    "rolling restart of every node, one at a time": rolling_restart,
    "stop every node, then start them all": stop_all_start_all,
}
