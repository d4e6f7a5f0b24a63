"""The ReplicaSet controller: each ReplicaSet keeps exactly `replicas` live Pods.

Owns: which Pods a ReplicaSet owns (adopting orphans its selector matches, releasing
owned Pods it no longer matches), creating the Pods it lacks from its template, deleting
the extras in Kubernetes' order, replacing Pods that finished for good, and its status
(replicas, fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration).
Also the facts about one Pod both workload controllers read: live, ready, available.

Rules it keeps:
- A Pod is live until it finishes (phase Succeeded or Failed). A finished Pod of a
  ReplicaSet is deleted and a new one created in the same pass (a Pod lost with its node
  and marked Failed never runs again; its replacement is placed anew).
- A Pod marked for an eviction that waits for its replacement (pod_lifecycle.is_leaving:
  a drain refused for the Deployment's budget) does not count toward `replicas` while
  the set is its Deployment's only active one, at full size (no rollout on): a
  replacement is created beside it, up
  to the Deployment's replicas + maxSurge (the max-replicas annotation), and the
  eviction passes once the replacement is available. A stale mark counts again, and the
  extra Pod is deleted in the order below.
- Extras are deleted in Kubernetes' order (ActivePodsWithRanks): unassigned before
  assigned; Pending, then Unknown, then Running; not Ready before Ready; Ready but not yet
  available (minReadySeconds) before available; more Pods of the set on the same node
  before fewer; Ready for less time before more; more restarts before fewer; newer
  before older. (Availability is ranked before colocation here, where Kubernetes ranks
  colocation first, so that scaling down by k never removes an available Pod while an
  unavailable one remains: the Deployment controller's arithmetic relies on it.)
- A Pod is named `<replicaset>-<5 characters>` in Kubernetes' safe alphabet, derived from
  its injected uid; it carries the template's labels and annotations and an
  ownerReference to its ReplicaSet (controller, blockOwnerDeletion).
- Adoption and release are written first and the set acts on its Pods in the next pass,
  once they are counted where they belong.
- Status is written only when it differs from what is stored; counts are of the Pods as
  they were when the pass began (as Kubernetes computes them), so the next pass corrects.
- Pure: no I/O, no clock (`now` comes in), uids from the injected `new_uid`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.state import commands as cmd
from agent.state import pod_lifecycle as pods
from agent.state.objects import (
    annotations_of,
    controller_of,
    labels_of,
    meta_of,
    owner_references_of,
    parse_time,
)
from agent.state.workloads import API_VERSION, REPLICA_SET, replicas_of, selector_of

__all__ = [
    "DESIRED_REPLICAS",
    "MAX_REPLICAS",
    "PODS_PER_COMMAND",
    "SAFE_ALPHABET",
    "Ownership",
    "ReplicaSetPlan",
    "deletion_order",
    "is_available",
    "is_live",
    "is_ready",
    "plan_replica_set",
    "pod_name",
    "pods_kept",
]

# The Deployment controller's annotations on its ReplicaSets (agent/control/deployments.py).
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# One Raft entry creates at most this many Pods (a large scale-up goes out in several).
PODS_PER_COMMAND = 64
# ... and deletes at most this many (each row is four short strings).
DELETIONS_PER_COMMAND = 256
# Kubernetes' alphabet for generated names and hashes: no vowels (no words), no 0/1/3.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


# ---------------------------------------------------------------- one Pod


def is_live(pod: Mapping[str, Any]) -> bool:
    return not pods.is_finished(pod)


def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return cond
    return None


def is_ready(pod: Mapping[str, Any]) -> bool:
    cond = _ready_condition(pod)
    return is_live(pod) and cond is not None and cond.get("status") == "True"


def ready_since(pod: Mapping[str, Any]) -> float | None:
    cond = _ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def is_available(pod: Mapping[str, Any], min_ready_s: int, now: float) -> bool:
    """Ready for at least minReadySeconds (Kubernetes' IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_s <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_s < now


def _restarts(pod: Mapping[str, Any]) -> int:
    total = 0
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        count = status.get("restartCount") if isinstance(status, Mapping) else 0
        total += count if isinstance(count, int) else 0
    return total


def deletion_order(candidates: Sequence[Mapping[str, Any]], min_ready_s: int, now: float) -> list[Mapping[str, Any]]:
    """The Pods in the order a ReplicaSet deletes them (first = first to go)."""
    per_node: dict[str, int] = {}
    for pod in candidates:
        node = pods.node_name_of(pod)
        if node:
            per_node[node] = per_node.get(node, 0) + 1

    def rank(pod: Mapping[str, Any]) -> tuple[Any, ...]:
        meta = meta_of(pod)
        node = pods.node_name_of(pod)
        since = ready_since(pod)
        return (
            1 if node else 0,
            _PHASE_RANK.get(pods.phase_of(pod), 0),
            1 if is_ready(pod) else 0,
            1 if is_available(pod, min_ready_s, now) else 0,
            -per_node.get(node, 0),
            -(since if since is not None else now),
            -_restarts(pod),
            _negated(meta.get("creationTimestamp") or ""),
            _negated(meta.get("name", "")),
        )

    return sorted(candidates, key=rank)


def _negated(text: str) -> tuple[int, ...]:
    """A key that sorts strings in reverse (newer timestamps, later names first)."""
    return tuple(-ord(ch) for ch in text) + (1,)


def pods_kept(live: Sequence[Mapping[str, Any]], replicas: int, min_ready_s: int,
              now: float) -> list[Mapping[str, Any]]:
    """The live Pods a ReplicaSet keeps at `replicas` (it deletes the rest first)."""
    extra = len(live) - replicas
    if extra <= 0:
        return list(live)
    return deletion_order(live, min_ready_s, now)[extra:]


def pod_name(rs_name: str, uid: str, taken: set[str]) -> str:
    """`<rs_name>-<5 safe characters>` derived from the Pod's uid, avoiding names taken."""
    attempt = 0
    while True:
        digest = hashlib.sha256(f"{uid}/{attempt}".encode()).digest()
        name = f"{rs_name}-{''.join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:5])}"
        if name not in taken:
            return name
        attempt += 1


# ---------------------------------------------------------------- one ReplicaSet


@dataclass(slots=True)
class ReplicaSetPlan:
    """What one pass decides for one ReplicaSet."""

    commands: list[bytes] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[Mapping[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Ownership:
    """Objects of one kind in one namespace, by the uid of their controller (orphans apart),
    so each owner reads its own and the orphans instead of every object."""

    by_controller: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    orphans: list[Mapping[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, docs: Iterable[Mapping[str, Any]]) -> Ownership:
        index = cls()
        for doc in docs:
            controller = controller_of(doc)
            if controller is None:
                index.orphans.append(doc)
            else:
                index.by_controller.setdefault(str(controller.get("uid")), []).append(doc)
        return index

    def owned_by(self, owner: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return self.by_controller.get(str(meta_of(owner).get("uid")), [])


def _controller_ref(rs: Mapping[str, Any]) -> dict[str, Any]:
    meta = meta_of(rs)
    return {"apiVersion": API_VERSION, "kind": REPLICA_SET, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _identity(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = meta_of(doc)
    return meta.get("namespace", "default"), meta["name"], meta.get("uid", "")


def claim_rows(owner: Mapping[str, Any], owner_ref: Mapping[str, Any], kind: str,
               index: Ownership) -> list[tuple[str, str, str, str, list[Mapping[str, Any]]]]:
    """owner_refs rows that adopt the live orphans `owner`'s selector matches and release
    the objects it owns but no longer matches (Kubernetes' ClaimPods / ClaimReplicaSets)."""
    selector = selector_of(owner)
    uid = meta_of(owner).get("uid")
    rows = []
    for doc in index.orphans:
        if kind == "Pod" and pods.is_mirror(doc):
            continue
        if selector is not None and not selector.empty and selector.matches(labels_of(doc)) and is_live(doc):
            rows.append((kind, *_identity(doc), [*owner_references_of(doc), dict(owner_ref)]))
    for doc in index.owned_by(owner):
        if selector is None or selector.empty or not selector.matches(labels_of(doc)):
            rows.append((kind, *_identity(doc), [r for r in owner_references_of(doc) if r.get("uid") != uid]))
    return rows


def plan_replica_set(rs: Mapping[str, Any], namespace_pods: Ownership, taken_names: set[str], *,
                     now: float, new_uid: Callable[[], str], replace_leaving: bool = False) -> ReplicaSetPlan:
    """One ReplicaSet's pass: claim, replace finished Pods, create or delete to `replicas`,
    and its status. `taken_names` (Pod names of the namespace) gains the names created.
    `replace_leaving`: this set is its Deployment's only active one (no rollout on), so it
    replaces Pods marked leaving within the Deployment's maxSurge."""
    plan = ReplicaSetPlan()
    claims = claim_rows(rs, _controller_ref(rs), "Pod", namespace_pods)
    if claims:
        plan.commands.append(cmd.set_owner_references(claims, now))
        return plan
    meta = meta_of(rs)
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    mine = namespace_pods.owned_by(rs)
    live = [p for p in mine if is_live(p)]
    finished = [p for p in mine if not is_live(p)]
    replicas = replicas_of(rs)
    leaving = _leaving(rs, live, replicas, now) if replace_leaving else set()
    staying = [p for p in live if str(meta_of(p).get("uid", "")) not in leaving]
    doomed = list(finished)
    if len(staying) > replicas:
        doomed.extend(deletion_order(staying, min_ready, now)[:len(staying) - replicas])
    if doomed:
        plan.deleted = doomed
        rows = [("Pod", *_identity(p)) for p in doomed]
        for start in range(0, len(rows), DELETIONS_PER_COMMAND):
            plan.commands.append(cmd.delete_objects(rows[start:start + DELETIONS_PER_COMMAND], now))
    # A leaving Pod's replacement: the set may hold up to its Deployment's replicas + maxSurge.
    missing = min(replicas - len(staying), max(replicas, _max_replicas(rs)) - len(live))
    if missing > 0:
        uids = []
        for _ in range(missing):
            uid = new_uid()
            name = pod_name(meta["name"], uid, taken_names)
            taken_names.add(name)
            uids.append(uid)
            plan.created.append(_pod_from_template(rs, name))
        for start in range(0, len(plan.created), PODS_PER_COMMAND):
            end = start + PODS_PER_COMMAND
            plan.commands.append(cmd.apply_objects(plan.created[start:end], uids[start:end], now, create_only=True))
    status = replica_set_status(rs, live, now)
    if status != (rs.get("status") or {}):
        plan.commands.append(cmd.set_workload_status(REPLICA_SET, *_identity(rs), status, now))
    return plan


def _max_replicas(rs: Mapping[str, Any]) -> int:
    try:
        return int(annotations_of(rs).get(MAX_REPLICAS, 0))
    except ValueError:
        return 0


def _leaving(rs: Mapping[str, Any], live: Sequence[Mapping[str, Any]], replicas: int, now: float) -> set[str]:
    """The live Pods (by uid) marked for an eviction that waits for their replacement,
    honoured only while this set is at its Deployment's full size."""
    if annotations_of(rs).get(DESIRED_REPLICAS) != str(replicas) or replicas == 0:
        return set()
    return {str(meta_of(p).get("uid", "")) for p in live if pods.is_leaving(p, now)}


def _pod_from_template(rs: Mapping[str, Any], name: str) -> dict[str, Any]:
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    meta: dict[str, Any] = {"name": name, "namespace": meta_of(rs).get("namespace", "default")}
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    meta["ownerReferences"] = [_controller_ref(rs)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": dict(template.get("spec") or {})}


def replica_set_status(rs: Mapping[str, Any], live: Sequence[Mapping[str, Any]], now: float) -> dict[str, Any]:
    """The status Kubernetes reports (zero counts but `replicas` left out, as it omits them)."""
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    fully = sum(1 for p in live if all(labels_of(p).get(k) == v for k, v in template_labels.items()))
    ready = sum(1 for p in live if is_ready(p))
    available = sum(1 for p in live if is_available(p, min_ready, now))
    status: dict[str, Any] = {"replicas": len(live)}
    for key, value in (("fullyLabeledReplicas", fully), ("readyReplicas", ready), ("availableReplicas", available)):
        if value:
            status[key] = value
    status["observedGeneration"] = int(meta_of(rs).get("generation") or 0)
    return status
