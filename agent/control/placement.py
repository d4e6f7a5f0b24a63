"""The scheduler's vocabulary: what it is given, what it answers, how it is configured.

Owns: the input dataclasses (NodeInfo, PlacementSpec, AssignedPod, PendingPod,
ClusterSnapshot and the pod affinity terms), the outputs (Placed, Unplaced,
ScheduleResult) and SchedulerConfig. Rules:
- Everything is a frozen, slotted dataclass of ints, strings, tuples and FrozenMaps, so
  a PlacementSpec is hashable: every Pod of one template shares one spec and the
  scheduler works out what a spec needs once per pass, not once per Pod.
- Units are in the names: cpu in millicores, memory in bytes, Pod counts as numbers.
- The adapter from the cluster's objects fills these in; what it must guarantee is said
  on each type (e.g. each node's kubernetes.io/hostname label is unique, pod affinity
  terms use that topology key only). Construction refuses impossible values
  (ValueError): a broken input is a bug upstream, never something to schedule.
Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.control.selectors import LabelSelector, NodeAffinity, Taint, Toleration, check_weight
from agent.state.pod import FrozenMap

HOSTNAME_LABEL = "kubernetes.io/hostname"
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"

_EMPTY: FrozenMap = FrozenMap()
_PROTOCOLS = ("TCP", "UDP", "SCTP")


def _frozen(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, FrozenMap):
        object.__setattr__(obj, name, FrozenMap(value))


def _tuple(obj: object, name: str) -> None:
    object.__setattr__(obj, name, tuple(getattr(obj, name)))


# ---------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node as placement sees it. Allocatable is what Pods may request in total.
    `ready` False: the node's agent is not reachable (no Pod is sent there, whatever it
    tolerates). `unschedulable`: cordoned. Labels carry kubernetes.io/hostname (unique
    per node), kubernetes.io/os and kubernetes.io/arch."""

    name: str
    allocatable_cpu_millis: int
    allocatable_memory_bytes: int
    allocatable_pods: int
    labels: Mapping[str, str] = _EMPTY
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    ready: bool = True

    def __post_init__(self) -> None:
        _frozen(self, "labels")
        _tuple(self, "taints")
        if not self.name:
            raise ValueError("a node needs a name")
        if min(self.allocatable_cpu_millis, self.allocatable_memory_bytes, self.allocatable_pods) < 0:
            raise ValueError(f"node {self.name}: negative allocatable")


# ---------------------------------------------------------------- pods


@dataclass(frozen=True, slots=True)
class HostPort:
    """A container port bound on the node: `host_ip` "" means every address (0.0.0.0)."""

    port: int
    protocol: str = "TCP"
    host_ip: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"host port {self.port} is not in 1..65535")
        if self.protocol not in _PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r} is not one of {_PROTOCOLS}")


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """A pod (anti-)affinity term on topologyKey kubernetes.io/hostname (the only key the
    scheduler supports: the adapter refuses others), so its domain is one node.
    `namespaces` empty = the namespace of the Pod that carries the term. A term without
    a selector matches no Pod."""

    label_selector: LabelSelector | None
    namespaces: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _tuple(self, "namespaces")


@dataclass(frozen=True, slots=True)
class WeightedPodAffinityTerm:
    """A preferred pod (anti-)affinity term: weight 1..100."""

    weight: int
    term: PodAffinityTerm

    def __post_init__(self) -> None:
        check_weight(self.weight)


@dataclass(frozen=True, slots=True)
class InterPodAffinity:
    """spec.affinity.podAffinity and podAntiAffinity, required and preferred."""

    required_affinity: tuple[PodAffinityTerm, ...] = ()
    preferred_affinity: tuple[WeightedPodAffinityTerm, ...] = ()
    required_anti_affinity: tuple[PodAffinityTerm, ...] = ()
    preferred_anti_affinity: tuple[WeightedPodAffinityTerm, ...] = ()

    def __post_init__(self) -> None:
        for name in ("required_affinity", "preferred_affinity", "required_anti_affinity", "preferred_anti_affinity"):
            _tuple(self, name)

    def __bool__(self) -> bool:
        return bool(
            self.required_affinity
            or self.preferred_affinity
            or self.required_anti_affinity
            or self.preferred_anti_affinity
        )


NO_POD_AFFINITY = InterPodAffinity()


def app_key_of(owner_uid: str | None, labels: Mapping[str, str]) -> str:
    """The spread group of a Pod: its controller's uid when it has one, else its `app` label."""
    return owner_uid or labels.get("app", "")


@dataclass(frozen=True, slots=True)
class PlacementSpec:
    """Everything about a Pod that placement looks at; equal for all Pods of one template.
    Requests are the sums of the containers' requests (a Pod also takes one Pod slot).
    `app_key` groups Pods to spread across nodes (see app_key_of), "" for none; it is
    scoped by the namespace."""

    namespace: str = "default"
    labels: Mapping[str, str] = _EMPTY
    app_key: str = ""
    cpu_millis: int = 0
    memory_bytes: int = 0
    host_ports: tuple[HostPort, ...] = ()
    node_selector: Mapping[str, str] = _EMPTY
    node_affinity: NodeAffinity | None = None
    tolerations: tuple[Toleration, ...] = ()
    pod_affinity: InterPodAffinity = NO_POD_AFFINITY
    _hash: int = field(init=False, repr=False, compare=False)
    """Worked out once: the scheduler looks specs up by value for every Pod."""

    def __post_init__(self) -> None:
        _frozen(self, "labels")
        _frozen(self, "node_selector")
        _tuple(self, "host_ports")
        _tuple(self, "tolerations")
        if self.cpu_millis < 0 or self.memory_bytes < 0:
            raise ValueError("negative resource request")
        fields = (self.namespace, self.labels, self.app_key, self.cpu_millis, self.memory_bytes, self.host_ports)
        fields += (self.node_selector, self.node_affinity, self.tolerations, self.pod_affinity)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class AssignedPod:
    """A Pod the state already assigns to `node`. `key` identifies it (e.g. namespace/name)."""

    key: str
    node: str
    spec: PlacementSpec
    starting: bool = False  # placed there but not yet running: the node still has to start it


@dataclass(frozen=True, slots=True)
class PendingPod:
    """A Pod to place. Pods are placed by priority (higher first), then `creation_index`
    (any number that grows with creation, e.g. the state's index at creation), then key."""

    key: str
    spec: PlacementSpec
    priority: int = 0
    creation_index: int = 0


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """The nodes and the Pods assigned to them. A Pod assigned to a node the snapshot
    does not hold takes room nowhere (as in kube-scheduler, whose snapshot has no such node)."""

    nodes: tuple[NodeInfo, ...]
    assigned: tuple[AssignedPod, ...] = ()

    def __post_init__(self) -> None:
        _tuple(self, "nodes")
        _tuple(self, "assigned")


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class Placed:
    pod: str
    node: str


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A Pod that fits nowhere: `message` as kube-scheduler writes it in the PodScheduled
    condition (`0/3 nodes are available: 1 Too many pods, 2 Insufficient cpu.`), and
    `reasons` the same histogram as data: (reason, number of nodes), in message order."""

    pod: str
    message: str
    reasons: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """The outcome of one pass, each tuple in placement order."""

    placements: tuple[Placed, ...]
    unplaced: tuple[Unplaced, ...]


# ---------------------------------------------------------------- configuration


class ScoringStrategy(enum.Enum):
    LEAST_ALLOCATED = "LeastAllocated"
    MOST_ALLOCATED = "MostAllocated"


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """Scoring knobs; the defaults are kube-scheduler's default profile."""

    scoring_strategy: ScoringStrategy = ScoringStrategy.LEAST_ALLOCATED
    """Spread load (kube-scheduler's default); MOST_ALLOCATED packs nodes, a cluster option."""
    cpu_weight: int = 1
    """NodeResourcesFit's default: cpu and memory count alike."""
    memory_weight: int = 1
    """NodeResourcesFit's default: cpu and memory count alike."""
    resource_fit_weight: int = 1
    """Plugin weight of NodeResourcesFit in the default profile."""
    taint_toleration_weight: int = 3
    """Plugin weight of TaintToleration: avoiding PreferNoSchedule taints matters most."""
    node_affinity_weight: int = 2
    """Plugin weight of NodeAffinity (preferred terms)."""
    app_spread_weight: int = 2
    """Plugin weight of PodTopologySpread, whose default constraints spread an app's Pods."""
    inter_pod_affinity_weight: int = 2
    """Plugin weight of InterPodAffinity (preferred terms)."""
    start_spread_weight: int = 1
    """Weight of the start spread (ours, with LeastAllocated only): a node that still has k
    Pods to start scores 100 // (1 + k), so a burst (a dead node's Pods, a big rollout)
    is started by several engines at once instead of queueing on the emptiest node."""
    hard_pod_affinity_weight: int = 1
    """InterPodAffinity's hardPodAffinityWeight: an existing Pod's required affinity to the
    incoming Pod also draws it, lightly."""
    default_cpu_request_millis: int = 100
    """Scoring only: a Pod without a cpu request counts as 100m (kube-scheduler's non-zero
    default), so that Pods without requests still spread."""
    default_memory_request_bytes: int = 200 * 1024 * 1024
    """Scoring only: a Pod without a memory request counts as 200 MiB (the same default)."""

    def __post_init__(self) -> None:
        for name in (
            "cpu_weight", "memory_weight", "resource_fit_weight", "taint_toleration_weight", "node_affinity_weight",
            "app_spread_weight", "inter_pod_affinity_weight", "hard_pod_affinity_weight",
            "default_cpu_request_millis", "default_memory_request_bytes",
        ):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
