"""Benchmark of scheduling through the state machine: plan_placements + Raft's apply path.

Unlike scheduler_core_bench.py (the core alone), this goes the way the leader does: the
Pods and Nodes live in a ClusterState fed committed entries (as Raft applies them), the
leader's pass is agent/control/scheduling.plan_placements (snapshot of the state, the
scheduler core, the bind commands), and the bindings are applied to the state machine as
committed entries, one entry per command (a bind command carries up to 250 bindings).
Not one batch entry for the whole pass: agent/state/history.WatchWindow.record loops
forever when one entry's changes outnumber the watch window (found by this bench).

Prints one JSON line:
- placements_per_s: 10,000 Pods (40 Deployments' worth of labels, 250 each, two sizes)
  onto 1,000 nodes of four sizes: Pods bound / (CPU seconds of the passes planned and
  applied until nothing more is placed). CPU time of this process (the machine is shared);
  placements_per_s_wall gives the wall-clock figure.
- passes: how many leader passes it took; placed / unplaced.
- overcommitted_nodes: nodes whose bound requests (cpu, memory or Pod count) exceed the
  Node's allocatable, counted from the state after the run, independently of the
  scheduler (must be 0).
- spread_max_minus_min: 1,000 equal Pods onto 100 equal nodes, same path: the most minus
  the fewest Pods on a node (must be <= 1).
Targets: placements_per_s >= 5,000, overcommitted_nodes = 0, spread_max_minus_min <= 1.
--quick: 2,000 Pods onto 200 nodes, 200 onto 20 for the spread.

Run: .venv/bin/python bench/scheduler_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.control.scheduling import plan_placements  # noqa: E402
from agent.raft.types import Entry, EntryKind  # noqa: E402
from agent.state import commands as c  # noqa: E402
from agent.state.machine import ClusterState, is_error  # noqa: E402
from agent.state.quantity import cpu_millicores, memory_bytes, parse_quantity  # noqa: E402

T0 = 1_790_000_000.0
GIB = 1024**3
# (cpu millicores, memory bytes, max Pods): four node sizes, a quarter each.
SIZES = [(2000, 4 * GIB, 110), (4000, 8 * GIB, 110), (8000, 16 * GIB, 110), (16000, 64 * GIB, 110)]
POD_SIZES = [("100m", "128Mi"), ("250m", "256Mi")]


class Log:
    """A state machine fed committed entries one by one, as Raft applies them."""

    def __init__(self) -> None:
        self.machine = ClusterState()
        self.index = self.machine.applied_index

    def run(self, data: bytes) -> object:
        self.index += 1
        result = self.machine.apply(Entry(self.index, 1, EntryKind.NORMAL, data))
        assert not is_error(result), result
        return result


def node_facts(i: int, cpu: int, memory: int, pods: int) -> dict:
    return {"address": f"10.{i // 250}.{i % 250}.1", "api_port": 7070, "cpu": cpu, "memory": memory,
            "alloc_cpu": cpu, "alloc_memory": memory, "max_pods": pods,
            "labels": {"zone": f"z{i % 3}"}, "version": "0.1.0", "os": "linux", "arch": "amd64"}


def pod_doc(name: str, app: str, cpu: str, memory: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": "busybox:local",
                                     "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}


def build(nodes: list[tuple[int, int, int]], pods: list[dict]) -> Log:
    log = Log()
    for i, (cpu, memory, max_pods) in enumerate(nodes):
        name = f"node-{i:04d}"
        log.run(c.upsert_node(name, f"uid-{name}", node_facts(i, cpu, memory, max_pods), T0))
        log.run(c.set_node_ready(name, "True", "AgentAlive", "alive", T0))
    for start in range(0, len(pods), 500):
        chunk = pods[start:start + 500]
        log.run(c.apply_objects(chunk, [f"uid-{d['metadata']['name']}" for d in chunk], T0))
    return log


def schedule_all(log: Log) -> tuple[float, float, int]:
    """Leader passes until one places nothing: (cpu_s, wall_s, passes)."""
    cpu = wall = 0.0
    passes = 0
    while True:
        c0, w0 = time.process_time(), time.perf_counter()
        commands = plan_placements(log.machine, now=T0 + passes)
        for command in commands:  # one committed entry each (see the banner)
            log.run(command)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        passes += 1
        if not any(c.decode(cmd).op == "bind" for cmd in commands) or passes >= 50:
            return cpu, wall, passes


def bound_pods(log: Log) -> list[dict]:
    return [doc for doc in log.machine.store.of_kind("Pod").values() if (doc.get("spec") or {}).get("nodeName")]


def overcommitted(log: Log, nodes: list[tuple[int, int, int]]) -> int:
    used: dict[str, list[int]] = {}
    for doc in bound_pods(log):
        node = doc["spec"]["nodeName"]
        total = used.setdefault(node, [0, 0, 0])
        for container in doc["spec"]["containers"]:
            requests = (container.get("resources") or {}).get("requests") or {}
            total[0] += cpu_millicores(parse_quantity(requests.get("cpu", "0")))
            total[1] += memory_bytes(parse_quantity(requests.get("memory", "0")))
        total[2] += 1
    count = 0
    for i, (cpu, memory, max_pods) in enumerate(nodes):
        u = used.get(f"node-{i:04d}", [0, 0, 0])
        if u[0] > cpu or u[1] > memory or u[2] > max_pods:
            count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 Pods onto 200 nodes")
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    args = parser.parse_args()
    if args.quick:
        args.pods, args.nodes = 2_000, 200
    started = time.monotonic()

    nodes = [SIZES[i % len(SIZES)] for i in range(args.nodes)]
    pods = []
    for i in range(args.pods):
        app = i // 250
        cpu, memory = POD_SIZES[app % len(POD_SIZES)]
        pods.append(pod_doc(f"p-{i:05d}", f"app-{app}", cpu, memory))
    log = build(nodes, pods)
    cpu_s, wall_s, passes = schedule_all(log)
    placed = len(bound_pods(log))
    figures = {
        "bench": "scheduler", "pods": args.pods, "nodes": args.nodes, "placed": placed,
        "unplaced": args.pods - placed, "passes": passes,
        "placements_per_s": round(placed / cpu_s), "placements_per_s_wall": round(placed / wall_s),
        "overcommitted_nodes": overcommitted(log, nodes),
    }

    spread_nodes = max(2, args.nodes // 10)
    equal = [(4000, 8 * GIB, 110)] * spread_nodes
    spread_log = build(equal, [pod_doc(f"s-{i:05d}", "even", "100m", "128Mi") for i in range(spread_nodes * 10)])
    schedule_all(spread_log)
    per_node = Counter(doc["spec"]["nodeName"] for doc in bound_pods(spread_log))
    counts = [per_node.get(f"node-{i:04d}", 0) for i in range(spread_nodes)]
    figures["spread_pods"] = spread_nodes * 10
    figures["spread_max_minus_min"] = max(counts) - min(counts)
    figures["quick"] = args.quick
    figures["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
