"""Property tests of the scheduler against a brute-force oracle written straight from
kube-scheduler's rules (filters, the FitError message, the score formula of
scheduler.py's banner): random clusters and Pods, every decision of a pass replayed."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.control.placement import (
    HOSTNAME_LABEL,
    AssignedPod,
    ClusterSnapshot,
    HostPort,
    InterPodAffinity,
    NodeInfo,
    PendingPod,
    Placed,
    PlacementSpec,
    PodAffinityTerm,
    SchedulerConfig,
    ScoringStrategy,
    WeightedPodAffinityTerm,
)
from agent.control.scheduler import schedule, what_if
from agent.control.selectors import (
    EQUAL,
    EXISTS,
    GT,
    IN,
    NO_EXECUTE,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    LabelSelector,
    NodeAffinity,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PreferredSchedulingTerm,
    Taint,
    Toleration,
    tolerated,
)

MIB = 1024**2
UNSCHEDULABLE = Taint("node.kubernetes.io/unschedulable", "", NO_SCHEDULE)

# ---------------------------------------------------------------- the oracle


def bind_all(ip: str) -> bool:
    return ip in ("", "0.0.0.0")


def term_matches(term: PodAffinityTerm, holder_namespace: str, pod: PlacementSpec) -> bool:
    namespaces = term.namespaces or (holder_namespace,)
    return term.label_selector is not None and pod.namespace in namespaces and term.label_selector.matches(pod.labels)


def oracle_reasons(
    node: NodeInfo, spec: PlacementSpec, placed: dict[str, list[PlacementSpec]], nodes: list[NodeInfo]
) -> list[str] | None:
    """Why kube-scheduler would refuse `node` for `spec`, scanning every Pod; None: it fits."""
    if node.unschedulable and not tolerated(spec.tolerations, UNSCHEDULABLE):
        return ["node(s) were unschedulable"]
    for taint in node.taints:
        if taint.effect in (NO_SCHEDULE, NO_EXECUTE) and not tolerated(spec.tolerations, taint):
            return [f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"]
    if not node.ready:
        return ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    selector_ok = all(node.labels.get(k) == v for k, v in spec.node_selector.items())
    if not selector_ok or (spec.node_affinity is not None and not spec.node_affinity.required_match(node.labels)):
        return ["node(s) didn't match Pod's node affinity/selector"]
    here = placed[node.name]
    for want in spec.host_ports:
        for other in here:
            for have in other.host_ports:
                same = (have.protocol, have.port) == (want.protocol, want.port)
                if same and (bind_all(want.host_ip) or bind_all(have.host_ip) or want.host_ip == have.host_ip):
                    return ["node(s) didn't have free ports for the requested pod ports"]
    reasons = []
    if len(here) + 1 > node.allocatable_pods:
        reasons.append("Too many pods")
    if spec.cpu_millis and spec.cpu_millis > node.allocatable_cpu_millis - sum(p.cpu_millis for p in here):
        reasons.append("Insufficient cpu")
    if spec.memory_bytes and spec.memory_bytes > node.allocatable_memory_bytes - sum(p.memory_bytes for p in here):
        reasons.append("Insufficient memory")
    if reasons:
        return reasons
    in_domain = HOSTNAME_LABEL in node.labels
    affinity = spec.pod_affinity
    if affinity.required_affinity:

        def wanted(p: PlacementSpec) -> bool:
            return all(term_matches(t, spec.namespace, p) for t in affinity.required_affinity)

        if not in_domain:
            return ["node(s) didn't match pod affinity rules"]
        if not any(wanted(p) for p in here):
            anywhere = any(wanted(p) for n in nodes if HOSTNAME_LABEL in n.labels for p in placed[n.name])
            if anywhere or not wanted(spec):
                return ["node(s) didn't match pod affinity rules"]
    if in_domain:
        for t in affinity.required_anti_affinity:
            if any(term_matches(t, spec.namespace, p) for p in here):
                return ["node(s) didn't match pod anti-affinity rules"]
        for p in here:
            if any(term_matches(t, p.namespace, spec) for t in p.pod_affinity.required_anti_affinity):
                return ["node(s) didn't satisfy existing pods anti-affinity rules"]
    return None


def oracle_message(total: int, histogram: Counter) -> str:
    if total == 0:
        return "no nodes available to schedule pods"
    return f"0/{total} nodes are available: " + ", ".join(sorted(f"{c} {r}" for r, c in histogram.items())) + "."


def oracle_score_parts(node, spec, placed, config):
    """(fit, untolerated PreferNoSchedule taints, preferred node weight, app count, raw pod affinity)."""
    here = placed[node.name]
    total = weights = 0
    for capacity, used, own, weight in (
        (
            node.allocatable_cpu_millis,
            sum(p.cpu_millis or 100 for p in here),
            spec.cpu_millis or 100,
            config.cpu_weight,
        ),
        (
            node.allocatable_memory_bytes,
            sum(p.memory_bytes or 200 * MIB for p in here),
            spec.memory_bytes or 200 * MIB,
            config.memory_weight,
        ),
    ):
        if capacity == 0 or weight == 0:
            continue
        requested = used + own
        if config.scoring_strategy is ScoringStrategy.LEAST_ALLOCATED:
            score = (capacity - requested) * 100 // capacity if requested <= capacity else 0
        else:
            score = min(requested, capacity) * 100 // capacity
        total += score * weight
        weights += weight
    fit = total // weights if weights else 0
    prefer = sum(1 for t in node.taints if t.effect == PREFER_NO_SCHEDULE and not tolerated(spec.tolerations, t))
    preferred = spec.node_affinity.preferred_weight(node.labels) if spec.node_affinity else 0
    app = sum(1 for p in here if p.app_key == spec.app_key and p.namespace == spec.namespace) if spec.app_key else 0
    raw = 0
    if HOSTNAME_LABEL in node.labels:
        mine = spec.pod_affinity
        for p in here:
            raw += sum(w.weight for w in mine.preferred_affinity if term_matches(w.term, spec.namespace, p))
            raw -= sum(w.weight for w in mine.preferred_anti_affinity if term_matches(w.term, spec.namespace, p))
            theirs = p.pod_affinity
            raw += config.hard_pod_affinity_weight * sum(
                1 for t in theirs.required_affinity if term_matches(t, p.namespace, spec)
            )
            raw += sum(w.weight for w in theirs.preferred_affinity if term_matches(w.term, p.namespace, spec))
            raw -= sum(w.weight for w in theirs.preferred_anti_affinity if term_matches(w.term, p.namespace, spec))
    return fit, prefer, preferred, app, raw


def oracle_best(feasible: list[NodeInfo], spec, placed, config, starting=None) -> str:
    parts = {n.name: oracle_score_parts(n, spec, placed, config) for n in feasible}
    k = max(p[1] for p in parts.values())
    w = max(p[2] for p in parts.values())
    m = max(p[3] for p in parts.values())
    low, high = min(p[4] for p in parts.values()), max(p[4] for p in parts.values())

    def total(name: str) -> int:
        fit, prefer, preferred, app, raw = parts[name]
        score = config.resource_fit_weight * fit
        score += config.taint_toleration_weight * (100 - 100 * prefer // k if k else 100)
        score += config.node_affinity_weight * (100 * preferred // w if w else 0)
        if spec.app_key:
            score += config.app_spread_weight * (100 * (m - app) // m if m else 100)
        score += config.inter_pod_affinity_weight * (100 * (raw - low) // (high - low) if high > low else 0)
        if config.scoring_strategy is ScoringStrategy.LEAST_ALLOCATED:
            score += config.start_spread_weight * (100 // (1 + (starting or {}).get(name, 0)))
        return score

    return min(parts, key=lambda name: (-total(name), len(placed[name]), name))


# ---------------------------------------------------------------- random clusters

TAINTS = [
    Taint("a", "1", NO_SCHEDULE),
    Taint("b", "", NO_EXECUTE),
    Taint("c", "x", PREFER_NO_SCHEDULE),
    Taint("d", "", PREFER_NO_SCHEDULE),
]
TOLERATIONS = [
    Toleration("a", EQUAL, "1"),
    Toleration("a", EQUAL, "2"),
    Toleration("b", EXISTS, effect=NO_EXECUTE),
    Toleration("c", EXISTS, effect=PREFER_NO_SCHEDULE),
    Toleration("", EXISTS),
    Toleration("node.kubernetes.io/unschedulable", EXISTS),
]
PORTS = [
    HostPort(80),
    HostPort(80, "UDP"),
    HostPort(80, host_ip="10.0.0.1"),
    HostPort(80, host_ip="10.0.0.2"),
    HostPort(443),
]
APPS = ["web", "db", "cache"]
TERMS = [PodAffinityTerm(LabelSelector({"app": app})) for app in APPS] + [
    PodAffinityTerm(LabelSelector({"app": "web"}), ("prod",)),
    PodAffinityTerm(None),
]
NODE_TERMS = [
    NodeSelectorTerm((NodeSelectorRequirement("zone", IN, ("z1",)),)),
    NodeSelectorTerm((NodeSelectorRequirement("cores", GT, ("4",)),)),
    NodeSelectorTerm((NodeSelectorRequirement("cores", GT, ("four",)),)),
]


@st.composite
def nodes_strategy(draw) -> list[NodeInfo]:
    count = draw(st.integers(0, 7))
    nodes = []
    for i in range(count):
        name = f"n{i}"
        labels = {"zone": draw(st.sampled_from(["z1", "z2"])), "cores": draw(st.sampled_from(["2", "8", "x"]))}
        if draw(st.integers(0, 9)):  # a node without the hostname label now and then
            labels[HOSTNAME_LABEL] = name
        nodes.append(
            NodeInfo(
                name,
                draw(st.sampled_from([0, 500, 1000, 2000, 4000])),
                draw(st.sampled_from([256 * MIB, 1024 * MIB, 4096 * MIB])),
                draw(st.sampled_from([1, 2, 3, 5, 110])),
                labels=labels,
                taints=tuple(draw(st.lists(st.sampled_from(TAINTS), max_size=2, unique=True))),
                unschedulable=draw(st.integers(0, 7)) == 0,
                ready=draw(st.integers(0, 7)) != 0,
            )
        )
    return nodes


def weighted(draw) -> tuple[WeightedPodAffinityTerm, ...]:
    terms = draw(st.lists(st.sampled_from(TERMS), max_size=2))
    return tuple(WeightedPodAffinityTerm(draw(st.integers(1, 100)), t) for t in terms)


@st.composite
def spec_strategy(draw) -> PlacementSpec:
    app = draw(st.sampled_from(APPS))
    node_affinity = None
    if draw(st.booleans()):
        required = draw(st.one_of(st.none(), st.lists(st.sampled_from(NODE_TERMS), min_size=1, max_size=2)))
        preferred = draw(st.lists(st.sampled_from(NODE_TERMS), max_size=2))
        node_affinity = NodeAffinity(
            required=None if required is None else tuple(required),
            preferred=tuple(PreferredSchedulingTerm(draw(st.integers(1, 100)), t) for t in preferred),
        )
    pod_affinity = InterPodAffinity()
    if draw(st.booleans()):
        pod_affinity = InterPodAffinity(
            required_affinity=tuple(draw(st.lists(st.sampled_from(TERMS), max_size=1))),
            preferred_affinity=weighted(draw),
            required_anti_affinity=tuple(draw(st.lists(st.sampled_from(TERMS), max_size=1))),
            preferred_anti_affinity=weighted(draw),
        )
    return PlacementSpec(
        namespace=draw(st.sampled_from(["default", "prod"])),
        labels={"app": app},
        app_key=draw(st.sampled_from([app, app, ""])),
        cpu_millis=draw(st.sampled_from([0, 100, 300, 700, 1500])),
        memory_bytes=draw(st.sampled_from([0, 128 * MIB, 600 * MIB])),
        host_ports=tuple(draw(st.lists(st.sampled_from(PORTS), max_size=2, unique=True))),
        node_selector=draw(st.sampled_from([{}, {}, {"zone": "z1"}])),
        node_affinity=node_affinity,
        tolerations=tuple(draw(st.lists(st.sampled_from(TOLERATIONS), max_size=2, unique=True))),
        pod_affinity=pod_affinity,
    )


@st.composite
def cluster_strategy(draw):
    """(snapshot, pending, config): assigned Pods fit their nodes' resources; specs repeat."""
    nodes = draw(nodes_strategy())
    specs = draw(st.lists(spec_strategy(), min_size=1, max_size=4))
    assigned = []
    used = {n.name: [0, 0, 0] for n in nodes}
    for k in range(draw(st.integers(0, 8)) if nodes else 0):
        spec = draw(st.sampled_from(specs))
        node = draw(st.sampled_from(nodes))
        cpu, memory, count = used[node.name]
        if (
            cpu + spec.cpu_millis <= node.allocatable_cpu_millis
            and memory + spec.memory_bytes <= node.allocatable_memory_bytes
            and count < node.allocatable_pods
        ):
            used[node.name] = [cpu + spec.cpu_millis, memory + spec.memory_bytes, count + 1]
            assigned.append(AssignedPod(f"old{k}", node.name, spec, starting=draw(st.booleans())))
    pending = [
        PendingPod(
            f"new{k:02d}", draw(st.sampled_from(specs)), draw(st.sampled_from([0, 0, 5])), draw(st.integers(0, 3))
        )
        for k in range(draw(st.integers(1, 14)))
    ]
    config = SchedulerConfig(
        scoring_strategy=draw(st.sampled_from(list(ScoringStrategy))),
        memory_weight=draw(st.sampled_from([1, 1, 0, 3])),
    )
    return ClusterSnapshot(tuple(nodes), tuple(assigned)), pending, config


def pass_order(pending: list[PendingPod]) -> list[PendingPod]:
    return sorted(pending, key=lambda p: (-p.priority, p.creation_index, p.key))


PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- the properties


@PROPERTY
@given(cluster_strategy())
def test_every_decision_of_a_pass_is_the_oracles(case):
    """Each placed Pod passes every filter on its node and goes to the oracle's best node;
    each unplaced Pod fits no node (brute force) and carries the oracle's exact message;
    no node ends overcommitted in any resource."""
    snapshot, pending, config = case
    result = schedule(snapshot, pending, config)
    chosen = {p.pod: p.node for p in result.placements}
    unplaced = {u.pod: u for u in result.unplaced}
    assert len(chosen) + len(unplaced) == len(pending)
    nodes = list(snapshot.nodes)
    placed = {n.name: [] for n in nodes}
    starting = Counter()
    for pod in snapshot.assigned:
        placed[pod.node].append(pod.spec)
        starting[pod.node] += pod.starting
    for pod in pass_order(pending):
        verdicts = {n.name: oracle_reasons(n, pod.spec, placed, nodes) for n in nodes}
        feasible = [n for n in nodes if verdicts[n.name] is None]
        if pod.key in chosen:
            assert verdicts[chosen[pod.key]] is None, (pod.key, verdicts[chosen[pod.key]])
            assert chosen[pod.key] == oracle_best(feasible, pod.spec, placed, config, starting)
            placed[chosen[pod.key]].append(pod.spec)
            starting[chosen[pod.key]] += 1
        else:
            assert not feasible, (pod.key, [n.name for n in feasible])
            histogram = Counter(reason for reasons in verdicts.values() for reason in reasons)
            assert unplaced[pod.key].message == oracle_message(len(nodes), histogram)
            assert dict(unplaced[pod.key].reasons) == dict(histogram)
    for n in nodes:
        assert sum(p.cpu_millis for p in placed[n.name]) <= n.allocatable_cpu_millis
        assert sum(p.memory_bytes for p in placed[n.name]) <= n.allocatable_memory_bytes
        assert len(placed[n.name]) <= n.allocatable_pods


@PROPERTY
@given(cluster_strategy())
def test_a_pass_decides_as_one_what_if_per_pod_in_turn(case):
    """The incremental ranking of a pass equals judging each Pod afresh against the
    snapshot with the earlier placements added."""
    snapshot, pending, config = case
    result = schedule(snapshot, pending, config)
    decisions = {d.pod: d for d in result.placements + result.unplaced}
    assigned = list(snapshot.assigned)
    for pod in pass_order(pending):
        [alone] = what_if(ClusterSnapshot(snapshot.nodes, tuple(assigned)), [pod], config)
        assert alone == decisions[pod.key]
        if isinstance(alone, Placed):
            assigned.append(AssignedPod(pod.key, alone.node, pod.spec, starting=True))


@settings(max_examples=200, deadline=None)
@given(
    node_count=st.integers(1, 12),
    cpu=st.sampled_from([1000, 4000, 16000]),
    memory_gib=st.sampled_from([1, 8, 64]),
    request=st.sampled_from([0, 10, 100, 250]),
    per_node=st.integers(0, 8),
    extra=st.integers(0, 11),
    with_app=st.booleans(),
)
def test_identical_pods_on_equal_nodes_spread_within_one(
    node_count, cpu, memory_gib, request, per_node, extra, with_app
):
    """Default scoring: Pods of one template on equal nodes end at most one apart."""
    nodes = tuple(
        NodeInfo(f"n{i:02d}", cpu, memory_gib * 1024**3, 110, labels={HOSTNAME_LABEL: f"n{i:02d}"})
        for i in range(node_count)
    )
    spec = PlacementSpec(
        labels={"app": "w"}, app_key="w" if with_app else "", cpu_millis=request, memory_bytes=request * MIB
    )
    room = min(cpu // request, memory_gib * 1024 // request, 110) if request else 110
    count = min(node_count * per_node + extra % node_count, node_count * room)
    result = schedule(ClusterSnapshot(nodes), [PendingPod(f"p{k:03d}", spec, creation_index=k) for k in range(count)])
    assert not result.unplaced
    per = Counter(p.node for p in result.placements)
    counts = [per[n.name] for n in nodes]
    assert max(counts) - min(counts) <= 1


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([(1000, 2), (2000, 4), (4000, 8)]), min_size=2, max_size=6),
    templates=st.lists(
        st.tuples(
            st.sampled_from([0, 100, 400, 900]), st.sampled_from(["", "a", "b"]), st.sampled_from([{}, {"pool": "x"}])
        ),
        min_size=2,
        max_size=4,
    ),
    picks=st.lists(st.integers(0, 3), min_size=10, max_size=60),
    strategy=st.sampled_from(list(ScoringStrategy)),
)
def test_long_interleaved_passes_decide_as_fresh_judgements(sizes, templates, picks, strategy):
    """Many Pods of a few templates in any interleaving: the incremental rankings (caught
    up on changed nodes, ranks corrected lazily) decide exactly as a fresh judgement."""
    nodes = tuple(
        NodeInfo(f"n{i}", cpu, gib * 1024**3, 110, labels={HOSTNAME_LABEL: f"n{i}", **({"pool": "x"} if i % 2 else {})})
        for i, (cpu, gib) in enumerate(sizes)
    )
    specs = [
        PlacementSpec(
            labels={"app": app or "none"}, app_key=app, cpu_millis=cpu, memory_bytes=cpu * MIB, node_selector=sel
        )
        for cpu, app, sel in templates
    ]
    pending = [PendingPod(f"p{k:02d}", specs[pick % len(specs)], creation_index=k) for k, pick in enumerate(picks)]
    config = SchedulerConfig(scoring_strategy=strategy)
    result = schedule(ClusterSnapshot(nodes), pending, config)
    decisions = {d.pod: d for d in result.placements + result.unplaced}
    assigned: list[AssignedPod] = []
    for pod in pending:
        [alone] = what_if(ClusterSnapshot(nodes, tuple(assigned)), [pod], config)
        assert alone == decisions[pod.key]
        if isinstance(alone, Placed):
            assigned.append(AssignedPod(pod.key, alone.node, pod.spec, starting=True))


@PROPERTY
@given(cluster_strategy(), st.data())
def test_what_if_of_many_pods_equals_what_if_of_each(case, data):
    """One what_if call judging many Pods (assigned ones taken off and put back in turn,
    its rankings reused across them) answers as one call per Pod."""
    snapshot, pending, config = case
    queries = list(pending)
    if snapshot.assigned:
        queries += [
            PendingPod(a.key, a.spec) for a in data.draw(st.lists(st.sampled_from(snapshot.assigned), max_size=4))
        ]
    together = what_if(snapshot, queries, config)
    assert together == tuple(what_if(snapshot, [q], config)[0] for q in queries)
