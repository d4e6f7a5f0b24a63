"""Helpers for tests of the cluster state and its controllers: Pod manifests, node facts,
and `Log`, a state machine fed entries one by one as Raft would after commitment."""

from __future__ import annotations

from agent.raft.batches import CommandBatches, encode_batch
from agent.raft.types import Entry, EntryKind
from agent.state import commands as c
from agent.state.machine import ClusterState, is_error

T0 = 1_790_000_000.0


def pod(name: str, *, cpu: str = "100m", memory: str = "64Mi", labels: dict | None = None, namespace: str = "default",
        host_port: int | None = None, node: str | None = None, restart: str = "Always") -> dict:
    container = {"name": "app", "image": "busybox:local",
                 "resources": {"requests": {"cpu": cpu, "memory": memory}}}
    if host_port:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port}]
    spec = {"containers": [container], "restartPolicy": restart}
    if node:
        spec["nodeName"] = node
    meta = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def facts(cpu: int = 2000, memory: int = 4 << 30, pods: int = 110, address: str = "10.0.0.1") -> dict:
    return {"address": address, "api_port": 7070, "cpu": cpu, "memory": memory, "alloc_cpu": cpu,
            "alloc_memory": memory, "max_pods": pods, "labels": {"zone": "a"}, "version": "0.1.0",
            "os": "linux", "arch": "amd64"}


class Log:
    """A state machine fed entries one by one, as Raft would after commitment."""

    def __init__(self, machine: ClusterState | None = None) -> None:
        self.machine = machine or ClusterState()
        self.index = self.machine.applied_index
        self.changes: list[int] = []
        self.machine.on_change = self.changes.append

    def run(self, data: bytes) -> object:
        self.index += 1
        return self.machine.apply(Entry(self.index, 1, EntryKind.NORMAL, data))

    def batch(self, commands: list[bytes]) -> object:
        self.index += 1
        return CommandBatches(self.machine).apply(Entry(self.index, 1, EntryKind.NORMAL, encode_batch(commands)))

    def noop(self) -> None:
        self.index += 1
        self.machine.apply(Entry(self.index, 1, EntryKind.NOOP, b""))

    def ready_node(self, name: str, **kw) -> None:
        assert not is_error(self.run(c.upsert_node(name, f"uid-{name}", facts(**kw), T0)))
        assert not is_error(self.run(c.set_node_ready(name, "True", "AgentAlive", "alive", T0)))

    def create(self, *docs: dict) -> object:
        return self.run(c.apply_objects(list(docs), [f"uid-{d['metadata']['name']}" for d in docs], T0))
