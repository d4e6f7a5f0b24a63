"""What concerns one node, for the watch a worker follows: its Pods, its Node, and the
ConfigMaps and Secrets those Pods refer to.

Owns: the per-watch bookkeeping of which ConfigMaps and Secrets a node needs (counted
over its Pods' references: env valueFrom, envFrom, configMap and secret volumes), and
turning the state's changes into that node's events.

Why references and not whole namespaces: a node gets exactly the objects its Pods read,
as Kubernetes' node authorizer allows a kubelet, so a Secret no Pod of a node uses
never travels to that node. The price is that interest is not a property of one
document: a Pod arriving on the node makes an existing ConfigMap of interest, so it is
sent (ADDED, as it is now) right after that Pod; the last Pod that used it leaving makes
it DELETED for this watcher (as a filtered watch does for an object that stops
matching). A later change of an object then arrives as usual; an object sent early at
its current version may also arrive again at an older version from the same batch of
changes, and the watcher keeps the highest resourceVersion.

Rules: pure (the current state is read through `get`); a watcher's events for one batch
of changes are in the order of the changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agent.state.config_kinds import CONFIG_MAP, SECRET, pod_references
from agent.state.history import ADDED, DELETED, MODIFIED, Change

Ref = tuple[str, str, str]  # (kind, namespace, name)
Get = Callable[[str, str, str], "Mapping[str, Any] | None"]
CONFIG_KINDS = (CONFIG_MAP, SECRET)


def _meta(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    return doc.get("metadata") or {}


def ref_of(doc: Mapping[str, Any]) -> Ref:
    meta = _meta(doc)
    return str(doc.get("kind")), meta.get("namespace") or "default", str(meta.get("name"))


def _stub(ref: Ref) -> dict[str, Any]:
    """What a DELETED event carries for an object that is no longer in the state."""
    return {"apiVersion": "v1", "kind": ref[0], "metadata": {"name": ref[2], "namespace": ref[1]}}


class NodeInterest:
    def __init__(self, node: str) -> None:
        self.node = node
        self._pod_refs: dict[tuple[str, str], set[Ref]] = {}  # Pod (namespace, name) -> its references
        self._counts: Counter[Ref] = Counter()

    def _own_pod(self, doc: Mapping[str, Any] | None) -> bool:
        return doc is not None and doc.get("kind") == "Pod" and (doc.get("spec") or {}).get("nodeName") == self.node

    def _own_node(self, doc: Mapping[str, Any] | None) -> bool:
        return doc is not None and doc.get("kind") == "Node" and _meta(doc).get("name") == self.node

    def wants(self, ref: Ref) -> bool:
        return self._counts[ref] > 0

    def _set_refs(self, pod_key: tuple[str, str], refs: set[Ref]) -> tuple[list[Ref], list[Ref]]:
        """Record a Pod's references; (gained, lost): the objects that start and stop mattering."""
        old = self._pod_refs.pop(pod_key, set())
        if refs:
            self._pod_refs[pod_key] = refs
        gained, lost = [], []
        for ref in sorted(refs - old):
            self._counts[ref] += 1
            if self._counts[ref] == 1:
                gained.append(ref)
        for ref in sorted(old - refs):
            self._counts[ref] -= 1
            if self._counts[ref] <= 0:
                del self._counts[ref]
                lost.append(ref)
        return gained, lost

    def initial(self, pods: Iterable[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]],
                get: Get) -> list[Mapping[str, Any]]:
        """The objects a fresh watch lists: this node's Pods and Node, then the objects they use."""
        out: list[Mapping[str, Any]] = [d for d in nodes if self._own_node(d)]
        gained: list[Ref] = []
        for pod in pods:
            if self._own_pod(pod):
                out.append(pod)
                gained += self._set_refs(ref_of(pod)[1:], pod_references(pod))[0]
        for ref in sorted(gained):
            doc = get(*ref)
            if doc is not None:
                out.append(doc)
        return out

    def events(self, changes: Iterable[Change], get: Get) -> list[tuple[str, Mapping[str, Any]]]:
        out: list[tuple[str, Mapping[str, Any]]] = []
        for change in changes:
            doc, old = change.doc, change.old
            kind = doc.get("kind")
            if kind == "Pod":
                was = self._own_pod(old)
                now = change.type != DELETED and self._own_pod(doc)
                if now:
                    out.append((MODIFIED if was else ADDED, doc))
                elif was:
                    out.append((DELETED, doc))
                if was or now:
                    gained, lost = self._set_refs(ref_of(doc)[1:], pod_references(doc) if now else set())
                    for ref in gained:
                        current = get(*ref)
                        if current is not None:
                            out.append((ADDED, current))
                    for ref in lost:
                        out.append((DELETED, get(*ref) or _stub(ref)))
            elif kind in CONFIG_KINDS:
                if self.wants(ref_of(doc)):
                    out.append((DELETED if change.type == DELETED else
                                ADDED if change.type == ADDED else MODIFIED, doc))
            elif kind == "Node":
                was, now = self._own_node(old), change.type != DELETED and self._own_node(doc)
                if now:
                    out.append((MODIFIED if was else ADDED, doc))
                elif was:
                    out.append((DELETED, doc))
        return out
