"""A Pod's life in the cluster state: placement, status reports, loss of its node.

Owns: the pure transitions of a stored Pod document (bind to a node, mark unschedulable,
take it off a lost node, merge the status its agent reports), the placement epoch, and
reading what a Pod asks of a node (requests, host ports) from its document.

Rules it keeps:
- Every transition returns a NEW document (or the same object when nothing changes, so
  the caller can skip recording a change); nothing is mutated in place.
- The placement epoch (annotation `agentd.io/placement-epoch`) counts the Pod's
  placements: each bind increments it. An agent runs a Pod under the epoch it was given
  and reports its status with it; a report for another epoch or another node is stale
  and ignored, so a node that was cut off cannot overwrite what its successor reports.
- The PodScheduled condition is the control plane's; the other conditions, the phase,
  container statuses and IPs are the node's. A merge keeps each side's part.
- Times come in as unix seconds and are written as RFC 3339.
- Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.state.objects import annotations_of, format_time, parse_time, with_metadata
from agent.state.quantity import QuantityError, cpu_millicores, memory_bytes, parse_quantity

EPOCH_ANNOTATION = "agentd.io/placement-epoch"
# A mirror Pod stands in the state for a static Pod (a node's manifest directory), as
# kubelet's mirror Pods do: it belongs to its node and is never placed elsewhere.
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
SOURCE_ANNOTATION = "kubernetes.io/config.source"
# An eviction refused for its Deployment's budget (a drain, when maxUnavailable comes to
# 0) marks the Pod with the time; while the mark is fresh, its ReplicaSet starts a
# replacement beside it within maxSurge, and the eviction passes once that one is
# available. A mark older than LEAVING_FOR_S (a drain given up) no longer counts.
EVICTION_REQUESTED_ANNOTATION = "agentd.io/eviction-requested"
LEAVING_FOR_S = 120.0
# The reason a Pod carries when the control plane took it off a lost node.
NODE_LOST_REASON = "NodeLost"
FINISHED_PHASES = ("Succeeded", "Failed")
# Status fields an agent may report; anything else in a report is dropped.
REPORTED_STATUS_FIELDS = (
    "phase",
    "conditions",
    "containerStatuses",
    "initContainerStatuses",
    "podIP",
    "podIPs",
    "hostIP",
    "startTime",
    "reason",
    "message",
    "qosClass",
)
MAX_REPORTED_STATUS_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class PodDemand:
    """What one Pod takes from the node it runs on."""

    cpu_millicores: int
    memory_bytes: int
    host_ports: tuple[tuple[str, int, str], ...]  # (hostIP or "0.0.0.0", port, protocol)


def pod_demand(doc: Mapping[str, Any]) -> PodDemand:
    """The Pod's effective requests, as Kubernetes computes them (the canonical document
    always writes requests, copied from limits where only limits were given): the larger
    of the app containers' and sidecars' sum and, for each regular init container, its own
    request plus the sidecars started before it; and the host ports of its app containers
    and sidecars."""
    spec = doc.get("spec") or {}
    cpu = _effective(spec, "cpu", cpu_millicores)
    mem = _effective(spec, "memory", memory_bytes)
    ports = []
    sidecars = [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or ()), *sidecars]:
        for port in container.get("ports") or ():
            host_port = port.get("hostPort")
            if host_port:
                ports.append((port.get("hostIP") or "0.0.0.0", int(host_port), port.get("protocol") or "TCP"))
    return PodDemand(cpu, mem, tuple(ports))


def _request(container: Mapping[str, Any], resource: str, unit: Any) -> int:
    requests = (container.get("resources") or {}).get("requests") or {}
    try:
        return unit(parse_quantity(requests[resource])) if resource in requests else 0
    except QuantityError:
        return 0  # admitted documents hold valid quantities; a damaged one counts as zero


def _effective(spec: Mapping[str, Any], resource: str, unit: Any) -> int:
    sidecars_before = peak = 0
    for container in spec.get("initContainers") or ():
        amount = _request(container, resource, unit)
        if container.get("restartPolicy") == "Always":
            sidecars_before += amount
        else:
            peak = max(peak, amount + sidecars_before)
    running = sidecars_before + sum(_request(c, resource, unit) for c in spec.get("containers") or ())
    return max(peak, running)


def is_mirror(doc: Mapping[str, Any]) -> bool:
    return MIRROR_ANNOTATION in annotations_of(doc)


def placement_epoch(doc: Mapping[str, Any]) -> int:
    raw = annotations_of(doc).get(EPOCH_ANNOTATION, "0")
    return int(raw) if raw.isdigit() else 0


def node_name_of(doc: Mapping[str, Any]) -> str:
    return (doc.get("spec") or {}).get("nodeName") or ""


def phase_of(doc: Mapping[str, Any]) -> str:
    return (doc.get("status") or {}).get("phase") or "Pending"


def is_finished(doc: Mapping[str, Any]) -> bool:
    return phase_of(doc) in FINISHED_PHASES


def is_leaving(doc: Mapping[str, Any], now: float) -> bool:
    """Is a live Pod marked for an eviction that waits for its replacement (a fresh mark)?"""
    asked = parse_time(annotations_of(doc).get(EVICTION_REQUESTED_ANNOTATION))
    return asked is not None and not is_finished(doc) and now - LEAVING_FOR_S <= asked <= now + LEAVING_FOR_S


def restart_policy_of(doc: Mapping[str, Any]) -> str:
    return (doc.get("spec") or {}).get("restartPolicy") or "Always"


def _condition(type_: str, status: str, ts: float, reason: str = "", message: str = "") -> dict[str, Any]:
    cond = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": format_time(ts)}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _with_condition(conditions: list[Mapping[str, Any]], new: dict[str, Any]) -> list[Mapping[str, Any]]:
    """Replace the condition of new's type; keep its lastTransitionTime when its status did not change."""
    out = []
    replaced = False
    for cond in conditions:
        if cond.get("type") == new["type"]:
            if cond.get("status") == new["status"]:
                new = dict(new, lastTransitionTime=cond.get("lastTransitionTime", new["lastTransitionTime"]))
            out.append(new)
            replaced = True
        else:
            out.append(cond)
    if not replaced:
        out.insert(0, new)
    return out


def initial_status(doc: Mapping[str, Any], ts: float) -> dict[str, Any]:
    return {"phase": "Pending", "conditions": [], "qosClass": qos_class(doc)}


def qos_class(doc: Mapping[str, Any]) -> str:
    """Kubernetes' QoS class: Guaranteed (every container limits == requests for cpu and
    memory), BestEffort (no requests or limits at all), else Burstable."""
    containers = (doc.get("spec") or {}).get("containers") or ()
    any_set = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        if requests or limits:
            any_set = True
        for resource in ("cpu", "memory"):
            if resource not in limits or requests.get(resource, limits[resource]) != limits[resource]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def bind(doc: Mapping[str, Any], node: str, ts: float) -> dict[str, Any]:
    """The Pod placed on `node` under the next placement epoch, Pending until the node reports."""
    epoch = placement_epoch(doc) + 1
    annotations = dict(annotations_of(doc))
    annotations[EPOCH_ANNOTATION] = str(epoch)
    out = with_metadata(doc, annotations=annotations)
    out["spec"] = dict(doc.get("spec") or {}, nodeName=node)
    status = doc.get("status") or {}
    conditions = _with_condition(list(status.get("conditions") or ()), _condition("PodScheduled", "True", ts))
    out["status"] = {"phase": "Pending", "conditions": conditions, "qosClass": status.get("qosClass") or qos_class(doc)}
    return out


def mark_unschedulable(doc: Mapping[str, Any], message: str, ts: float) -> Mapping[str, Any]:
    status = doc.get("status") or {}
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("message") == message:
            return doc  # already says so
    conditions = _with_condition(list(status.get("conditions") or ()),
                                 _condition("PodScheduled", "False", ts, "Unschedulable", message))
    out = dict(doc)
    out["status"] = dict(status, phase="Pending", conditions=conditions)
    return out


def unbind_for_reschedule(doc: Mapping[str, Any], reason: str, message: str, ts: float) -> dict[str, Any]:
    """Off its lost node and back to Pending, for the scheduler to place again."""
    spec = dict(doc.get("spec") or {})
    spec.pop("nodeName", None)
    out = dict(doc)
    out["spec"] = spec
    out["status"] = {
        "phase": "Pending",
        "conditions": [_condition("PodScheduled", "False", ts, reason, message)],
        "qosClass": (doc.get("status") or {}).get("qosClass") or qos_class(doc),
    }
    return out


def fail_lost(doc: Mapping[str, Any], reason: str, message: str, ts: float) -> dict[str, Any]:
    """A Pod that must not run again (restartPolicy Never, or already finished) on a lost node."""
    status = dict(doc.get("status") or {})
    if status.get("phase") in FINISHED_PHASES:
        return dict(doc)  # its outcome is known; keep it
    status.update(phase="Failed", reason=reason, message=message)
    conditions = [c for c in status.get("conditions") or () if c.get("type") == "PodScheduled"]
    conditions.append(_condition("Ready", "False", ts, reason, message))
    status["conditions"] = conditions
    out = dict(doc)
    out["status"] = status
    return out


def merge_reported_status(doc: Mapping[str, Any], reported: Mapping[str, Any]) -> Mapping[str, Any]:
    """The Pod with the status its node reported (the node's part), keeping PodScheduled."""
    current = doc.get("status") or {}
    status: dict[str, Any] = {k: reported[k] for k in REPORTED_STATUS_FIELDS if k in reported}
    scheduled = [c for c in current.get("conditions") or () if c.get("type") == "PodScheduled"]
    others = [c for c in status.get("conditions") or () if isinstance(c, Mapping) and c.get("type") != "PodScheduled"]
    status["conditions"] = scheduled + others
    if "qosClass" not in status and "qosClass" in current:
        status["qosClass"] = current["qosClass"]
    if status == current:
        return doc
    out = dict(doc)
    out["status"] = status
    return out


def reported_status_problem(reported: Any) -> str | None:
    """Why a reported status cannot be stored, or None (shape only; the size is the caller's)."""
    if not isinstance(reported, Mapping):
        return "status is not an object"
    phase = reported.get("phase")
    if phase not in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
        return f"unknown phase {phase!r}"
    conditions = reported.get("conditions", [])
    if not isinstance(conditions, list) or not all(isinstance(c, Mapping) for c in conditions):
        return "conditions is not a list of objects"
    for key in ("containerStatuses", "initContainerStatuses"):
        value = reported.get(key, [])
        if not isinstance(value, list) or not all(isinstance(c, Mapping) for c in value):
            return f"{key} is not a list of objects"
    return None
