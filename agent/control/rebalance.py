"""Rebalancing (opt-in): a Deployment's Pods move, one at a time, onto a node that joined.

Owns: `plan_rebalance`, the evictions the leader proposes (when agentd runs with
`--rebalance`) so that a Deployment whose Pods are spread unevenly over the schedulable
nodes (one node holding two or more Pods more than another: a node that joined or came
back holds none) moves one Pod from the most loaded node; its ReplicaSet recreates it and
the scheduler's spread places the new one on the emptier node.

Rules it keeps:
- One step in flight per Deployment: a Deployment is only considered when it is settled
  (not paused, exactly `replicas` live Pods, all of one ReplicaSet, all available), so
  the next step waits until the previous replacement is available again.
- Never below `replicas - maxUnavailable` available: the plan is an `evict_pod` command,
  which the state machine checks against the Deployment's budget when it applies; a
  Deployment whose budget allows no unavailable Pod is left as it is.
- Only schedulable nodes count: Ready, not cordoned, not tainted NoSchedule or NoExecute.
  A Pod is moved only if the emptiest such node can hold its requests (CPU, memory, a
  Pod slot, its host ports), so an eviction never leaves a Pod Pending.
- The most loaded node gives (the first by name among equals); within it the Pod by
  name, last first, so every leader's pass plans the same.
- Pure: no I/O, no clock (`now` comes in), no randomness.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.state import commands as cmd
from agent.state import node as node_kind
from agent.state import pod_lifecycle as pods
from agent.state.eviction import budget_of, is_available
from agent.state.machine import ClusterState
from agent.state.objects import controller_of, meta_of
from agent.state.store import ports_conflict
from agent.state.workloads import replicas_of

__all__ = ["plan_rebalance", "schedulable_nodes"]

UNEVEN = 2  # a spread of 1 is as even as replicas allow; 2 or more is worth a move


def schedulable_nodes(state: ClusterState) -> list[str]:
    """Names of the Ready, uncordoned, untainted (NoSchedule/NoExecute) nodes, sorted."""
    out = []
    for doc in state.list("Node"):
        spec = doc.get("spec") or {}
        if not node_kind.is_ready(doc) or spec.get("unschedulable"):
            continue
        if any(isinstance(t, Mapping) and t.get("effect") in ("NoSchedule", "NoExecute")
               for t in spec.get("taints") or ()):
            continue
        out.append(meta_of(doc)["name"])
    return out


def _fits(state: ClusterState, node: str, pod: Mapping[str, Any]) -> bool:
    meta = meta_of(pod)
    alloc = state.store.allocatable(node)
    if alloc is None:
        return False
    usage = state.store.usage(node)
    demand = state.store.demand((meta.get("namespace", "default"), meta["name"]))
    return (usage.cpu_millicores + demand.cpu_millicores <= alloc.cpu_millicores
            and usage.memory_bytes + demand.memory_bytes <= alloc.memory_bytes
            and usage.pods + 1 <= alloc.pods
            and not (demand.host_ports and ports_conflict(demand.host_ports, usage.host_ports)))


def _settled_pods(state: ClusterState, deployment: Mapping[str, Any], now: float) -> list[Mapping[str, Any]] | None:
    """The Deployment's live Pods if it is settled (see the rules), else None."""
    spec = deployment.get("spec") or {}
    if spec.get("paused"):
        return None
    uid = meta_of(deployment).get("uid")
    namespace = meta_of(deployment).get("namespace", "default")
    min_ready = int(spec.get("minReadySeconds") or 0)
    live: list[Mapping[str, Any]] = []
    sets_with_pods = set()
    for rs in state.list("ReplicaSet", namespace=namespace):
        if (controller_of(rs) or {}).get("uid") != uid:
            continue
        rs_uid = meta_of(rs).get("uid")
        for kind_name, key in state.store.dependents(str(rs_uid)):
            pod = state.store.get(kind_name, key) if kind_name == "Pod" else None
            if pod is None or (controller_of(pod) or {}).get("uid") != rs_uid or pods.is_finished(pod):
                continue
            if not is_available(pod, min_ready, now) or not pods.node_name_of(pod):
                return None
            live.append(pod)
            sets_with_pods.add(rs_uid)
    if len(live) != replicas_of(deployment) or len(sets_with_pods) > 1:
        return None
    return live


def plan_rebalance(state: ClusterState, *, now: float) -> list[bytes]:
    """evict_pod commands, at most one per Deployment, that even out uneven Deployments."""
    nodes = schedulable_nodes(state)
    if len(nodes) < 2:
        return []
    out = []
    for deployment in state.list("Deployment"):
        if budget_of(deployment) >= replicas_of(deployment):
            continue  # no Pod may be unavailable, not even for a move
        live = _settled_pods(state, deployment, now)
        if not live:
            continue
        by_node: dict[str, list[Mapping[str, Any]]] = {name: [] for name in nodes}
        for pod in live:
            node = pods.node_name_of(pod)
            if node in by_node:
                by_node[node].append(pod)
        fullest = min(nodes, key=lambda n: (-len(by_node[n]), n))
        emptiest = min(nodes, key=lambda n: (len(by_node[n]), n))
        if len(by_node[fullest]) - len(by_node[emptiest]) < UNEVEN:
            continue
        pod = max(by_node[fullest], key=lambda p: meta_of(p)["name"])
        if not _fits(state, emptiest, pod):
            continue
        meta = meta_of(pod)
        out.append(cmd.evict_pod(meta.get("namespace", "default"), meta["name"], meta.get("uid", ""), now))
    return out
