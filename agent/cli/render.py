"""Turning Kubernetes-shaped Pod documents into what `agentctl` prints.

Owns: the table columns (kubectl's NAME READY STATUS RESTARTS AGE IP NODE), the STATUS
word kubectl derives from a Pod's status, and durations written as kubectl writes them.
Rules: pure functions of the documents and the current time; no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from agent.state.quantity import Quantity, QuantityError, cpu_millicores, memory_bytes, parse_quantity


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """kubectl's short age: 45s, 3m12s, 5h, 2d3h."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 10:
        return f"{minutes}m{sec}s" if sec else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes}m" if hours < 8 and minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours and days < 8 else f"{days}d"


def pod_status_word(status: Mapping) -> str:
    """The STATUS column: the most telling container reason, else the phase (as kubectl does)."""
    reason = status.get("reason")
    if reason:
        return reason
    word = status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or ():
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            word = state["waiting"]["reason"]
        elif "terminated" in state:
            term = state["terminated"]
            word = term.get("reason") or (
                f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode')}"
            )
    if status.get("deletionTimestamp"):
        word = "Terminating"
    return word


def ready_column(status: Mapping, container_count: int) -> str:
    statuses = status.get("containerStatuses") or ()
    ready = sum(1 for cs in statuses if cs.get("ready"))
    return f"{ready}/{max(container_count, len(statuses))}"


def restarts_column(status: Mapping, now: dt.datetime) -> str:
    total = 0
    latest: dt.datetime | None = None
    for cs in status.get("containerStatuses") or ():
        total += int(cs.get("restartCount") or 0)
        finished = parse_time(((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished and (latest is None or finished > latest):
            latest = finished
    if total and latest:
        return f"{total} ({human_duration((now - latest).total_seconds())} ago)"
    return str(total)


def pod_row(pod: Mapping, status: Mapping, now: dt.datetime, *, wide: bool) -> list[str]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    started = parse_time(status.get("startTime")) or parse_time(meta.get("creationTimestamp"))
    age = human_duration((now - started).total_seconds()) if started else "<unknown>"
    row = [
        meta.get("name", ""),
        ready_column(status, len(spec.get("containers") or ())),
        pod_status_word(status),
        restarts_column(status, now),
        age,
    ]
    if wide:
        row += [status.get("podIP") or "<none>", spec.get("nodeName") or "<none>"]
    return row


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by three spaces, like kubectl's printer."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(header), *rows]:
        lines.append("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


POD_HEADER = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
POD_HEADER_WIDE = POD_HEADER + ["IP", "NODE"]


# ---------------------------------------------------------------- nodes

NODE_HEADER = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
NODE_HEADER_WIDE = NODE_HEADER + ["INTERNAL-IP", "OS", "ARCH", "CPU", "MEMORY", "PODS"]
ROLE_LABEL = "agentd.io/role"


def node_status_word(node: Mapping) -> str:
    """Ready / NotReady / Unknown, with ",SchedulingDisabled" when cordoned (as kubectl)."""
    word = "Unknown"
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            word = "Ready" if cond.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        word += ",SchedulingDisabled"
    return word


def node_row(node: Mapping, now: dt.datetime, *, wide: bool) -> list[str]:
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    created = parse_time(meta.get("creationTimestamp"))
    info = status.get("nodeInfo") or {}
    row = [
        meta.get("name", ""),
        node_status_word(node),
        (meta.get("labels") or {}).get(ROLE_LABEL, "<none>"),
        human_duration((now - created).total_seconds()) if created else "<unknown>",
        info.get("agentdVersion", ""),
    ]
    if wide:
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or ()}
        alloc = status.get("allocatable") or {}
        row += [addresses.get("InternalIP", "<none>"), info.get("operatingSystem", ""), info.get("architecture", ""),
                alloc.get("cpu", ""), alloc.get("memory", ""), alloc.get("pods", "")]
    return row


# ---------------------------------------------------------------- describe


def _kv(lines: list[str], key: str, value: object, indent: int = 0) -> None:
    lines.append(f"{' ' * indent}{(key + ':').ljust(21 - indent)} {value}")


def _map_lines(lines: list[str], key: str, values: Mapping | None) -> None:
    items = sorted((values or {}).items())
    if not items:
        _kv(lines, key, "<none>")
        return
    first, *rest = items
    _kv(lines, key, f"{first[0]}={first[1]}")
    for k, v in rest:
        lines.append(f"{'':<22}{k}={v}")  # under the first value


def _conditions(lines: list[str], conditions: Sequence[Mapping]) -> None:
    lines.append("Conditions:")
    rows = [[c.get("type", ""), str(c.get("status", "")), c.get("reason") or "", c.get("message") or ""]
            for c in conditions]
    if rows:
        lines += ["  " + line for line in table(["Type", "Status", "Reason", "Message"], rows).splitlines()]
    else:
        lines.append("  <none>")


def container_requests(container: Mapping) -> tuple[str, str]:
    requests = (container.get("resources") or {}).get("requests") or {}
    return requests.get("cpu", "0"), requests.get("memory", "0")


def _container_lines(lines: list[str], containers: Sequence[Mapping] | None,
                     statuses: Sequence[Mapping] | None) -> None:
    by_name = {cs.get("name"): cs for cs in statuses or ()}
    for container in containers or ():
        cs = by_name.get(container.get("name"), {})
        lines.append(f"  {container.get('name')}:")
        _kv(lines, "Image", container.get("image", ""), 4)
        cpu, memory = container_requests(container)
        _kv(lines, "Requests", f"cpu={cpu}, memory={memory}", 4)
        limits = (container.get("resources") or {}).get("limits") or {}
        if limits:
            _kv(lines, "Limits", ", ".join(f"{k}={v}" for k, v in sorted(limits.items())), 4)
        for label, key in (("State", "state"), ("Last State", "lastState")):
            for word, detail in (cs.get(key) or {}).items():
                extras = ", ".join(f"{k}={v}" for k, v in (detail or {}).items())
                _kv(lines, label, f"{word.capitalize()} {extras}".rstrip(), 4)
        _kv(lines, "Ready", cs.get("ready", False), 4)
        _kv(lines, "Restart Count", cs.get("restartCount", 0), 4)


def describe_pod(pod: Mapping) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    lines: list[str] = []
    _kv(lines, "Name", meta.get("name", ""))
    _kv(lines, "Namespace", meta.get("namespace", "default"))
    _kv(lines, "Node", spec.get("nodeName") or "<none>")
    _kv(lines, "Start Time", status.get("startTime") or "<none>")
    _map_lines(lines, "Labels", meta.get("labels"))
    _kv(lines, "Status", pod_status_word(status))
    if status.get("reason"):
        _kv(lines, "Reason", status["reason"])
    if status.get("message"):
        _kv(lines, "Message", status["message"])
    _kv(lines, "IP", status.get("podIP") or "<none>")
    _kv(lines, "QoS Class", status.get("qosClass") or "<none>")
    if spec.get("initContainers"):
        lines.append("Init Containers:")
        _container_lines(lines, spec["initContainers"], status.get("initContainerStatuses"))
    lines.append("Containers:")
    _container_lines(lines, spec.get("containers"), status.get("containerStatuses"))
    _conditions(lines, status.get("conditions") or ())
    if spec.get("nodeSelector"):
        _map_lines(lines, "Node-Selectors", spec["nodeSelector"])
    tolerations = spec.get("tolerations") or ()
    _kv(lines, "Tolerations", ", ".join(_toleration_text(t) for t in tolerations) or "<none>")
    notes = not_honoured(spec)
    if notes:
        lines.append("Accepted, not honoured:")
        lines += [f"  {note}" for note in notes]
    return "\n".join(lines)


def not_honoured(spec: Mapping) -> list[str]:
    """What the Pod asks that agentd accepts but cannot do here (Kubernetes has it, Docker
    or this cluster does not), one line each, for describe."""
    notes = []
    if spec.get("dnsPolicy") == "ClusterFirstWithHostNet":
        notes.append("dnsPolicy ClusterFirstWithHostNet: there is no cluster DNS; the node's resolver is used")
    if spec.get("subdomain"):
        notes.append(f"subdomain {spec['subdomain']}: there is no cluster DNS to serve the Pod's name in it")
    if spec.get("serviceAccountName"):
        notes.append(f"serviceAccountName {spec['serviceAccountName']}: there are no service accounts; "
                     "the name is only given to the downward API")
    return notes


def _toleration_text(t: Mapping) -> str:
    text = t.get("key", "") or "<all>"
    if t.get("operator") == "Equal" and t.get("value"):
        text += f"={t['value']}"
    if t.get("effect"):
        text += f":{t['effect']}"
    return text


def describe_node(node: Mapping, pods: Sequence[Mapping]) -> str:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    lines: list[str] = []
    _kv(lines, "Name", meta.get("name", ""))
    _kv(lines, "Roles", (meta.get("labels") or {}).get(ROLE_LABEL, "<none>"))
    _map_lines(lines, "Labels", meta.get("labels"))
    _kv(lines, "CreationTimestamp", meta.get("creationTimestamp", ""))
    taints = [f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
              for t in spec.get("taints") or ()]
    _kv(lines, "Taints", ", ".join(taints) or "<none>")
    _kv(lines, "Unschedulable", bool(spec.get("unschedulable")))
    _conditions(lines, status.get("conditions") or ())
    lines.append("Addresses:")
    for address in status.get("addresses") or ():
        _kv(lines, address.get("type", ""), address.get("address", ""), 2)
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        lines.append(f"{title}:")
        for resource, amount in sorted((status.get(key) or {}).items()):
            _kv(lines, resource, amount, 2)
    info = status.get("nodeInfo") or {}
    lines.append("System Info:")
    for key, value in sorted(info.items()):
        _kv(lines, key, value, 2)
    running = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    lines.append(f"Non-terminated Pods:  ({len(running)} in total)")
    rows = []
    for pod in running:
        pod_meta = pod.get("metadata") or {}
        cpu = [container_requests(c)[0] for c in (pod.get("spec") or {}).get("containers") or ()]
        memory = [container_requests(c)[1] for c in (pod.get("spec") or {}).get("containers") or ()]
        rows.append([pod_meta.get("namespace", "default"), pod_meta.get("name", ""), "+".join(cpu), "+".join(memory),
                     pod_status_word(pod.get("status") or {})])
    if rows:
        lines += ["  " + line for line in
                  table(["Namespace", "Name", "CPU Requests", "Memory Requests", "Status"], rows).splitlines()]
    lines.append("Allocated resources:")
    alloc = status.get("allocatable") or {}
    cpu_used = sum(_amount(container_requests(c)[0], cpu_millicores) for p in running
                   for c in (p.get("spec") or {}).get("containers") or ())
    memory_used = sum(_amount(container_requests(c)[1], memory_bytes) for p in running
                      for c in (p.get("spec") or {}).get("containers") or ())
    cpu_total = _amount(alloc.get("cpu", "0"), cpu_millicores)
    memory_total = _amount(alloc.get("memory", "0"), memory_bytes)
    lines += ["  " + line for line in table(["Resource", "Requests", "Allocatable"], [
        ["cpu", f"{cpu_used}m ({_percent(cpu_used, cpu_total)})", f"{cpu_total}m"],
        ["memory", f"{memory_used // (1 << 20)}Mi ({_percent(memory_used, memory_total)})",
         f"{memory_total // (1 << 20)}Mi"],
        ["pods", f"{len(running)} ({_percent(len(running), int(alloc.get('pods', '0') or 0))})", alloc.get("pods", "0")],
    ]).splitlines()]
    return "\n".join(lines)


def _amount(text: str, unit: Callable[[Quantity], int]) -> int:
    try:
        return unit(parse_quantity(text))
    except QuantityError:
        return 0


def _percent(part: int, whole: int) -> str:
    return f"{100 * part // whole}%" if whole else "-"


# ---------------------------------------------------------------- events

EVENT_HEADER = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]


def _ago(text: str | None, now: dt.datetime) -> str:
    moment = parse_time(text)
    return human_duration((now - moment).total_seconds()) if moment else "<unknown>"


def sorted_events(events: Sequence[Mapping]) -> list[Mapping]:
    """Oldest first, by when each last happened (as kubectl sorts `get events`)."""
    return sorted(events, key=lambda e: (e.get("lastTimestamp") or "", int((e.get("metadata") or {}).get(
        "resourceVersion") or 0)))


def event_row(event: Mapping, now: dt.datetime) -> list[str]:
    obj = event.get("involvedObject") or {}
    return [_ago(event.get("lastTimestamp"), now), event.get("type", ""), event.get("reason", ""),
            f"{str(obj.get('kind', '')).lower()}/{obj.get('name', '')}", event.get("message", "")]


def events_section(events: Sequence[Mapping], now: dt.datetime) -> str:
    """The Events: part that ends kubectl's describe output."""
    if not events:
        return "Events:               <none>"
    rows = []
    for event in sorted_events(events):
        count = int(event.get("count") or 1)
        age = _ago(event.get("lastTimestamp"), now)
        if count > 1:
            age = f"{age} (x{count} over {_ago(event.get('firstTimestamp'), now)})"
        rows.append([event.get("type", ""), event.get("reason", ""), age,
                     (event.get("source") or {}).get("component", ""), event.get("message", "")])
    lines = table(["Type", "Reason", "Age", "From", "Message"], rows).splitlines()
    return "\n".join(["Events:"] + ["  " + line for line in lines])
