"""Benchmark of the scheduler core alone (agent/control/scheduler.py): one pass of many
pending Pods onto many simulated nodes, in this process, no state machine around it.

Prints one JSON line:
- placements_per_s: 10,000 Pods of 60 Deployments (created one Deployment after another,
  so each Deployment's Pods come together in the pass) onto 1,000 nodes of four sizes,
  with zones, an SSD label on a quarter, a dedicated taint and a PreferNoSchedule taint on
  a few; some Deployments select SSD nodes, tolerate the taint, prefer a zone or prefer
  not to share a node with their own replicas, one requires it. The time covers the
  whole schedule() call (building the running totals included); best of --repeat runs,
  in CPU seconds of this process (the machine is shared: its wall-clock time depends on
  the others' load); placements_per_s_wall gives the wall-clock figure as well.
- placements_per_s_interleaved: the same Pods created round-robin across Deployments,
  the worst order for the per-template caches.
- placed / unplaced: of the 10,000 (the cluster has room for all: a regression that
  leaves Pods out shows here).
- overcommitted_nodes: nodes whose placed requests (cpu, memory or Pod count) exceed
  allocatable, counted independently of the scheduler (must be 0).
- spread_max_minus_min: 1,050 identical Pods of one app onto 100 equal nodes: the most
  minus the fewest Pods on a node (must be <= 1).
--quick: 2,000 Pods onto 200 nodes, one run each.

Run: .venv/bin/python bench/scheduler_core_bench.py [--quick] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter

from agent.control.placement import (
    ARCH_LABEL,
    HOSTNAME_LABEL,
    OS_LABEL,
    ClusterSnapshot,
    InterPodAffinity,
    NodeInfo,
    PendingPod,
    PlacementSpec,
    PodAffinityTerm,
    WeightedPodAffinityTerm,
)
from agent.control.scheduler import schedule
from agent.control.selectors import (
    IN,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    LabelSelector,
    NodeAffinity,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PreferredSchedulingTerm,
    Taint,
    Toleration,
)

GIB = 1024**3
MIB = 1024**2
NODE_SIZES = ((2000, 4 * GIB, 30), (4000, 8 * GIB, 110), (8000, 32 * GIB, 110), (16000, 64 * GIB, 110))
DEDICATED = Taint("dedicated", "batch", NO_SCHEDULE)
SPOT = Taint("spot", "true", PREFER_NO_SCHEDULE)


def make_nodes(count: int, rng: random.Random) -> tuple[NodeInfo, ...]:
    nodes = []
    for i in range(count):
        cpu, memory, pods = NODE_SIZES[i % len(NODE_SIZES)]
        name = f"node-{i:04d}"
        labels = {
            HOSTNAME_LABEL: name,
            OS_LABEL: "linux",
            ARCH_LABEL: "amd64",
            "topology.kubernetes.io/zone": f"zone-{i % 3}",
        }
        if rng.random() < 0.25:
            labels["disktype"] = "ssd"
        taints = []
        if rng.random() < 0.05:
            taints.append(DEDICATED)
        if rng.random() < 0.05:
            taints.append(SPOT)
        nodes.append(NodeInfo(name, cpu, memory, pods, labels=labels, taints=tuple(taints)))
    return tuple(nodes)


def make_templates(count: int, node_count: int, rng: random.Random) -> list[tuple[PlacementSpec, int]]:
    """(spec, replicas) per Deployment; replicas sum to `count`."""
    weights = [rng.randint(1, 10) for _ in range(60)]
    replicas = [max(1, count * w // sum(weights)) for w in weights]
    replicas[0] += count - sum(replicas)
    templates = []
    for d, n in enumerate(replicas):
        app = f"app-{d}"
        kwargs: dict = {
            "labels": {"app": app, "pod-template-hash": f"{d:08x}"},
            "app_key": f"uid-{d}",
            "cpu_millis": rng.choice((100, 250, 500, 1000)),
            "memory_bytes": rng.choice((128, 256, 512, 1024)) * MIB,
        }
        if d % 5 == 1:
            kwargs["node_selector"] = {"disktype": "ssd"}
        if d % 7 == 2:
            kwargs["tolerations"] = (Toleration("dedicated", "Equal", "batch", NO_SCHEDULE),)
        if d % 6 == 3:
            zone = NodeSelectorTerm((NodeSelectorRequirement("topology.kubernetes.io/zone", IN, ("zone-1",)),))
            kwargs["node_affinity"] = NodeAffinity(preferred=(PreferredSchedulingTerm(50, zone),))
        own = PodAffinityTerm(LabelSelector({"app": app}))
        if d % 10 == 4:
            kwargs["pod_affinity"] = InterPodAffinity(preferred_anti_affinity=(WeightedPodAffinityTerm(100, own),))
        if d == 9:
            n = min(n, node_count // 2)
            kwargs["pod_affinity"] = InterPodAffinity(required_anti_affinity=(own,))
        templates.append((PlacementSpec(**kwargs), n))
    return templates


def make_pending(templates: list[tuple[PlacementSpec, int]], interleaved: bool) -> list[PendingPod]:
    names = [(d, r) for d, (_, n) in enumerate(templates) for r in range(n)]
    if interleaved:
        names.sort(key=lambda dr: (dr[1], dr[0]))
    return [PendingPod(f"app-{d}-{r:05d}", templates[d][0], creation_index=k) for k, (d, r) in enumerate(names)]


def overcommitted(nodes: tuple[NodeInfo, ...], pending: list[PendingPod], placements) -> int:
    spec_of = {p.key: p.spec for p in pending}
    cpu, memory, pods = Counter(), Counter(), Counter()
    for placed in placements:
        spec = spec_of[placed.pod]
        cpu[placed.node] += spec.cpu_millis
        memory[placed.node] += spec.memory_bytes
        pods[placed.node] += 1
    return sum(
        1
        for n in nodes
        if cpu[n.name] > n.allocatable_cpu_millis
        or memory[n.name] > n.allocatable_memory_bytes
        or pods[n.name] > n.allocatable_pods
    )


def timed_pass(nodes, pending, repeat: int):
    """(best CPU seconds, best wall seconds, result) over `repeat` passes."""
    cpu = wall = float("inf")
    result = None
    for _ in range(repeat):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = schedule(ClusterSnapshot(nodes), pending)
        cpu = min(cpu, time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start_wall)
    return cpu, wall, result


def spread_on_equal_nodes(node_count: int, pods: int) -> int:
    nodes = tuple(
        NodeInfo(f"eq-{i:03d}", 8000, 32 * GIB, 110, labels={HOSTNAME_LABEL: f"eq-{i:03d}"}) for i in range(node_count)
    )
    spec = PlacementSpec(labels={"app": "web"}, app_key="web", cpu_millis=50, memory_bytes=64 * MIB)
    result = schedule(ClusterSnapshot(nodes), [PendingPod(f"web-{k:05d}", spec, creation_index=k) for k in range(pods)])
    assert not result.unplaced
    per_node = Counter(p.node for p in result.placements)
    counts = [per_node[n.name] for n in nodes]
    return max(counts) - min(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 Pods onto 200 nodes, one run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per order; the best is kept")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    pod_count, node_count = (2_000, 200) if args.quick else (10_000, 1_000)
    repeat = 1 if args.quick else args.repeat
    rng = random.Random(args.seed)
    nodes = make_nodes(node_count, rng)
    templates = make_templates(pod_count, node_count, rng)
    grouped = make_pending(templates, interleaved=False)
    interleaved = make_pending(templates, interleaved=True)
    seconds, wall, result = timed_pass(nodes, grouped, repeat)
    seconds_interleaved, _, result_interleaved = timed_pass(nodes, interleaved, repeat)
    print(
        json.dumps(
            {
                "pods": len(grouped),
                "nodes": node_count,
                "placements_per_s": round(len(result.placements) / seconds),
                "placements_per_s_wall": round(len(result.placements) / wall),
                "placements_per_s_interleaved": round(len(result_interleaved.placements) / seconds_interleaved),
                "pass_cpu_s": round(seconds, 3),
                "placed": len(result.placements),
                "unplaced": len(result.unplaced),
                "overcommitted_nodes": overcommitted(nodes, grouped, result.placements)
                + overcommitted(nodes, interleaved, result_interleaved.placements),
                "spread_max_minus_min": spread_on_equal_nodes(100, 1_050),
            }
        )
    )


if __name__ == "__main__":
    main()
