"""Filters and scores: why a Pod cannot go to a node, and how much it likes the ones it can.

Owns: PodClass (what one PlacementSpec needs, worked out once), the static filter view
shared by specs with the same tolerations and node constraints, the reason strings, the
score formula and the Unschedulable message. Rules (kube-scheduler's, see scheduler.py's
banner for the formula):
- Filters run in kube-scheduler's plugin order and a node reports the reasons of the
  first filter that refuses it: NodeUnschedulable, TaintToleration (then a node that is
  not Ready), NodeAffinity (nodeSelector and required terms), NodePorts,
  NodeResourcesFit (which may give several reasons at once), InterPodAffinity.
- The first three depend on the node alone ("static"); the others on what runs there.
- Scores are integers; every normalisation is exact integer arithmetic.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.control.placement import NodeInfo, PlacementSpec, SchedulerConfig, ScoringStrategy
from agent.control.sched_state import BIND_ALL, ClusterState, ResolvedTerm, port_key
from agent.control.selectors import (
    NO_EXECUTE,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    NodeAffinity,
    Taint,
    Toleration,
    tolerated,
)

MAX_NODE_SCORE = 100

UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", NO_SCHEDULE)
NOT_READY_TAINT = Taint("node.kubernetes.io/not-ready", "", NO_SCHEDULE)

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_TOO_MANY_PODS = "Too many pods"
REASON_CPU = "Insufficient cpu"
REASON_MEMORY = "Insufficient memory"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
NO_NODES_MESSAGE = "no nodes available to schedule pods"


def taint_reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def unschedulable_message(total_nodes: int, histogram: Mapping[str, int]) -> tuple[str, tuple[tuple[str, int], ...]]:
    """kube-scheduler's FitError text: "0/N nodes are available: " then "count reason"
    items sorted as strings (Go's sort.Strings: byte order, counts included), ", "-joined,
    and a final period. Returns the message and the histogram in message order."""
    if total_nodes == 0:
        return NO_NODES_MESSAGE, ()
    items = sorted((f"{count} {reason}", reason, count) for reason, count in histogram.items() if count)
    message = f"0/{total_nodes} nodes are available: " + ", ".join(text for text, _, _ in items) + "."
    return message, tuple((reason, count) for _, reason, count in items)


# ---------------------------------------------------------------- static filters


@dataclass(frozen=True, slots=True)
class StaticView:
    """A spec's verdict on each node from the node alone (indexed like the state's nodes)."""

    reasons: tuple[tuple[str, ...] | None, ...]
    """None: passes the static filters; else the reasons of the first refusing one."""
    prefer_taints: tuple[int, ...]
    """PreferNoSchedule taints the spec does not tolerate, per node."""
    preferred_weight: tuple[int, ...]
    """Sum of the weights of the preferred node affinity terms the node matches."""


def static_view(
    state: ClusterState,
    tolerations: tuple[Toleration, ...],
    node_selector: Mapping[str, str],
    node_affinity: NodeAffinity | None,
) -> StaticView:
    tolerates_cordon = tolerated(tolerations, UNSCHEDULABLE_TAINT)
    reasons: list[tuple[str, ...] | None] = []
    prefer: list[int] = []
    weight: list[int] = []
    for node in state.nodes:
        reasons.append(_static_reasons(node, tolerations, tolerates_cordon, node_selector, node_affinity))
        prefer.append(
            sum(1 for t in node.taints if t.effect == PREFER_NO_SCHEDULE and not tolerated(tolerations, t))
            if node.taints
            else 0
        )
        weight.append(node_affinity.preferred_weight(node.labels) if node_affinity is not None else 0)
    return StaticView(tuple(reasons), tuple(prefer), tuple(weight))


def _static_reasons(
    node: NodeInfo,
    tolerations: tuple[Toleration, ...],
    tolerates_cordon: bool,
    node_selector: Mapping[str, str],
    node_affinity: NodeAffinity | None,
) -> tuple[str, ...] | None:
    labels = node.labels
    if node.unschedulable and not tolerates_cordon:
        return (REASON_UNSCHEDULABLE,)
    for taint in node.taints:
        if taint.effect in (NO_SCHEDULE, NO_EXECUTE) and not tolerated(tolerations, taint):
            return (taint_reason(taint),)
    if not node.ready:
        # kube-scheduler sees a NotReady node through the node lifecycle controller's
        # not-ready taint, which a Pod may tolerate. Here no toleration lifts it: a Pod
        # sent to a node whose agent nobody reaches would never start.
        return (taint_reason(NOT_READY_TAINT),)
    for key, value in node_selector.items():
        if labels.get(key) != value:
            return (REASON_NODE_AFFINITY,)
    if node_affinity is not None and not node_affinity.required_match(labels):
        return (REASON_NODE_AFFINITY,)
    return None


# ---------------------------------------------------------------- one spec


class PodClass:
    """What one PlacementSpec needs from the filters and scores, worked out once per pass."""

    def __init__(self, spec: PlacementSpec, state: ClusterState, static: StaticView):
        config = state.config
        self.static = static
        self.cpu = spec.cpu_millis
        self.memory = spec.memory_bytes
        self.score_cpu = spec.cpu_millis or config.default_cpu_request_millis
        self.score_memory = spec.memory_bytes or config.default_memory_request_bytes
        self.ports = tuple(port_key(p.host_ip, p.protocol, p.port) for p in spec.host_ports)
        self.app = state.app_list(spec)
        affinity, ns = spec.pod_affinity, spec.namespace
        required = tuple(ResolvedTerm.of(t, ns) for t in affinity.required_affinity)
        self.affinity = state.counter(required) if required else None
        """Pods per node matching all the required affinity terms (None: no such terms)."""
        self.matches_own_affinity = bool(required) and all(t.matches(spec) for t in required)
        self.anti = tuple(state.counter((ResolvedTerm.of(t, ns),)) for t in affinity.required_anti_affinity)
        self.repelled_by = tuple(counts for term, counts in state.held_repelling.items() if term.matches(spec))
        scoring = [(w.weight, state.counter((ResolvedTerm.of(w.term, ns),))) for w in affinity.preferred_affinity]
        scoring += [
            (-w.weight, state.counter((ResolvedTerm.of(w.term, ns),))) for w in affinity.preferred_anti_affinity
        ]
        scoring += [(weight, counts) for (term, weight), counts in state.held_scoring.items() if term.matches(spec)]
        self.pod_affinity_scoring = tuple(scoring)
        self.plain_filters = not (self.ports or self.affinity is not None or self.anti or self.repelled_by)
        """Only the resource filter can refuse a node that passes the static ones."""
        self.fit_score = fit_scorer(state, self.score_cpu, self.score_memory)
        self.uses_prefer_taints = any(static.prefer_taints)
        self.uses_preferred_weight = any(static.preferred_weight)

    @property
    def placement_changes_other_nodes(self) -> bool:
        """Whether placing a Pod on one node can change this spec's verdict on another:
        only through the required affinity rule that lets the first Pod of a group go
        anywhere while no Pod matches its terms."""
        return self.affinity is not None

    def dynamic_reasons(self, state: ClusterState, i: int, affinity_anywhere: bool) -> tuple[str, ...] | None:
        """The reasons of the first dynamic filter refusing node i, None if none does.
        `affinity_anywhere`: some Pod in the cluster matches all the required affinity terms."""
        if self.ports:
            used, any_ip = state.ports[i], state.ports_any_ip[i]
            if used:
                for ip, protocol, port in self.ports:
                    if ip == BIND_ALL:
                        if (protocol, port) in any_ip:
                            return (REASON_PORTS,)
                    elif (ip, protocol, port) in used or (BIND_ALL, protocol, port) in used:
                        return (REASON_PORTS,)
        reasons = [REASON_TOO_MANY_PODS] if state.pods_free[i] < 1 else []
        if self.cpu and self.cpu > state.cpu_free[i]:
            reasons.append(REASON_CPU)
        if self.memory and self.memory > state.memory_free[i]:
            reasons.append(REASON_MEMORY)
        if reasons:
            return tuple(reasons)
        if self.affinity is not None:
            if not state.in_domain[i]:
                return (REASON_AFFINITY,)
            if self.affinity[i] == 0 and (affinity_anywhere or not self.matches_own_affinity):
                return (REASON_AFFINITY,)
        for counts in self.anti:
            if counts[i]:
                return (REASON_ANTI_AFFINITY,)
        for counts in self.repelled_by:
            if counts[i]:
                return (REASON_EXISTING_ANTI_AFFINITY,)
        return None

    def affinity_anywhere(self) -> bool:
        return self.affinity is not None and any(self.affinity)

    def pod_affinity_raw(self, i: int) -> int:
        """InterPodAffinity's raw score: signed weights of matching (term, Pod) pairs on node i."""
        return sum(weight * counts[i] for weight, counts in self.pod_affinity_scoring)


# ---------------------------------------------------------------- the score formula


@dataclass(frozen=True, slots=True)
class Norms:
    """The per-plugin normalisers, each over the nodes that pass every filter."""

    max_prefer_taints: int
    max_preferred_weight: int
    max_app_count: int
    min_pod_affinity: int
    max_pod_affinity: int


def fit_scorer(state: ClusterState, score_cpu: int, score_memory: int) -> Callable[[int], int]:
    """NodeResourcesFit's score of node i for a Pod requesting (score_cpu, score_memory):
    LeastAllocated or MostAllocated per resource, weighted; a resource the node has none
    of is left out of the weighting."""
    config = state.config
    least = config.scoring_strategy is ScoringStrategy.LEAST_ALLOCATED
    allocatable_cpu, allocatable_memory = state.allocatable_cpu, state.allocatable_memory
    cpu_scored, memory_scored = state.cpu_scored, state.memory_scored
    cpu_weight, memory_weight = config.cpu_weight, config.memory_weight

    def fit_score(i: int) -> int:
        total = weights = 0
        capacity = allocatable_cpu[i]
        if capacity and cpu_weight:
            requested = cpu_scored[i] + score_cpu
            if not least:
                total += min(requested, capacity) * MAX_NODE_SCORE // capacity * cpu_weight
            elif requested <= capacity:
                total += (capacity - requested) * MAX_NODE_SCORE // capacity * cpu_weight
            weights += cpu_weight
        capacity = allocatable_memory[i]
        if capacity and memory_weight:
            requested = memory_scored[i] + score_memory
            if not least:
                total += min(requested, capacity) * MAX_NODE_SCORE // capacity * memory_weight
            elif requested <= capacity:
                total += (capacity - requested) * MAX_NODE_SCORE // capacity * memory_weight
            weights += memory_weight
        return total // weights if weights else 0

    return fit_score


def scorer(config: SchedulerConfig, norms: Norms, has_app: bool) -> Callable[[int, int, int, int, int, int], int]:
    """The total score of a node from its parts (fit, untolerated PreferNoSchedule taints,
    preferred node affinity weight, app count, raw pod affinity, Pods it has yet to
    start), under `norms`."""
    fit_weight = config.resource_fit_weight
    taint_weight, k = config.taint_toleration_weight, norms.max_prefer_taints
    affinity_weight, w = config.node_affinity_weight, norms.max_preferred_weight
    spread_weight, m = (config.app_spread_weight if has_app else 0), norms.max_app_count
    pod_weight, low, high = config.inter_pod_affinity_weight, norms.min_pod_affinity, norms.max_pod_affinity
    span = high - low
    full = MAX_NODE_SCORE
    least = config.scoring_strategy is ScoringStrategy.LEAST_ALLOCATED
    start_weight = config.start_spread_weight if least else 0

    def score(fit: int, prefer_taints: int, preferred_weight: int, app_count: int, pod_affinity: int,
              starting: int = 0) -> int:
        total = fit_weight * fit + start_weight * (full // (1 + starting))
        total += taint_weight * (full - full * prefer_taints // k if k else full)
        if w:
            total += affinity_weight * (full * preferred_weight // w)
        if spread_weight:
            total += spread_weight * (full * (m - app_count) // m if m else full)
        if span:
            total += pod_weight * (full * (pod_affinity - low) // span)
        return total

    return score
