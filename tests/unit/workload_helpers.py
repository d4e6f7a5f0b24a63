"""Helpers for tests of the workload kinds and controllers: manifests, and `Cluster`, a
cluster state with Ready nodes on which a test runs controller passes and plays kubelet."""

from __future__ import annotations

import itertools
from typing import Any

from agent.control.scheduling import plan_placements
from agent.control.workloads import plan_workloads
from agent.state import commands as c
from agent.state import pod_lifecycle as pods
from agent.state.machine import is_error
from agent.state.objects import controller_of, format_time, meta_of
from tests.unit.state_helpers import T0, Log


def deployment(name: str = "web", *, replicas: int | None = 3, image: str = "web:1", labels: dict | None = None,
               strategy: dict | None = None, annotations: dict | None = None, template_annotations: dict | None = None,
               **spec: Any) -> dict[str, Any]:
    labels = labels or {"app": name}
    template: dict[str, Any] = {"metadata": {"labels": dict(labels)}, "spec": {"containers": [
        {"name": "app", "image": image, "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}
    if template_annotations:
        template["metadata"]["annotations"] = template_annotations
    body: dict[str, Any] = {"selector": {"matchLabels": dict(labels)}, "template": template}
    if replicas is not None:
        body["replicas"] = replicas
    if strategy is not None:
        body["strategy"] = strategy
    body.update(spec)
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": body}


def replica_set(name: str = "front", *, replicas: int = 2, labels: dict | None = None, **spec: Any) -> dict[str, Any]:
    doc = deployment(name, replicas=replicas, labels=labels, **spec)
    doc["kind"] = "ReplicaSet"
    return doc


def rolling(surge: Any, unavailable: Any) -> dict[str, Any]:
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}


class Cluster:
    """A state with Ready nodes; `reconcile` runs one leader pass (workloads, then the
    scheduler) and checks the machine refused none of it."""

    def __init__(self, nodes: tuple[str, ...] = ("n1", "n2", "n3"), cpu: int = 4000) -> None:
        self.log = Log()
        self.machine = self.log.machine
        self.now = T0
        self._uids = (f"uid-{i}" for i in itertools.count())
        for name in nodes:
            self.log.ready_node(name, cpu=cpu)

    def uid(self) -> str:
        return next(self._uids)

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        result = self.log.run(c.apply_objects([doc], [self.uid()], self.now))
        assert not is_error(result), result
        return result["results"][0][4]

    def run(self, data: bytes) -> Any:
        return self.log.run(data)

    def reconcile(self, *, place: bool = True) -> list[bytes]:
        commands = plan_workloads(self.machine, now=self.now, new_uid=self.uid)
        for data in commands:
            result = self.log.run(data)
            assert not is_error(result), (c.decode(data).op, result)
        if place:
            for data in plan_placements(self.machine, now=self.now):
                assert not is_error(self.log.run(data))
        return commands

    def settle(self, passes: int = 30, *, ready: bool = True) -> None:
        """Passes (each a second apart, every placed Pod made Ready) until one writes nothing."""
        for _ in range(passes):
            self.tick()
            if ready:
                self.make_ready()
            if not self.reconcile():
                return
        raise AssertionError("the controllers did not settle")

    def tick(self, seconds: float = 1) -> None:
        self.now += seconds

    def report(self, pod: dict[str, Any], phase: str = "Running", ready: bool = True) -> None:
        meta = meta_of(pod)
        status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                  "lastTransitionTime": format_time(self.now)}]}
        result = self.log.run(c.report_pod_statuses(pods.node_name_of(pod), [
            (meta["namespace"], meta["name"], meta["uid"], pods.placement_epoch(pod), status)], self.now))
        assert result["accepted"] == 1, result

    def make_ready(self, docs: list[dict[str, Any]] | None = None) -> None:
        for pod in docs if docs is not None else self.machine.list("Pod"):
            cond = [x for x in (pod.get("status") or {}).get("conditions") or () if x.get("type") == "Ready"]
            if pods.node_name_of(pod) and not pods.is_finished(pod) and not (cond and cond[0]["status"] == "True"):
                self.report(pod)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        doc = self.machine.get(kind, "default", name)
        assert doc is not None, f"{kind} {name} not found"
        return doc

    def sets(self, deployment_name: str = "web") -> list[dict[str, Any]]:
        """The Deployment's ReplicaSets, oldest revision first."""
        uid = meta_of(self.get("Deployment", deployment_name))["uid"]
        owned = [rs for rs in self.machine.list("ReplicaSet") if (controller_of(rs) or {}).get("uid") == uid]
        return sorted(owned, key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))

    def pods_of(self, rs: dict[str, Any], *, live: bool = True) -> list[dict[str, Any]]:
        uid = meta_of(rs)["uid"]
        return [p for p in self.machine.list("Pod") if (controller_of(p) or {}).get("uid") == uid
                and (not live or not pods.is_finished(p))]

    def sizes(self, deployment_name: str = "web") -> list[tuple[int, int]]:
        """(spec.replicas, live Pods) of each ReplicaSet, oldest revision first."""
        return [(rs["spec"]["replicas"], len(self.pods_of(rs))) for rs in self.sets(deployment_name)]


__all__ = ["Cluster", "T0", "deployment", "replica_set", "rolling"]
