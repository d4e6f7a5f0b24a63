"""A container's environment and command line as Kubernetes gives them (pure).

Owns: the values of env[] (literal values, the downward API's fieldRef and
resourceFieldRef) and the $(VAR) expansion of env values, command and args.

Rules:
- Pure: the Pod, the container and what only the node knows (Pod IP, host IP, the
  node's allocatable CPU and memory) come in as arguments.
- fieldRef reads the Pod: metadata.name/namespace/uid, metadata.labels['k'] and
  metadata.annotations['k'] ("" when the key is absent), spec.nodeName,
  spec.serviceAccountName, status.podIP, status.hostIP ("" while unknown).
- resourceFieldRef reads a container's requests or limits divided by the divisor
  (default 1), rounded up as Kubernetes does (1.5 cores with divisor 1 gives "2");
  a limit that is not set reads as the node's allocatable amount, a request that is
  not set as 0.
- $(VAR) expands to a variable defined earlier in env[] (for env values) or anywhere
  in env[] (for command and args); an undefined one stays as written; $$ is a "$".
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from agent.state.quantity import cpu_millicores, memory_bytes

_MAP_PATH = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")


def field_value(pod: Any, field_path: str, *, pod_ip: str | None, host_ip: str | None) -> str:
    """The text of one downward API field of the Pod."""
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": pod_ip,
        "status.hostIP": host_ip,
    }
    if field_path in simple:
        return simple[field_path] or ""
    m = _MAP_PATH.fullmatch(field_path)
    if m:
        entries = meta.labels if m.group(1) == "metadata.labels" else meta.annotations
        return entries.get(m.group(2), "")
    raise ValueError(f"unsupported fieldPath {field_path!r}")


def resource_value(pod: Any, container: Any, ref: Any, *, node_cpu_millicores: int, node_memory_bytes: int) -> str:
    """A resourceFieldRef's value: the amount over the divisor, rounded up."""
    target = container
    if ref.container_name:
        target = next((c for c in (*pod.spec.containers, *pod.spec.init_containers)
                       if c.name == ref.container_name), None)
        if target is None:
            raise ValueError(f"resourceFieldRef: no container named {ref.container_name!r}")
    kind, _, resource = ref.resource.partition(".")
    amounts = target.resources.limits if kind == "limits" else target.resources.requests
    q = amounts.get(resource)
    if resource == "cpu":
        amount = cpu_millicores(q) if q is not None else (node_cpu_millicores if kind == "limits" else 0)
        unit = cpu_millicores(ref.divisor) if ref.divisor is not None else 1000
    else:
        amount = memory_bytes(q) if q is not None else (node_memory_bytes if kind == "limits" else 0)
        unit = memory_bytes(ref.divisor) if ref.divisor is not None else 1
    if unit <= 0:
        raise ValueError(f"resourceFieldRef: divisor of {ref.resource} must be positive")
    return str(-(-amount // unit))  # rounded up


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, others kept; $$ is a "$"."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2:end]
            out.append(variables[name] if name in variables else text[i:end + 1])
            i = end + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


def container_env(pod: Any, container: Any, *, pod_ip: str | None, host_ip: str | None,
                  node_cpu_millicores: int, node_memory_bytes: int) -> dict[str, str]:
    """The container's environment, in env[] order (a later duplicate name wins)."""
    env: dict[str, str] = {}
    for var in container.env:
        source = var.value_from
        if source is None:
            value = expand(var.value, env)
        elif source.field_ref is not None:
            value = field_value(pod, source.field_ref.field_path, pod_ip=pod_ip, host_ip=host_ip)
        elif source.resource_field_ref is not None:
            value = resource_value(pod, container, source.resource_field_ref,
                                   node_cpu_millicores=node_cpu_millicores, node_memory_bytes=node_memory_bytes)
        else:
            value = ""
        env[var.name] = value
    return env


def expand_all(values: Sequence[str], env: Mapping[str, str]) -> list[str]:
    return [expand(v, env) for v in values]


def needs_pod_ip(container: Any) -> bool:
    """Does the container's environment read the Pod IP (so it cannot be created before the sandbox runs)?"""
    return any(v.value_from is not None and v.value_from.field_ref is not None
               and v.value_from.field_ref.field_path == "status.podIP" for v in container.env)
