"""The chaos monitor: samples the cluster from the outside while a scenario runs, and keeps
a timeline a person can read.

Owns three sampling loops and the timeline they feed:
- the API (a linearizable List of the workload Pods and of the Nodes, through any agent):
  where each workload Pod is bound, its phase, which nodes are Ready;
- every agent's own Status (its term and the leader it knows);
- every node's own engine (which Pod uids have a running container there).
Only changes go on the timeline: a node Ready/NotReady, a Pod bound elsewhere or Running,
the count of Pods Running on Ready nodes, a new leader, a uid running twice.

Rules it keeps: an agent or engine that does not answer (a dead machine) is a sample
with nothing from it, never an error; the samples themselves are kept for the pure
checks in invariants.py; times are time.monotonic(), shown relative to the fault.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import docker
import trio

from agent.client import ClusterClient
from agent.grpcbridge.errors import RpcError
from cluster import Cluster
from tests.chaos.invariants import EngineSample, LeaderSeen, PodSample

POD_UID_LABEL = "agentd.pod.uid"
WORK_LABEL = "chaos.agentd.io/work"


@dataclass
class Timeline:
    events: list[tuple[float, str]] = field(default_factory=list)
    zero: float = 0.0

    def add(self, text: str, t: float | None = None) -> None:
        self.events.append((time.monotonic() if t is None else t, text))

    def render(self, title: str) -> str:
        lines = [f"--- timeline: {title} (seconds from the fault)"]
        for t, text in sorted(self.events, key=lambda e: e[0]):
            lines.append(f"  {t - self.zero:+8.2f}s  {text}")
        return "\n".join(lines)


@dataclass
class Monitor:
    cluster: Cluster
    timeline: Timeline
    work_count: int
    api_period_s: float = 0.5  # fine enough to time a heal of a few seconds
    status_period_s: float = 1.0
    engine_period_s: float = 1.0  # a duplicate lasting a fencing window (10 s) is seen ten times
    pod_samples: list[PodSample] = field(default_factory=list)
    engine_samples: list[EngineSample] = field(default_factory=list)
    leaders: list[LeaderSeen] = field(default_factory=list)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._api_loop)
            nursery.start_soon(self._status_loop)
            nursery.start_soon(self._engine_loop)

    # ----- the API's view

    async def _api_loop(self) -> None:
        addresses = [n.api_address for n in self.cluster.nodes]
        last_ready: frozenset[str] | None = None
        last_pods: dict[str, tuple[str, str, str]] = {}
        last_count: int | None = None
        async with ClusterClient(addresses, timeout_s=2) as client:
            while True:
                try:
                    pods, _ = await client.list("Pod", labels=f"{WORK_LABEL}=true")
                    nodes, _ = await client.list("Node")
                except RpcError:
                    await trio.sleep(self.api_period_s)
                    continue
                t = time.monotonic()
                ready = frozenset(n["metadata"]["name"] for n in nodes if _ready(n))
                now = {p["metadata"]["name"]: (p["spec"].get("nodeName", ""), (p.get("status") or {}).get("phase", ""),
                                               p["metadata"]["uid"]) for p in pods}
                sample = PodSample(t, now, ready)
                self.pod_samples.append(sample)
                if last_ready is not None:
                    for name in sorted(last_ready - ready):
                        reason = next((_ready_reason(n) for n in nodes if n["metadata"]["name"] == name), "")
                        self.timeline.add(f"{name} NotReady ({reason})", t)
                    for name in sorted(ready - last_ready):
                        self.timeline.add(f"{name} Ready", t)
                for name, (node, phase, uid) in sorted(now.items()):
                    before = last_pods.get(name)
                    if before is not None and before[0] != node:
                        self.timeline.add(f"{name} taken off {before[0] or '-'}, bound to {node or '-'}", t)
                    if phase == "Running" and (before is None or before[:2] != (node, phase)):
                        self.timeline.add(f"{name} Running on {node}", t)
                count = sample.running_on_ready()
                if count != last_count:
                    self.timeline.add(f"{count}/{self.work_count} workload Pods Running on Ready nodes", t)
                last_ready, last_pods, last_count = ready, now, count
                await trio.sleep(self.api_period_s)

    # ----- each agent's Status

    async def _status_loop(self) -> None:
        clients = {n.name: ClusterClient([n.api_address], timeout_s=1) for n in self.cluster.nodes}
        last_leader: tuple[int, str] | None = None
        try:
            while True:
                async with trio.open_nursery() as nursery:
                    for name, client in clients.items():
                        nursery.start_soon(self._one_status, name, client)
                newest = max(((s.term, s.leader) for s in self.leaders), default=None)
                if newest is not None and newest != last_leader:
                    self.timeline.add(f"leader {newest[1]} (term {newest[0]})")
                    last_leader = newest
                await trio.sleep(self.status_period_s)
        finally:
            for client in clients.values():
                client.close()

    async def _one_status(self, name: str, client: ClusterClient) -> None:
        try:
            status = await client.status()
        except RpcError:
            return
        if status.leader:
            self.leaders.append(LeaderSeen(time.monotonic(), name, int(status.term), status.leader))

    # ----- each node's engine

    async def _engine_loop(self) -> None:
        engines = {n.name: docker.DockerClient(base_url=n.docker_url, timeout=3) for n in self.cluster.nodes}
        doubled: set[str] = set()
        try:
            while True:
                per_node = await trio.to_thread.run_sync(_running_uids, engines)
                running: dict[str, set[str]] = {}
                for node, uids in per_node.items():
                    for uid in uids:
                        running.setdefault(uid, set()).add(node)
                sample = EngineSample(time.monotonic(), {u: frozenset(n) for u, n in running.items()})
                self.engine_samples.append(sample)
                now_doubled = {u for u, n in running.items() if len(n) > 1}
                for uid in sorted(now_doubled - doubled):
                    self.timeline.add(f"uid {uid[:8]} running on {','.join(sorted(running[uid]))}", sample.t)
                for uid in sorted(doubled - now_doubled):
                    self.timeline.add(f"uid {uid[:8]} running on one node again", sample.t)
                doubled = now_doubled
                await trio.sleep(self.engine_period_s)
        finally:
            for engine in engines.values():
                engine.close()


def _running_uids(engines: dict[str, docker.DockerClient]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for node, engine in engines.items():
        try:
            rows = engine.api.containers(filters={"label": POD_UID_LABEL, "status": "running"})
        except Exception:  # noqa: BLE001 - a dead or restarting machine's engine: nothing runs there
            continue
        out[node] = {row["Labels"][POD_UID_LABEL] for row in rows}
    return out


def _ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or ())


def _ready_reason(node: dict) -> str:
    return next((c.get("reason", "") for c in (node.get("status") or {}).get("conditions") or ()
                 if c.get("type") == "Ready"), "")


def addresses_of(cluster: Cluster) -> Sequence[str]:
    return [n.api_address for n in cluster.nodes]
