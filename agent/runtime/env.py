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
- ConfigMaps and Secrets come in through `lookup` (kind, namespace, name -> the
  object's entries, or None when there is none): envFrom first, in order (a key that
  is not a valid variable name is skipped, as kubelet does), then env[], which wins.
  A missing object or key that is not `optional` raises MissingConfig, whose message
  names the object and the key, never a value; an optional one leaves the variable
  unset. Values are read once, when the container is created: a later change of the
  object reaches the container only when it is created again.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

from agent.state.quantity import cpu_millicores, memory_bytes

# (kind, namespace, name) -> the object's entries (key -> bytes), None when it does not exist.
Lookup = Callable[[str, str, str], "Mapping[str, bytes] | None"]
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


class MissingConfig(ValueError):
    """A ConfigMap, Secret or key the container needs is not there (CreateContainerConfigError)."""


def _no_objects(kind: str, namespace: str, name: str) -> None:
    return None


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _object(lookup: Lookup, kind: str, namespace: str, name: str,
            optional: bool | None) -> Mapping[str, bytes] | None:
    entries = lookup(kind, namespace, name)
    if entries is None and not optional:
        raise MissingConfig(f'{kind.lower()} "{name}" not found')
    return entries


def key_ref_value(lookup: Lookup, kind: str, namespace: str, ref: Any) -> str | None:
    """The text of a configMapKeyRef / secretKeyRef; None when optional and absent."""
    entries = _object(lookup, kind, namespace, ref.name, ref.optional)
    if entries is None:
        return None
    if ref.key not in entries:
        if ref.optional:
            return None
        raise MissingConfig(f"couldn't find key {ref.key} in {kind} {namespace}/{ref.name}")
    return _text(entries[ref.key])


def env_from_values(lookup: Lookup, namespace: str, source: Any) -> dict[str, str]:
    """One envFrom entry's variables (prefixed), invalid names left out."""
    kind, ref = ("ConfigMap", source.config_map_ref) if source.config_map_ref is not None else (
        "Secret", source.secret_ref)
    if ref is None:
        return {}
    entries = _object(lookup, kind, namespace, ref.name, ref.optional) or {}
    out = {}
    for key in sorted(entries):
        name = source.prefix + key
        if _ENV_NAME.fullmatch(name):
            out[name] = _text(entries[key])
    return out


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
                  node_cpu_millicores: int, node_memory_bytes: int,
                  lookup: Lookup = _no_objects) -> dict[str, str]:
    """The container's environment: envFrom, then env[] in order (a later duplicate name wins)."""
    env: dict[str, str] = {}
    namespace = pod.metadata.namespace
    for env_source in getattr(container, "env_from", ()):
        env.update(env_from_values(lookup, namespace, env_source))
    for var in container.env:
        source = var.value_from
        if source is None:
            value = expand(var.value, env)
        elif source.config_map_key_ref is not None or source.secret_key_ref is not None:
            kind, ref = (("ConfigMap", source.config_map_key_ref) if source.config_map_key_ref is not None
                         else ("Secret", source.secret_key_ref))
            found = key_ref_value(lookup, kind, namespace, ref)
            if found is None:
                continue
            value = found
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
