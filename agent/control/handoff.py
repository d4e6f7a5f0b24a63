"""Leadership hand-off: a leader whose own Node is cordoned hands leadership away.

Owns: `handoff_target`, the voter the leader transfers leadership to (Raft's TimeoutNow,
thesis §3.10) when its own Node is cordoned (`spec.unschedulable`, as `agentctl cordon`
and `agentctl drain` write it), or None.

Why a rule of the cluster and not an RPC the drain calls: the cordon is already in the
replicated state, so whichever server leads (after a crash, an election, a restart)
sees it and moves away; nothing lives only in a client's call, a drain that dies half
way leaves no leader on a node about to be stopped, and `agentctl` needs no new call.
A cordoned node is the sign of maintenance ahead, so a leader leaves it at the cordon.

Rules it keeps:
- The target is a voter other than the leader whose Node is Ready and not cordoned and
  whose log is caught up (so TimeoutNow makes it win at once); the first by name, so
  every pass picks the same one. No such voter: the leader stays (a cluster of cordoned
  servers keeps a leader rather than none).
- Never a hand-off to a cordoned node, so two cordoned servers do not pass leadership
  back and forth.
- Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.state import node as node_kind

__all__ = ["handoff_target", "is_cordoned"]


def is_cordoned(node: Mapping[str, Any] | None) -> bool:
    return node is not None and bool((node.get("spec") or {}).get("unschedulable"))


def handoff_target(leader: str, nodes: Mapping[str, Mapping[str, Any]], voters: Iterable[str],
                   caught_up: Iterable[str]) -> str | None:
    """The voter to hand leadership to, or None (the leader's Node is not cordoned, or no
    voter can take over)."""
    if not is_cordoned(nodes.get(leader)):
        return None
    ready = set(caught_up)
    for name in sorted(voters):
        doc = nodes.get(name)
        if name == leader or name not in ready or doc is None:
            continue
        if node_kind.is_ready(doc) and not is_cordoned(doc):
            return name
    return None
