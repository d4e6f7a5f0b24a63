"""The Pod object model: Kubernetes-style Pod manifests, parsed and strictly validated.

Owns: the frozen Pod dataclasses, parse_pod (a decoded manifest -> Pod), pod_to_dict
(Pod -> Kubernetes-shaped camelCase dict) and pod_spec_hash.

Rules:
- A manifest is accepted whole or rejected whole. parse_pod checks everything it can
  and raises one ManifestError listing every FieldError (path + what is wrong), e.g.
  `spec.containers[1].resources.limits.memory: "12Q" is not a quantity`.
- An unknown field anywhere is an error, never silently dropped.
- A null value means "not set", as in Kubernetes; a required field that is null or
  absent is an error.
- Integers must be real ints: not bools, not strings, not floats.
- Kubernetes defaults are applied while parsing (restartPolicy Always, probe timings
  0/10/1/3/1, grace period 30 s, imagePullPolicy from the image tag, resource requests
  copied from limits when only limits are given), so a parsed Pod is fully explicit
  and pod_to_dict writes every defaulted field: parse_pod(pod_to_dict(p)) == p.
- Every object is a frozen, slotted dataclass holding tuples, never lists. String maps
  (labels, annotations, nodeSelector, resource maps) are FrozenMap: a read-only,
  hashable Mapping, so `pod.metadata.labels["app"]` works and `dict(...)` copies it.
  Constructors given plain lists/dicts convert them, so Pods stay hashable.
- Stricter than Kubernetes on purpose (each would only fail later at run time):
  a probe's named port must name a port of the same container; a mountPath and a
  hostPath path must be absolute; resources are limited to cpu and memory.
- Pure: no I/O, no clock. YAML text is manifest.py's business.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Callable, TypeVar

from agent.state.errors import StateError
from agent.state.quantity import Quantity, QuantityError, cpu_millicores, memory_bytes, parse_quantity

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
MAX_ANNOTATIONS_BYTES = 256 * 1024  # Kubernetes' total size limit for annotations


# ---------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class FieldError:
    """One thing wrong with a manifest: the field's path and what is wrong with it.

    `location` (optional) says where the manifest came from, e.g. "pods.yaml:12 (document 2)".
    """

    path: str
    message: str
    location: str = ""

    def __str__(self) -> str:
        parts = [p for p in (self.location, self.path) if p]
        return ": ".join([*parts, self.message])


class ManifestError(StateError, ValueError):
    """A manifest rejected whole; `errors` lists every problem found."""

    def __init__(self, errors: tuple[FieldError, ...] | list[FieldError]):
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


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


_EMPTY: FrozenMap = FrozenMap()


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
class ObjectMeta:
    name: str
    namespace: str = "default"
    labels: Mapping[str, str] = _EMPTY
    annotations: Mapping[str, str] = _EMPTY
    uid: str | None = None

    def __post_init__(self) -> None:
        _coerce(self, maps=("labels", "annotations"))


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    host_port: int | None = None
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceRequirements:
    """Requests and limits keyed by resource name ("cpu", "memory")."""

    requests: Mapping[str, Quantity] = _EMPTY
    limits: Mapping[str, Quantity] = _EMPTY

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
class Probe:
    """Exactly one of exec / http_get / tcp_socket is set. Timings in seconds, Kubernetes defaults."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    failure_threshold: int = 3
    success_threshold: int = 1


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

    def __post_init__(self) -> None:
        _coerce(self, tuples=("command", "args", "env", "ports", "volume_mounts"))
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
class Volume:
    """Exactly one of empty_dir / host_path is set."""

    name: str
    empty_dir: EmptyDirVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None


@dataclass(frozen=True, slots=True)
class PodSpec:
    containers: tuple[Container, ...]
    restart_policy: str = "Always"
    volumes: tuple[Volume, ...] = ()
    termination_grace_period_seconds: int = 30
    node_selector: Mapping[str, str] = _EMPTY
    node_name: str | None = None  # set by the scheduler

    def __post_init__(self) -> None:
        _coerce(self, maps=("node_selector",), tuples=("containers", "volumes"))

    def cpu_request_millicores(self) -> int:
        """Sum of the containers' CPU requests (a container without one counts 0)."""
        return sum(c.resources.cpu_request_millicores() or 0 for c in self.containers)

    def memory_request_bytes(self) -> int:
        """Sum of the containers' memory requests (a container without one counts 0)."""
        return sum(c.resources.memory_request_bytes() or 0 for c in self.containers)


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


# ---------------------------------------------------------------- syntax rules

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_HTTP_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")


_MESSAGE_VALUE_CHARS = 100  # longer values are cut in messages, so hostile input cannot bloat them


def _q(value: Any) -> str:
    """A value as it appears in messages: JSON text ("12Q", 3, true); containers only by kind."""
    if isinstance(value, str) and len(value) > _MESSAGE_VALUE_CHARS:
        return json.dumps(value[:_MESSAGE_VALUE_CHARS], ensure_ascii=False)[:-1] + '..."'
    if value is None or isinstance(value, (str, int, float, bool)):
        return json.dumps(value, ensure_ascii=False)
    return f"<{_type_name(value)}>"


def dns_label_problem(value: str) -> str | None:
    if len(value) > 63:
        return f"{_q(value)} must be at most 63 characters"
    if not _DNS_LABEL.fullmatch(value):
        return (
            f"{_q(value)} is not a valid DNS-1123 label "
            "(lowercase letters, digits and '-', starting and ending with a letter or digit)"
        )
    return None


def dns_subdomain_problem(value: str) -> str | None:
    if len(value) > 253:
        return f"{_q(value)} must be at most 253 characters"
    if not _DNS_SUBDOMAIN.fullmatch(value):
        return (
            f"{_q(value)} is not a valid DNS-1123 subdomain "
            "(lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit)"
        )
    return None


def qualified_name_problem(value: str) -> str | None:
    """A label / annotation key: optional "<DNS subdomain>/" prefix, then a name of at most 63 characters."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix:
            return f"{_q(value)}: the prefix before '/' must not be empty"
        problem = dns_subdomain_problem(prefix)
        if problem:
            return f"{_q(value)}: prefix {problem}"
    if not name:
        return f"{_q(value)}: the name part must not be empty"
    if len(name) > 63:
        return f"{_q(value)}: the name part must be at most 63 characters"
    if not _QUALIFIED_NAME.fullmatch(name):
        return (
            f"{_q(value)} is not a valid qualified name "
            "(letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"
        )
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63:
        return f"{_q(value)} must be at most 63 characters"
    if value and not _QUALIFIED_NAME.fullmatch(value):
        return (
            f"{_q(value)} is not a valid label value "
            "(empty, or letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"
        )
    return None


def port_name_problem(value: str) -> str | None:
    """Kubernetes' IANA_SVC_NAME: at most 15 of [a-z0-9-], a letter somewhere, no "--", no '-' at either end."""
    if len(value) > 15:
        return f"{_q(value)} must be at most 15 characters"
    if not _PORT_NAME.fullmatch(value) or "--" in value:
        return f"{_q(value)} is not a valid port name (lowercase letters, digits and single '-' inside)"
    if not re.search(r"[a-z]", value):
        return f"{_q(value)} is not a valid port name (must contain a letter)"
    return None


def _env_name_problem(value: str) -> str | None:
    if not _ENV_VAR_NAME.fullmatch(value):
        return f"{_q(value)} is not a valid environment variable name (must match [-._a-zA-Z][-._a-zA-Z0-9]*)"
    return None


def _header_name_problem(value: str) -> str | None:
    if not _HTTP_TOKEN.fullmatch(value):
        return f"{_q(value)} is not a valid HTTP header name"
    return None


def _absolute_path_problem(value: str) -> str | None:
    if not value.startswith("/"):
        return f"{_q(value)} must be an absolute path"
    return None


# ---------------------------------------------------------------- the parser

_MISSING = object()


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


class _Parser:
    """Reads one decoded manifest, collecting every FieldError instead of stopping at the first."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    # -- generic readers: each returns a usable value even after recording an error

    def obj(self, raw: Any, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        """An object whose keys must all be in `allowed`; {} (after an error) if it is not an object."""
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail(path, f"must be an object, got {_type_name(raw)}")
            return {}
        for key in raw:
            if key not in allowed:
                self.fail(_child(path, str(key)), "unknown field")
        return raw

    def get(self, m: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> Any:
        value = m.get(key)
        if value is None:
            if required:
                self.fail(_child(path, key), "required field is missing")
            return _MISSING
        return value

    def string(
        self,
        m: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        default: str | None = None,
        check: Callable[[str], str | None] | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> Any:
        value = self.get(m, key, path, required=required)
        if value is _MISSING:
            return default
        return self.string_value(value, _child(path, key), default=default, check=check, choices=choices)

    def string_value(
        self,
        value: Any,
        path: str,
        *,
        default: Any = "",
        check: Callable[[str], str | None] | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> Any:
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {_type_name(value)} {_q(value)}")
            return default
        if choices is not None and value not in choices:
            self.fail(path, f"{_q(value)} is not one of {', '.join(_q(c) for c in choices)}")
            return default
        if check is not None:
            problem = check(value)
            if problem:
                self.fail(path, problem)
        return value

    def integer(
        self,
        m: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: Any,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> Any:
        value = self.get(m, key, path, required=required)
        if value is _MISSING:
            return default
        return self.integer_value(value, _child(path, key), default=default, minimum=minimum, maximum=maximum)

    def integer_value(
        self, value: Any, path: str, *, default: Any, minimum: int | None = None, maximum: int | None = None
    ) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer, got {_type_name(value)} {_q(value)}")
            return default
        if minimum is not None and value < minimum:
            self.fail(path, f"{value} must be at least {minimum}")
        elif maximum is not None and value > maximum:
            self.fail(path, f"{value} must be at most {maximum}")
        return value

    def boolean(self, m: Mapping[str, Any], key: str, path: str, *, default: bool) -> bool:
        value = self.get(m, key, path)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.fail(_child(path, key), f"must be a boolean, got {_type_name(value)} {_q(value)}")
            return default
        return value

    def items(self, m: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> list[tuple[Any, str]]:
        """A list field as (item, item_path) pairs; [] if absent or not a list."""
        value = self.get(m, key, path, required=required)
        if value is _MISSING:
            return []
        list_path = _child(path, key)
        if not isinstance(value, (list, tuple)):
            self.fail(list_path, f"must be a list, got {_type_name(value)}")
            return []
        if required and not value:
            self.fail(list_path, "must not be empty")
        return [(item, f"{list_path}[{i}]") for i, item in enumerate(value)]

    def strings(self, m: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        return tuple(self.string_value(item, item_path) for item, item_path in self.items(m, key, path))

    def string_map(
        self,
        m: Mapping[str, Any],
        key: str,
        path: str,
        *,
        key_check: Callable[[str], str | None],
        value_check: Callable[[str], str | None] | None = None,
    ) -> FrozenMap:
        value = self.get(m, key, path)
        if value is _MISSING:
            return _EMPTY
        map_path = _child(path, key)
        if not isinstance(value, Mapping):
            self.fail(map_path, f"must be an object, got {_type_name(value)}")
            return _EMPTY
        result: dict[str, str] = {}
        for k, v in value.items():
            entry_path = f"{map_path}[{_q(k)}]"
            if not isinstance(k, str):
                self.fail(entry_path, f"key must be a string, got {_type_name(k)}")
                continue
            problem = key_check(k)
            if problem:
                self.fail(entry_path, f"key {problem}")
            if v is None:
                v = ""  # YAML `key:` with nothing after it; Kubernetes reads it as ""
            result[k] = self.string_value(v, entry_path, check=value_check)
        return FrozenMap(result)

    def quantity(self, value: Any, path: str, *, non_negative: bool) -> Quantity | None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.fail(path, f"{_q(value)} is not a quantity")
            return None
        try:
            q = parse_quantity(value)
        except QuantityError:
            self.fail(path, f"{_q(value)} is not a quantity")
            return None
        if non_negative and q.value < 0:
            self.fail(path, f"{_q(value)} must not be negative")
        return q

    # -- the Pod, top down

    def pod(self, doc: Any) -> Pod:
        if not isinstance(doc, Mapping):
            self.fail("", f"must be an object, got {_type_name(doc)}")
            return _placeholder_pod()
        top = self.obj(doc, "", ("apiVersion", "kind", "metadata", "spec"))
        api_version = self.string(top, "apiVersion", "", required=True, default=API_VERSION, choices=(API_VERSION,))
        kind = self.string(top, "kind", "", required=True, default=KIND, choices=(KIND,))
        if self.get(top, "metadata", "", required=True) is _MISSING:
            metadata = ObjectMeta(name="")
        else:
            metadata = self.metadata(top["metadata"], "metadata")
        if self.get(top, "spec", "", required=True) is _MISSING:
            spec = PodSpec(containers=())
        else:
            spec = self.pod_spec(top["spec"], "spec")
        return Pod(metadata=metadata, spec=spec, api_version=api_version, kind=kind)

    def metadata(self, raw: Any, path: str) -> ObjectMeta:
        m = self.obj(raw, path, ("name", "namespace", "labels", "annotations", "uid"))
        annotations = self.string_map(m, "annotations", path, key_check=qualified_name_problem)
        size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
        if size > MAX_ANNOTATIONS_BYTES:
            self.fail(_child(path, "annotations"), f"total size {size} bytes exceeds {MAX_ANNOTATIONS_BYTES}")
        return ObjectMeta(
            name=self.string(m, "name", path, required=True, default="", check=dns_subdomain_problem),
            namespace=self.string(m, "namespace", path, default="default", check=dns_label_problem),
            labels=self.string_map(
                m, "labels", path, key_check=qualified_name_problem, value_check=label_value_problem
            ),
            annotations=annotations,
            uid=self.string(m, "uid", path, default=None),
        )

    def pod_spec(self, raw: Any, path: str) -> PodSpec:
        m = self.obj(
            raw,
            path,
            (
                "containers",
                "restartPolicy",
                "volumes",
                "terminationGracePeriodSeconds",
                "nodeSelector",
                "nodeName",
            ),
        )
        volumes = tuple(self.volume(item, item_path) for item, item_path in self.items(m, "volumes", path))
        self.check_unique([v.name for v in volumes], _child(path, "volumes"), "name")
        volume_names = {v.name for v in volumes}
        containers = tuple(
            self.container(item, item_path, volume_names)
            for item, item_path in self.items(m, "containers", path, required=True)
        )
        self.check_unique([c.name for c in containers], _child(path, "containers"), "name")
        self.check_host_ports(containers, _child(path, "containers"))
        return PodSpec(
            containers=containers,
            restart_policy=self.string(m, "restartPolicy", path, default="Always", choices=RESTART_POLICIES),
            volumes=volumes,
            termination_grace_period_seconds=self.integer(
                m, "terminationGracePeriodSeconds", path, default=30, minimum=0
            ),
            node_selector=self.string_map(
                m, "nodeSelector", path, key_check=qualified_name_problem, value_check=label_value_problem
            ),
            node_name=self.string(m, "nodeName", path, default=None, check=dns_subdomain_problem),
        )

    def check_unique(self, names: list[str], list_path: str, field_name: str) -> None:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name and name in seen:
                self.fail(f"{list_path}[{i}].{field_name}", f"duplicate {field_name} {_q(name)}")
            seen.add(name)

    def check_host_ports(self, containers: tuple[Container, ...], list_path: str) -> None:
        seen: set[tuple[int, str]] = set()
        for ci, container in enumerate(containers):
            for pi, port in enumerate(container.ports):
                if port.host_port is None:
                    continue
                key = (port.host_port, port.protocol)
                if key in seen:
                    self.fail(
                        f"{list_path}[{ci}].ports[{pi}].hostPort",
                        f"duplicate hostPort {port.host_port}/{port.protocol} in this pod",
                    )
                seen.add(key)

    def container(self, raw: Any, path: str, volume_names: set[str]) -> Container:
        m = self.obj(
            raw,
            path,
            (
                "name",
                "image",
                "imagePullPolicy",
                "command",
                "args",
                "env",
                "ports",
                "resources",
                "volumeMounts",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ),
        )
        image = self.string(m, "image", path, required=True, default="", check=_image_problem)
        ports = tuple(self.port(item, item_path) for item, item_path in self.items(m, "ports", path))
        self.check_unique([p.name or "" for p in ports], _child(path, "ports"), "name")
        port_names = {p.name for p in ports if p.name}
        mounts = tuple(
            self.volume_mount(item, item_path, volume_names)
            for item, item_path in self.items(m, "volumeMounts", path)
        )
        self.check_unique([v.mount_path for v in mounts], _child(path, "volumeMounts"), "mountPath")
        return Container(
            name=self.string(m, "name", path, required=True, default="", check=dns_label_problem),
            image=image,
            image_pull_policy=self.string(
                m, "imagePullPolicy", path, default=default_pull_policy(image), choices=PULL_POLICIES
            ),
            command=self.strings(m, "command", path),
            args=self.strings(m, "args", path),
            env=tuple(self.env_var(item, item_path) for item, item_path in self.items(m, "env", path)),
            ports=ports,
            resources=self.resources(m.get("resources"), _child(path, "resources")),
            volume_mounts=mounts,
            liveness_probe=self.probe(m, "livenessProbe", path, port_names, success_must_be_one=True),
            readiness_probe=self.probe(m, "readinessProbe", path, port_names, success_must_be_one=False),
            startup_probe=self.probe(m, "startupProbe", path, port_names, success_must_be_one=True),
        )

    def env_var(self, raw: Any, path: str) -> EnvVar:
        m = self.obj(raw, path, ("name", "value"))
        return EnvVar(
            name=self.string(m, "name", path, required=True, default="", check=_env_name_problem),
            value=self.string(m, "value", path, default=""),
        )

    def port(self, raw: Any, path: str) -> ContainerPort:
        m = self.obj(raw, path, ("name", "containerPort", "hostPort", "protocol"))
        host_port = self.integer(m, "hostPort", path, default=None, minimum=1, maximum=65535)
        container_port = self.integer(m, "containerPort", path, default=0, minimum=1, maximum=65535)
        if m.get("containerPort") is None:
            message = "required field is missing" + (" (hostPort requires containerPort)" if host_port else "")
            self.fail(_child(path, "containerPort"), message)
        return ContainerPort(
            container_port=container_port,
            host_port=host_port,
            protocol=self.string(m, "protocol", path, default="TCP", choices=PROTOCOLS),
            name=self.string(m, "name", path, default=None, check=port_name_problem),
        )

    def resources(self, raw: Any, path: str) -> ResourceRequirements:
        m = self.obj(raw, path, ("requests", "limits"))
        requests = self.resource_list(m, "requests", path)
        limits = self.resource_list(m, "limits", path)
        for name, request in requests.items():
            limit = limits.get(name)
            if limit is not None and request.value > limit.value:
                self.fail(
                    _child(path, f"requests.{name}"),
                    f"{_q(request.text)} must be less than or equal to the limit {_q(limit.text)}",
                )
        # Kubernetes defaulting: a resource with a limit but no request requests its limit.
        defaulted = dict(requests)
        for name, limit in limits.items():
            defaulted.setdefault(name, limit)
        return ResourceRequirements(requests=FrozenMap(defaulted), limits=limits)

    def resource_list(self, m: Mapping[str, Any], key: str, path: str) -> FrozenMap:
        value = self.get(m, key, path)
        if value is _MISSING:
            return _EMPTY
        list_path = _child(path, key)
        entries = self.obj(value, list_path, RESOURCE_NAMES)
        result = {}
        for name in RESOURCE_NAMES:
            if entries.get(name) is not None:
                q = self.quantity(entries[name], f"{list_path}.{name}", non_negative=True)
                if q is not None:
                    result[name] = q
        return FrozenMap(result)

    def volume_mount(self, raw: Any, path: str, volume_names: set[str]) -> VolumeMount:
        m = self.obj(raw, path, ("name", "mountPath", "readOnly"))
        name = self.string(m, "name", path, required=True, default="")
        if name and name not in volume_names:
            self.fail(_child(path, "name"), f"{_q(name)} is not a volume declared in spec.volumes")
        return VolumeMount(
            name=name,
            mount_path=self.string(m, "mountPath", path, required=True, default="", check=_absolute_path_problem),
            read_only=self.boolean(m, "readOnly", path, default=False),
        )

    def probe(
        self, container: Mapping[str, Any], key: str, path: str, port_names: set[str], *, success_must_be_one: bool
    ) -> Probe | None:
        raw = self.get(container, key, path)
        if raw is _MISSING:
            return None
        path = _child(path, key)
        m = self.obj(
            raw,
            path,
            (
                "exec",
                "httpGet",
                "tcpSocket",
                "initialDelaySeconds",
                "periodSeconds",
                "timeoutSeconds",
                "failureThreshold",
                "successThreshold",
            ),
        )
        handlers = [h for h in ("exec", "httpGet", "tcpSocket") if m.get(h) is not None]
        if len(handlers) != 1:
            found = ", ".join(handlers) if handlers else "none"
            self.fail(path, f"must have exactly one handler of exec, httpGet, tcpSocket (found {found})")
        exec_action = http_get = tcp_socket = None
        if m.get("exec") is not None:
            exec_action = self.exec_action(m["exec"], _child(path, "exec"))
        if m.get("httpGet") is not None:
            http_get = self.http_get(m["httpGet"], _child(path, "httpGet"), port_names)
        if m.get("tcpSocket") is not None:
            tcp_socket = self.tcp_socket(m["tcpSocket"], _child(path, "tcpSocket"), port_names)
        success_threshold = self.integer(m, "successThreshold", path, default=1, minimum=1)
        if success_must_be_one and isinstance(success_threshold, int) and success_threshold > 1:
            self.fail(_child(path, "successThreshold"), f"{success_threshold} must be 1 for {key}")
        return Probe(
            exec=exec_action,
            http_get=http_get,
            tcp_socket=tcp_socket,
            initial_delay_seconds=self.integer(m, "initialDelaySeconds", path, default=0, minimum=0),
            period_seconds=self.integer(m, "periodSeconds", path, default=10, minimum=1),
            timeout_seconds=self.integer(m, "timeoutSeconds", path, default=1, minimum=1),
            failure_threshold=self.integer(m, "failureThreshold", path, default=3, minimum=1),
            success_threshold=success_threshold,
        )

    def exec_action(self, raw: Any, path: str) -> ExecAction:
        m = self.obj(raw, path, ("command",))
        command = self.strings(m, "command", path)
        if not command:
            self.fail(_child(path, "command"), "required field is missing (a non-empty list of strings)")
        return ExecAction(command=command)

    def probe_port(self, m: Mapping[str, Any], path: str, port_names: set[str]) -> int | str:
        value = self.get(m, "port", path, required=True)
        port_path = _child(path, "port")
        if value is _MISSING:
            return 0
        if isinstance(value, str):
            problem = port_name_problem(value)
            if problem:
                self.fail(port_path, problem)
            elif value not in port_names:
                self.fail(port_path, f"{_q(value)} is not the name of a port of this container")
            return value
        return self.integer_value(value, port_path, default=0, minimum=1, maximum=65535)

    def http_get(self, raw: Any, path: str, port_names: set[str]) -> HTTPGetAction:
        m = self.obj(raw, path, ("path", "port", "host", "scheme", "httpHeaders"))
        headers = []
        for item, item_path in self.items(m, "httpHeaders", path):
            h = self.obj(item, item_path, ("name", "value"))
            headers.append(
                (
                    self.string(h, "name", item_path, required=True, default="", check=_header_name_problem),
                    self.string(h, "value", item_path, default=""),
                )
            )
        return HTTPGetAction(
            port=self.probe_port(m, path, port_names),
            path=self.string(m, "path", path, default="/", check=_absolute_path_problem),
            host=self.string(m, "host", path, default=None),
            scheme=self.string(m, "scheme", path, default="HTTP", choices=HTTP_SCHEMES),
            http_headers=tuple(headers),
        )

    def tcp_socket(self, raw: Any, path: str, port_names: set[str]) -> TCPSocketAction:
        m = self.obj(raw, path, ("port", "host"))
        return TCPSocketAction(
            port=self.probe_port(m, path, port_names),
            host=self.string(m, "host", path, default=None),
        )

    def volume(self, raw: Any, path: str) -> Volume:
        m = self.obj(raw, path, ("name", "emptyDir", "hostPath"))
        sources = [s for s in ("emptyDir", "hostPath") if m.get(s) is not None]
        if len(sources) != 1:
            found = ", ".join(sources) if sources else "none"
            self.fail(path, f"must have exactly one source of emptyDir, hostPath (found {found})")
        empty_dir = host_path = None
        if m.get("emptyDir") is not None:
            e_path = _child(path, "emptyDir")
            e = self.obj(m["emptyDir"], e_path, ("medium", "sizeLimit"))
            size_limit = None
            if e.get("sizeLimit") is not None:
                size_limit = self.quantity(e["sizeLimit"], _child(e_path, "sizeLimit"), non_negative=True)
            empty_dir = EmptyDirVolumeSource(
                medium=self.string(e, "medium", e_path, default="", choices=EMPTY_DIR_MEDIA), size_limit=size_limit
            )
        if m.get("hostPath") is not None:
            h_path = _child(path, "hostPath")
            h = self.obj(m["hostPath"], h_path, ("path", "type"))
            host_path = HostPathVolumeSource(
                path=self.string(h, "path", h_path, required=True, default="", check=_absolute_path_problem),
                type=self.string(h, "type", h_path, default="", choices=HOST_PATH_TYPES),
            )
        return Volume(
            name=self.string(m, "name", path, required=True, default="", check=dns_label_problem),
            empty_dir=empty_dir,
            host_path=host_path,
        )


def _image_problem(value: str) -> str | None:
    if not value or value != value.strip() or any(ch.isspace() for ch in value):
        return f"{_q(value)} is not a valid image reference (must be non-empty, without spaces)"
    return None


def _placeholder_pod() -> Pod:
    return Pod(metadata=ObjectMeta(name=""), spec=PodSpec(containers=()))


def parse_pod(doc: Mapping[str, Any]) -> Pod:
    """A decoded Pod manifest (apiVersion v1, kind Pod) -> Pod, defaults applied. Raises ManifestError."""
    parser = _Parser()
    pod = parser.pod(doc)
    if parser.errors:
        raise ManifestError(parser.errors)
    return pod


# ---------------------------------------------------------------- back to a dict


def pod_to_dict(pod: Pod) -> dict[str, Any]:
    """A Pod as a Kubernetes-shaped camelCase dict (JSON/YAML-ready); every defaulted field is written."""
    meta: dict[str, Any] = {"name": pod.metadata.name, "namespace": pod.metadata.namespace}
    if pod.metadata.labels:
        meta["labels"] = dict(pod.metadata.labels)
    if pod.metadata.annotations:
        meta["annotations"] = dict(pod.metadata.annotations)
    if pod.metadata.uid is not None:
        meta["uid"] = pod.metadata.uid
    spec: dict[str, Any] = {
        "containers": [_container_to_dict(c) for c in pod.spec.containers],
        "restartPolicy": pod.spec.restart_policy,
        "terminationGracePeriodSeconds": pod.spec.termination_grace_period_seconds,
    }
    if pod.spec.volumes:
        spec["volumes"] = [_volume_to_dict(v) for v in pod.spec.volumes]
    if pod.spec.node_selector:
        spec["nodeSelector"] = dict(pod.spec.node_selector)
    if pod.spec.node_name is not None:
        spec["nodeName"] = pod.spec.node_name
    return {"apiVersion": pod.api_version, "kind": pod.kind, "metadata": meta, "spec": spec}


def _container_to_dict(c: Container) -> dict[str, Any]:
    d: dict[str, Any] = {"name": c.name, "image": c.image, "imagePullPolicy": c.image_pull_policy}
    if c.command:
        d["command"] = list(c.command)
    if c.args:
        d["args"] = list(c.args)
    if c.env:
        d["env"] = [{"name": e.name, "value": e.value} for e in c.env]
    if c.ports:
        d["ports"] = [_port_to_dict(p) for p in c.ports]
    resources: dict[str, Any] = {}
    if c.resources.requests:
        resources["requests"] = {k: q.text for k, q in c.resources.requests.items()}
    if c.resources.limits:
        resources["limits"] = {k: q.text for k, q in c.resources.limits.items()}
    d["resources"] = resources
    if c.volume_mounts:
        d["volumeMounts"] = [
            {"name": v.name, "mountPath": v.mount_path, "readOnly": v.read_only} for v in c.volume_mounts
        ]
    for key, probe in (
        ("livenessProbe", c.liveness_probe),
        ("readinessProbe", c.readiness_probe),
        ("startupProbe", c.startup_probe),
    ):
        if probe is not None:
            d[key] = _probe_to_dict(probe)
    return d


def _port_to_dict(p: ContainerPort) -> dict[str, Any]:
    d: dict[str, Any] = {"containerPort": p.container_port, "protocol": p.protocol}
    if p.host_port is not None:
        d["hostPort"] = p.host_port
    if p.name is not None:
        d["name"] = p.name
    return d


def _probe_to_dict(p: Probe) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if p.exec is not None:
        d["exec"] = {"command": list(p.exec.command)}
    if p.http_get is not None:
        h: dict[str, Any] = {"path": p.http_get.path, "port": p.http_get.port, "scheme": p.http_get.scheme}
        if p.http_get.host is not None:
            h["host"] = p.http_get.host
        if p.http_get.http_headers:
            h["httpHeaders"] = [{"name": n, "value": v} for n, v in p.http_get.http_headers]
        d["httpGet"] = h
    if p.tcp_socket is not None:
        t: dict[str, Any] = {"port": p.tcp_socket.port}
        if p.tcp_socket.host is not None:
            t["host"] = p.tcp_socket.host
        d["tcpSocket"] = t
    d.update(
        initialDelaySeconds=p.initial_delay_seconds,
        periodSeconds=p.period_seconds,
        timeoutSeconds=p.timeout_seconds,
        failureThreshold=p.failure_threshold,
        successThreshold=p.success_threshold,
    )
    return d


def _volume_to_dict(v: Volume) -> dict[str, Any]:
    d: dict[str, Any] = {"name": v.name}
    if v.empty_dir is not None:
        e: dict[str, Any] = {}
        if v.empty_dir.medium:
            e["medium"] = v.empty_dir.medium
        if v.empty_dir.size_limit is not None:
            e["sizeLimit"] = v.empty_dir.size_limit.text
        d["emptyDir"] = e
    if v.host_path is not None:
        hp: dict[str, Any] = {"path": v.host_path.path}
        if v.host_path.type:
            hp["type"] = v.host_path.type
        d["hostPath"] = hp
    return d


def pod_spec_hash(pod: Pod) -> str:
    """A stable 16-hex-digit hash of what the pod should run: the spec WITHOUT nodeName.

    Placement is left out so that the scheduler assigning a node does not read as a
    spec change; metadata (labels, annotations, uid) is left out too.
    """
    spec = pod_to_dict(pod)["spec"]
    spec.pop("nodeName", None)
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
