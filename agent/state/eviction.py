"""Eviction: may this Pod be taken off its node now, without breaking its workload?

Owns: `eviction_problem`, the check the state machine makes, atomically with the deletion,
when a Pod is evicted (by `agentctl drain`, or by the leader's rebalancer): the same
question Kubernetes' Eviction subresource asks of a PodDisruptionBudget, with a
Deployment's own rollout budget standing for the budget.

Rules it keeps:
- A Pod owned (through its ReplicaSet) by a Deployment may be evicted only while the
  Deployment keeps at least `replicas - maxUnavailable` available Pods without it:
  available Pods (Ready for minReadySeconds at the command's time) of all its
  ReplicaSets are counted; a Pod that is not available itself costs nothing and may
  always go. maxUnavailable is the rollout's (percentages round down, 1 when both
  fenceposts are 0); a Recreate Deployment, which accepts downtime on every rollout,
  may lose one Pod at a time. The refusal is `too_many_requests` (Kubernetes answers
  429), saying how many are available and how many must stay.
- A Pod of a ReplicaSet with no Deployment, or of any other controller, is evicted freely
  (its controller replaces it; there is no budget to keep).
- A Pod with no controller (a bare Pod) is evicted only with `force`: nothing recreates it.
- A mirror Pod is never evicted: it stands for a static Pod of its node's agent, which
  keeps running it whatever the state says.
- A finished Pod (Succeeded or Failed) may always go.
- Pure: no I/O, no clock (`now` is the command's time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.state import pod_lifecycle as pods
from agent.state.objects import KINDS, controller_of, meta_of, object_key, parse_time
from agent.state.store import ObjectStore
from agent.state.workloads import RECREATE, max_surge, max_unavailable, replicas_of

__all__ = ["TOO_MANY_REQUESTS", "budget_of", "eviction_problem", "is_available"]

TOO_MANY_REQUESTS = "too_many_requests"


def _ready_since(pod: Mapping[str, Any]) -> float | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            if cond.get("status") != "True":
                return None
            since = parse_time(cond.get("lastTransitionTime"))
            return since if since is not None else float("-inf")
    return None


def is_available(pod: Mapping[str, Any], min_ready_s: int, now: float) -> bool:
    """Live, Ready, and Ready for at least minReadySeconds (Kubernetes' IsPodAvailable)."""
    if pods.is_finished(pod):
        return False
    since = _ready_since(pod)
    if since is None:
        return False
    return min_ready_s <= 0 or since + min_ready_s < now


def budget_of(deployment: Mapping[str, Any]) -> int:
    """The available Pods a Deployment must keep: replicas - maxUnavailable (a Recreate
    Deployment: replicas - 1)."""
    replicas = replicas_of(deployment)
    strategy = ((deployment.get("spec") or {}).get("strategy") or {}).get("type")
    unavailable = min(1, replicas) if strategy == RECREATE else max_unavailable(deployment)
    return max(0, replicas - unavailable)


def _owner(store: ObjectStore, doc: Mapping[str, Any], kind_name: str) -> Mapping[str, Any] | None:
    """`doc`'s controller if it is a live object of `kind_name` with the uid the reference names."""
    ref = controller_of(doc)
    if ref is None or ref.get("kind") != kind_name:
        return None
    kind = KINDS[kind_name]
    owner = store.get(kind_name, object_key(kind, meta_of(doc).get("namespace", "default"), str(ref.get("name", ""))))
    if owner is None or meta_of(owner).get("uid") != ref.get("uid"):
        return None
    return owner


def deployment_available(store: ObjectStore, deployment: Mapping[str, Any], now: float) -> int:
    """Available Pods of all the Deployment's ReplicaSets."""
    min_ready = int((deployment.get("spec") or {}).get("minReadySeconds") or 0)
    count = 0
    for kind_name, rs_key in store.dependents(str(meta_of(deployment).get("uid", ""))):
        rs = store.get(kind_name, rs_key) if kind_name == "ReplicaSet" else None
        if rs is None or (controller_of(rs) or {}).get("uid") != meta_of(deployment).get("uid"):
            continue
        for pod_kind, pod_key in store.dependents(str(meta_of(rs).get("uid", ""))):
            pod = store.get(pod_kind, pod_key) if pod_kind == "Pod" else None
            if pod is not None and (controller_of(pod) or {}).get("uid") == meta_of(rs).get("uid") \
                    and is_available(pod, min_ready, now):
                count += 1
    return count


def eviction_problem(store: ObjectStore, pod: Mapping[str, Any], *, force: bool,
                     now: float) -> tuple[str, str] | None:
    """(error code, message) when `pod` may not be evicted now, or None."""
    meta = meta_of(pod)
    label = f'pods "{meta.get("name", "")}" in namespace "{meta.get("namespace", "default")}"'
    if pods.is_mirror(pod):
        return ("forbidden", f"{label} is the mirror of a static Pod of node {pods.node_name_of(pod) or '?'}: "
                             f"it runs where its manifest is and cannot be evicted")
    if pods.is_finished(pod):
        return None
    controller = controller_of(pod)
    if controller is None:
        if force:
            return None
        return ("forbidden", f"{label} has no controller: nothing would recreate it; evict it with force to "
                             f"delete it anyway")
    rs = _owner(store, pod, "ReplicaSet")
    deployment = _owner(store, rs, "Deployment") if rs is not None else None
    if deployment is None:
        return None
    min_ready = int((deployment.get("spec") or {}).get("minReadySeconds") or 0)
    if not is_available(pod, min_ready, now):
        return None  # it is not counted as available: taking it away costs the Deployment nothing
    available = deployment_available(store, deployment, now)
    keep = budget_of(deployment)
    if available - 1 < keep:
        name = meta_of(deployment).get("name", "")
        replicas = replicas_of(deployment)
        if keep < replicas:
            hint = "try again once a replacement is available"
        elif max_surge(deployment) > 0:
            hint = ("its maxUnavailable comes to 0: it may go once a replacement is available "
                    "(a drain marks it, and its ReplicaSet starts one beside it within maxSurge)")
        else:
            hint = ("its maxUnavailable comes to 0, so no Pod may ever be unavailable: raise "
                    "spec.strategy.rollingUpdate.maxUnavailable or scale it up")
        return (TOO_MANY_REQUESTS,
                f"Cannot evict {label}: it would take deployment.apps/{name} below its budget "
                f"({available} available, {keep} must stay: replicas {replicas} - maxUnavailable "
                f"{replicas - keep}); {hint}")
    return None
