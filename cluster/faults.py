"""Network and process faults of a cluster, as data, and the iptables rules they imply.

Rules:
- Pure: no I/O, no clock. The recorded FaultState is the truth; a node's fault chain is
  always rebuilt from it by `rules_for`, never edited rule by rule, so heal is "empty
  state" and a crash between two steps cannot leave a rule nobody knows about.
- One primitive for partitions: "listener does not hear speaker" (a DROP, inside the
  listener's namespace, of whatever comes from the speaker's node address or container
  subnet). A partition cuts both ways between every pair of groups; a one-way partition
  `A / B` cuts only B -> A (A still sends to B, and hears nothing back).
- Loss is random and per packet, on the node's link to the hub, in both directions:
  traffic between a node's own containers and itself is not touched.
- A pause stops the node's agentd (SIGSTOP), or freezes the whole node (`whole`); a timed
  pause names the helper process that will end it, so only that pause is ended by it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

from .errors import ClusterError
from .layout import NODE_LINK, NodeLayout


@dataclass(frozen=True, slots=True)
class Pause:
    node: str
    whole: bool  # the whole machine frozen (cgroup freezer), not only agentd stopped
    timer_pid: int | None = None  # the helper that ends this pause on its own, if timed


@dataclass(frozen=True, slots=True)
class FaultState:
    deaf: frozenset[tuple[str, str]] = frozenset()  # (listener, speaker): listener drops what speaker sends
    loss: tuple[tuple[str, float], ...] = ()  # (node, probability), one entry per node, sorted
    pauses: tuple[Pause, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.deaf or self.loss or self.pauses)

    def loss_of(self, node: str) -> float:
        return dict(self.loss).get(node, 0.0)

    def pause_of(self, node: str) -> Pause | None:
        return next((p for p in self.pauses if p.node == node), None)

    def to_json(self) -> dict[str, Any]:
        return {"deaf": sorted(list(p) for p in self.deaf), "loss": dict(self.loss),
                "pauses": [{"node": p.node, "whole": p.whole, "timer_pid": p.timer_pid} for p in self.pauses]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FaultState":
        return cls(deaf=frozenset((a, b) for a, b in data.get("deaf", [])),
                   loss=tuple(sorted((n, float(p)) for n, p in data.get("loss", {}).items())),
                   pauses=tuple(Pause(p["node"], bool(p["whole"]), p.get("timer_pid")) for p in data.get("pauses", [])))


def parse_groups(text: str) -> list[list[str]]:
    """'n1,n2 / n3' -> [['n1', 'n2'], ['n3']] (checked by `partition`)."""
    return [[n.strip() for n in part.split(",") if n.strip()] for part in text.split("/")]


def check_groups(groups: Sequence[Sequence[str]], known: Sequence[str]) -> None:
    """Two or more non-empty groups of known nodes, no node in two of them."""
    shown = " / ".join(",".join(g) for g in groups)
    if len(groups) < 2 or any(not g for g in groups):
        raise ClusterError(f"bad partition {shown!r}: give two or more groups of nodes, e.g. 'n1,n2 / n3'")
    seen: set[str] = set()
    for name in (n for g in groups for n in g):
        if name not in known:
            raise ClusterError(f"unknown node {name!r} in partition {shown!r} (nodes: {', '.join(known)})")
        if name in seen:
            raise ClusterError(f"node {name} is in two groups of partition {shown!r}")
        seen.add(name)


def partition(state: FaultState, groups: Sequence[Sequence[str]], *, oneway: bool) -> FaultState:
    """Add a partition between `groups` (one-way: the first group stops hearing the second)."""
    if oneway and len(groups) != 2:
        raise ClusterError("a one-way partition takes exactly two groups: A / B (A sends to B, hears nothing from B)")
    cut: set[tuple[str, str]] = set()
    for i, left in enumerate(groups):
        for right in groups[i + 1:]:
            cut.update((a, b) for a in left for b in right)
            if not oneway:
                cut.update((b, a) for a in left for b in right)
    return replace(state, deaf=state.deaf | frozenset(cut))


def with_loss(state: FaultState, node: str, probability: float) -> FaultState:
    if not 0.0 <= probability <= 1.0:
        raise ClusterError(f"loss probability must be between 0 and 1, not {probability}")
    kept = [(n, p) for n, p in state.loss if n != node]
    if probability > 0.0:
        kept.append((node, probability))
    return replace(state, loss=tuple(sorted(kept)))


def with_pause(state: FaultState, pause: Pause) -> FaultState:
    if state.pause_of(pause.node) is not None:
        raise ClusterError(f"{pause.node} is already paused (resume it first)")
    return replace(state, pauses=state.pauses + (pause,))


def without_pause(state: FaultState, node: str) -> FaultState:
    return replace(state, pauses=tuple(p for p in state.pauses if p.node != node))


def rules_for(state: FaultState, node: NodeLayout, peers: Iterable[NodeLayout]) -> list[str]:
    """The iptables rule specs of `node`'s fault chain under `state`."""
    rules = []
    for peer in peers:
        if (node.name, peer.name) in state.deaf:
            note = f'-m comment --comment "{node.name} does not hear {peer.name}"'
            rules += [f"-s {peer.ip}/32 {note} -j DROP", f"-s {peer.pod_cidr} {note} -j DROP"]
    p = state.loss_of(node.name)
    if p > 0.0:
        stat = f'-m statistic --mode random --probability {p:.6f} -m comment --comment "loss {p:g}"'
        rules += [f"-i {NODE_LINK} {stat} -j DROP", f"-o {NODE_LINK} {stat} -j DROP"]
    return rules


def describe(state: FaultState, node: str) -> str:
    """What is wrong with `node`, in a few words, for `status`."""
    parts = []
    deaf_to = {b for a, b in state.deaf if a == node}
    unheard_by = {a for a, b in state.deaf if b == node}
    for label, peers in (("cut from", deaf_to & unheard_by), ("deaf to", deaf_to - unheard_by),
                         ("unheard by", unheard_by - deaf_to)):
        if peers:
            parts.append(f"{label} {','.join(sorted(peers))}")
    if state.loss_of(node):
        parts.append(f"loss {state.loss_of(node):g}")
    pause = state.pause_of(node)
    if pause:
        parts.append(("frozen" if pause.whole else "agentd stopped") + (" (timed)" if pause.timer_pid else ""))
    return "; ".join(parts) or "-"
