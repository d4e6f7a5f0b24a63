"""The node lifecycle controller: Nodes follow gossip, and a lost node's Pods move at once.

Owns: the decision, from the cluster state and the leader's gossip view, of which Nodes to
register or refresh, which to mark Ready or NotReady (and why), and which Pods to take off
a lost node: back to Pending for the scheduler, or Failed when they must not run again.

Rules it keeps:
- Liveness comes from SWIM, not from writes: a Node's Ready condition is written only
  when it changes (a member declared alive, dead, left, or missing).
- A node SWIM declares dead is NotReady at once and its Pods are taken off it in the same
  pass: every Pod whose restartPolicy is not Never and that has not finished goes back to
  Pending (the scheduler places it on a survivor); the others are marked Failed
  (NodeLost), as they must not run twice. Kubernetes waits minutes for this; we don't,
  because SWIM's verdict is already the product of probes, indirect probes and a
  suspicion timeout that the node itself failed to refute.
- A node that LEFT (its agent stopped gracefully, e.g. to be upgraded: its containers go
  on running) is NotReady at once, but its Pods move only after `left_grace_s`, so an
  agent restart does not move every Pod it runs.
- A member missing from gossip altogether counts as lost only once the leader's gossip
  has settled (`settled`), so a fresh leader does not evict the cluster before it has
  heard from everyone.
- Suspect members are left as they are: suspicion is not a verdict.
- Mirror Pods (standing for a node's static Pods) stay with their node: they are never
  rescheduled, as kubelet's static Pods run only where their manifest is.
- The output is commands (agent.state.commands); uids come from the injected `new_uid`.
- Pure: no I/O, no clock (now comes in), no randomness.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.control.members import DEAD, LEFT, MemberView
from agent.state import commands as cmd
from agent.state import node as node_kind
from agent.state import pod_lifecycle as pods
from agent.state.machine import ClusterState, node_facts_from_wire
from agent.state.objects import labels_of, meta_of

__all__ = ["LifecycleConfig", "reconcile_nodes"]

REASON_ALIVE = "AgentAlive"
REASON_DEAD = "NodeDead"
REASON_LEFT = "NodeLeft"
REASON_MISSING = "NodeUnknown"
EVICTION_REASON = pods.NODE_LOST_REASON


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    # A gracefully stopped agent leaves its containers running and is usually restarted
    # within seconds (an upgrade); its Pods move only if it stays away this long.
    left_grace_s: float = 30.0


def reconcile_nodes(state: ClusterState, members: Mapping[str, MemberView], *, now: float, settled: bool,
                    new_uid: Callable[[], str], config: LifecycleConfig = LifecycleConfig()) -> list[bytes]:
    """Commands that bring the Nodes (and the Pods of lost nodes) in line with gossip."""
    out: list[bytes] = []
    nodes = {meta_of(doc)["name"]: doc for doc in state.list("Node")}
    for name in sorted(members):
        member = members[name]
        if member.facts is None or not member.up:
            continue
        node = nodes.get(name)
        if node is None:
            out.append(cmd.upsert_node(name, new_uid(), member.facts, now))
            out.append(cmd.set_node_ready(name, "True", REASON_ALIVE, _alive_message(name), now))
            continue
        if _facts_changed(node, name, member.facts):
            out.append(cmd.upsert_node(name, "", member.facts, now))
        if member.state == "alive" and not node_kind.is_ready(node):
            out.append(cmd.set_node_ready(name, "True", REASON_ALIVE, _alive_message(name), now))
    for name in sorted(nodes):
        member = members.get(name)
        if member is not None and member.up:
            continue
        if member is None and not settled:
            continue
        reason, message = _lost(name, member)
        condition = node_kind.ready_condition(nodes[name]) or {}
        if condition.get("status") != "False" or condition.get("reason") != reason:
            out.append(cmd.set_node_ready(name, "False", reason, message, now))
            since = now
        else:
            since = _parse_time(condition.get("lastTransitionTime"), now)
        if reason == REASON_LEFT and now - since < config.left_grace_s:
            continue
        evictions = _evictions(state, name)
        if evictions:
            out.append(cmd.evict_pods(name, evictions, EVICTION_REASON,
                                      f"node {name} is lost ({reason}); the Pod was taken off it", now))
    # Pods bound to a node that no longer exists at all (deleted, and not in gossip).
    for node_name in sorted(_orphan_nodes(state, nodes, members, settled)):
        evictions = _evictions(state, node_name)
        if evictions:
            out.append(cmd.evict_pods(node_name, evictions, EVICTION_REASON,
                                      f"node {node_name} no longer exists; the Pod was taken off it", now))
    return out


def _alive_message(name: str) -> str:
    return f"agentd on {name} answers gossip probes"


def _lost(name: str, member: MemberView | None) -> tuple[str, str]:
    if member is None:
        return REASON_MISSING, f"agentd on {name} is not in the gossip membership"
    if member.state == DEAD:
        return REASON_DEAD, f"agentd on {name} stopped answering gossip probes (declared dead)"
    if member.state == LEFT:
        return REASON_LEFT, f"agentd on {name} left the cluster (stopped gracefully)"
    return REASON_MISSING, f"agentd on {name} is {member.state}"


def _evictions(state: ClusterState, node: str) -> list[tuple[str, str, str, str]]:
    out = []
    for pod in state.store.pods_on(node):
        if pods.is_finished(pod) or pods.is_mirror(pod):
            continue  # a mirror Pod belongs to its node: its static Pod is never run elsewhere
        meta = meta_of(pod)
        action = "fail" if pods.restart_policy_of(pod) == "Never" else "reschedule"
        out.append((meta.get("namespace", "default"), meta["name"], meta.get("uid", ""), action))
    return out


def _orphan_nodes(state: ClusterState, nodes: Mapping[str, Any], members: Mapping[str, MemberView],
                  settled: bool) -> set[str]:
    if not settled:
        return set()
    bound = {pods.node_name_of(doc) for doc in state.list("Pod")}
    return {name for name in bound if name and name not in nodes
            and not (name in members and members[name].up)}


def _facts_changed(node: Mapping[str, Any], name: str, facts: Mapping[str, Any]) -> bool:
    parsed = node_facts_from_wire(name, facts)
    if parsed is None:
        return False  # a malformed advertisement is not worth a write; the machine would refuse it
    status = node.get("status") or {}
    expected = node_kind.node_status_from_facts(parsed)
    if any(status.get(key) != value for key, value in expected.items()):
        return True
    labels = labels_of(node)
    return any(labels.get(k) != v for k, v in node_kind.node_labels_from_facts(parsed).items())


def _parse_time(text: Any, default: float) -> float:
    if not isinstance(text, str):
        return default
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return default
    return moment.timestamp()
