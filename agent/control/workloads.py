"""One pass of the workload controllers: garbage collection, Deployments, ReplicaSets.

Owns: `plan_workloads`, the leader's entry point, which reads the cluster state once and
returns the commands of a pass, in the order they must apply: garbage first, then each
Deployment's (ReplicaSets created, scaled, deleted; its status), then each ReplicaSet's
(Pods adopted or released, deleted, created; its status). And `collect_garbage`: objects
whose owners are all gone are deleted, as Kubernetes' garbage collector does (a
Deployment deleted while its controller was creating a ReplicaSet leaves none behind).

Rules it keeps:
- The ReplicaSet controller acts on each set as the Deployment controller leaves it in
  the same pass (its replicas, its annotations, a set just created), never on the stored
  one it is about to change: a Deployment scaled down has its Pods deleted in the same
  pass, so Pods never outnumber what the sets ask for, and a set deleted in the pass is
  left alone.
- Every pass reads the state after the previous pass's commands applied (the leader
  waits for them): the logic is level-triggered and idempotent, and a pass that learns
  nothing writes nothing.
- Pure: no I/O, no clock (`now` comes in), uids from the injected `new_uid` (one per
  ReplicaSet or Pod created).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent.control.deployments import plan_deployment
from agent.control.replicasets import Ownership, is_live, plan_replica_set
from agent.state import commands as cmd
from agent.state.machine import ClusterState
from agent.state.objects import KINDS, controller_of, meta_of, owner_references_of
from agent.state.workloads import replicas_of

__all__ = ["collect_garbage", "plan_workloads"]


def _by_namespace(docs: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for doc in docs:
        out.setdefault(meta_of(doc).get("namespace", "default"), []).append(doc)
    return out


def collect_garbage(state: ClusterState) -> tuple[list[tuple[str, str, str, str]], set[str]]:
    """(delete_objects rows, their uids) for the objects all of whose owners are gone. An
    owner of a kind the cluster does not hold is never presumed gone."""
    live: dict[tuple[str, str], set[str]] = {}  # (namespace, kind) -> uids
    owned = []
    for kind in KINDS.values():
        if not kind.namespaced:
            continue
        for doc in state.store.of_kind(kind.name).values():
            meta = meta_of(doc)
            live.setdefault((meta.get("namespace", "default"), kind.name), set()).add(meta.get("uid", ""))
            if meta.get("ownerReferences"):
                owned.append((kind.name, doc))
    rows, uids = [], set()
    for kind_name, doc in owned:
        meta = meta_of(doc)
        namespace = meta.get("namespace", "default")
        refs = owner_references_of(doc)
        known = [r for r in refs if r.get("kind") in KINDS and KINDS[r["kind"]].api_version == r.get("apiVersion")]
        if len(known) != len(refs):
            continue
        if all(r.get("uid") not in live.get((namespace, r["kind"]), ()) for r in refs):
            rows.append((kind_name, namespace, meta["name"], meta.get("uid", "")))
            uids.add(meta.get("uid", ""))
    rows.sort()
    return rows, uids


def plan_workloads(state: ClusterState, *, now: float, new_uid: Callable[[], str]) -> list[bytes]:
    """The commands of one pass of the workload controllers over `state`."""
    deployments = state.list("Deployment")
    replica_sets = state.list("ReplicaSet")
    if not deployments and not replica_sets:
        rows, _ = collect_garbage(state)
        return [cmd.delete_objects(rows, now)] if rows else []
    out: list[bytes] = []
    rows, gone = collect_garbage(state)
    if rows:
        out.append(cmd.delete_objects(rows, now))
    pods = _by_namespace([p for p in state.list("Pod") if meta_of(p).get("uid") not in gone])
    sets = _by_namespace([rs for rs in replica_sets if meta_of(rs).get("uid") not in gone])
    pod_index = {ns: Ownership.of(docs) for ns, docs in pods.items()}
    set_index = {ns: Ownership.of(docs) for ns, docs in sets.items()}
    rs_names = {ns: {meta_of(rs)["name"] for rs in docs} for ns, docs in sets.items()}
    planned: dict[str, dict[str, Any]] = {}
    for d in deployments:
        meta = meta_of(d)
        if meta.get("uid") in gone:
            continue
        namespace = meta.get("namespace", "default")
        plan = plan_deployment(d, set_index.get(namespace, Ownership()), pod_index.get(namespace, Ownership()),
                               rs_names.setdefault(namespace, set()), now=now, new_uid=new_uid)
        out.extend(plan.commands)
        planned.update(plan.replica_sets)
        gone |= plan.deleted
    taken = {ns: {meta_of(p)["name"] for p in docs} for ns, docs in pods.items()}
    current = [planned.get(meta_of(rs).get("uid"), rs) for rs in replica_sets]
    known = {meta_of(rs).get("uid") for rs in replica_sets}
    current.extend(doc for uid, doc in planned.items() if uid not in known)
    active = _active_sets_per_owner(current, pod_index)
    for rs in sorted(current, key=lambda r: (meta_of(r).get("namespace", ""), meta_of(r)["name"])):
        meta = meta_of(rs)
        owner = (controller_of(rs) or {}).get("uid")
        if meta.get("uid") in gone or owner in gone:
            continue
        namespace = meta.get("namespace", "default")
        plan = plan_replica_set(rs, pod_index.get(namespace, Ownership()), taken.setdefault(namespace, set()),
                                now=now, new_uid=new_uid, replace_leaving=owner is not None and active.get(owner) == 1)
        out.extend(plan.commands)
    return out


def _active_sets_per_owner(replica_sets: Sequence[Mapping[str, Any]], pod_index: Mapping[str, Ownership]) -> dict[str, int]:
    """Per owning Deployment (uid): how many of its ReplicaSets want Pods or still have live
    ones. With one, no rollout is on, and that set may replace Pods marked leaving."""
    out: dict[str, int] = {}
    for rs in replica_sets:
        owner = (controller_of(rs) or {}).get("uid")
        if owner is None:
            continue
        index = pod_index.get(meta_of(rs).get("namespace", "default"), Ownership())
        if replicas_of(rs) > 0 or any(is_live(p) for p in index.owned_by(rs)):
            out[owner] = out.get(owner, 0) + 1
    return out
