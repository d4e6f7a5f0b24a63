"""The object store under the cluster state machine: objects by kind and key, with the
indexes the control plane reads on every pass.

Owns: the map (kind -> (namespace, name) -> document), the index of Pods by node, each
node's running totals of what its Pods request (cpu, memory, Pod count, host ports),
each node's allocatable, the uids held and who names each uid as its owner
(metadata.ownerReferences, for cascading deletion), and rebuilding all of that from the
objects alone.

Rules it keeps:
- Documents are immutable: `put` replaces one, never edits it.
- The indexes are derived data: a pure function of the objects, kept in step by `put`
  and `remove`, rebuilt by `rebuild` after a restore; a test checks they always equal a
  rebuild.
- A bound Pod counts against its node unless it has finished (Succeeded/Failed), as
  Kubernetes' scheduler counts it.
- Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.state.pod_lifecycle import PodDemand, is_finished, node_name_of, pod_demand
from agent.state.quantity import QuantityError, cpu_millicores, memory_bytes, parse_quantity

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-wide kinds


@dataclass(slots=True)
class NodeUsage:
    """What the Pods bound to one node request, summed."""

    cpu_millicores: int = 0
    memory_bytes: int = 0
    pods: int = 0
    host_ports: dict[tuple[str, int, str], int] = field(default_factory=dict)  # port -> Pods holding it

    def add(self, demand: PodDemand, sign: int) -> None:
        self.cpu_millicores += sign * demand.cpu_millicores
        self.memory_bytes += sign * demand.memory_bytes
        self.pods += sign
        for port in demand.host_ports:
            count = self.host_ports.get(port, 0) + sign
            if count:
                self.host_ports[port] = count
            else:
                self.host_ports.pop(port, None)

    def as_tuple(self) -> tuple[int, int, int, tuple[tuple[tuple[str, int, str], int], ...]]:
        return self.cpu_millicores, self.memory_bytes, self.pods, tuple(sorted(self.host_ports.items()))


@dataclass(frozen=True, slots=True)
class Allocatable:
    cpu_millicores: int
    memory_bytes: int
    pods: int


def allocatable_of(node_doc: Mapping[str, Any]) -> Allocatable:
    alloc = (node_doc.get("status") or {}).get("allocatable") or {}
    try:
        cpu = cpu_millicores(parse_quantity(alloc.get("cpu", "0")))
        mem = memory_bytes(parse_quantity(alloc.get("memory", "0")))
        pods = int(alloc.get("pods", "0"))
    except (QuantityError, ValueError):
        return Allocatable(0, 0, 0)
    return Allocatable(cpu, mem, pods)


def ports_conflict(wanted: tuple[tuple[str, int, str], ...], held: Mapping[tuple[str, int, str], int]) -> bool:
    """Does any wanted host port clash with one held? 0.0.0.0 clashes with every address."""
    for host_ip, port, protocol in wanted:
        for held_ip, held_port, held_protocol in held:
            if port == held_port and protocol == held_protocol and (
                host_ip == held_ip or "0.0.0.0" in (host_ip, held_ip)
            ):
                return True
    return False


def _owner_uids(meta: Mapping[str, Any]) -> set[str]:
    refs = meta.get("ownerReferences")
    if not isinstance(refs, list):
        return set()
    return {r["uid"] for r in refs if isinstance(r, Mapping) and isinstance(r.get("uid"), str) and r["uid"]}


class ObjectStore:
    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, Mapping[str, Any]]] = {}
        self._pods_by_node: dict[str, set[Key]] = {}
        self._demands: dict[Key, PodDemand] = {}  # Pod -> what it requests (bound or not)
        self._usage: dict[str, NodeUsage] = {}
        self._allocatable: dict[str, Allocatable] = {}
        self._uids: dict[str, int] = {}  # uid -> objects holding it (uids are unique; counted to be safe)
        self._dependents: dict[str, set[tuple[str, Key]]] = {}  # owner uid -> (kind, key) naming it

    # ------------------------------------------------------------------ reading
    def get(self, kind: str, key: Key) -> Mapping[str, Any] | None:
        return self._objects.get(kind, {}).get(key)

    def of_kind(self, kind: str) -> Mapping[Key, Mapping[str, Any]]:
        return self._objects.get(kind, {})

    def kinds(self) -> list[str]:
        return list(self._objects)

    def count(self, kind: str) -> int:
        return len(self._objects.get(kind, ()))

    def pods_on(self, node: str) -> Iterator[Mapping[str, Any]]:
        pods = self._objects.get("Pod", {})
        for key in sorted(self._pods_by_node.get(node, ())):
            yield pods[key]

    def demand(self, key: Key) -> PodDemand:
        return self._demands[key]

    def usage(self, node: str) -> NodeUsage:
        return self._usage.get(node) or NodeUsage()

    def allocatable(self, node: str) -> Allocatable | None:
        return self._allocatable.get(node)

    def holds_uid(self, uid: str) -> bool:
        return uid in self._uids

    def dependents(self, uid: str) -> list[tuple[str, Key]]:
        """(kind, key) of the objects whose ownerReferences name `uid`, sorted."""
        return sorted(self._dependents.get(uid, ()))

    # ------------------------------------------------------------------ writing
    def put(self, kind: str, key: Key, doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Store `doc` under key; returns the document it replaced."""
        objects = self._objects.setdefault(kind, {})
        old = objects.get(key)
        objects[key] = doc
        self._unindex_owners(kind, key, old)
        self._index_owners(kind, key, doc)
        if kind == "Pod":
            self._unindex_pod(key, old)
            self._index_pod(key, doc)
        elif kind == "Node":
            self._allocatable[key[1]] = allocatable_of(doc)
        return old

    def remove(self, kind: str, key: Key) -> Mapping[str, Any] | None:
        objects = self._objects.get(kind)
        if objects is None or key not in objects:
            return None
        old = objects.pop(key)
        self._unindex_owners(kind, key, old)
        if kind == "Pod":
            self._unindex_pod(key, old)
            self._demands.pop(key, None)
        elif kind == "Node":
            self._allocatable.pop(key[1], None)
        return old

    def _index_owners(self, kind: str, key: Key, doc: Mapping[str, Any]) -> None:
        meta = doc.get("metadata") or {}
        uid = meta.get("uid")
        if uid:
            self._uids[uid] = self._uids.get(uid, 0) + 1
        for owner in _owner_uids(meta):
            self._dependents.setdefault(owner, set()).add((kind, key))

    def _unindex_owners(self, kind: str, key: Key, old: Mapping[str, Any] | None) -> None:
        if old is None:
            return
        meta = old.get("metadata") or {}
        uid = meta.get("uid")
        if uid and uid in self._uids:
            self._uids[uid] -= 1
            if not self._uids[uid]:
                del self._uids[uid]
        for owner in _owner_uids(meta):
            named = self._dependents.get(owner)
            if named is not None:
                named.discard((kind, key))
                if not named:
                    del self._dependents[owner]

    def _index_pod(self, key: Key, doc: Mapping[str, Any]) -> None:
        demand = pod_demand(doc)
        self._demands[key] = demand
        node = node_name_of(doc)
        if node and not is_finished(doc):
            self._pods_by_node.setdefault(node, set()).add(key)
            self._usage.setdefault(node, NodeUsage()).add(demand, +1)

    def _unindex_pod(self, key: Key, old: Mapping[str, Any] | None) -> None:
        if old is None:
            return
        node = node_name_of(old)
        on_node = self._pods_by_node.get(node)
        if node and on_node is not None and key in on_node:
            on_node.discard(key)
            if not on_node:
                del self._pods_by_node[node]
            usage = self._usage[node]
            usage.add(self._demands[key], -1)
            if usage.pods == 0:
                del self._usage[node]

    # ------------------------------------------------------------------ whole state
    def replace_all(self, objects: dict[str, dict[Key, Mapping[str, Any]]]) -> None:
        self._objects = objects
        self.rebuild()

    def rebuild(self) -> None:
        self._pods_by_node, self._demands, self._usage, self._allocatable = {}, {}, {}, {}
        self._uids, self._dependents = {}, {}
        for kind, objects in self._objects.items():
            for key, doc in objects.items():
                self._index_owners(kind, key, doc)
        for key, doc in self._objects.get("Pod", {}).items():
            self._index_pod(key, doc)
        for key, doc in self._objects.get("Node", {}).items():
            self._allocatable[key[1]] = allocatable_of(doc)

    def index_fingerprint(self) -> tuple[Any, ...]:
        """The derived indexes as comparable data (tests check them against a rebuild)."""
        return (
            {n: frozenset(k) for n, k in self._pods_by_node.items()},
            {n: u.as_tuple() for n, u in self._usage.items()},
            dict(self._allocatable),
            dict(self._demands),
            dict(self._uids),
            {uid: frozenset(named) for uid, named in self._dependents.items()},
        )

    def shallow_copy(self) -> dict[str, dict[Key, Mapping[str, Any]]]:
        """The objects as of now, for a snapshot: copies of the maps, sharing the documents."""
        return {kind: dict(objects) for kind, objects in self._objects.items()}
