"""A deterministic simulation of the control plane: Deployments rolled out over a cluster
whose nodes die and return.

One seed makes one scenario: a real ClusterState fed Raft-like batch entries; each step
of one simulated second runs, as the leader does, the node lifecycle controller (on a
gossip view the simulation keeps), the workload controllers (plan_workloads) and the
scheduler (plan_placements), each pass's commands applied before the next reads the
state; then a simulated kubelet on every live node reports its Pods: Running at once,
Ready after a seeded delay (some Pods are slow), now and then Failed for good (evicted).
During the fault phase people roll templates out, roll back, restart, scale, pause and
resume, and nodes die and return; then the faults stop, every Deployment is resumed, and
the cluster must settle.

Checked after every step:
- no command the controllers wrote was refused by the machine;
- a Deployment never has more live Pods than replicas + maxSurge;
- a RollingUpdate Deployment never has fewer available Pods than replicas - maxUnavailable
  once it has been complete, unless a node died, a Pod was lost or it was scaled since;
- no node holds more than its allocatable;
and at the end, every Deployment converges (all replicas of its template, updated and
available, status saying so) and a further pass writes nothing.

Replay one seed: CONTROL_SIM_SEED=123 pytest tests/sim/test_control_sim.py -k replay
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from agent.control.deployments import same_template
from agent.control.members import MemberView
from agent.control.node_lifecycle import reconcile_nodes
from agent.control.replicasets import is_available, is_live
from agent.control.scheduling import plan_placements
from agent.control.workloads import plan_workloads
from agent.raft.batches import CommandBatches, encode_batch
from agent.raft.types import Entry, EntryKind
from agent.state import commands as c
from agent.state import pod_lifecycle as pods
from agent.state.machine import ClusterState, is_error
from agent.state.objects import controller_of, format_time, meta_of
from agent.state.workloads import max_surge, max_unavailable, replicas_of

T0 = 1_790_000_000.0
FAULT_STEPS = 60
SETTLE_STEPS = 150
IMAGES = ("web:1", "web:2", "web:3", "web:4")


def replay_hint(seed: int) -> str:
    return f"replay: CONTROL_SIM_SEED={seed} pytest tests/sim/test_control_sim.py -k replay"


@dataclass
class Result:
    seed: int
    ok: bool = True
    failure: str = ""
    steps: int = 0
    commands: int = 0


@dataclass
class _Deploy:
    name: str
    cpu: int
    strategy: dict[str, Any]
    min_ready: int
    replicas: int
    image: str = IMAGES[0]
    paused: bool = False
    restarted: int = 0
    history: list[str] = field(default_factory=list)


class Simulation:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.state = ClusterState()
        self.batches = CommandBatches(self.state)
        self.index = 0
        self.now = T0
        self.uids = (f"uid-{i}" for i in itertools.count())
        self.events: list[str] = []
        self.commands = 0
        rng = self.rng
        self.nodes = [f"node-{i}" for i in range(rng.randint(3, 5))]
        self.node_cpu = {n: rng.choice((2000, 3000, 4000)) for n in self.nodes}
        self.alive = {n: True for n in self.nodes}
        self.deploys: list[_Deploy] = []
        budget = min(self.node_cpu.values()) * (len(self.nodes) - 1) // 2  # fits with a node down, surge and all
        for i in range(rng.randint(1, 3)):
            strategy: dict[str, Any]
            if rng.random() < 0.2:
                strategy = {"type": "Recreate"}
            else:
                surge = rng.choice((0, 1, 2, "25%", "50%", "0%"))
                unavailable = rng.choice((0, 1, "25%", "30%", "0%"))
                if surge in (0, "0%") and unavailable in (0, "0%"):
                    surge = 1
                strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
            self.deploys.append(_Deploy(f"app{i}", rng.choice((100, 200, 250)), strategy, rng.choice((0, 0, 1, 3)),
                                        rng.randint(1, 6)))
        for d in self.deploys:  # keep the demand (with surge) within what survives a node's death
            while d.replicas > 1 and sum(x.cpu * (2 * x.replicas + 2) for x in self.deploys) > budget:
                d.replicas -= 1
        self.max_replicas = {d.name: max(1, d.replicas) for d in self.deploys}
        # Some seeds also hold a ReplicaSet of their own, with an orphan Pod for it to adopt.
        self.solo_replicas = rng.randint(1, 3) if rng.random() < 0.3 else None
        self.ready_at: dict[tuple[str, int], float] = {}  # (pod uid, epoch) -> when it turns Ready
        self.reported: dict[tuple[str, int], str] = {}  # what the kubelet last said
        self.doomed: set[str] = set()  # pod uids the kubelet will report Failed
        self.complete_since_disturbance = {d.name: False for d in self.deploys}

    # ------------------------------------------------------------ plumbing
    def _apply(self, commands: list[bytes], who: str) -> None:
        if not commands:
            return
        self.index += 1
        results = self.batches.apply(Entry(self.index, 1, EntryKind.NORMAL, encode_batch(commands)))
        self.commands += len(commands)
        for data, result in zip(commands, results):  # type: ignore[arg-type]
            if is_error(result):
                raise AssertionError(f"{who}: the machine refused {c.decode(data).op}: {result['message']}")

    def _members(self) -> dict[str, MemberView]:
        out = {}
        for i, name in enumerate(self.nodes):
            facts = {"address": f"10.0.0.{i + 1}", "api_port": 7070, "cpu": self.node_cpu[name],
                     "memory": 8 << 30, "alloc_cpu": self.node_cpu[name], "alloc_memory": 8 << 30,
                     "max_pods": 110, "labels": {}, "version": "0.1.0", "os": "linux", "arch": "amd64"}
            out[name] = MemberView(name, "alive" if self.alive[name] else "dead", facts)
        return out

    def _deployment_doc(self, d: _Deploy) -> dict[str, Any]:
        template_meta: dict[str, Any] = {"labels": {"app": d.name}}
        if d.restarted:
            template_meta["annotations"] = {"kubectl.kubernetes.io/restartedAt": format_time(T0 + d.restarted)}
        spec: dict[str, Any] = {
            "replicas": d.replicas, "selector": {"matchLabels": {"app": d.name}}, "strategy": d.strategy,
            "minReadySeconds": d.min_ready, "paused": d.paused,
            "template": {"metadata": template_meta, "spec": {"containers": [{
                "name": "app", "image": d.image, "resources": {"requests": {"cpu": f"{d.cpu}m", "memory": "64Mi"}}}]}},
        }
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": d.name, "annotations": {"kubernetes.io/change-cause": f"image {d.image}"}},
                "spec": spec}

    def _write(self, d: _Deploy) -> None:
        self._apply([c.apply_objects([self._deployment_doc(d)], [next(self.uids)], self.now)], "person")

    # ------------------------------------------------------------ the steps
    def _solo_doc(self) -> dict[str, Any]:
        labels = {"app": "solo"}
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "solo"},
                "spec": {"replicas": self.solo_replicas, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                             {"name": "app", "image": "solo:1",
                              "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}

    def setup(self) -> None:
        self._control()
        for d in self.deploys:
            self._write(d)
        if self.solo_replicas is not None:
            orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "labels": {"app": "solo"}},
                      "spec": self._solo_doc()["spec"]["template"]["spec"]}
            self._apply([c.apply_objects([orphan], [next(self.uids)], self.now)], "person")
            self._apply([c.apply_objects([self._solo_doc()], [next(self.uids)], self.now)], "person")

    def fault(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.06:
            name = rng.choice(self.nodes)
            if self.alive[name] and sum(self.alive.values()) > 2:
                self.alive[name] = False
                self._disturb(f"node {name} dies")
            elif not self.alive[name]:
                self.alive[name] = True
                self.events.append(f"node {name} returns")
        elif roll < 0.10:
            running = [p for p in self.state.list("Pod") if pods.phase_of(p) == "Running"
                       and self.alive.get(pods.node_name_of(p), False)]
            if running:
                victim = rng.choice(running)
                self.doomed.add(meta_of(victim)["uid"])
                self._disturb(f"pod {meta_of(victim)['name']} will fail")
        elif 0.30 <= roll < 0.33 and self.solo_replicas is not None:
            self.solo_replicas = rng.randint(0, 3)
            self.events.append(f"solo: scale to {self.solo_replicas}")
            self._apply([c.apply_objects([self._solo_doc()], [next(self.uids)], self.now)], "person")
        elif roll < 0.30:
            d = rng.choice(self.deploys)
            action = rng.choice(("rollout", "rollout", "rollback", "restart", "scale", "pause", "resume"))
            if action == "rollout":
                d.history.append(d.image)
                d.image = rng.choice([i for i in IMAGES if i != d.image])
            elif action == "rollback" and d.history:
                d.image = d.history.pop()
            elif action == "restart":
                d.restarted = int(self.now - T0)
            elif action == "scale":
                d.replicas = rng.randint(0, self.max_replicas[d.name])
                self.complete_since_disturbance[d.name] = False
            elif action == "pause":
                d.paused = True
            elif action == "resume":
                d.paused = False
            else:
                return
            self.events.append(f"{d.name}: {action} (image {d.image}, replicas {d.replicas}, paused {d.paused})")
            self._write(d)

    def _disturb(self, event: str) -> None:
        self.events.append(event)
        for name in self.complete_since_disturbance:
            self.complete_since_disturbance[name] = False

    def _control(self) -> None:
        uid = lambda: next(self.uids)  # noqa: E731
        self._apply(reconcile_nodes(self.state, self._members(), now=self.now, settled=True, new_uid=uid), "lifecycle")
        self._apply(plan_workloads(self.state, now=self.now, new_uid=uid), "workloads")
        self._apply(plan_placements(self.state, now=self.now), "scheduler")

    def _kubelets(self) -> None:
        for node in self.nodes:
            if not self.alive[node]:
                continue
            reports = []
            for pod in list(self.state.store.pods_on(node)):
                meta = meta_of(pod)
                key = (meta["uid"], pods.placement_epoch(pod))
                if key not in self.ready_at:
                    slow = self.rng.random() < 0.1
                    self.ready_at[key] = self.now + (self.rng.randint(8, 15) if slow else self.rng.randint(0, 3))
                if meta["uid"] in self.doomed:
                    want = "Failed"
                else:
                    want = "Ready" if self.now >= self.ready_at[key] else "Running"
                if self.reported.get(key) == want:
                    continue
                self.reported[key] = want
                stamp = format_time(self.now)
                if want == "Failed":
                    status = {"phase": "Failed", "reason": "Evicted", "conditions": [
                        {"type": "Ready", "status": "False", "lastTransitionTime": stamp}]}
                else:
                    status = {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True" if want == "Ready" else "False",
                         "lastTransitionTime": stamp}]}
                reports.append((meta.get("namespace", "default"), meta["name"], meta["uid"], key[1], status))
            if reports:
                self._apply([c.report_pod_statuses(node, reports, self.now)], f"kubelet {node}")

    def step(self, faults: bool) -> None:
        self.now += 1
        self.events = []
        if faults:
            self.fault()
        self._control()
        self._kubelets()
        self.check()

    # ------------------------------------------------------------ invariants
    def _pods_of(self, d: _Deploy) -> list[dict[str, Any]]:
        doc = self.state.get("Deployment", "default", d.name)
        uid = meta_of(doc)["uid"]
        sets = {meta_of(rs)["uid"] for rs in self.state.list("ReplicaSet")
                if (controller_of(rs) or {}).get("uid") == uid}
        return [p for p in self.state.list("Pod") if (controller_of(p) or {}).get("uid") in sets]

    def _solo_pods(self) -> list[dict[str, Any]]:
        return [p for p in self.state.list("Pod") if (p["metadata"].get("labels") or {}).get("app") == "solo"
                and is_live(p)]

    def check(self) -> None:
        if self.solo_replicas is not None and len(self._solo_pods()) > max(1, self.solo_replicas):
            raise AssertionError(f"solo: {len(self._solo_pods())} live Pods for {self.solo_replicas} replicas")
        for node in self.nodes:
            usage, alloc = self.state.store.usage(node), self.state.store.allocatable(node)
            if alloc is not None and (usage.cpu_millicores > alloc.cpu_millicores or usage.pods > alloc.pods):
                raise AssertionError(f"node {node} overcommitted: {usage.cpu_millicores}m of {alloc.cpu_millicores}m")
        for d in self.deploys:
            doc = self.state.get("Deployment", "default", d.name)
            live = [p for p in self._pods_of(d) if is_live(p)]
            limit = replicas_of(doc) + max_surge(doc)
            if len(live) > limit:
                raise AssertionError(f"{d.name}: {len(live)} live Pods, more than replicas+maxSurge = {limit}")
            if d.strategy["type"] != "RollingUpdate":
                continue
            available = sum(1 for p in live if is_available(p, d.min_ready, self.now))
            floor = replicas_of(doc) - max_unavailable(doc)
            all_up = all(self.alive.values())
            if self.complete_since_disturbance[d.name] and all_up and available < floor:
                raise AssertionError(f"{d.name}: {available} available Pods, fewer than replicas-maxUnavailable = "
                                     f"{floor}")
            if self._converged(d):
                self.complete_since_disturbance[d.name] = True

    def _solo_converged(self) -> bool:
        if self.solo_replicas is None:
            return True
        solo = self.state.get("ReplicaSet", "default", "solo")
        live = self._solo_pods()
        return (len(live) == self.solo_replicas and all(is_available(p, 0, self.now) for p in live)
                and all((controller_of(p) or {}).get("uid") == meta_of(solo)["uid"] for p in live)
                and (solo.get("status") or {}).get("availableReplicas", 0) == self.solo_replicas)

    def _converged(self, d: _Deploy) -> bool:
        doc = self.state.get("Deployment", "default", d.name)
        status = doc.get("status") or {}
        replicas = replicas_of(doc)
        live = [p for p in self._pods_of(d) if is_live(p)]
        current = {meta_of(rs)["uid"] for rs in self.state.list("ReplicaSet") if same_template(rs, doc)}
        updated = [p for p in live if (controller_of(p) or {}).get("uid") in current]
        return (len(live) == replicas and len(updated) == replicas
                and all(is_available(p, d.min_ready, self.now) for p in live)
                and status.get("updatedReplicas", 0) == replicas and status.get("availableReplicas", 0) == replicas
                and status.get("replicas", 0) == replicas
                and status.get("observedGeneration") == meta_of(doc).get("generation"))


def run_scenario(seed: int) -> Result:
    sim = Simulation(seed)
    result = Result(seed)
    step = 0
    try:
        sim.setup()
        for step in range(FAULT_STEPS):
            sim.step(faults=True)
        sim.events = ["faults stop; every Deployment is resumed and every node returns"]
        for name in sim.nodes:
            sim.alive[name] = True
        sim.doomed.clear()
        for d in sim.deploys:
            if d.paused:
                d.paused = False
                sim._write(d)
        for step in range(FAULT_STEPS, FAULT_STEPS + SETTLE_STEPS):
            sim.step(faults=False)
            if all(sim._converged(d) for d in sim.deploys) and sim._solo_converged():
                break
        else:
            raise AssertionError("did not converge: " + "; ".join(
                f"{d.name} status {sim.state.get('Deployment', 'default', d.name).get('status')}"
                for d in sim.deploys if not sim._converged(d)) + ("" if sim._solo_converged() else " solo ReplicaSet"))
        for _ in range(2):  # settled: a pass learns nothing and writes nothing
            quiet = plan_workloads(sim.state, now=sim.now, new_uid=lambda: next(sim.uids))
            if quiet:
                raise AssertionError(f"a settled pass still writes {[c.decode(q).op for q in quiet]}")
            sim.now += 1
    except AssertionError as exc:
        result.ok = False
        result.failure = (f"seed {seed}, step {step} (t={int(sim.now - T0)} s): {exc}\n"
                          f"    events of the step: {sim.events}\n    {replay_hint(seed)}")
    result.steps = step
    result.commands = sim.commands
    return result
