"""Turning Kubernetes-shaped Pod documents into what `agentctl` prints.

Owns: the table columns (kubectl's NAME READY STATUS RESTARTS AGE IP NODE), the STATUS
word kubectl derives from a Pod's status, and durations written as kubectl writes them.
Rules: pure functions of the documents and the current time; no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence


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
