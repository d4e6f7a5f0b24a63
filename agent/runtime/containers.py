"""Translation of a Pod into Docker objects (pure).

Owns: the names, labels and create arguments of a Pod's infra container, app containers
and volumes. Rules: pure functions of (Pod, node, config); no Docker calls. Every object
carries the labels that let a restarted agent find and adopt it:
node, pod uid/name/namespace, container name, role, restart count, spec hash, and the
Pod's start time (so its age survives an agent restart).

Layout of a Pod on Docker:
  - one infra container (config.infra_image) holds the network namespace and publishes
    the host ports; the app containers join it (network_mode=container:<infra>), so the
    containers of a Pod reach each other on localhost and share the Pod IP;
  - an emptyDir is a named Docker volume shared by the Pod's containers (tmpfs-backed
    when medium is Memory); a hostPath is a bind mount;
  - the environment is env.py's (downward API values, ConfigMaps and Secrets through
    a lookup, $(VAR) expansion), which also expands command and args; a missing
    ConfigMap, Secret or key is a ConfigError (CreateContainerConfigError);
  - a configMap or secret volume is a host directory on tmpfs (config_volumes.py,
    projected_dir.py) bind-mounted read-only; a subPath binds one path inside a
    configMap, secret or hostPath volume;
  - shareProcessNamespace puts the app containers in the infra container's PID namespace;
    hostname/subdomain, hostAliases and dnsConfig are the infra container's (the app containers share
    its UTS namespace and resolv.conf);
  - CPU limits map to nano_cpus, CPU requests to cpu_shares, memory limits to mem_limit
    (with swap disabled so the limit is the limit);
  - every container logs through the json-file driver with rotation (max-size, max-file
    from the config), as kubelet rotates container logs;
  - the Pod's process budget (config.pod_pids_limit) is enforced per container, because
    Docker gives no Pod-level cgroup to put a limit on: the infra container gets
    INFRA_PIDS_LIMIT and the app containers share the rest evenly, so the Pod as a
    whole never runs more than its budget (see pids_limits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .config import RuntimeConfig
from .config_volumes import config_volume_dir, source_of
from .env import Lookup, MissingConfig, container_env, expand_all

LABEL_PREFIX = "agentd."
LABEL_NODE = "agentd.node"
LABEL_POD_UID = "agentd.pod.uid"
LABEL_POD_NAME = "agentd.pod.name"
LABEL_POD_NAMESPACE = "agentd.pod.namespace"
LABEL_SPEC_HASH = "agentd.pod.spec-hash"
LABEL_GRACE_S = "agentd.pod.grace-period-s"
LABEL_ROLE = "agentd.role"
LABEL_CONTAINER = "agentd.container"
LABEL_RESTART_COUNT = "agentd.restart-count"
LABEL_CRASH_STREAK = "agentd.crash-streak"
LABEL_VOLUME = "agentd.volume"
LABEL_POD_STARTED = "agentd.pod.started-at"  # epoch seconds: the Pod's start, kept across agent restarts

ROLE_INFRA = "infra"
ROLE_APP = "app"
INFRA_CONTAINER_NAME = "POD"  # the name the infra container is known by in labels and names

_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")
# The infra container runs our own shell loop: the shell and one sleep, and a spare few.
INFRA_PIDS_LIMIT = 8


class SpecError(ValueError):
    """A Pod that cannot be expressed as Docker objects (e.g. an unsupported quantity)."""


class ConfigError(SpecError):
    """A container this node refuses to create as configured (Kubernetes' CreateContainerConfigError):
    runAsNonRoot with an image that runs as root, privileged on a node that does not allow it."""


def _safe(part: str) -> str:
    return _UNSAFE.sub("-", part) or "x"


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    """Everything needed to create one Docker container, as plain data."""

    name: str  # Docker container name (unique per engine)
    create_kwargs: Mapping[str, Any]  # for APIClient.create_container (minus host_config)
    host_config_kwargs: Mapping[str, Any]  # for APIClient.create_host_config
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VolumePlan:
    name: str  # Docker volume name
    pod_volume: str  # the name the Pod spec uses
    driver_opts: Mapping[str, str]
    labels: Mapping[str, str]


def pod_labels(pod: Any, node_name: str, spec_hash: str) -> dict[str, str]:
    meta = pod.metadata
    return {
        LABEL_NODE: node_name,
        LABEL_POD_UID: str(meta.uid),
        LABEL_POD_NAME: meta.name,
        LABEL_POD_NAMESPACE: meta.namespace,
        LABEL_SPEC_HASH: spec_hash,
        LABEL_GRACE_S: str(grace_period_s(pod)),
    }


def grace_period_s(pod: Any) -> int:
    grace = pod.spec.termination_grace_period_seconds
    return 30 if grace is None else max(0, int(grace))


def _uid_short(pod: Any) -> str:
    return _safe(str(pod.metadata.uid))[:12]


def container_name(pod: Any, node_name: str, container: str, restart_count: int) -> str:
    meta = pod.metadata
    parts = ("agentd", node_name, meta.namespace, meta.name, container, _uid_short(pod), str(restart_count))
    return "_".join(_safe(p) for p in parts)


def volume_name(pod: Any, volume: str) -> str:
    return f"agentd_{_safe(str(pod.metadata.uid))}_{_safe(volume)}"


def volume_plans(pod: Any, node_name: str, spec_hash: str) -> list[VolumePlan]:
    plans = []
    for vol in pod.spec.volumes:
        if vol.empty_dir is None:
            continue
        opts: dict[str, str] = {}
        if (vol.empty_dir.medium or "") == "Memory":
            opts = {"type": "tmpfs", "device": "tmpfs"}
            if vol.empty_dir.size_limit is not None:
                opts["o"] = f"size={_memory_bytes(vol.empty_dir.size_limit)}"
        labels = pod_labels(pod, node_name, spec_hash)
        labels[LABEL_VOLUME] = vol.name
        plans.append(VolumePlan(volume_name(pod, vol.name), vol.name, opts, labels))
    return plans


def started_label(started_at: float) -> str:
    return f"{started_at:.3f}"


def infra_plan(pod: Any, node_name: str, spec_hash: str, config: RuntimeConfig, *, started_at: float) -> ContainerPlan:
    labels = pod_labels(pod, node_name, spec_hash)
    labels.update({LABEL_ROLE: ROLE_INFRA, LABEL_CONTAINER: INFRA_CONTAINER_NAME, LABEL_RESTART_COUNT: "0",
                   LABEL_POD_STARTED: started_label(started_at)})
    ports: list[Any] = []
    bindings: dict[Any, Any] = {}
    for c in (*pod.spec.containers, *pod.spec.init_containers):
        for p in c.ports:
            if not p.host_port:
                continue
            proto = (p.protocol or "TCP").lower()
            key = p.container_port if proto == "tcp" else f"{p.container_port}/{proto}"
            ports.append(p.container_port if proto == "tcp" else (p.container_port, proto))
            bindings[key] = p.host_port
    create = {
        "image": config.infra_image,
        "command": list(config.infra_command),
        "hostname": pod.spec.hostname or _safe(pod.metadata.name)[:63],
        "ports": ports or None,
        "labels": labels,
    }
    if pod.spec.subdomain:
        create["domainname"] = f"{pod.spec.subdomain}.{pod.metadata.namespace}.svc.{CLUSTER_DOMAIN}"
    binds = None
    if fs_group_command(pod) is not None:
        binds = [f"{volume_name(pod, v.name)}:{FS_GROUP_MOUNT}/{_safe(v.name)}:rw"
                 for v in pod.spec.volumes if v.empty_dir is not None]
    host = {
        "network_mode": config.docker_network,
        "binds": binds,
        "port_bindings": bindings or None,
        "ipc_mode": "shareable",
        **dns_options(pod),
        "extra_hosts": [f"{name}:{a.ip}" for a in pod.spec.host_aliases for name in a.hostnames] or None,
        "log_config": log_config(config),
        "pids_limit": pids_limits(pod, config)[0],
    }
    name = container_name(pod, node_name, INFRA_CONTAINER_NAME, 0)
    return ContainerPlan(name, create, host, labels)


def app_plan(
    pod: Any,
    container: Any,
    node_name: str,
    spec_hash: str,
    infra_id: str,
    config: RuntimeConfig,
    *,
    restart_count: int,
    crash_streak: int,
    started_at: float,
    pod_ip: str | None = None,
    host_ip: str | None = None,
    node_cpu_millicores: int = 0,
    node_memory_bytes: int = 0,
    image_user: str = "",
    lookup: Lookup | None = None,
) -> ContainerPlan:
    labels = pod_labels(pod, node_name, spec_hash)
    labels.update({
        LABEL_ROLE: ROLE_APP,
        LABEL_CONTAINER: container.name,
        LABEL_RESTART_COUNT: str(restart_count),
        LABEL_CRASH_STREAK: str(crash_streak),
        LABEL_POD_STARTED: started_label(started_at),
    })
    try:
        env = container_env(pod, container, pod_ip=pod_ip, host_ip=host_ip,
                            node_cpu_millicores=node_cpu_millicores, node_memory_bytes=node_memory_bytes,
                            **({"lookup": lookup} if lookup is not None else {}))
    except MissingConfig as exc:
        raise ConfigError(str(exc)) from None
    create: dict[str, Any] = {
        "image": container.image,
        "labels": labels,
        "environment": env or None,
    }
    if container.command:
        create["entrypoint"] = expand_all(container.command, env)
    if container.args:
        create["command"] = expand_all(container.args, env)
    if container.working_dir:
        create["working_dir"] = container.working_dir
    if container.stdin:
        create["stdin_open"] = True
    if container.tty:
        create["tty"] = True
    host: dict[str, Any] = {
        "network_mode": f"container:{infra_id}",
        "ipc_mode": f"container:{infra_id}",
        "binds": _binds(pod, container, node_name, config.config_volume_dir) or None,
        "log_config": log_config(config),
        "pids_limit": pids_limits(pod, config)[1],
    }
    if pod.spec.share_process_namespace:
        host["pid_mode"] = f"container:{infra_id}"
    host.update(resource_limits(container))
    security = security_options(pod, container, config, image_user=image_user)
    if "user" in security:
        create["user"] = security.pop("user")
    host.update(security)
    name = container_name(pod, node_name, container.name, restart_count)
    return ContainerPlan(name, create, host, labels)


CLUSTER_DOMAIN = "cluster.local"


def dns_options(pod: Any) -> dict[str, Any]:
    """The infra container's resolver settings (the app containers share its resolv.conf).

    No cluster DNS runs here, so ClusterFirst resolves as Default does: the engine's
    resolver for the node. dnsConfig's nameservers and searches replace the node's (Docker
    cannot append to them); its options are added."""
    dns = pod.spec.dns_config
    if dns is None:
        return {}
    out: dict[str, Any] = {}
    if dns.nameservers:
        out["dns"] = list(dns.nameservers)
    if dns.searches:
        out["dns_search"] = list(dns.searches)
    if dns.options:
        out["dns_opt"] = [o.name if o.value is None else f"{o.name}:{o.value}" for o in dns.options]
    return out


def needs_image_user(pod: Any, container: Any) -> bool:
    """Does the container's securityContext depend on the user its image runs as?"""
    user, group, non_root = _effective_identity(pod, container)
    return user is None and (bool(non_root) or group is not None)


def _effective_identity(pod: Any, container: Any) -> tuple[int | None, int | None, bool | None]:
    """(runAsUser, runAsGroup, runAsNonRoot): the container's values, else the Pod's."""
    psc = pod.spec.security_context
    csc = container.security_context
    values = []
    for attr in ("run_as_user", "run_as_group", "run_as_non_root"):
        value = getattr(csc, attr) if csc is not None else None
        if value is None and psc is not None:
            value = getattr(psc, attr)
        values.append(value)
    return values[0], values[1], values[2]


def security_options(pod: Any, container: Any, config: RuntimeConfig, *, image_user: str = "") -> dict[str, Any]:
    """Docker's arguments for the securityContext: "user" (for create) and HostConfig fields.

    runAsUser/runAsGroup -> user "uid[:gid]" (a group alone keeps the image's user);
    runAsNonRoot -> refused (ConfigError) if the process would run as uid 0, or as a user
    name that cannot be checked, as kubelet refuses; readOnlyRootFilesystem -> read_only;
    capabilities -> cap_add/cap_drop; allowPrivilegeEscalation false -> no-new-privileges;
    privileged -> privileged, refused unless config.allow_privileged; fsGroup and
    supplementalGroups -> group_add.
    """
    out: dict[str, Any] = {}
    user, group, non_root = _effective_identity(pod, container)
    image_uid = image_user.partition(":")[0]
    if user is not None or group is not None:
        out["user"] = str(user if user is not None else (image_uid or "0"))
        if group is not None:
            out["user"] += f":{group}"
    if non_root:
        if user is None:
            if not image_uid or image_uid == "root":
                raise ConfigError("container has runAsNonRoot and image will run as root")
            if not image_uid.isdigit():
                raise ConfigError(f"container has runAsNonRoot and image has non-numeric user ({image_uid}),"
                                  " cannot verify user is non-root")
            if int(image_uid) == 0:
                raise ConfigError("container has runAsNonRoot and image will run as root")
        elif user == 0:
            raise ConfigError("container's runAsUser breaks non-root policy")
    csc = container.security_context
    if csc is not None:
        if csc.read_only_root_filesystem:
            out["read_only"] = True
        if csc.capabilities is not None:
            if csc.capabilities.add:
                out["cap_add"] = [c.upper() for c in csc.capabilities.add]
            if csc.capabilities.drop:
                out["cap_drop"] = [c.upper() for c in csc.capabilities.drop]
        if csc.allow_privilege_escalation is False:
            out["security_opt"] = ["no-new-privileges:true"]
        if csc.privileged:
            if not config.allow_privileged:
                raise ConfigError("privileged containers are not allowed on this node")
            out["privileged"] = True
    psc = pod.spec.security_context
    if psc is not None:
        groups = [*([psc.fs_group] if psc.fs_group is not None else []), *psc.supplemental_groups]
        if groups:
            out["group_add"] = [str(g) for g in dict.fromkeys(groups)]
    return out


def fs_group_command(pod: Any) -> list[str] | None:
    """The command (run in the infra container, which mounts the Pod's emptyDir volumes under
    FS_GROUP_MOUNT) that gives them to the Pod's fsGroup as kubelet does: group owner fsGroup,
    group read-write, setgid so new files keep the group. None: nothing to do."""
    psc = pod.spec.security_context
    if psc is None or psc.fs_group is None or not any(v.empty_dir is not None for v in pod.spec.volumes):
        return None
    return ["sh", "-c", f"chgrp -R {int(psc.fs_group)} {FS_GROUP_MOUNT} && chmod -R g+rw {FS_GROUP_MOUNT}"
                        f" && find {FS_GROUP_MOUNT} -mindepth 1 -type d -exec chmod 2777 {{}} +"]


FS_GROUP_MOUNT = "/.agentd-volumes"


def log_config(config: RuntimeConfig) -> dict[str, Any]:
    """The json-file log driver with rotation: at most max-file files of max-size bytes."""
    return {"type": "json-file", "config": {"max-size": str(config.container_log_max_size_bytes),
                                            "max-file": str(config.container_log_max_files)}}


def pids_limits(pod: Any, config: RuntimeConfig) -> tuple[int | None, int | None]:
    """(the infra container's pids limit, each app container's): together at most pod_pids_limit."""
    if config.pod_pids_limit is None:
        return None, None
    apps = len(pod.spec.containers) + len(pod.spec.init_containers)
    per_app = (config.pod_pids_limit - INFRA_PIDS_LIMIT) // apps
    if per_app < 1:
        raise SpecError(f"pod_pids_limit {config.pod_pids_limit} leaves no process for each of {apps} containers"
                        f" (the infra container keeps {INFRA_PIDS_LIMIT})")
    return INFRA_PIDS_LIMIT, per_app


def _binds(pod: Any, container: Any, node_name: str = "", config_dir: str = "") -> list[str]:
    by_name = {v.name: v for v in pod.spec.volumes}
    binds = []
    for m in container.volume_mounts:
        vol = by_name.get(m.name)
        if vol is None:
            raise SpecError(f"spec.containers[{container.name}].volumeMounts[{m.name}]: no such volume")
        read_only = m.read_only
        if vol.empty_dir is not None:
            source = volume_name(pod, vol.name)
            if m.sub_path:
                raise ConfigError(f"volumeMounts[{m.name}].subPath: not supported by agentd on an emptyDir volume")
        elif vol.host_path is not None:
            source = vol.host_path.path
        elif source_of(vol) is not None:
            source = config_volume_dir(config_dir, node_name, str(pod.metadata.uid), vol.name)
            read_only = True  # as kubelet mounts them
        else:
            raise SpecError(f"spec.volumes[{vol.name}]: only emptyDir, hostPath, configMap and secret are supported")
        if m.sub_path:
            source = f"{source.rstrip('/')}/{m.sub_path}"
        binds.append(f"{source}:{m.mount_path}:{'ro' if read_only else 'rw'}")
    return binds


def _cpu_millicores(q: Any) -> int:
    from agent.state.quantity import cpu_millicores

    return cpu_millicores(q)


def _memory_bytes(q: Any) -> int:
    from agent.state.quantity import memory_bytes

    return memory_bytes(q)


def resource_limits(container: Any) -> dict[str, int]:
    """Docker's HostConfig resource fields for a container's requests and limits."""
    out: dict[str, int] = {}
    res = container.resources
    limits = res.limits if res is not None else {}
    requests = res.requests if res is not None else {}
    if "cpu" in limits:
        out["nano_cpus"] = _cpu_millicores(limits["cpu"]) * 1_000_000
    cpu_request = requests.get("cpu", limits.get("cpu"))
    if cpu_request is not None:
        # The kernel's minimum share is 2; 1000 millicores is Docker's default weight 1024.
        out["cpu_shares"] = max(2, _cpu_millicores(cpu_request) * 1024 // 1000)
    if "memory" in limits:
        mem = _memory_bytes(limits["memory"])
        out["mem_limit"] = mem
        out["memswap_limit"] = mem  # no swap on top: the limit is what OOM-kills
    return out
