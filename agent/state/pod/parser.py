"""Parsing a decoded Pod manifest into a Pod, with strict field-path validation.

Owns: parse_pod (a decoded manifest -> Pod) and the reader behind it.

Rules:
- A manifest is accepted whole or rejected whole. parse_pod checks everything it can
  and raises one ManifestError listing every FieldError (path + what is wrong), e.g.
  `spec.containers[1].resources.limits.memory: "12Q" is not a quantity`.
- An unknown field anywhere is an error, never silently dropped. A field Kubernetes has
  but agentd does not read says so ("spec.overhead: not supported by agentd"); a name
  Kubernetes does not have is a typo, told with the nearest known name. A handler or
  source that is not supported is one error, not a second about a missing handler.
- A null value means "not set", as in Kubernetes; a required field that is null or
  absent is an error.
- Integers must be real ints: not bools, not strings, not floats.
- Kubernetes defaults are applied while parsing (restartPolicy Always, probe timings
  0/10/1/3/1, grace period 30 s, imagePullPolicy from the image tag, resource requests
  copied from limits when only limits are given), so a parsed Pod is fully explicit
  and pod_to_dict writes every defaulted field: parse_pod(pod_to_dict(p)) == p.
  The fields added after the first release (dnsPolicy ClusterFirst, serviceAccountName
  "default", the booleans shareProcessNamespace, stdin, stdinOnce, tty) are written only
  when they differ from their default, so the spec hash of a Pod that does not use them
  is what it was, and a restarted agent adopts its containers instead of replacing them.
- Stricter than Kubernetes on purpose (each would only fail later at run time):
  a probe's named port must name a port of the same container; a mountPath and a
  hostPath path must be absolute; resources are limited to cpu and memory.
- metadata.ownerReferences (apiVersion, kind, name, uid, controller, blockOwnerDeletion)
  is read here for every namespaced kind that uses this reader: at most one controller.
- initContainers are containers that may also carry restartPolicy "Always" (a native
  sidecar); a regular init container may not carry probes; names are unique across
  containers and initContainers.
- Pure: no I/O, no clock. YAML text is manifest.py's business.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Callable

from agent.state.pod.affinity import read_affinity
from agent.state.pod.errors import FieldError, ManifestError
from agent.state.pod.kubernetes_fields import KUBERNETES_FIELDS
from agent.state.pod.model import (
    API_VERSION,
    DEFAULT_CONFIG_VOLUME_MODE,
    EMPTY_DIR_MEDIA,
    EMPTY_MAP,
    HOST_PATH_TYPES,
    HTTP_SCHEMES,
    KIND,
    MAX_ANNOTATIONS_BYTES,
    PROTOCOLS,
    PULL_POLICIES,
    RESOURCE_NAMES,
    RESTART_POLICIES,
    TAINT_EFFECTS,
    TOLERATION_OPERATORS,
    Container,
    ContainerPort,
    ConfigVolumeSource,
    EmptyDirVolumeSource,
    EnvFromSource,
    KeySelector,
    KeyToPath,
    ObjectRef,
    Capabilities,
    EnvVar,
    EnvVarSource,
    ExecAction,
    FrozenMap,
    GRPCAction,
    Lifecycle,
    LifecycleHandler,
    SleepAction,
    HostPathVolumeSource,
    HTTPGetAction,
    DNS_POLICIES,
    RESOURCE_FIELDS,
    HostAlias,
    PodDNSConfig,
    PodDNSConfigOption,
    ObjectFieldSelector,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodSecurityContext,
    ResourceFieldSelector,
    SecurityContext,
    PodSpec,
    Toleration,
    Probe,
    ResourceRequirements,
    TCPSocketAction,
    Volume,
    VolumeMount,
    default_pull_policy,
)
from agent.state.pod.serialize import object_meta_to_dict
from agent.state.pod.syntax import (
    absolute_path_problem,
    config_key_problem,
    relative_path_problem,
    dns_label_problem,
    dns_subdomain_problem,
    capability_problem,
    divisor_problem,
    env_name_problem,
    field_path_problem,
    ip_problem,
    header_name_problem,
    image_problem,
    label_value_problem,
    port_name_problem,
    qualified_name_problem,
    quote,
    type_name,
)
from agent.state.quantity import Quantity, QuantityError, parse_quantity

_MISSING = object()
_PROBE_FIELDS = ("exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "periodSeconds", "timeoutSeconds",
                 "failureThreshold", "successThreshold")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Parser:
    """Reads one decoded manifest, collecting every FieldError instead of stopping at the first."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    # -- generic readers: each returns a usable value even after recording an error

    def obj(self, raw: Any, path: str, allowed: tuple[str, ...], *, kind: str = "") -> Mapping[str, Any]:
        """An object whose keys must all be in `allowed`; {} (after an error) if it is not an object.

        A key Kubernetes has in this `kind` of object but agentd does not read is "not
        supported by agentd"; any other is an "unknown field", with the nearest known name.
        """
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail(path, f"must be an object, got {type_name(raw)}")
            return {}
        for key in raw:
            if key in allowed:
                continue
            known = KUBERNETES_FIELDS.get(kind, frozenset())
            if key in known:
                self.fail(_child(path, str(key)), "not supported by agentd")
                continue
            names = sorted({*allowed, *known})
            near = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6) if isinstance(key, str) else []
            hint = f", did you mean {quote(near[0])}?" if near else ""
            self.fail(_child(path, str(key)), "unknown field" + hint)
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
            self.fail(path, f"must be a string, got {type_name(value)} {quote(value)}")
            return default
        if choices is not None and value not in choices:
            self.fail(path, f"{quote(value)} is not one of {', '.join(quote(c) for c in choices)}")
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
            self.fail(path, f"must be an integer, got {type_name(value)} {quote(value)}")
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
            self.fail(_child(path, key), f"must be a boolean, got {type_name(value)} {quote(value)}")
            return default
        return value

    def items(self, m: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> list[tuple[Any, str]]:
        """A list field as (item, item_path) pairs; [] if absent or not a list."""
        value = self.get(m, key, path, required=required)
        if value is _MISSING:
            return []
        list_path = _child(path, key)
        if not isinstance(value, (list, tuple)):
            self.fail(list_path, f"must be a list, got {type_name(value)}")
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
            return EMPTY_MAP
        map_path = _child(path, key)
        if not isinstance(value, Mapping):
            self.fail(map_path, f"must be an object, got {type_name(value)}")
            return EMPTY_MAP
        result: dict[str, str] = {}
        for k, v in value.items():
            entry_path = f"{map_path}[{quote(k)}]"
            if not isinstance(k, str):
                self.fail(entry_path, f"key must be a string, got {type_name(k)}")
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
            self.fail(path, f"{quote(value)} is not a quantity")
            return None
        try:
            q = parse_quantity(value)
        except QuantityError:
            self.fail(path, f"{quote(value)} is not a quantity")
            return None
        if non_negative and q.value < 0:
            self.fail(path, f"{quote(value)} must not be negative")
        return q

    # -- the Pod, top down

    def pod(self, doc: Any) -> Pod:
        if not isinstance(doc, Mapping):
            self.fail("", f"must be an object, got {type_name(doc)}")
            return _placeholder_pod()
        top = self.obj(doc, "", ("apiVersion", "kind", "metadata", "spec"), kind="Pod")
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

    def document_top(self, doc: Any, kind: str, api_version: str,
                     fields: tuple[str, ...]) -> tuple[Mapping[str, Any], dict[str, Any]]:
        """An object of another kind than Pod: its top-level fields (apiVersion, kind,
        metadata and `fields`) checked, and its metadata as a dict (see
        serialize.object_meta_to_dict)."""
        if not isinstance(doc, Mapping):
            self.fail("", f"must be an object, got {type_name(doc)}")
            return {}, {}
        top = self.obj(doc, "", ("apiVersion", "kind", "metadata", *fields))
        self.string(top, "apiVersion", "", required=True, choices=(api_version,))
        self.string(top, "kind", "", required=True, choices=(kind,))
        meta: dict[str, Any] = {}
        if top.get("metadata") is None:
            self.fail("metadata", "required field is missing")
        else:
            meta = object_meta_to_dict(self.metadata(top["metadata"], "metadata"))
        return top, meta

    def metadata(self, raw: Any, path: str) -> ObjectMeta:
        m = self.obj(raw, path, ("name", "namespace", "labels", "annotations", "uid", "ownerReferences"),
                     kind="ObjectMeta")
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
            owner_references=self.owner_references(m, path),
        )

    def owner_references(self, m: Mapping[str, Any], path: str) -> tuple[OwnerReference, ...]:
        """metadata.ownerReferences: each names its owner fully; at most one is the controller."""
        refs = []
        for item, item_path in self.items(m, "ownerReferences", path):
            r = self.obj(item, item_path, ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion"))
            refs.append(OwnerReference(
                api_version=self.string(r, "apiVersion", item_path, required=True, default=""),
                kind=self.string(r, "kind", item_path, required=True, default=""),
                name=self.string(r, "name", item_path, required=True, default="", check=dns_subdomain_problem),
                uid=self.string(r, "uid", item_path, required=True, default=""),
                controller=self.boolean(r, "controller", item_path, default=None),  # type: ignore[arg-type]
                block_owner_deletion=self.boolean(r, "blockOwnerDeletion", item_path,
                                                  default=None),  # type: ignore[arg-type]
            ))
        controllers = [r for r in refs if r.controller]
        if len(controllers) > 1:
            self.fail(_child(path, "ownerReferences"),
                      "Only one reference can have Controller set to true. Found \"true\" in references for "
                      + " and ".join(f"{r.kind}/{r.name}" for r in controllers))
        uids = [r.uid for r in refs]
        self.check_unique(uids, _child(path, "ownerReferences"), "uid")
        return tuple(refs)

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
                "tolerations",
                "initContainers",
                "serviceAccountName",
                "securityContext",
                "shareProcessNamespace",
                "hostname",
                "subdomain",
                "dnsPolicy",
                "dnsConfig",
                "hostAliases",
                "activeDeadlineSeconds",
                "affinity",
            ),
            kind="PodSpec",
        )
        volumes = tuple(self.volume(item, item_path) for item, item_path in self.items(m, "volumes", path))
        self.check_unique([v.name for v in volumes], _child(path, "volumes"), "name")
        volume_names = {v.name for v in volumes}
        containers = tuple(
            self.container(item, item_path, volume_names)
            for item, item_path in self.items(m, "containers", path, required=True)
        )
        self.check_unique([c.name for c in containers], _child(path, "containers"), "name")
        init_containers = tuple(
            self.container(item, item_path, volume_names, init=True)
            for item, item_path in self.items(m, "initContainers", path)
        )
        self.check_unique([c.name for c in init_containers], _child(path, "initContainers"), "name")
        app_names = {c.name for c in containers}
        for i, c in enumerate(init_containers):
            if c.name and c.name in app_names:
                self.fail(f"{path}.initContainers[{i}].name", f"duplicate name {quote(c.name)} (also in containers)")
        self.check_host_ports(containers, _child(path, "containers"))
        dns_policy = self.string(m, "dnsPolicy", path, default="ClusterFirst", choices=DNS_POLICIES)
        dns_config = self.dns_config(m.get("dnsConfig"), _child(path, "dnsConfig"))
        if dns_policy == "None" and (dns_config is None or not dns_config.nameservers):
            self.fail(_child(path, "dnsConfig.nameservers"), 'must provide at least one nameserver when dnsPolicy is "None"')
        all_names = {c.name for c in (*containers, *init_containers)}
        self.check_resource_refs(containers, _child(path, "containers"), all_names)
        self.check_resource_refs(init_containers, _child(path, "initContainers"), all_names)
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
            tolerations=tuple(self.toleration(item, item_path) for item, item_path in self.items(m, "tolerations", path)),
            init_containers=init_containers,
            service_account_name=self.string(
                m, "serviceAccountName", path, default="default", check=dns_subdomain_problem
            ),
            security_context=self.pod_security_context(m.get("securityContext"), _child(path, "securityContext")),
            share_process_namespace=self.boolean(m, "shareProcessNamespace", path, default=False),
            hostname=self.string(m, "hostname", path, default=None, check=dns_label_problem),
            subdomain=self.string(m, "subdomain", path, default=None, check=dns_label_problem),
            dns_policy=dns_policy,
            dns_config=dns_config,
            active_deadline_seconds=self.integer(m, "activeDeadlineSeconds", path, default=None, minimum=1),
            host_aliases=tuple(self.host_alias(item, item_path) for item, item_path in self.items(m, "hostAliases", path)),
            affinity=read_affinity(self, m.get("affinity"), _child(path, "affinity")),
        )

    def host_alias(self, raw: Any, path: str) -> HostAlias:
        m = self.obj(raw, path, ("ip", "hostnames"), kind="HostAlias")
        ip = self.string(m, "ip", path, required=True, default="", check=ip_problem)
        hostnames = tuple(
            self.string_value(v, p, check=dns_subdomain_problem) for v, p in self.items(m, "hostnames", path)
        )
        return HostAlias(ip=ip, hostnames=hostnames)

    def dns_config(self, raw: Any, path: str) -> PodDNSConfig | None:
        if raw is None:
            return None
        m = self.obj(raw, path, ("nameservers", "searches", "options"), kind="PodDNSConfig")
        nameservers = tuple(self.string_value(v, p, check=ip_problem) for v, p in self.items(m, "nameservers", path))
        if len(nameservers) > 3:
            self.fail(_child(path, "nameservers"), f"must not have more than 3 nameservers, got {len(nameservers)}")
        searches = tuple(
            self.string_value(v, p, check=lambda d: dns_subdomain_problem(d.rstrip(".")))
            for v, p in self.items(m, "searches", path)
        )
        if len(searches) > 32:
            self.fail(_child(path, "searches"), f"must not have more than 32 search paths, got {len(searches)}")
        options = []
        for item, item_path in self.items(m, "options", path):
            o = self.obj(item, item_path, ("name", "value"), kind="PodDNSConfigOption")
            options.append(PodDNSConfigOption(
                name=self.string(o, "name", item_path, required=True, default=""),
                value=self.string(o, "value", item_path, default=None),
            ))
        return PodDNSConfig(nameservers=nameservers, searches=searches, options=tuple(options))

    def toleration(self, raw: Any, path: str) -> Toleration:
        m = self.obj(raw, path, ("key", "operator", "value", "effect", "tolerationSeconds"), kind="Toleration")
        key = self.string(m, "key", path, default="", check=lambda v: qualified_name_problem(v) if v else None)
        operator = self.string(m, "operator", path, default="Equal", choices=TOLERATION_OPERATORS)
        value = self.string(m, "value", path, default="", check=lambda v: label_value_problem(v) if v else None)
        effect = self.string(m, "effect", path, default="", choices=("", *TAINT_EFFECTS))
        seconds = self.integer(m, "tolerationSeconds", path, default=None)
        if not key and operator != "Exists":
            self.fail(_child(path, "operator"), 'must be "Exists" when key is empty')
        if operator == "Exists" and value:
            self.fail(_child(path, "value"), 'must be empty when operator is "Exists"')
        if seconds is not None and effect != "NoExecute":
            self.fail(_child(path, "tolerationSeconds"), 'only allowed with effect "NoExecute"')
        return Toleration(key=key, operator=operator, value=value, effect=effect, toleration_seconds=seconds)

    def check_unique(self, names: list[str], list_path: str, field_name: str) -> None:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name and name in seen:
                self.fail(f"{list_path}[{i}].{field_name}", f"duplicate {field_name} {quote(name)}")
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

    def container(self, raw: Any, path: str, volume_names: set[str], *, init: bool = False) -> Container:
        m = self.obj(
            raw,
            path,
            (
                *(("restartPolicy",) if init else ()),
                "name",
                "image",
                "imagePullPolicy",
                "command",
                "args",
                "env",
                "envFrom",
                "ports",
                "resources",
                "volumeMounts",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
                "lifecycle",
                "securityContext",
                "workingDir",
                "stdin",
                "stdinOnce",
                "tty",
            ),
            kind="Container",
        )
        image = self.string(m, "image", path, required=True, default="", check=image_problem)
        ports = tuple(self.port(item, item_path) for item, item_path in self.items(m, "ports", path))
        self.check_unique([p.name or "" for p in ports], _child(path, "ports"), "name")
        port_names = {p.name for p in ports if p.name}
        mounts = tuple(
            self.volume_mount(item, item_path, volume_names)
            for item, item_path in self.items(m, "volumeMounts", path)
        )
        self.check_unique([v.mount_path for v in mounts], _child(path, "volumeMounts"), "mountPath")
        restart_policy = None
        if init:
            # Kubernetes: "Always" is the one value an init container may carry (a native sidecar).
            restart_policy = self.string(m, "restartPolicy", path, default=None, choices=("Always",))
            if restart_policy is None:
                for key in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
                    if m.get(key) is not None:
                        self.fail(_child(path, key), 'may not be set for init containers without restartPolicy "Always"')
        return Container(
            name=self.string(m, "name", path, required=True, default="", check=dns_label_problem),
            image=image,
            image_pull_policy=self.string(
                m, "imagePullPolicy", path, default=default_pull_policy(image), choices=PULL_POLICIES
            ),
            command=self.strings(m, "command", path),
            args=self.strings(m, "args", path),
            env=tuple(self.env_var(item, item_path) for item, item_path in self.items(m, "env", path)),
            env_from=tuple(self.env_from(item, item_path) for item, item_path in self.items(m, "envFrom", path)),
            ports=ports,
            resources=self.resources(m.get("resources"), _child(path, "resources")),
            volume_mounts=mounts,
            liveness_probe=self.probe(m, "livenessProbe", path, port_names, success_must_be_one=True),
            readiness_probe=self.probe(m, "readinessProbe", path, port_names, success_must_be_one=False),
            startup_probe=self.probe(m, "startupProbe", path, port_names, success_must_be_one=True),
            restart_policy=restart_policy,
            lifecycle=self.lifecycle(m.get("lifecycle"), _child(path, "lifecycle"), port_names),
            security_context=self.security_context(m.get("securityContext"), _child(path, "securityContext")),
            working_dir=self.string(m, "workingDir", path, default=None, check=absolute_path_problem),
            stdin=self.boolean(m, "stdin", path, default=False),
            stdin_once=self.boolean(m, "stdinOnce", path, default=False),
            tty=self.boolean(m, "tty", path, default=False),
        )

    def security_context(self, raw: Any, path: str) -> SecurityContext | None:
        if raw is None:
            return None
        m = self.obj(raw, path, ("runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                                 "allowPrivilegeEscalation", "privileged", "capabilities"), kind="SecurityContext")
        capabilities = None
        if m.get("capabilities") is not None:
            c_path = _child(path, "capabilities")
            c = self.obj(m["capabilities"], c_path, ("add", "drop"), kind="Capabilities")
            capabilities = Capabilities(
                add=tuple(self.string_value(v, p, check=capability_problem) for v, p in self.items(c, "add", c_path)),
                drop=tuple(self.string_value(v, p, check=capability_problem) for v, p in self.items(c, "drop", c_path)),
            )
        sc = SecurityContext(
            run_as_user=self.integer(m, "runAsUser", path, default=None, minimum=0, maximum=2**31 - 1),
            run_as_group=self.integer(m, "runAsGroup", path, default=None, minimum=0, maximum=2**31 - 1),
            run_as_non_root=self.optional_boolean(m, "runAsNonRoot", path),
            read_only_root_filesystem=self.optional_boolean(m, "readOnlyRootFilesystem", path),
            allow_privilege_escalation=self.optional_boolean(m, "allowPrivilegeEscalation", path),
            privileged=self.optional_boolean(m, "privileged", path),
            capabilities=capabilities,
        )
        if sc.allow_privilege_escalation is False:
            # Kubernetes' rule: no-new-privileges cannot hold for a process given every privilege.
            if sc.privileged:
                self.fail(_child(path, "allowPrivilegeEscalation"), "cannot be false when privileged is true")
            elif capabilities is not None and any(a.upper().removeprefix("CAP_") == "SYS_ADMIN"
                                                  for a in capabilities.add):
                self.fail(_child(path, "allowPrivilegeEscalation"), "cannot be false when SYS_ADMIN is added")
        if sc.run_as_non_root and sc.run_as_user == 0:
            self.fail(_child(path, "runAsNonRoot"), "cannot be true when runAsUser is 0")
        return sc

    def pod_security_context(self, raw: Any, path: str) -> PodSecurityContext | None:
        if raw is None:
            return None
        m = self.obj(raw, path, ("runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups"),
                     kind="PodSecurityContext")
        sc = PodSecurityContext(
            run_as_user=self.integer(m, "runAsUser", path, default=None, minimum=0, maximum=2**31 - 1),
            run_as_group=self.integer(m, "runAsGroup", path, default=None, minimum=0, maximum=2**31 - 1),
            run_as_non_root=self.optional_boolean(m, "runAsNonRoot", path),
            fs_group=self.integer(m, "fsGroup", path, default=None, minimum=0, maximum=2**31 - 1),
            supplemental_groups=tuple(
                self.integer_value(v, p, default=0, minimum=0, maximum=2**31 - 1)
                for v, p in self.items(m, "supplementalGroups", path)
            ),
        )
        if sc.run_as_non_root and sc.run_as_user == 0:
            self.fail(_child(path, "runAsNonRoot"), "cannot be true when runAsUser is 0")
        return sc

    def optional_boolean(self, m: Mapping[str, Any], key: str, path: str) -> bool | None:
        value = self.get(m, key, path)
        if value is _MISSING:
            return None
        return self.boolean(m, key, path, default=False)

    def lifecycle(self, raw: Any, path: str, port_names: set[str]) -> Lifecycle | None:
        if raw is None:
            return None
        m = self.obj(raw, path, ("postStart", "preStop"), kind="Lifecycle")
        return Lifecycle(
            post_start=self.lifecycle_handler(m.get("postStart"), _child(path, "postStart"), port_names),
            pre_stop=self.lifecycle_handler(m.get("preStop"), _child(path, "preStop"), port_names),
        )

    def lifecycle_handler(self, raw: Any, path: str, port_names: set[str]) -> LifecycleHandler | None:
        if raw is None:
            return None
        kinds = ("exec", "httpGet", "sleep")
        m = self.obj(raw, path, kinds, kind="LifecycleHandler")
        handlers = [h for h in kinds if m.get(h) is not None]
        if len(handlers) != 1 and not self.has_extra_keys(raw, kinds):
            found = ", ".join(handlers) if handlers else "none"
            self.fail(path, f"must have exactly one handler of exec, httpGet, sleep (found {found})")
        sleep = None
        if m.get("sleep") is not None:
            s_path = _child(path, "sleep")
            sm = self.obj(m["sleep"], s_path, ("seconds",), kind="SleepAction")
            sleep = SleepAction(seconds=self.integer(sm, "seconds", s_path, required=True, default=0, minimum=0))
        return LifecycleHandler(
            exec=self.exec_action(m["exec"], _child(path, "exec")) if m.get("exec") is not None else None,
            http_get=self.http_get(m["httpGet"], _child(path, "httpGet"), port_names)
            if m.get("httpGet") is not None else None,
            sleep=sleep,
        )

    @staticmethod
    def has_extra_keys(raw: Any, allowed: tuple[str, ...]) -> bool:
        """Does an object carry a key outside `allowed` (reported already, so no second error)?"""
        return isinstance(raw, Mapping) and any(k not in allowed and raw[k] is not None for k in raw)

    def env_var(self, raw: Any, path: str) -> EnvVar:
        m = self.obj(raw, path, ("name", "value", "valueFrom"), kind="EnvVar")
        value_from = None
        if m.get("valueFrom") is not None:
            value_from = self.env_var_source(m["valueFrom"], _child(path, "valueFrom"))
            if m.get("value") not in (None, ""):
                self.fail(_child(path, "valueFrom"), "may not be set when value is not empty")
        return EnvVar(
            name=self.string(m, "name", path, required=True, default="", check=env_name_problem),
            value=self.string(m, "value", path, default=""),
            value_from=value_from,
        )

    def env_var_source(self, raw: Any, path: str) -> EnvVarSource:
        all_sources = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
        m = self.obj(raw, path, all_sources, kind="EnvVarSource")
        sources = [k for k in all_sources if m.get(k) is not None]
        if len(sources) != 1 and isinstance(raw, Mapping) and not set(raw) - set(all_sources):
            found = ", ".join(sources) if sources else "none"
            self.fail(path, f"must have exactly one source of {', '.join(all_sources)} (found {found})")
        field_ref = resource_ref = None
        if m.get("fieldRef") is not None:
            f_path = _child(path, "fieldRef")
            f = self.obj(m["fieldRef"], f_path, ("apiVersion", "fieldPath"), kind="ObjectFieldSelector")
            field_ref = ObjectFieldSelector(
                field_path=self.string(f, "fieldPath", f_path, required=True, default="", check=field_path_problem),
                api_version=self.string(f, "apiVersion", f_path, default="v1", choices=("v1",)),
            )
        if m.get("resourceFieldRef") is not None:
            r_path = _child(path, "resourceFieldRef")
            r = self.obj(m["resourceFieldRef"], r_path, ("containerName", "resource", "divisor"),
                         kind="ResourceFieldSelector")
            resource = self.string(r, "resource", r_path, required=True, default="", choices=RESOURCE_FIELDS)
            divisor = None
            if r.get("divisor") is not None:
                divisor = self.quantity(r["divisor"], _child(r_path, "divisor"), non_negative=True)
                problem = divisor_problem(resource, divisor) if divisor is not None and resource else None
                if problem:
                    self.fail(_child(r_path, "divisor"), problem)
            resource_ref = ResourceFieldSelector(
                resource=resource,
                container_name=self.string(r, "containerName", r_path, default=None),
                divisor=divisor,
            )
        return EnvVarSource(field_ref=field_ref, resource_field_ref=resource_ref,
                            config_map_key_ref=self.key_selector(m, "configMapKeyRef", path, "ConfigMapKeySelector"),
                            secret_key_ref=self.key_selector(m, "secretKeyRef", path, "SecretKeySelector"))

    def key_selector(self, m: Mapping[str, Any], key: str, path: str, kind: str) -> KeySelector | None:
        if m.get(key) is None:
            return None
        k_path = _child(path, key)
        k = self.obj(m[key], k_path, ("name", "key", "optional"), kind=kind)
        return KeySelector(
            name=self.string(k, "name", k_path, required=True, default="", check=dns_subdomain_problem),
            key=self.string(k, "key", k_path, required=True, default="", check=config_key_problem),
            optional=self.boolean(k, "optional", k_path, default=None),  # type: ignore[arg-type]
        )

    def object_ref(self, m: Mapping[str, Any], key: str, path: str, kind: str) -> ObjectRef | None:
        if m.get(key) is None:
            return None
        r_path = _child(path, key)
        r = self.obj(m[key], r_path, ("name", "optional"), kind=kind)
        return ObjectRef(
            name=self.string(r, "name", r_path, required=True, default="", check=dns_subdomain_problem),
            optional=self.boolean(r, "optional", r_path, default=None),  # type: ignore[arg-type]
        )

    def env_from(self, raw: Any, path: str) -> EnvFromSource:
        allowed = ("prefix", "configMapRef", "secretRef")
        m = self.obj(raw, path, allowed, kind="EnvFromSource")
        refs = [k for k in ("configMapRef", "secretRef") if m.get(k) is not None]
        if len(refs) != 1 and isinstance(raw, Mapping) and not set(raw) - set(allowed):
            found = ", ".join(refs) if refs else "none"
            self.fail(path, f"must have exactly one source of configMapRef, secretRef (found {found})")
        prefix = self.string(m, "prefix", path, default="")
        if prefix and env_name_problem(prefix):
            self.fail(_child(path, "prefix"), env_name_problem(prefix) or "")
        return EnvFromSource(
            prefix=prefix,
            config_map_ref=self.object_ref(m, "configMapRef", path, "ConfigMapEnvSource"),
            secret_ref=self.object_ref(m, "secretRef", path, "SecretEnvSource"),
        )

    def check_resource_refs(self, containers: tuple[Container, ...], list_path: str, names: set[str]) -> None:
        """A resourceFieldRef's containerName must name a container of this Pod."""
        for ci, c in enumerate(containers):
            for ei, e in enumerate(c.env):
                ref = e.value_from.resource_field_ref if e.value_from else None
                if ref is not None and ref.container_name is not None and ref.container_name not in names:
                    self.fail(f"{list_path}[{ci}].env[{ei}].valueFrom.resourceFieldRef.containerName",
                              f"{quote(ref.container_name)} is not a container of this pod")

    def port(self, raw: Any, path: str) -> ContainerPort:
        m = self.obj(raw, path, ("name", "containerPort", "hostPort", "protocol"), kind="ContainerPort")
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
        m = self.obj(raw, path, ("requests", "limits"), kind="ResourceRequirements")
        requests = self.resource_list(m, "requests", path)
        limits = self.resource_list(m, "limits", path)
        for name, request in requests.items():
            limit = limits.get(name)
            if limit is not None and request.value > limit.value:
                self.fail(
                    _child(path, f"requests.{name}"),
                    f"{quote(request.text)} must be less than or equal to the limit {quote(limit.text)}",
                )
        # Kubernetes defaulting: a resource with a limit but no request requests its limit.
        defaulted = dict(requests)
        for name, limit in limits.items():
            defaulted.setdefault(name, limit)
        return ResourceRequirements(requests=FrozenMap(defaulted), limits=limits)

    def resource_list(self, m: Mapping[str, Any], key: str, path: str) -> FrozenMap:
        value = self.get(m, key, path)
        if value is _MISSING:
            return EMPTY_MAP
        list_path = _child(path, key)
        entries = self.obj(value, list_path, RESOURCE_NAMES, kind="ResourceList")
        result = {}
        for name in RESOURCE_NAMES:
            if entries.get(name) is not None:
                q = self.quantity(entries[name], f"{list_path}.{name}", non_negative=True)
                if q is not None:
                    result[name] = q
        return FrozenMap(result)

    def volume_mount(self, raw: Any, path: str, volume_names: set[str]) -> VolumeMount:
        m = self.obj(raw, path, ("name", "mountPath", "readOnly", "subPath"), kind="VolumeMount")
        name = self.string(m, "name", path, required=True, default="")
        if name and name not in volume_names:
            self.fail(_child(path, "name"), f"{quote(name)} is not a volume declared in spec.volumes")
        return VolumeMount(
            name=name,
            mount_path=self.string(m, "mountPath", path, required=True, default="", check=absolute_path_problem),
            read_only=self.boolean(m, "readOnly", path, default=False),
            sub_path=self.string(m, "subPath", path, default="", check=relative_path_problem),
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
                "grpc",
                "initialDelaySeconds",
                "periodSeconds",
                "timeoutSeconds",
                "failureThreshold",
                "successThreshold",
            ),
            kind="Probe",
        )
        handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if m.get(h) is not None]
        if len(handlers) != 1 and not (not handlers and self.has_extra_keys(raw, _PROBE_FIELDS)):
            found = ", ".join(handlers) if handlers else "none"
            self.fail(path, f"must have exactly one handler of exec, httpGet, tcpSocket, grpc (found {found})")
        exec_action = http_get = tcp_socket = grpc = None
        if m.get("grpc") is not None:
            g = self.obj(m["grpc"], _child(path, "grpc"), ("port", "service"), kind="GRPCAction")
            grpc = GRPCAction(
                port=self.integer(g, "port", _child(path, "grpc"), default=0, required=True, minimum=1, maximum=65535),
                service=self.string(g, "service", _child(path, "grpc"), default=""),
            )
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
            grpc=grpc,
            initial_delay_seconds=self.integer(m, "initialDelaySeconds", path, default=0, minimum=0),
            period_seconds=self.integer(m, "periodSeconds", path, default=10, minimum=1),
            timeout_seconds=self.integer(m, "timeoutSeconds", path, default=1, minimum=1),
            failure_threshold=self.integer(m, "failureThreshold", path, default=3, minimum=1),
            success_threshold=success_threshold,
        )

    def exec_action(self, raw: Any, path: str) -> ExecAction:
        m = self.obj(raw, path, ("command",), kind="ExecAction")
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
                self.fail(port_path, f"{quote(value)} is not the name of a port of this container")
            return value
        return self.integer_value(value, port_path, default=0, minimum=1, maximum=65535)

    def http_get(self, raw: Any, path: str, port_names: set[str]) -> HTTPGetAction:
        m = self.obj(raw, path, ("path", "port", "host", "scheme", "httpHeaders"), kind="HTTPGetAction")
        headers = []
        for item, item_path in self.items(m, "httpHeaders", path):
            h = self.obj(item, item_path, ("name", "value"), kind="HTTPHeader")
            headers.append(
                (
                    self.string(h, "name", item_path, required=True, default="", check=header_name_problem),
                    self.string(h, "value", item_path, default=""),
                )
            )
        return HTTPGetAction(
            port=self.probe_port(m, path, port_names),
            path=self.string(m, "path", path, default="/", check=absolute_path_problem),
            host=self.string(m, "host", path, default=None),
            scheme=self.string(m, "scheme", path, default="HTTP", choices=HTTP_SCHEMES),
            http_headers=tuple(headers),
        )

    def tcp_socket(self, raw: Any, path: str, port_names: set[str]) -> TCPSocketAction:
        m = self.obj(raw, path, ("port", "host"), kind="TCPSocketAction")
        return TCPSocketAction(
            port=self.probe_port(m, path, port_names),
            host=self.string(m, "host", path, default=None),
        )

    def volume(self, raw: Any, path: str) -> Volume:
        kinds = ("emptyDir", "hostPath", "configMap", "secret")
        m = self.obj(raw, path, ("name", *kinds), kind="Volume")
        sources = [s for s in kinds if m.get(s) is not None]
        if len(sources) != 1 and not (not sources and self.has_extra_keys(raw, ("name", *kinds))):
            found = ", ".join(sources) if sources else "none"
            self.fail(path, f"must have exactly one source of {', '.join(kinds)} (found {found})")
        empty_dir = host_path = None
        if m.get("emptyDir") is not None:
            e_path = _child(path, "emptyDir")
            e = self.obj(m["emptyDir"], e_path, ("medium", "sizeLimit"), kind="EmptyDirVolumeSource")
            size_limit = None
            if e.get("sizeLimit") is not None:
                size_limit = self.quantity(e["sizeLimit"], _child(e_path, "sizeLimit"), non_negative=True)
            empty_dir = EmptyDirVolumeSource(
                medium=self.string(e, "medium", e_path, default="", choices=EMPTY_DIR_MEDIA), size_limit=size_limit
            )
        if m.get("hostPath") is not None:
            h_path = _child(path, "hostPath")
            h = self.obj(m["hostPath"], h_path, ("path", "type"), kind="HostPathVolumeSource")
            host_path = HostPathVolumeSource(
                path=self.string(h, "path", h_path, required=True, default="", check=absolute_path_problem),
                type=self.string(h, "type", h_path, default="", choices=HOST_PATH_TYPES),
            )
        return Volume(
            name=self.string(m, "name", path, required=True, default="", check=dns_label_problem),
            empty_dir=empty_dir,
            host_path=host_path,
            config_map=self.config_volume(m, "configMap", "name", path, "ConfigMapVolumeSource"),
            secret=self.config_volume(m, "secret", "secretName", path, "SecretVolumeSource"),
        )

    def config_volume(self, m: Mapping[str, Any], key: str, name_key: str, path: str,
                      kind: str) -> ConfigVolumeSource | None:
        if m.get(key) is None:
            return None
        v_path = _child(path, key)
        v = self.obj(m[key], v_path, (name_key, "items", "defaultMode", "optional"), kind=kind)
        items = []
        for item, item_path in self.items(v, "items", v_path):
            i = self.obj(item, item_path, ("key", "path", "mode"), kind="KeyToPath")
            items.append(KeyToPath(
                key=self.string(i, "key", item_path, required=True, default="", check=config_key_problem),
                path=self.string(i, "path", item_path, required=True, default="", check=relative_path_problem),
                mode=self.integer(i, "mode", item_path, default=None, minimum=0, maximum=0o777),
            ))
        self.check_unique([i.path for i in items], _child(v_path, "items"), "path")
        return ConfigVolumeSource(
            name=self.string(v, name_key, v_path, required=True, default="", check=dns_subdomain_problem),
            items=tuple(items),
            default_mode=self.integer(v, "defaultMode", v_path, default=DEFAULT_CONFIG_VOLUME_MODE, minimum=0,
                                      maximum=0o777),
            optional=self.boolean(v, "optional", v_path, default=None),  # type: ignore[arg-type]
        )


def _placeholder_pod() -> Pod:
    return Pod(metadata=ObjectMeta(name=""), spec=PodSpec(containers=()))


def parse_pod(doc: Mapping[str, Any]) -> Pod:
    """A decoded Pod manifest (apiVersion v1, kind Pod) -> Pod, defaults applied. Raises ManifestError."""
    parser = _Parser()
    pod = parser.pod(doc)
    if parser.errors:
        raise ManifestError(parser.errors)
    return pod


# The field-path reader, for the kinds that embed a Pod (a Deployment's or ReplicaSet's
# template): they read their own fields with it and the Pod's with its pod_spec.
ManifestReader = _Parser
