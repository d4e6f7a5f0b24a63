"""Placing pending Pods: the cluster state in the scheduler's terms, and its answer as commands.

Owns: `plan_placements`, which reads the Node and Pod objects, builds the scheduler's
ClusterSnapshot and pending list (agent.control.placement), runs one scheduling pass
(agent.control.scheduler) and returns the commands that record its outcome: `bind` for
every Pod placed, `unschedulable` (PodScheduled=False, reason Unschedulable, Kubernetes'
message) for every Pod that fits nowhere.

Rules it keeps:
- Pending = a Pod without spec.nodeName that has not finished and is not a mirror Pod.
- A Pod's requests are its demand as the state indexes it (`store.demand`), so the
  scheduler and the state machine's own binding check count alike. The machine checks
  each binding again when it applies it: even two racing passes cannot overcommit a node.
- A Node takes Pods only when Ready and not cordoned; its taints and labels are the
  Node object's; every Node carries a unique kubernetes.io/hostname label (its name).
- A Pod's spec.affinity maps onto the scheduler's terms: matchFields on metadata.name
  become a requirement on kubernetes.io/hostname (which is the node's name); pod
  (anti-)affinity terms are on kubernetes.io/hostname, the only topology key the Pod
  parser accepts.
- Pods are placed oldest first (creationTimestamp, then namespace/name); Pods of one
  controller (ownerReferences) or, failing that, one `app` label are spread over nodes.
- A bound Pod still Pending is one its node has yet to start: the scheduler's start
  spread counts it, so a burst is not queued on one node.
- `unschedulable` is written only when a Pod's message changes: a pass that learns
  nothing new writes nothing, so an unplaceable Pod costs no Raft write per pass.
- Pure: no I/O, no clock (`now` comes in), no randomness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.control.placement import (
    HOSTNAME_LABEL,
    NO_POD_AFFINITY,
    AssignedPod,
    ClusterSnapshot,
    HostPort,
    InterPodAffinity,
    NodeInfo,
    PendingPod,
    PlacementSpec,
    PodAffinityTerm,
    SchedulerConfig,
    WeightedPodAffinityTerm,
    app_key_of,
)
from agent.control.scheduler import schedule
from agent.control.selectors import (
    LabelSelector,
    LabelSelectorRequirement,
    NodeAffinity,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PreferredSchedulingTerm,
    Taint,
    Toleration,
)
from agent.state import commands as cmd
from agent.state import node as node_kind
from agent.state import pod_lifecycle as pods
from agent.state.machine import ClusterState
from agent.state.objects import labels_of, meta_of

__all__ = ["plan_placements", "pending_pods", "snapshot_of", "BINDINGS_PER_COMMAND"]

# One Raft entry carries at most this many bindings (a large backlog goes out in several).
BINDINGS_PER_COMMAND = 256
UNSCHEDULABLE_REASON = "Unschedulable"


def plan_placements(state: ClusterState, *, now: float, config: SchedulerConfig = SchedulerConfig()) -> list[bytes]:
    """The commands that place what can be placed now and say why the rest cannot."""
    waiting = pending_pods(state)
    if not waiting:
        return []
    snapshot = snapshot_of(state)
    by_key = {p.key: doc for p, doc in waiting}
    result = schedule(snapshot, [p for p, _ in waiting], config)
    out: list[bytes] = []
    bindings = [(*_identity(by_key[placed.pod]), placed.node) for placed in result.placements]
    for start in range(0, len(bindings), BINDINGS_PER_COMMAND):
        out.append(cmd.bind_pods(bindings[start:start + BINDINGS_PER_COMMAND], now))
    marks = []
    for unplaced in result.unplaced:
        doc = by_key[unplaced.pod]
        if _unschedulable_message(doc) != unplaced.message:
            marks.append((*_identity(doc), unplaced.message))
    if marks:
        out.append(cmd.mark_unschedulable(marks, now))
    return out


# ---------------------------------------------------------------- the state as the scheduler sees it


def snapshot_of(state: ClusterState) -> ClusterSnapshot:
    """Every Node and every Pod bound to one (finished Pods take no room)."""
    store = state.store
    nodes = []
    assigned = []
    for (_, name), doc in sorted(store.of_kind("Node").items()):
        nodes.append(_node_info(name, doc, store.allocatable(name)))
        for pod in store.pods_on(name):
            meta = meta_of(pod)
            key = _key(meta)
            demand = store.demand((meta.get("namespace", "default"), meta["name"]))
            starting = pods.phase_of(pod) == "Pending"  # placed, and its node has not started it yet
            assigned.append(AssignedPod(key, name, _placement_spec(pod, demand), starting=starting))
    return ClusterSnapshot(tuple(nodes), tuple(assigned))


def pending_pods(state: ClusterState) -> list[tuple[PendingPod, Mapping[str, Any]]]:
    """The Pods waiting for a node, oldest first, each with its document."""
    store = state.store
    docs = [doc for doc in store.of_kind("Pod").values() if _is_pending(doc)]
    docs.sort(key=lambda d: (meta_of(d).get("creationTimestamp") or "", meta_of(d).get("namespace", ""),
                             meta_of(d)["name"]))
    out = []
    for index, doc in enumerate(docs):
        meta = meta_of(doc)
        demand = store.demand((meta.get("namespace", "default"), meta["name"]))
        out.append((PendingPod(_key(meta), _placement_spec(doc, demand), creation_index=index), doc))
    return out


def _is_pending(doc: Mapping[str, Any]) -> bool:
    return not pods.node_name_of(doc) and not pods.is_finished(doc) and not pods.is_mirror(doc)


def _node_info(name: str, doc: Mapping[str, Any], allocatable: Any) -> NodeInfo:
    spec = doc.get("spec") or {}
    labels = dict(labels_of(doc))
    labels[HOSTNAME_LABEL] = name  # unique per node, whatever a person wrote
    return NodeInfo(
        name=name,
        allocatable_cpu_millis=allocatable.cpu_millicores if allocatable else 0,
        allocatable_memory_bytes=allocatable.memory_bytes if allocatable else 0,
        allocatable_pods=allocatable.pods if allocatable else 0,
        labels=labels,
        taints=tuple(_taints(spec.get("taints") or ())),
        unschedulable=bool(spec.get("unschedulable")),
        ready=node_kind.is_ready(doc),
    )


def _taints(raw: Iterable[Mapping[str, Any]]) -> Iterable[Taint]:
    for taint in raw:
        yield Taint(taint["key"], taint.get("value") or "", taint["effect"])


def _placement_spec(doc: Mapping[str, Any], demand: pods.PodDemand) -> PlacementSpec:
    meta = meta_of(doc)
    spec = doc.get("spec") or {}
    labels = labels_of(doc)
    return PlacementSpec(
        namespace=meta.get("namespace", "default"),
        labels=labels,
        app_key=app_key_of(_controller_uid(meta), labels),
        cpu_millis=demand.cpu_millicores,
        memory_bytes=demand.memory_bytes,
        host_ports=tuple(HostPort(port, protocol, "" if ip == "0.0.0.0" else ip)
                         for ip, port, protocol in demand.host_ports),
        node_selector=spec.get("nodeSelector") or {},
        tolerations=tuple(_tolerations(spec.get("tolerations") or ())),
        node_affinity=_node_affinity((spec.get("affinity") or {}).get("nodeAffinity")),
        pod_affinity=_pod_affinity(spec.get("affinity") or {}),
    )


_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def _node_affinity(raw: Mapping[str, Any] | None) -> NodeAffinity | None:
    if not raw:
        return None
    required = None
    if raw.get(_REQUIRED) is not None:
        required = tuple(_node_term(t) for t in raw[_REQUIRED].get("nodeSelectorTerms") or ())
    preferred = tuple(PreferredSchedulingTerm(p["weight"], _node_term(p.get("preference") or {}))
                      for p in raw.get(_PREFERRED) or ())
    if required is None and not preferred:
        return None
    return NodeAffinity(required=required, preferred=preferred)


def _node_term(raw: Mapping[str, Any]) -> NodeSelectorTerm:
    exprs = [NodeSelectorRequirement(e["key"], e["operator"], tuple(e.get("values") or ()))
             for e in raw.get("matchExpressions") or ()]
    # matchFields name metadata.name only, and every node's hostname label is its name.
    exprs += [NodeSelectorRequirement(HOSTNAME_LABEL, f["operator"], tuple(f.get("values") or ()))
              for f in raw.get("matchFields") or ()]
    return NodeSelectorTerm(tuple(exprs))


def _pod_affinity(affinity: Mapping[str, Any]) -> InterPodAffinity:
    pos = affinity.get("podAffinity") or {}
    neg = affinity.get("podAntiAffinity") or {}
    if not pos and not neg:
        return NO_POD_AFFINITY
    return InterPodAffinity(
        required_affinity=tuple(_pod_term(t) for t in pos.get(_REQUIRED) or ()),
        preferred_affinity=tuple(_weighted(w) for w in pos.get(_PREFERRED) or ()),
        required_anti_affinity=tuple(_pod_term(t) for t in neg.get(_REQUIRED) or ()),
        preferred_anti_affinity=tuple(_weighted(w) for w in neg.get(_PREFERRED) or ()),
    )


def _weighted(raw: Mapping[str, Any]) -> WeightedPodAffinityTerm:
    return WeightedPodAffinityTerm(raw["weight"], _pod_term(raw.get("podAffinityTerm") or {}))


def _pod_term(raw: Mapping[str, Any]) -> PodAffinityTerm:
    selector = raw.get("labelSelector")
    if selector is None:
        return PodAffinityTerm(None, tuple(raw.get("namespaces") or ()))
    exprs = tuple(LabelSelectorRequirement(e["key"], e["operator"], tuple(e.get("values") or ()))
                  for e in selector.get("matchExpressions") or ())
    return PodAffinityTerm(LabelSelector(selector.get("matchLabels") or {}, exprs), tuple(raw.get("namespaces") or ()))


def _tolerations(raw: Iterable[Mapping[str, Any]]) -> Iterable[Toleration]:
    for t in raw:
        yield Toleration(t.get("key") or "", t.get("operator") or "Equal", t.get("value") or "", t.get("effect") or "")


def _controller_uid(meta: Mapping[str, Any]) -> str | None:
    for ref in meta.get("ownerReferences") or ():
        if ref.get("controller"):
            return ref.get("uid") or None
    return None


def _key(meta: Mapping[str, Any]) -> str:
    return f"{meta.get('namespace', 'default')}/{meta['name']}"


def _identity(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = meta_of(doc)
    return meta.get("namespace", "default"), meta["name"], meta.get("uid", "")


def _unschedulable_message(doc: Mapping[str, Any]) -> str | None:
    for cond in (doc.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                and cond.get("reason") == UNSCHEDULABLE_REASON:
            return cond.get("message")
    return None
