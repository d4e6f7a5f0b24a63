"""A Pod back to a Kubernetes-shaped dict, and the hash of what it runs.

Owns: pod_to_dict (Pod -> camelCase dict, JSON/YAML-ready, every defaulted field
written but those added later, which are written when not at their default: see
parser.py) and pod_spec_hash. Rules: pure; parse_pod(pod_to_dict(p)) == p; the hash is
stable across processes and versions of Python (canonical JSON, SHA-256).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agent.state.pod.affinity import affinity_to_dict
from agent.state.pod.model import (Container, ContainerPort, EnvVar, LifecycleHandler, ObjectMeta, OwnerReference, Pod,
                                   Probe, Toleration, Volume)


def object_meta_to_dict(meta: ObjectMeta) -> dict[str, Any]:
    """What a person may write of any object's metadata (no uid), camelCase."""
    out: dict[str, Any] = {"name": meta.name, "namespace": meta.namespace}
    if meta.labels:
        out["labels"] = dict(meta.labels)
    if meta.annotations:
        out["annotations"] = dict(meta.annotations)
    if meta.owner_references:
        out["ownerReferences"] = [owner_reference_to_dict(r) for r in meta.owner_references]
    return out


def pod_to_dict(pod: Pod) -> dict[str, Any]:
    """A Pod as a Kubernetes-shaped camelCase dict (JSON/YAML-ready); every defaulted field is written."""
    meta = object_meta_to_dict(pod.metadata)
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
    if pod.spec.service_account_name != "default":
        spec["serviceAccountName"] = pod.spec.service_account_name
    if pod.spec.security_context is not None:
        spec["securityContext"] = _security_context_to_dict(pod.spec.security_context)
    if pod.spec.share_process_namespace:
        spec["shareProcessNamespace"] = True
    for attr, key in (("hostname", "hostname"), ("subdomain", "subdomain")):
        if getattr(pod.spec, attr) is not None:
            spec[key] = getattr(pod.spec, attr)
    if pod.spec.dns_policy != "ClusterFirst":
        spec["dnsPolicy"] = pod.spec.dns_policy
    if pod.spec.dns_config is not None:
        dns = pod.spec.dns_config
        d: dict[str, Any] = {}
        if dns.nameservers:
            d["nameservers"] = list(dns.nameservers)
        if dns.searches:
            d["searches"] = list(dns.searches)
        if dns.options:
            d["options"] = [{"name": o.name, **({"value": o.value} if o.value is not None else {})}
                            for o in dns.options]
        spec["dnsConfig"] = d
    if pod.spec.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = pod.spec.active_deadline_seconds
    if pod.spec.host_aliases:
        spec["hostAliases"] = [{"ip": a.ip, "hostnames": list(a.hostnames)} for a in pod.spec.host_aliases]
    if pod.spec.init_containers:
        spec["initContainers"] = [_container_to_dict(c) for c in pod.spec.init_containers]
    if pod.spec.tolerations:
        spec["tolerations"] = [_toleration_to_dict(t) for t in pod.spec.tolerations]
    if pod.spec.affinity is not None:
        spec["affinity"] = affinity_to_dict(pod.spec.affinity)
    return {"apiVersion": pod.api_version, "kind": pod.kind, "metadata": meta, "spec": spec}


def owner_reference_to_dict(r: OwnerReference) -> dict[str, Any]:
    d: dict[str, Any] = {"apiVersion": r.api_version, "kind": r.kind, "name": r.name, "uid": r.uid}
    if r.controller is not None:
        d["controller"] = r.controller
    if r.block_owner_deletion is not None:
        d["blockOwnerDeletion"] = r.block_owner_deletion
    return d


def _toleration_to_dict(t: Toleration) -> dict[str, Any]:
    d: dict[str, Any] = {"operator": t.operator}
    if t.key:
        d["key"] = t.key
    if t.value:
        d["value"] = t.value
    if t.effect:
        d["effect"] = t.effect
    if t.toleration_seconds is not None:
        d["tolerationSeconds"] = t.toleration_seconds
    return d


def _container_to_dict(c: Container) -> dict[str, Any]:
    d: dict[str, Any] = {"name": c.name, "image": c.image, "imagePullPolicy": c.image_pull_policy}
    if c.restart_policy is not None:
        d["restartPolicy"] = c.restart_policy
    if c.command:
        d["command"] = list(c.command)
    if c.args:
        d["args"] = list(c.args)
    if c.env:
        d["env"] = [_env_to_dict(e) for e in c.env]
    if c.env_from:
        d["envFrom"] = [_env_from_to_dict(e) for e in c.env_from]
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
            {"name": v.name, "mountPath": v.mount_path, "readOnly": v.read_only,
             **({"subPath": v.sub_path} if v.sub_path else {})} for v in c.volume_mounts
        ]
    for key, probe in (
        ("livenessProbe", c.liveness_probe),
        ("readinessProbe", c.readiness_probe),
        ("startupProbe", c.startup_probe),
    ):
        if probe is not None:
            d[key] = _probe_to_dict(probe)
    if c.lifecycle is not None:
        lifecycle: dict[str, Any] = {}
        if c.lifecycle.post_start is not None:
            lifecycle["postStart"] = _handler_to_dict(c.lifecycle.post_start)
        if c.lifecycle.pre_stop is not None:
            lifecycle["preStop"] = _handler_to_dict(c.lifecycle.pre_stop)
        d["lifecycle"] = lifecycle
    if c.security_context is not None:
        d["securityContext"] = _security_context_to_dict(c.security_context)
    if c.working_dir is not None:
        d["workingDir"] = c.working_dir
    for attr, key in (("stdin", "stdin"), ("stdin_once", "stdinOnce"), ("tty", "tty")):
        if getattr(c, attr):
            d[key] = True
    return d


_SECURITY_FIELDS = (
    ("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup"), ("run_as_non_root", "runAsNonRoot"),
    ("read_only_root_filesystem", "readOnlyRootFilesystem"), ("allow_privilege_escalation", "allowPrivilegeEscalation"),
    ("privileged", "privileged"), ("fs_group", "fsGroup"),
)


def _security_context_to_dict(sc: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for attr, key in _SECURITY_FIELDS:
        value = getattr(sc, attr, None)
        if value is not None:
            d[key] = value
    if getattr(sc, "supplemental_groups", ()):
        d["supplementalGroups"] = list(sc.supplemental_groups)
    caps = getattr(sc, "capabilities", None)
    if caps is not None:
        d["capabilities"] = {k: list(v) for k, v in (("add", caps.add), ("drop", caps.drop)) if v}
    return d


def _handler_to_dict(h: LifecycleHandler) -> dict[str, Any]:
    d = _actions_to_dict(h)
    if h.sleep is not None:
        d["sleep"] = {"seconds": h.sleep.seconds}
    return d


def _env_to_dict(e: EnvVar) -> dict[str, Any]:
    if e.value_from is None:
        return {"name": e.name, "value": e.value}
    source: dict[str, Any] = {}
    if e.value_from.field_ref is not None:
        f = e.value_from.field_ref
        source["fieldRef"] = {"apiVersion": f.api_version, "fieldPath": f.field_path}
    if e.value_from.resource_field_ref is not None:
        r = e.value_from.resource_field_ref
        ref: dict[str, Any] = {"resource": r.resource}
        if r.container_name is not None:
            ref["containerName"] = r.container_name
        if r.divisor is not None:
            ref["divisor"] = r.divisor.text
        source["resourceFieldRef"] = ref
    for key, selector in (("configMapKeyRef", e.value_from.config_map_key_ref),
                          ("secretKeyRef", e.value_from.secret_key_ref)):
        if selector is not None:
            source[key] = {"name": selector.name, "key": selector.key,
                           **({"optional": selector.optional} if selector.optional is not None else {})}
    return {"name": e.name, "valueFrom": source}


def _env_from_to_dict(e: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if e.prefix:
        d["prefix"] = e.prefix
    for key, ref in (("configMapRef", e.config_map_ref), ("secretRef", e.secret_ref)):
        if ref is not None:
            d[key] = {"name": ref.name, **({"optional": ref.optional} if ref.optional is not None else {})}
    return d


def _config_volume_to_dict(v: Any, name_key: str) -> dict[str, Any]:
    d: dict[str, Any] = {name_key: v.name}
    if v.items:
        d["items"] = [{"key": i.key, "path": i.path, **({"mode": i.mode} if i.mode is not None else {})}
                      for i in v.items]
    d["defaultMode"] = v.default_mode
    if v.optional is not None:
        d["optional"] = v.optional
    return d


def _port_to_dict(p: ContainerPort) -> dict[str, Any]:
    d: dict[str, Any] = {"containerPort": p.container_port, "protocol": p.protocol}
    if p.host_port is not None:
        d["hostPort"] = p.host_port
    if p.name is not None:
        d["name"] = p.name
    return d


def _probe_to_dict(p: Probe) -> dict[str, Any]:
    d = _actions_to_dict(p)
    if p.tcp_socket is not None:
        t: dict[str, Any] = {"port": p.tcp_socket.port}
        if p.tcp_socket.host is not None:
            t["host"] = p.tcp_socket.host
        d["tcpSocket"] = t
    if p.grpc is not None:
        d["grpc"] = {"port": p.grpc.port, **({"service": p.grpc.service} if p.grpc.service else {})}
    d.update(
        initialDelaySeconds=p.initial_delay_seconds,
        periodSeconds=p.period_seconds,
        timeoutSeconds=p.timeout_seconds,
        failureThreshold=p.failure_threshold,
        successThreshold=p.success_threshold,
    )
    return d


def _actions_to_dict(p: Any) -> dict[str, Any]:
    """The exec and httpGet handlers a probe and a lifecycle hook share."""
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
    if v.config_map is not None:
        d["configMap"] = _config_volume_to_dict(v.config_map, "name")
    if v.secret is not None:
        d["secret"] = _config_volume_to_dict(v.secret, "secretName")
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
