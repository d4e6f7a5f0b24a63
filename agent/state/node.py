"""The Node object: one machine of the cluster, as Kubernetes shows it.

Owns: what a Node document holds and who writes which part, the validation of the part
people may write (labels, annotations, `spec.unschedulable`, `spec.taints`), and building
the part the cluster writes from what an agent advertises (capacity, allocatable,
addresses, versions, its role).

Rules it keeps:
- People never create Nodes: an agent's Node is registered by the leader when the agent
  joins. People may change labels, annotations, `spec.unschedulable` (cordon) and
  `spec.taints`; anything else in a Node they send is refused by field path.
- `status` is the cluster's: capacity and allocatable as Kubernetes quantities
  (`cpu: "2"`, `memory: 16Gi` written as bytes in Ki, `pods: "110"`), the Ready condition,
  addresses, nodeInfo. The well-known labels `kubernetes.io/hostname`, `kubernetes.io/os`
  and `kubernetes.io/arch` are set from the agent, and `agentd.io/role` from the cluster.
- Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.state.pod import (
    FieldError,
    ManifestError,
    dns_subdomain_problem,
    label_value_problem,
    qualified_name_problem,
)
from agent.state.quantity import format_cpu

API_VERSION = "v1"
KIND = "Node"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
ROLE_LABEL = "agentd.io/role"
HOSTNAME_LABEL = "kubernetes.io/hostname"
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
ROLES = ("voter", "standby", "worker")
MAX_TAINTS = 64
# The labels the cluster writes; a person's apply may not set them.
SYSTEM_LABELS = (ROLE_LABEL, HOSTNAME_LABEL, OS_LABEL, ARCH_LABEL)


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What an agent advertises about its machine (through its gossip metadata)."""

    name: str
    address: str  # the IP its API listens on
    api_port: int
    capacity_cpu_millicores: int
    capacity_memory_bytes: int
    allocatable_cpu_millicores: int
    allocatable_memory_bytes: int
    max_pods: int
    labels: Mapping[str, str]
    version: str
    os: str = "linux"
    arch: str = "amd64"


def format_memory_ki(nbytes: int) -> str:
    """Memory as kubelet writes it in a Node's status: whole kibibytes."""
    return f"{nbytes // 1024}Ki"


def node_status_from_facts(facts: NodeFacts) -> dict[str, Any]:
    """The part of a Node's status that comes from its agent (conditions are the cluster's)."""
    return {
        "capacity": {
            "cpu": format_cpu(facts.capacity_cpu_millicores),
            "memory": format_memory_ki(facts.capacity_memory_bytes),
            "pods": str(facts.max_pods),
        },
        "allocatable": {
            "cpu": format_cpu(facts.allocatable_cpu_millicores),
            "memory": format_memory_ki(facts.allocatable_memory_bytes),
            "pods": str(facts.max_pods),
        },
        "addresses": [
            {"type": "InternalIP", "address": facts.address},
            {"type": "Hostname", "address": facts.name},
        ],
        "daemonEndpoints": {"agentdEndpoint": {"Port": facts.api_port}},
        "nodeInfo": {
            "agentdVersion": facts.version,
            "operatingSystem": facts.os,
            "architecture": facts.arch,
            "containerRuntimeVersion": "docker",
        },
    }


def node_labels_from_facts(facts: NodeFacts) -> dict[str, str]:
    labels = dict(facts.labels)
    labels[HOSTNAME_LABEL] = facts.name
    labels[OS_LABEL] = facts.os
    labels[ARCH_LABEL] = facts.arch
    return labels


def _problem(errors: list[FieldError], path: str, message: str) -> None:
    errors.append(FieldError(path, message))


def admit_node(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The person-writable part of a Node document, validated and in canonical form:
    {apiVersion, kind, metadata: {name, labels?, annotations?}, spec: {unschedulable?, taints?}}.
    Raises ManifestError listing every problem by field path."""
    errors: list[FieldError] = []
    for key in doc:
        if key not in ("apiVersion", "kind", "metadata", "spec"):
            _problem(errors, key, "unknown field" if key != "status" else "is written by the cluster")
    meta_in = doc.get("metadata")
    meta: dict[str, Any] = {}
    if not isinstance(meta_in, Mapping):
        _problem(errors, "metadata", "required")
    else:
        for key in meta_in:
            if key not in ("name", "labels", "annotations"):
                _problem(errors, f"metadata.{key}", "unknown field")
        name = meta_in.get("name")
        if not isinstance(name, str) or not name:
            _problem(errors, "metadata.name", "required")
        else:
            problem = dns_subdomain_problem(name)
            if problem:
                _problem(errors, "metadata.name", problem)
            meta["name"] = name
        for field in ("labels", "annotations"):
            value = meta_in.get(field)
            if value is None:
                continue
            if not isinstance(value, Mapping):
                _problem(errors, f"metadata.{field}", "must be an object")
                continue
            clean = {}
            for k, v in value.items():
                where = f"metadata.{field}.{k}"
                if not isinstance(k, str) or qualified_name_problem(k):
                    _problem(errors, where, qualified_name_problem(str(k)) or "invalid key")
                elif not isinstance(v, str):
                    _problem(errors, where, "must be a string")
                elif field == "labels" and label_value_problem(v):
                    _problem(errors, where, label_value_problem(v) or "invalid value")
                else:
                    clean[k] = v
            if clean:
                meta[field] = dict(sorted(clean.items()))
    spec_in = doc.get("spec")
    spec: dict[str, Any] = {}
    if spec_in is not None:
        if not isinstance(spec_in, Mapping):
            _problem(errors, "spec", "must be an object")
        else:
            for key in spec_in:
                if key not in ("unschedulable", "taints"):
                    what = "not supported by agentd" if key in ("podCIDR", "podCIDRs", "providerID", "configSource") \
                        else "unknown field"
                    _problem(errors, f"spec.{key}", what)
            unschedulable = spec_in.get("unschedulable")
            if unschedulable is not None:
                if not isinstance(unschedulable, bool):
                    _problem(errors, "spec.unschedulable", "must be a boolean")
                elif unschedulable:
                    spec["unschedulable"] = True
            taints = spec_in.get("taints")
            if taints is not None:
                spec_taints = _admit_taints(taints, errors)
                if spec_taints:
                    spec["taints"] = spec_taints
    if errors:
        raise ManifestError(errors)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}


def _admit_taints(taints: Any, errors: list[FieldError]) -> list[dict[str, str]]:
    if not isinstance(taints, list):
        _problem(errors, "spec.taints", "must be a list")
        return []
    if len(taints) > MAX_TAINTS:
        _problem(errors, "spec.taints", f"at most {MAX_TAINTS} taints")
        return []
    out = []
    seen = set()
    for i, taint in enumerate(taints):
        where = f"spec.taints[{i}]"
        if not isinstance(taint, Mapping):
            _problem(errors, where, "must be an object")
            continue
        for key in taint:
            if key not in ("key", "value", "effect", "timeAdded"):
                _problem(errors, f"{where}.{key}", "unknown field")
        key, value, effect = taint.get("key"), taint.get("value", ""), taint.get("effect")
        if not isinstance(key, str) or not key:
            _problem(errors, f"{where}.key", "required")
            continue
        if qualified_name_problem(key):
            _problem(errors, f"{where}.key", qualified_name_problem(key) or "invalid")
        if value is None:
            value = ""
        if not isinstance(value, str) or label_value_problem(value):
            _problem(errors, f"{where}.value", (label_value_problem(value) if isinstance(value, str) else None)
                     or "must be a string")
        if effect not in TAINT_EFFECTS:
            _problem(errors, f"{where}.effect", f"must be one of {', '.join(TAINT_EFFECTS)}")
            continue
        if (key, effect) in seen:
            _problem(errors, where, f"duplicate taint {key}:{effect}")
        seen.add((key, effect))
        entry = {"key": key, "effect": effect}
        if value:
            entry["value"] = value
        out.append(entry)
    return out


def ready_condition(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (doc.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond
    return None


def is_ready(doc: Mapping[str, Any]) -> bool:
    cond = ready_condition(doc)
    return cond is not None and cond.get("status") == "True"


def role_of(doc: Mapping[str, Any]) -> str:
    return ((doc.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL, "worker")
