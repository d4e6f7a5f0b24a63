"""The state a pod worker keeps, and the messages it receives (plain data).

Owns: the per-container and per-sandbox records of pod_worker.py, the messages other
tasks send to a worker, and the helpers that read Docker's answers (timestamps, IP,
a Pod's start).
Rules: no I/O; AppState and InfraState are mutable and owned by exactly one worker task;
messages are frozen.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import trio

from .backoff import CrashHistory
from .containers import LABEL_POD_STARTED
from .status import Terminated, Waiting


def parse_docker_time(text: str | None) -> float | None:
    """Docker's RFC 3339 nanosecond timestamps -> epoch seconds (None for the zero time)."""
    if not text or text.startswith("0001-01-01"):
        return None
    main, _, frac = text.rstrip("Z").partition(".")
    offset = 0.0
    for sign in ("+", "-"):
        if sign in frac:
            frac, _, tz = frac.partition(sign)
            hours, _, minutes = tz.partition(":")
            offset = (int(hours) * 3600 + int(minutes or 0) * 60) * (1 if sign == "+" else -1)
    base = _dt.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc).timestamp()
    return base + (float("0." + frac) if frac.isdigit() else 0.0) - offset


# -- messages to a worker --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerDied:
    container_id: str


@dataclass(frozen=True, slots=True)
class ProbeVerdict:
    container: str  # app container name
    container_id: str  # the instance the verdict is about
    kind: str  # liveness | readiness | startup
    verdict: bool


@dataclass(frozen=True, slots=True)
class Resync:
    """A fresh listing of the Pod's containers (after the events stream was lost, or periodically)."""

    listed_at: float  # trio time when the listing was requested
    containers: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Terminate:
    pass


@dataclass(frozen=True, slots=True)
class Wake:
    pass


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """The node's ConfigMaps or Secrets changed: refresh config volumes, retry config errors."""


# -- the state of one app container ----------------------------------------------------


@dataclass(slots=True)
class AppState:
    spec: Any  # Container of the Pod model
    container_id: str | None = None  # the current instance (created, running or being stopped)
    previous_id: str | None = None  # the last dead instance, kept for its logs and lastState
    instances: int = 0  # instances created so far (restart_count = instances - 1 once started)
    restart_count: int = 0
    history: CrashHistory = field(default_factory=CrashHistory)
    running_since: float | None = None  # wall clock
    started_trio: float = 0.0  # trio clock of the start (resync guard)
    waiting: Waiting | None = None
    terminated: Terminated | None = None  # set when it will not restart
    last: Terminated | None = None
    start_at: float = 0.0  # trio clock: do not (re)start before
    finished: bool = False  # terminated and not restarting
    kill_reason: str | None = None  # liveness|startup|postStart|sandbox|pod-done|deadline: why we kill it
    kill_message: str | None = None  # why, for its terminated state (e.g. "FailedPostStartHook: ...")
    ready: bool = False
    started: bool = False  # past the startup probe
    probe_scope: trio.CancelScope | None = None
    image_history: CrashHistory = field(default_factory=CrashHistory)
    error_history: CrashHistory = field(default_factory=CrashHistory)
    image_id: str | None = None
    init: bool = False  # one of spec.initContainers
    sidecar: bool = False  # an init container with restartPolicy Always

    @property
    def completed(self) -> bool:
        """A regular init container that has run to success."""
        return self.finished and self.terminated is not None and self.terminated.exit_code == 0


@dataclass(slots=True)
class InfraState:
    container_id: str | None = None
    running: bool = False
    ip: str | None = None
    stopping: bool = False



def pod_started_at(listed: list[dict[str, Any]], *, default: float) -> float:
    """When a Pod found on the engine started: the earliest start its containers record in their
    labels, else the earliest of their creation times (containers made before the label existed)."""
    recorded = []
    for c in listed:
        try:
            recorded.append(float((c.get("Labels") or {})[LABEL_POD_STARTED]))
        except (KeyError, ValueError):
            pass
    created = [float(c["Created"]) for c in listed if isinstance(c.get("Created"), (int, float))]
    return min(recorded or created or [default])


def container_ip(info: dict[str, Any]) -> str | None:
    settings = info.get("NetworkSettings") or {}
    if settings.get("IPAddress"):
        return settings["IPAddress"]
    for net in (settings.get("Networks") or {}).values():
        if net.get("IPAddress"):
            return net["IPAddress"]
    return None
