"""The Pod object model: frozen, hashable dataclasses shaped as Kubernetes' core/v1 Pod.

Owns: the Pod dataclasses, the FrozenMap they hold their string maps in, the sets of
values each enumerated field may take, and Kubernetes' imagePullPolicy default.

Rules:
- Every object is a frozen, slotted dataclass holding tuples, never lists. String maps
  (labels, annotations, nodeSelector, resource maps) are FrozenMap: a read-only,
  hashable Mapping, so `pod.metadata.labels["app"]` works and `dict(...)` copies it.
  Constructors given plain lists/dicts convert them, so Pods stay hashable.
- Pure: no I/O, no clock; validation is parser.py's business, not the constructors'.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from agent.state.quantity import Quantity, cpu_millicores, memory_bytes

if TYPE_CHECKING:
    from agent.state.pod.affinity import Affinity

K = TypeVar("K")
V = TypeVar("V")

API_VERSION = "v1"
KIND = "Pod"
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
HTTP_SCHEMES = ("HTTP", "HTTPS")
EMPTY_DIR_MEDIA = ("", "Memory")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice")
RESOURCE_NAMES = ("cpu", "memory")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
MAX_ANNOTATIONS_BYTES = 256 * 1024  # Kubernetes' total size limit for annotations


# ---------------------------------------------------------------- a frozen mapping


class FrozenMap(Mapping[K, V]):
    """A read-only, hashable mapping that keeps insertion order; equal to any Mapping with the same items."""

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[K, V] | Any = ()):
        object.__setattr__(self, "_data", dict(items))

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("FrozenMap is read-only")

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __reduce__(self):  # pickling: rebuild from a plain dict
        return (FrozenMap, (self._data,))


EMPTY_MAP: FrozenMap = FrozenMap()


def _frozen_map(value: Any) -> Any:
    return value if isinstance(value, FrozenMap) or not isinstance(value, Mapping) else FrozenMap(value)


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _coerce(obj: Any, *, maps: tuple[str, ...] = (), tuples: tuple[str, ...] = ()) -> None:
    """Turn dicts into FrozenMaps and lists into tuples on a frozen dataclass, keeping it hashable."""
    for name in maps:
        object.__setattr__(obj, name, _frozen_map(getattr(obj, name)))
    for name in tuples:
        object.__setattr__(obj, name, _tuple(getattr(obj, name)))


# ---------------------------------------------------------------- the objects


@dataclass(frozen=True, slots=True)
class OwnerReference:
    """An object this one belongs to (metadata.ownerReferences[]); `controller` marks the
    one owner that manages it. None means the field was not written."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    name: str
    namespace: str = "default"
    labels: Mapping[str, str] = EMPTY_MAP
    annotations: Mapping[str, str] = EMPTY_MAP
    uid: str | None = None
    owner_references: tuple[OwnerReference, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, maps=("labels", "annotations"), tuples=("owner_references",))


# env[].valueFrom.fieldRef.fieldPath: the Pod fields a container may read (the downward API);
# "metadata.labels['k']" and "metadata.annotations['k']" name one entry.
FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
               "spec.serviceAccountName", "status.podIP", "status.hostIP")
FIELD_PATH_MAPS = ("metadata.labels", "metadata.annotations")
# env[].valueFrom.resourceFieldRef.resource
RESOURCE_FIELDS = ("limits.cpu", "limits.memory", "requests.cpu", "requests.memory")


@dataclass(frozen=True, slots=True)
class ObjectFieldSelector:
    field_path: str
    api_version: str = "v1"


@dataclass(frozen=True, slots=True)
class ResourceFieldSelector:
    resource: str  # one of RESOURCE_FIELDS
    container_name: str | None = None  # None: the container the variable belongs to
    divisor: Quantity | None = None  # None: 1


@dataclass(frozen=True, slots=True)
class KeySelector:
    """configMapKeyRef / secretKeyRef: one key of a ConfigMap or Secret of the Pod's namespace."""

    name: str
    key: str
    optional: bool | None = None  # None: not written (false)


@dataclass(frozen=True, slots=True)
class EnvVarSource:
    """Exactly one of field_ref / resource_field_ref / config_map_key_ref / secret_key_ref is set."""

    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: KeySelector | None = None
    secret_key_ref: KeySelector | None = None


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """envFrom's configMapRef / secretRef."""

    name: str
    optional: bool | None = None


@dataclass(frozen=True, slots=True)
class EnvFromSource:
    """Every key of a ConfigMap or Secret as a variable (exactly one ref is set)."""

    prefix: str = ""
    config_map_ref: ObjectRef | None = None
    secret_ref: ObjectRef | None = None


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str = ""
    value_from: EnvVarSource | None = None  # set: value is ""


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    host_port: int | None = None
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceRequirements:
    """Requests and limits keyed by resource name ("cpu", "memory")."""

    requests: Mapping[str, Quantity] = EMPTY_MAP
    limits: Mapping[str, Quantity] = EMPTY_MAP

    def __post_init__(self) -> None:
        _coerce(self, maps=("requests", "limits"))

    def cpu_request_millicores(self) -> int | None:
        q = self.requests.get("cpu")
        return None if q is None else cpu_millicores(q)

    def cpu_limit_millicores(self) -> int | None:
        q = self.limits.get("cpu")
        return None if q is None else cpu_millicores(q)

    def memory_request_bytes(self) -> int | None:
        q = self.requests.get("memory")
        return None if q is None else memory_bytes(q)

    def memory_limit_bytes(self) -> int | None:
        q = self.limits.get("memory")
        return None if q is None else memory_bytes(q)


@dataclass(frozen=True, slots=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""  # "": the whole volume


@dataclass(frozen=True, slots=True)
class ExecAction:
    command: tuple[str, ...]

    def __post_init__(self) -> None:
        _coerce(self, tuples=("command",))


@dataclass(frozen=True, slots=True)
class HTTPGetAction:
    port: int | str  # a number, or the name of one of the container's ports
    path: str = "/"
    host: str | None = None  # None: the pod's own address
    scheme: str = "HTTP"
    http_headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "http_headers", tuple(tuple(h) for h in self.http_headers))


@dataclass(frozen=True, slots=True)
class TCPSocketAction:
    port: int | str  # a number, or the name of one of the container's ports
    host: str | None = None


@dataclass(frozen=True, slots=True)
class GRPCAction:
    """probe.grpc: grpc.health.v1.Health/Check on the Pod's IP at `port` (a number);
    success is the answer SERVING. `service` "" asks about the server as a whole."""

    port: int
    service: str = ""


@dataclass(frozen=True, slots=True)
class Probe:
    """Exactly one of exec / http_get / tcp_socket / grpc is set. Timings in seconds, Kubernetes defaults."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    failure_threshold: int = 3
    success_threshold: int = 1
    grpc: GRPCAction | None = None


@dataclass(frozen=True, slots=True)
class SleepAction:
    seconds: int


@dataclass(frozen=True, slots=True)
class LifecycleHandler:
    """Exactly one of exec / http_get / sleep is set."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    sleep: SleepAction | None = None


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """post_start runs right after the container starts (a failure kills it); pre_stop runs
    before it is sent SIGTERM, inside the grace period."""

    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Linux capabilities added to and dropped from the engine's default set ("NET_ADMIN", "ALL")."""

    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, tuples=("add", "drop"))


@dataclass(frozen=True, slots=True)
class SecurityContext:
    """A container's securityContext; None fields are not set (the Pod's value, else the image's)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None
    privileged: bool | None = None
    capabilities: Capabilities | None = None


@dataclass(frozen=True, slots=True)
class PodSecurityContext:
    """The Pod's securityContext: defaults for every container, and the groups of its processes."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None  # a supplementary group of every process, owner group of emptyDir volumes
    supplemental_groups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, tuples=("supplemental_groups",))


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: Always when the tag is "latest" or absent (and no digest), else IfNotPresent."""
    name, _, _digest = image.partition("@")
    last_component = name.rsplit("/", 1)[-1]
    _, colon, tag = last_component.partition(":")
    if not colon and not _digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    image: str
    image_pull_policy: str = ""  # "" when constructed directly: the Kubernetes default for the image
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    resources: ResourceRequirements = ResourceRequirements()
    volume_mounts: tuple[VolumeMount, ...] = ()
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    # Only on an init container: "Always" makes it a native sidecar (None: a regular one).
    restart_policy: str | None = None
    lifecycle: Lifecycle | None = None
    security_context: SecurityContext | None = None
    working_dir: str | None = None  # None: the image's
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    env_from: tuple[EnvFromSource, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, tuples=("command", "args", "env", "ports", "volume_mounts", "env_from"))
        if self.image_pull_policy == "" and isinstance(self.image, str):
            object.__setattr__(self, "image_pull_policy", default_pull_policy(self.image))

    def port_number(self, port: int | str) -> int | None:
        """A probe's port as a number: itself if a number, else the containerPort named so (None if none)."""
        if isinstance(port, int):
            return port
        for p in self.ports:
            if p.name == port:
                return p.container_port
        return None


@dataclass(frozen=True, slots=True)
class EmptyDirVolumeSource:
    medium: str = ""  # "" (node disk) or "Memory" (tmpfs)
    size_limit: Quantity | None = None


@dataclass(frozen=True, slots=True)
class HostPathVolumeSource:
    path: str
    type: str = ""  # "" means no check before mounting


@dataclass(frozen=True, slots=True)
class KeyToPath:
    key: str
    path: str  # relative to the volume
    mode: int | None = None  # None: the volume's defaultMode


DEFAULT_CONFIG_VOLUME_MODE = 0o644  # Kubernetes' defaultMode: 420


@dataclass(frozen=True, slots=True)
class ConfigVolumeSource:
    """A configMap (name) or secret (secretName) volume: the object's keys as files."""

    name: str
    items: tuple[KeyToPath, ...] = ()  # (): every key, as a file named after it
    default_mode: int = DEFAULT_CONFIG_VOLUME_MODE
    optional: bool | None = None

    def __post_init__(self) -> None:
        _coerce(self, tuples=("items",))


@dataclass(frozen=True, slots=True)
class Volume:
    """Exactly one of empty_dir / host_path / config_map / secret is set."""

    name: str
    empty_dir: EmptyDirVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    config_map: ConfigVolumeSource | None = None
    secret: ConfigVolumeSource | None = None


TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True, slots=True)
class Toleration:
    """spec.tolerations[]: which node taints the Pod accepts. Empty key with Exists
    tolerates every taint; empty effect matches every effect."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class PodDNSConfigOption:
    name: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class PodDNSConfig:
    """spec.dnsConfig: nameservers, search domains and resolver options for the Pod's resolv.conf."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[PodDNSConfigOption, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, tuples=("nameservers", "searches", "options"))


@dataclass(frozen=True, slots=True)
class HostAlias:
    """spec.hostAliases[]: an entry of the Pod's /etc/hosts."""

    ip: str
    hostnames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, tuples=("hostnames",))


@dataclass(frozen=True, slots=True)
class PodSpec:
    containers: tuple[Container, ...]
    restart_policy: str = "Always"
    volumes: tuple[Volume, ...] = ()
    termination_grace_period_seconds: int = 30
    node_selector: Mapping[str, str] = EMPTY_MAP
    node_name: str | None = None  # set by the scheduler
    tolerations: tuple[Toleration, ...] = ()
    service_account_name: str = "default"  # only read by the downward API: no token is mounted
    security_context: PodSecurityContext | None = None
    share_process_namespace: bool = False
    hostname: str | None = None  # None: the Pod's name
    subdomain: str | None = None
    # No cluster DNS runs here: ClusterFirst resolves as Default does (the node's resolver).
    dns_policy: str = "ClusterFirst"
    dns_config: PodDNSConfig | None = None
    host_aliases: tuple[HostAlias, ...] = ()
    # Seconds the Pod may be active on its node, from its start; then it is stopped and Failed.
    active_deadline_seconds: int | None = None
    # Run in order before the containers; those with restart_policy "Always" are sidecars.
    init_containers: tuple[Container, ...] = ()
    # spec.affinity (agent.state.pod.affinity): node affinity, pod affinity and anti-affinity.
    affinity: Affinity | None = None

    def __post_init__(self) -> None:
        _coerce(self, maps=("node_selector",),
                tuples=("containers", "volumes", "tolerations", "init_containers", "host_aliases"))

    def sidecars(self) -> tuple[Container, ...]:
        return tuple(c for c in self.init_containers if c.restart_policy == "Always")

    def cpu_request_millicores(self) -> int:
        """The Pod's effective CPU request, as Kubernetes computes it: the larger of (the
        containers' and sidecars' sum) and (each regular init container's request plus the
        sidecars started before it); a container without one counts 0."""
        return self._effective(lambda c: c.resources.cpu_request_millicores() or 0)

    def memory_request_bytes(self) -> int:
        """The Pod's effective memory request (see cpu_request_millicores)."""
        return self._effective(lambda c: c.resources.memory_request_bytes() or 0)

    def _effective(self, amount: Any) -> int:
        sidecars_before = 0
        peak = 0
        for c in self.init_containers:
            if c.restart_policy == "Always":
                sidecars_before += amount(c)
            else:
                peak = max(peak, sidecars_before + amount(c))
        return max(peak, sidecars_before + sum(amount(c) for c in self.containers))


@dataclass(frozen=True, slots=True)
class Pod:
    metadata: ObjectMeta
    spec: PodSpec
    api_version: str = API_VERSION
    kind: str = KIND

    @property
    def key(self) -> str:
        """ "namespace/name": the pod's identity in the cluster state."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def with_uid(self, uid: str) -> Pod:
        return replace(self, metadata=replace(self.metadata, uid=uid))

    def with_node_name(self, node: str) -> Pod:
        return replace(self, spec=replace(self.spec, node_name=node))
