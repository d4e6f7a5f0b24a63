"""One chaos scenario on a running cluster: the workload and the monitor run the whole time,
faults are injected and healed, and the invariants are checked at the end.

Owns: `Chaos` (the cluster, the workload Deployment and its Pods, the bounds) and `Scenario` (one run:
timeline, history, samples; `fault`, `wait_healthy`, then the checks). The checks:
(a) every workload Pod Running on a Ready node again (the API says so and its node's engine
    agrees), and no stretch below the count (containers running on nodes the API calls
    Ready, from the engines) longer than REPLICAS_BOUND_S (printed with what was measured);
(b) the workload's history linearizable: no acknowledged write lost, no stale read;
(c) at most one leader per term, from every agent's Status and from every agent's log;
(d) no Pod uid running on two nodes longer than the fencing window allows.

Rules it keeps: every cluster call runs in a thread (they block) and goes on the timeline;
a scenario ends with the cluster healthy (every node on and Ready, no fault in force),
so the next one may reuse it; the registers of a scenario are its own (a key prefix)
and are deleted once its history was checked.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from agent.agentd.config import DEFAULT_FENCE_AFTER_S
from agent.client import ClusterClient
from agent.grpcbridge.errors import RpcError
from cluster import Cluster
from cluster.cluster import RUN_ROOT
from tests.chaos.history import OK, History, failing_keys
from tests.chaos.invariants import (below_count, duplicate_runs, leaders_from_log, running_counts,
                                    terms_with_two_leaders)
from tests.chaos.monitor import WORK_LABEL, Monitor, Timeline
from tests.chaos.workload import Workload, WorkloadConfig
from tests.integration.cluster_helpers import pod_manifest

WORK_PODS = 6
# The workload Pods back on Ready nodes within this long of losing one. A heal takes
# 2-5 s on an idle machine (bench/heal_bench.py); this allows the loaded 2-core CI machine.
REPLICAS_BOUND_S = 30.0
# A Pod's containers stopped (grace period 1 s, then SIGKILL) and seen gone by the engine
# sampler (every second), on the loaded machine.
STOP_SLACK_S = 4.0
# A copy cut off from the leader stops within the fencing window; the new copy starts later.
DUPLICATE_BOUND_S = DEFAULT_FENCE_AFTER_S + STOP_SLACK_S
# How long a healthy cluster may take to come back to health after a fault has ended:
# nodes restarted (dockerd and agentd boot on 2 shared cores), rejoined, Pods settled.
HEALTHY_TIMEOUT_S = 120.0


def work_deployment() -> dict[str, Any]:
    """The workload: a Deployment of WORK_PODS replicas (its Pods carry WORK_LABEL)."""
    template = pod_manifest("unused", cpu="50m", memory="16Mi", labels={WORK_LABEL: "true", "app": "chaos-work"},
                            command="exec sleep 3600")
    template["spec"]["restartPolicy"] = "Always"
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "chaos-work"},
            "spec": {"replicas": WORK_PODS, "selector": {"matchLabels": {"app": "chaos-work"}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": template["metadata"]["labels"]},
                                  "spec": template["spec"]}}}


@dataclass
class Chaos:
    """The cluster under test and its workload Pods."""

    cluster: Cluster
    seed: int
    scenarios_run: int = 0

    @property
    def addresses(self) -> list[str]:
        return [n.api_address for n in self.cluster.nodes]

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.cluster.nodes]

    @property
    def servers(self) -> list[str]:
        return self.node_names[:self.cluster.state().servers]

    @property
    def workers(self) -> list[str]:
        return self.node_names[self.cluster.state().servers:]

    def keep_logs(self) -> Path:
        """Copy every node's agentd.log out of the run directory (which `down` removes)."""
        kept = RUN_ROOT.parent / "chaos-logs" / self.cluster.name
        kept.mkdir(parents=True, exist_ok=True)
        for log in self.cluster.run_dir.glob("*/agentd.log"):
            shutil.copy(log, kept / f"{log.parent.name}.agentd.log")
        return kept

    async def deploy_work(self) -> None:
        async with ClusterClient(self.addresses, timeout_s=5) as client:
            await client.apply([work_deployment()])

    @contextlib.asynccontextmanager
    async def scenario(self, title: str, *, workload: WorkloadConfig = WorkloadConfig(),
                       strict: bool = True) -> AsyncIterator[Scenario]:
        """Run a scenario's body under the workload and the monitor, then check; `strict`
        fails on a broken invariant, otherwise the scenario's `problems` say what broke."""
        self.scenarios_run += 1
        s = Scenario(self, title, f"chaos-kv-{self.scenarios_run}", self.seed + self.scenarios_run, workload)
        try:
            async with trio.open_nursery() as nursery:
                await s.start(nursery)
                yield s
                await s.finish()
                nursery.cancel_scope.cancel()
        except BaseException as exc:
            s.report()  # what the checks find so far helps explain the failure
            sole = _sole(exc)
            if sole is not exc:
                raise sole from None  # the one failure, not the nurseries wrapped around it
            raise
        finally:
            s.client.close()
        problems = s.report()
        assert not (strict and problems), f"{title}:\n  " + "\n  ".join(problems)
        async with ClusterClient(self.addresses, timeout_s=5) as client:
            await s.workload.remove_keys(client)


@dataclass
class Scenario:
    chaos: Chaos
    title: str
    key_prefix: str
    seed: int
    workload_config: WorkloadConfig
    timeline: Timeline = field(default_factory=Timeline)
    history: History = field(default_factory=History)
    counted_from: float = float("-inf")
    healthy_at: float = float("-inf")
    figures: dict[str, Any] = field(default_factory=dict)
    findings: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cluster = self.chaos.cluster
        self.monitor = Monitor(self.cluster, self.timeline, WORK_PODS)
        self.workload = Workload(self.chaos.addresses, self.history, self.key_prefix, self.seed, self.workload_config)
        self.client = ClusterClient(self.chaos.addresses, timeout_s=2)
        self.zero_set = False

    async def start(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self.monitor.run)
        nursery.start_soon(self.workload.run)
        self.timeline.add(f"workload and monitor started (seed {self.seed})")
        self.healthy_at = self.counted_from = await self.wait_healthy("healthy before the fault")

    # ----- faults

    async def fault(self, text: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
        """Run a cluster call (in a thread) and put it on the timeline; the first one is time zero."""
        began = time.monotonic()
        await trio.to_thread.run_sync(lambda: call(*args, **kwargs))
        if not self.zero_set:
            self.timeline.zero, self.zero_set = began, True
        self.timeline.add(f"FAULT {text} (took {time.monotonic() - began:.1f}s)", began)
        return began

    async def heal(self) -> float:
        return await self.fault("heal", self.cluster.heal)

    def count_from_now(self, why: str) -> None:
        """Below-count stretches before now are not held against the bound (the scenario
        took every node down on purpose)."""
        self.counted_from = time.monotonic()
        self.timeline.add(f"the {WORK_PODS}-Pod bound is counted from here: {why}")

    async def leader(self, *, timeout_s: float = 60.0) -> str:
        """The leader, as the agents in touch with one say (an agent cut off from the
        leader answers that it knows none: ask the next one)."""
        addresses = self.client.addresses
        with trio.fail_after(timeout_s):
            for turn in itertools.count():
                self.client.prefer(addresses[turn % len(addresses)])
                try:
                    status = await self.client.status()
                    if status.leader:
                        return status.leader
                except RpcError:
                    pass
                await trio.sleep(0.2)
        raise AssertionError("unreachable")

    def pods_by_node(self) -> dict[str, list[str]]:
        sample = self.monitor.pod_samples[-1]
        out: dict[str, list[str]] = {}
        for name, (node, _, _) in sample.pods.items():
            out.setdefault(node, []).append(name)
        return out

    def busiest(self, among: Sequence[str], count: int = 1) -> list[str]:
        """The `count` nodes of `among` running the most workload Pods."""
        by = self.pods_by_node()
        return sorted(among, key=lambda n: (-len(by.get(n, [])), n))[:count]

    async def wait_healthy(self, what: str, *, down: Sequence[str] = (), timeout_s: float | None = None) -> float:
        """Wait until the nodes of `down` are NotReady with no workload Pod bound to them,
        every other node is Ready, every workload Pod Running on a Ready node, and no uid
        runs twice, all in samples taken after this call began.

        With nodes `down` (a fault in force), the cluster must cope within the replicas
        bound, which is also longer than a duplicate may last; once every node is back,
        it has HEALTHY_TIMEOUT_S (machines boot, agents rejoin)."""
        if timeout_s is None:
            timeout_s = REPLICAS_BOUND_S if down else HEALTHY_TIMEOUT_S
        began = time.monotonic()
        want_ready = set(self.chaos.node_names) - set(down)
        deadline = began + timeout_s
        while True:
            pods = [s for s in self.monitor.pod_samples if s.t > began]
            engines = [s for s in self.monitor.engine_samples if s.t > began]
            if pods and engines:
                p, e = pods[-1], engines[-1]
                fault_seen = not p.ready & set(down) and not {node for node, _, _ in p.pods.values()} & set(down)
                if (fault_seen and want_ready <= p.ready and len(p.pods) == WORK_PODS and p.placed_as_run(e)
                        and not any(len(nodes) > 1 for nodes in e.running.values()) and e.t > p.t):
                    self.timeline.add(f"{what}: {len(p.ready)} nodes Ready, {WORK_PODS}/{WORK_PODS} Running where "
                                      "the state says (their engines agree), no uid running twice", e.t)
                    return e.t
            if time.monotonic() > deadline:
                last = self.monitor.pod_samples[-1] if self.monitor.pod_samples else None
                raise AssertionError(f"{self.title}: not healthy ({what}) after {timeout_s:.0f}s; last sample "
                                     f"{last}; last engine sample {self.monitor.engine_samples[-1:]}")
            await trio.sleep(0.2)

    # ----- the end

    async def finish(self) -> None:
        """After the last heal: one more read of every register, recorded, so that every
        acknowledged write is checked against what the healed cluster says."""
        async with ClusterClient(self.chaos.addresses, timeout_s=5) as client:
            await self.workload.read_every_key(client, "final")
        self.timeline.add("final read of every register done")

    def report(self) -> list[str]:
        """Print the timeline and the figures; return the invariants broken (empty if none)."""
        failing = failing_keys(self.history)
        counts = self.history.counts()
        below = below_count(running_counts(self.monitor.pod_samples, self.monitor.engine_samples), WORK_PODS,
                            counted_from=self.counted_from)
        longest_below = max((i.length_s for i in below), default=0.0)
        # From the first healthy sample on: what ran twice before it is the last scenario's.
        doubles = duplicate_runs([e for e in self.monitor.engine_samples if e.t >= self.healthy_at])
        longest_double = max((i.length_s for i in doubles), default=0.0)
        logged = [seen for n in self.cluster.nodes
                  for seen in leaders_from_log(n.name, _read_lines(n.dir / "agentd.log"))]
        two_leaders = terms_with_two_leaders(list(self.monitor.leaders) + logged)
        self.figures = {
            "ops": counts,
            "longest_below_replicas_s": round(longest_below, 2), "replicas_bound_s": REPLICAS_BOUND_S,
            "longest_duplicate_s": round(longest_double, 2), "duplicate_bound_s": DUPLICATE_BOUND_S,
            "terms_seen": len({s.term for s in list(self.monitor.leaders) + logged}),
        }
        print(self.timeline.render(self.title))
        print(f"--- {self.title}: {self.figures}")
        problems = []
        for bad in failing:
            problems.append(f"(b) history not linearizable on {bad.key}: {bad.reason}")
        if self.workload.unexpected:
            problems.append(f"(b) unexpected errors from the API: {self.workload.unexpected[:5]}")
        if counts["acknowledged_writes"] == 0:
            problems.append("(b) no write was acknowledged at all: the workload proved nothing")
        if longest_below > REPLICAS_BOUND_S:
            problems.append(f"(a) workload Pods below {WORK_PODS} for {longest_below:.1f}s > {REPLICAS_BOUND_S}s: "
                            f"{[(round(i.start - self.timeline.zero, 1), round(i.length_s, 1)) for i in below]}")
        if two_leaders:
            problems.append(f"(c) two leaders in one term: {two_leaders}")
        long_doubles = [i for i in doubles if i.length_s > DUPLICATE_BOUND_S]
        if long_doubles:
            shown = [(i.what, round(i.start - self.timeline.zero, 1), round(i.length_s, 1)) for i in long_doubles]
            problems.append(f"(d) a Pod ran on two nodes past the fencing window ({DUPLICATE_BOUND_S}s): "
                            f"(uid, from, for how long) {shown}")
        for problem in problems:
            print(f"!!! {problem}")
        self.problems = problems
        self.findings = {"ops_acknowledged": counts[OK], "keys_not_linearizable": len(failing),
                         "duplicates_past_window": len(long_doubles), "longest_below_replicas_s": longest_below}
        return problems


def _sole(exc: BaseException) -> BaseException:
    """The one exception inside nested groups of one, or `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _read_lines(path: Any) -> list[str]:
    try:
        with open(path, errors="replace") as f:
            return [line for line in f if "raft_leader_changed" in line]
    except FileNotFoundError:
        return []
