"""The scheduler's running totals: per node, what is requested, which host ports are
bound, how many Pods of each app run, and how many Pods match each pod affinity term.

Owns: ClusterState (built from a ClusterSnapshot, then changed only by add/remove, one
Pod at a time) and ResolvedTerm. Rules:
- Nodes are held sorted by name; a node's index is its rank, so "lowest index" is the
  deterministic tie-break by name everywhere.
- Every total is kept exact under add and remove: remove(spec, i) undoes add(spec, i).
  Free capacity may be negative when the snapshot itself is overcommitted; the filters
  then refuse every Pod that requests that resource, as kube-scheduler does.
- Counting per pod affinity term is done only for terms some Pod asks about, built on
  first use from the Pods on each node and kept current by add/remove. A node without
  the kubernetes.io/hostname label is in no topology domain, so no term counts there.
- Terms held by Pods (their required anti-affinity, which repels incoming Pods, and
  their affinity terms, which score incoming Pods) are registered up front for the
  assigned Pods and for every Pod that may be placed later, so a Pod's view of which
  held terms concern it never changes within a pass.
- `log` lists the index of every node changed since construction, so incremental
  readers can catch up on what changed since they last looked.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.control.placement import (
    HOSTNAME_LABEL,
    ClusterSnapshot,
    PlacementSpec,
    PodAffinityTerm,
    SchedulerConfig,
)
from agent.control.selectors import LabelSelector

BIND_ALL = "0.0.0.0"


@dataclass(frozen=True, slots=True)
class ResolvedTerm:
    """A pod affinity term with its namespaces resolved (empty = the holder's own)."""

    namespaces: frozenset[str]
    selector: LabelSelector | None

    @classmethod
    def of(cls, term: PodAffinityTerm, holder_namespace: str) -> ResolvedTerm:
        return cls(frozenset(term.namespaces or (holder_namespace,)), term.label_selector)

    def matches(self, spec: PlacementSpec) -> bool:
        return self.selector is not None and spec.namespace in self.namespaces and self.selector.matches(spec.labels)


Conjunction = tuple[ResolvedTerm, ...]
"""Terms a Pod must match all at once to be counted (one term, or a Pod's required affinity)."""


def matches_all(terms: Conjunction, spec: PlacementSpec) -> bool:
    return all(t.matches(spec) for t in terms)


@dataclass(frozen=True, slots=True)
class HeldTerms:
    """What a Pod's own affinity terms do to Pods placed after it on its node."""

    repelling: tuple[ResolvedTerm, ...]
    """Required anti-affinity: a matching Pod may not join it."""
    scoring: tuple[tuple[ResolvedTerm, int], ...]
    """(term, signed weight): a matching Pod's score on its node moves by the weight."""


_NO_HELD = HeldTerms((), ())


def port_key(host_ip: str, protocol: str, port: int) -> tuple[str, str, int]:
    """How a host port is kept: an empty host IP is 0.0.0.0 (HostPortInfo.sanitize)."""
    return (host_ip or BIND_ALL, protocol, port)


class ClusterState:
    def __init__(self, snapshot: ClusterSnapshot, config: SchedulerConfig, later: Iterable[PlacementSpec] = ()):
        nodes = sorted(snapshot.nodes, key=lambda node: node.name)
        names = [node.name for node in nodes]
        if len(set(names)) != len(names):
            raise ValueError("duplicate node names in the snapshot")
        hostnames = [node.labels[HOSTNAME_LABEL] for node in nodes if HOSTNAME_LABEL in node.labels]
        if len(set(hostnames)) != len(hostnames):
            raise ValueError(f"two nodes share a {HOSTNAME_LABEL} label")
        n = len(nodes)
        self.config = config
        self.nodes = nodes
        self.index = {name: i for i, name in enumerate(names)}
        self.allocatable_cpu = [node.allocatable_cpu_millis for node in nodes]
        self.allocatable_memory = [node.allocatable_memory_bytes for node in nodes]
        self.cpu_free = [node.allocatable_cpu_millis for node in nodes]
        self.memory_free = [node.allocatable_memory_bytes for node in nodes]
        self.pods_free = [node.allocatable_pods for node in nodes]
        self.pod_count = [0] * n
        self.starting = [0] * n
        """Pods placed on each node that it has not started yet (placed in this pass included)."""
        self.cpu_scored = [0] * n
        """Requested cpu with kube-scheduler's non-zero default per Pod: what scoring reads."""
        self.memory_scored = [0] * n
        self.ports: list[dict[tuple[str, str, int], int]] = [{} for _ in range(n)]
        self.ports_any_ip: list[dict[tuple[str, int], int]] = [{} for _ in range(n)]
        self.pods_on: list[list[PlacementSpec]] = [[] for _ in range(n)]
        self.in_domain = [HOSTNAME_LABEL in node.labels for node in nodes]
        self.app_counts: dict[tuple[str, str], list[int]] = {}
        self.counters: dict[Conjunction, list[int]] = {}
        self.held_repelling: dict[ResolvedTerm, list[int]] = {}
        self.held_scoring: dict[tuple[ResolvedTerm, int], list[int]] = {}
        self.log: list[int] = []
        self.assigned: dict[str, tuple[int, PlacementSpec]] = {}
        self._canonical: dict[PlacementSpec, PlacementSpec] = {}
        self._held: dict[int, tuple[PlacementSpec, HeldTerms]] = {}
        self._matched: dict[int, tuple[PlacementSpec, int, tuple[list[int], ...]]] = {}
        for spec in later:
            self._register(self.held_terms(self.canonical(spec)))
        for pod in snapshot.assigned:
            if pod.key in self.assigned:
                raise ValueError(f"pod {pod.key} is assigned twice")
            i = self.index.get(pod.node)
            if i is not None:
                spec = self.canonical(pod.spec)
                self._register(self.held_terms(spec))
                self.add(spec, i, starting=pod.starting)
                self.assigned[pod.key] = (i, spec)
        self.log.clear()

    def canonical(self, spec: PlacementSpec) -> PlacementSpec:
        """The one instance of this spec's value that the state works with: what is worked
        out per spec (held terms, matching counters, classes) is then looked up by identity."""
        return self._canonical.setdefault(spec, spec)

    # ------------------------------------------------------------ reading

    def app_list(self, spec: PlacementSpec) -> list[int] | None:
        """Pods per node with the spec's app key (None when it has none); live, not a copy."""
        if not spec.app_key:
            return None
        key = (spec.namespace, spec.app_key)
        counts = self.app_counts.get(key)
        if counts is None:
            counts = self.app_counts[key] = [0] * len(self.nodes)
        return counts

    def counter(self, terms: Conjunction) -> list[int]:
        """Pods per node matching every term; live, kept current by add/remove."""
        counts = self.counters.get(terms)
        if counts is None:
            counts = [
                sum(1 for spec in pods if matches_all(terms, spec)) if domain else 0
                for pods, domain in zip(self.pods_on, self.in_domain)
            ]
            self.counters[terms] = counts
        return counts

    def matched_counters(self, spec: PlacementSpec) -> tuple[list[int], ...]:
        """The counters whose terms the spec matches (worked out once per spec and counter set)."""
        cached = self._matched.get(id(spec))
        if cached is not None and cached[1] == len(self.counters):
            return cached[2]
        matched = tuple(counts for terms, counts in self.counters.items() if matches_all(terms, spec))
        self._matched[id(spec)] = (spec, len(self.counters), matched)  # counters are only ever added
        return matched

    def held_terms(self, spec: PlacementSpec) -> HeldTerms:
        if not spec.pod_affinity:
            return _NO_HELD
        cached = self._held.get(id(spec))
        if cached is not None:
            return cached[1]
        affinity, ns = spec.pod_affinity, spec.namespace
        hard = self.config.hard_pod_affinity_weight
        scoring = [(ResolvedTerm.of(t, ns), hard) for t in affinity.required_affinity if hard]
        scoring += [(ResolvedTerm.of(w.term, ns), w.weight) for w in affinity.preferred_affinity]
        scoring += [(ResolvedTerm.of(w.term, ns), -w.weight) for w in affinity.preferred_anti_affinity]
        held = HeldTerms(tuple(ResolvedTerm.of(t, ns) for t in affinity.required_anti_affinity), tuple(scoring))
        self._held[id(spec)] = (spec, held)  # the spec is kept so that its id stays its own
        return held

    # ------------------------------------------------------------ changing

    def add(self, spec: PlacementSpec, i: int, *, starting: bool = False) -> None:
        if starting:
            self.starting[i] += 1
        self._apply(spec, i, 1)
        self.pods_on[i].append(spec)

    def remove(self, spec: PlacementSpec, i: int, *, starting: bool = False) -> None:
        if starting:
            self.starting[i] -= 1
        self.pods_on[i].remove(spec)
        self._apply(spec, i, -1)

    def _register(self, held: HeldTerms) -> None:
        n = len(self.nodes)
        for term in held.repelling:
            self.held_repelling.setdefault(term, [0] * n)
        for weighted in held.scoring:
            self.held_scoring.setdefault(weighted, [0] * n)

    def _apply(self, spec: PlacementSpec, i: int, sign: int) -> None:
        config = self.config
        self.cpu_free[i] -= sign * spec.cpu_millis
        self.memory_free[i] -= sign * spec.memory_bytes
        self.pods_free[i] -= sign
        self.pod_count[i] += sign
        self.cpu_scored[i] += sign * (spec.cpu_millis or config.default_cpu_request_millis)
        self.memory_scored[i] += sign * (spec.memory_bytes or config.default_memory_request_bytes)
        for hp in spec.host_ports:
            _count(self.ports[i], port_key(hp.host_ip, hp.protocol, hp.port), sign)
            _count(self.ports_any_ip[i], (hp.protocol, hp.port), sign)
        counts = self.app_list(spec)
        if counts is not None:
            counts[i] += sign
        if self.in_domain[i]:
            for counts in self.matched_counters(spec):
                counts[i] += sign
            held = self.held_terms(spec)
            for term in held.repelling:
                self.held_repelling[term][i] += sign
            for weighted in held.scoring:
                self.held_scoring[weighted][i] += sign
        self.log.append(i)


def _count(counts: dict, key: object, sign: int) -> None:
    value = counts.get(key, 0) + sign
    if value:
        counts[key] = value
    else:
        del counts[key]
