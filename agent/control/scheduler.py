"""The scheduler: places pending Pods on nodes, as a pure function of a snapshot.

Owns: schedule() (one pass over many pending Pods) and what_if() (where would each of
these Pods go if it alone were pending now), and the incremental ranking that makes a
pass fast. Rules:
- Pure: no I/O, no clock, no randomness. The same input gives the same output: Pods are
  placed by priority (higher first), then creation_index, then key; among nodes of equal
  score the one with the fewest Pods wins (kube-scheduler picks at random, which spreads
  such Pods; a fixed choice by name alone would pile Pods too small to move a score onto
  one node), then the one whose name sorts first.
- Each placement is counted before the next Pod is looked at (requests, ports, app
  counts, affinity terms), so a pass never overcommits a node, and an app's Pods spread.
- Filters (sched_rules.py, kube-scheduler's plugin order; a node gives the reasons of the
  first filter refusing it): node cordoned (unless the Pod tolerates
  node.kubernetes.io/unschedulable:NoSchedule), an untolerated NoSchedule/NoExecute
  taint, node not Ready (reported as kube-scheduler reports the not-ready taint, but no
  toleration lifts it here), nodeSelector and required node affinity, host ports
  (same port and protocol on the same or a 0.0.0.0 host IP), requests (Too many pods,
  Insufficient cpu, Insufficient memory; a node may give several), required pod affinity
  (a matching Pod on the node, or none anywhere and the Pod matches its own terms), the
  Pod's required anti-affinity, the required anti-affinity of the Pods already there.
- A Pod that fits nowhere gets kube-scheduler's FitError text,
  `0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.`, the
  "count reason" items sorted as strings (Go's sort.Strings), as data in Unplaced.

Score of a node that passes every filter (integers; F = the nodes passing every filter
for this Pod; weights from SchedulerConfig, defaults = kube-scheduler's default profile):
  1 x fit          NodeResourcesFit over cpu and memory (weights 1:1), requested counting
                   this Pod and a non-zero default (100m, 200 MiB) for a Pod with none:
                   LeastAllocated (default): (alloc - requested) * 100 // alloc,
                   MostAllocated (binpack):  min(requested, alloc) * 100 // alloc.
  3 x taints       TaintToleration: 100 - 100 * k // K, k = untolerated PreferNoSchedule
                   taints of the node, K = max k over F (100 when K = 0).
  2 x node affinity  NodeAffinity: 100 * w // W, w = sum of the weights of the matching
                   preferred terms, W = max w over F (0 when W = 0).
  2 x app spread   modelled on SelectorSpread/PodTopologySpread on kubernetes.io/hostname:
                   100 * (M - c) // M, c = Pods of the same app key on the node,
                   M = max c over F (100 when M = 0; 0 for a Pod without app key).
                   With MostAllocated this still spreads an app's replicas while
                   packing different apps together, as kube-scheduler's default
                   topology spreading does.
  2 x pod affinity InterPodAffinity: raw = sum over the Pods on the node of the weights
                   of this Pod's preferred terms they match (anti-affinity negative),
                   plus the weights of their preferred terms this Pod matches (and 1 per
                   required affinity term of theirs it matches: hardPodAffinityWeight);
                   100 * (raw - min) // (max - min) over F (0 when all are equal).
  1 x start spread (ours; LeastAllocated only): 100 // (1 + k), k = Pods placed on the
                   node that it has not started yet, those placed earlier in this pass
                   included. A node starts Pods at its engine's pace (about four times
                   one Pod's start for six at once here), so a burst (a dead node's
                   Pods, a rollout) is spread over several nodes that start them side by
                   side, instead of queueing on the emptiest one.
Not modelled: NodeResourcesBalancedAllocation and ImageLocality (no image or balance
data here), preemption (so the message has no "preemption: ..." tail), topology keys
other than kubernetes.io/hostname, the per-container non-zero defaults (applied per Pod
here) and the sampling of a share of the nodes in large clusters (every node is judged).

How a pass stays fast (bench/scheduler_core_bench.py: 10,000 Pods of 60 templates onto
1,000 nodes at about 24,000 placements/s of CPU here when each template's Pods come
together, about 5,000/s when the templates are interleaved Pod by Pod): Pods with
equal specs share one canonical PlacementSpec, one PodClass (filters and scores worked
out once) and one _Ranking: every node's verdict and score parts for that class, a heap
of the feasible nodes by rank, and the multisets behind the normalisers. A placement
changes one node; each ranking catches up on the nodes changed since it last looked
(the state's log), pushes a new heap entry only for a node whose rank improved (one
whose rank worsened is corrected when it reaches the top), and rebuilds its heap only
when a normaliser (K, W, M, min, max) moves. A class with required pod affinity is
ranked afresh for every Pod, since its first Pod's placement changes its verdict on
every node.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from agent.control.placement import (
    ClusterSnapshot,
    PendingPod,
    Placed,
    PlacementSpec,
    ScheduleResult,
    SchedulerConfig,
    Unplaced,
)
from agent.control.sched_rules import Norms, PodClass, StaticView, scorer, static_view, unschedulable_message
from agent.control.sched_state import ClusterState

Decision = Placed | Unplaced


def schedule(
    snapshot: ClusterSnapshot, pending: Sequence[PendingPod], config: SchedulerConfig = SchedulerConfig()
) -> ScheduleResult:
    """Place the pending Pods, one after another, each counted before the next."""
    order = sorted(pending, key=lambda p: (-p.priority, p.creation_index, p.key))
    keys = {p.key for p in order}
    if len(keys) != len(order):
        raise ValueError("a pending Pod is listed twice")
    both = keys.intersection(a.key for a in snapshot.assigned)
    if both:
        raise ValueError(f"pods both pending and assigned: {sorted(both)}")
    state = ClusterState(snapshot, config, later=(p.spec for p in order))
    planner = _Planner(state)
    placements: list[Placed] = []
    unplaced: list[Unplaced] = []
    for pod in order:
        spec = state.canonical(pod.spec)
        decision = planner.decide(pod.key, spec)
        if isinstance(decision, Placed):
            state.add(spec, state.index[decision.node], starting=True)
            placements.append(decision)
        else:
            unplaced.append(decision)
    return ScheduleResult(tuple(placements), tuple(unplaced))


def what_if(
    snapshot: ClusterSnapshot, pods: Sequence[PendingPod], config: SchedulerConfig = SchedulerConfig()
) -> tuple[Decision, ...]:
    """Where each Pod would go if it alone were pending now: each is judged against the
    snapshot as it is (not counting the others), a Pod the snapshot assigns (same key)
    being first taken off its node. The snapshot is not changed."""
    state = ClusterState(snapshot, config, later=(p.spec for p in pods))
    planner = _Planner(state)
    decisions: list[Decision] = []
    for pod in pods:
        current = state.assigned.get(pod.key)
        if current is not None:
            state.remove(current[1], current[0])
        decisions.append(planner.decide(pod.key, state.canonical(pod.spec)))
        if current is not None:
            state.add(current[1], current[0])
    return tuple(decisions)


class _Planner:
    """The classes and rankings of one pass, shared by the Pods that have equal specs."""

    def __init__(self, state: ClusterState):
        self.state = state
        self.classes: dict[int, PodClass] = {}
        """By the id of a canonical spec (one instance per value, kept alive by the state)."""
        self.statics: dict[tuple, StaticView] = {}
        self.rankings: dict[int, _Ranking] = {}

    def decide(self, key: str, spec: PlacementSpec) -> Decision:
        """Where the Pod `key` goes now; `spec` is the state's canonical instance."""
        cls = self._pod_class(spec)
        if cls.placement_changes_other_nodes:
            ranking = _Ranking(cls, self.state)
        else:
            ranking = self.rankings.get(id(cls))
            if ranking is None:
                ranking = self.rankings[id(cls)] = _Ranking(cls, self.state)
        i = ranking.best()
        if i is not None:
            return Placed(key, self.state.nodes[i].name)
        message, reasons = unschedulable_message(len(self.state.nodes), ranking.histogram)
        return Unplaced(key, message, reasons)

    def _pod_class(self, spec: PlacementSpec) -> PodClass:
        cls = self.classes.get(id(spec))
        if cls is None:
            key = (spec.tolerations, spec.node_selector, spec.node_affinity)
            static = self.statics.get(key)
            if static is None:
                static = self.statics[key] = static_view(self.state, *key)
            cls = self.classes[id(spec)] = PodClass(spec, self.state, static)
        return cls


def _inc(multiset: dict[int, int], value: int) -> None:
    multiset[value] = multiset.get(value, 0) + 1


def _dec(multiset: dict[int, int], value: int) -> None:
    left = multiset[value] - 1
    if left:
        multiset[value] = left
    else:
        del multiset[value]


class _Ranking:
    """Every node's verdict for one PodClass, and the feasible ones in a heap by score.

    Invariant once best() has caught up: `reasons[i]` is node i's current verdict (None =
    passes every filter), the histogram and the normalisers' multisets count exactly
    those verdicts, `rank[i]` is each feasible node's rank under `norms`, and the heap
    holds one live entry (stamp equal to `stamp[i]`) per feasible node, whose rank is
    `rank[i]` or better; other entries are dead and skipped. So the first live entry
    whose rank is current is the best node."""

    def __init__(self, cls: PodClass, state: ClusterState):
        n = len(state.nodes)
        self.cls = cls
        self.state = state
        self.static_reasons = cls.static.reasons
        self.reasons: list[tuple[str, ...] | None] = list(cls.static.reasons)
        self.histogram: dict[str, int] = {}
        self.fit = [0] * n
        self.app_count = [0] * n
        self.pod_affinity = [0] * n
        self.rank: list[tuple[int, int] | None] = [None] * n
        """(-score, Pods on the node) of each feasible node, None for the others: the lower
        the better. A live heap entry may hold an older, better rank: a node whose rank
        worsens keeps its entry until it reaches the top, where it is corrected; only an
        improvement needs a new entry."""
        self.stamp = [0] * n
        self.stamps = 0
        self.prefer_taints: dict[int, int] = {}
        self.preferred_weight: dict[int, int] = {}
        self.app_counts: dict[int, int] = {}
        self.pod_affinities: dict[int, int] = {}
        self.cursor = len(state.log)
        self.anywhere = cls.affinity_anywhere()
        for reasons in self.static_reasons:
            for reason in reasons or ():
                self.histogram[reason] = self.histogram.get(reason, 0) + 1
        self._evaluate([i for i in range(n) if self.static_reasons[i] is None], forget=False)
        self.norms = self._norms()
        self.heap: list[tuple[int, int, int, int]] = []
        self._rebuild()

    def best(self) -> int | None:
        """The feasible node with the highest score, or None. Among equal scores the node
        with the fewest Pods wins (so that Pods too small to move a score still spread),
        then the lowest index (name)."""
        log = self.state.log
        if self.cursor < len(log):
            static = self.static_reasons
            changed = [i for i in dict.fromkeys(log[self.cursor :]) if static[i] is None]
            self.cursor = len(log)
            self._evaluate(changed, forget=True)
            norms = self._norms()
            if norms != self.norms:
                self.norms = norms
                self._rebuild()
            else:
                self._push(changed)
        heap, stamp, reasons, rank = self.heap, self.stamp, self.reasons, self.rank
        while heap:
            negative_score, pods, i, entry_stamp = heap[0]
            if stamp[i] != entry_stamp or reasons[i] is not None:
                heapq.heappop(heap)
            elif (negative_score, pods) != rank[i]:
                heapq.heapreplace(heap, (*rank[i], i, entry_stamp))
            else:
                return i
        return None

    def _evaluate(self, indices: list[int], forget: bool) -> None:
        """Judge these nodes (all pass the static filters): record each verdict in the
        histogram and each feasible node's score parts in the normalisers' multisets.
        `forget`: the nodes were judged before; only what changed is recounted."""
        cls, state = self.cls, self.state
        verdicts, fit, anywhere, histogram = self.reasons, self.fit, self.anywhere, self.histogram
        plain = cls.plain_filters
        cpu, memory = cls.cpu, cls.memory
        pods_free, cpu_free, memory_free = state.pods_free, state.cpu_free, state.memory_free
        fit_score, dynamic_reasons = cls.fit_score, cls.dynamic_reasons
        prefer = cls.static.prefer_taints if cls.uses_prefer_taints else None
        preferred = cls.static.preferred_weight if cls.uses_preferred_weight else None
        app, app_count, app_counts = cls.app, self.app_count, self.app_counts
        pod_affinity = self.pod_affinity if cls.pod_affinity_scoring else None
        for i in indices:
            if (
                plain
                and pods_free[i] > 0
                and (not cpu or cpu <= cpu_free[i])
                and (not memory or memory <= memory_free[i])
            ):
                reasons = None
            else:
                reasons = dynamic_reasons(state, i, anywhere)
            old = verdicts[i] if forget else ()
            verdicts[i] = reasons
            if reasons is not None:
                self.rank[i] = None
                if old is None:  # was feasible: its score parts leave the multisets
                    if prefer is not None:
                        _dec(self.prefer_taints, prefer[i])
                    if preferred is not None:
                        _dec(self.preferred_weight, preferred[i])
                    if app is not None:
                        _dec(app_counts, app_count[i])
                    if pod_affinity is not None:
                        _dec(self.pod_affinities, pod_affinity[i])
                elif old != reasons:
                    for reason in old:
                        histogram[reason] -= 1
                else:
                    continue
                for reason in reasons:
                    histogram[reason] = histogram.get(reason, 0) + 1
                continue
            fit[i] = fit_score(i)
            if old is None:  # feasible before and now: only changed parts are recounted
                if app is not None and app[i] != app_count[i]:
                    _dec(app_counts, app_count[i])
                    app_count[i] = count = app[i]
                    _inc(app_counts, count)
                if pod_affinity is not None:
                    raw = cls.pod_affinity_raw(i)
                    if raw != pod_affinity[i]:
                        _dec(self.pod_affinities, pod_affinity[i])
                        pod_affinity[i] = raw
                        _inc(self.pod_affinities, raw)
                continue
            for reason in old:
                histogram[reason] -= 1
            if prefer is not None:
                _inc(self.prefer_taints, prefer[i])
            if preferred is not None:
                _inc(self.preferred_weight, preferred[i])
            if app is not None:
                app_count[i] = count = app[i]
                _inc(app_counts, count)
            if pod_affinity is not None:
                pod_affinity[i] = raw = cls.pod_affinity_raw(i)
                _inc(self.pod_affinities, raw)

    def _norms(self) -> Norms:
        affinities = self.pod_affinities
        return Norms(
            max(self.prefer_taints, default=0),
            max(self.preferred_weight, default=0),
            max(self.app_counts, default=0),
            min(affinities, default=0),
            max(affinities, default=0),
        )

    def _push(self, indices: list[int]) -> None:
        """Rerank these nodes under `norms`; a feasible one whose rank improved (or that was
        not feasible before) gets a new heap entry, one whose rank worsened keeps its entry."""
        scored = scorer(self.state.config, self.norms, self.cls.app is not None)
        prefer, preferred = self.cls.static.prefer_taints, self.cls.static.preferred_weight
        fit, app_count, pod_affinity, verdicts = self.fit, self.app_count, self.pod_affinity, self.reasons
        heap, rank, stamp, pod_count = self.heap, self.rank, self.stamp, self.state.pod_count
        starting = self.state.starting
        for i in indices:
            if verdicts[i] is None:
                new = (-scored(fit[i], prefer[i], preferred[i], app_count[i], pod_affinity[i], starting[i]),
                       pod_count[i])
                old = rank[i]
                rank[i] = new
                if old is None or new < old:
                    self.stamps += 1
                    stamp[i] = self.stamps
                    heapq.heappush(heap, (*new, i, self.stamps))

    def _rebuild(self) -> None:
        """A fresh heap: every feasible node ranked under the current norms."""
        scored = scorer(self.state.config, self.norms, self.cls.app is not None)
        prefer, preferred = self.cls.static.prefer_taints, self.cls.static.preferred_weight
        fit, app_count, pod_affinity = self.fit, self.app_count, self.pod_affinity
        rank, stamp, stamps, pod_count = self.rank, self.stamp, self.stamps, self.state.pod_count
        starting = self.state.starting
        heap = []
        for i, reasons in enumerate(self.reasons):
            if reasons is None:
                stamps += 1
                stamp[i] = stamps
                score = scored(fit[i], prefer[i], preferred[i], app_count[i], pod_affinity[i], starting[i])
                rank[i] = (-score, pod_count[i])
                heap.append((-score, pod_count[i], i, stamps))
        self.stamps = stamps
        heapq.heapify(heap)
        self.heap = heap
