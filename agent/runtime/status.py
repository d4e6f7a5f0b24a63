"""Pod status as Kubernetes reports it (phase, conditions, container states).

Owns: the PodStatus model, its camelCase `to_dict()`, and the pure rules that derive a
Pod's phase and conditions from its containers' states. Rules: frozen dataclasses; times
are wall-clock seconds since the epoch (floats), rendered as RFC 3339 in `to_dict()`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")

# Waiting reasons (Kubernetes' spelling).
CONTAINER_CREATING = "ContainerCreating"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
CREATE_CONTAINER_ERROR = "CreateContainerError"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
RUN_CONTAINER_ERROR = "RunContainerError"
POD_INITIALIZING = "PodInitializing"
# Terminated reasons.
COMPLETED = "Completed"
ERROR = "Error"
OOM_KILLED = "OOMKilled"


def rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Waiting:
    reason: str
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"waiting": _drop_none({"reason": self.reason, "message": self.message})}


@dataclass(frozen=True, slots=True)
class Running:
    started_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"running": {"startedAt": rfc3339(self.started_at)}}


@dataclass(frozen=True, slots=True)
class Terminated:
    exit_code: int
    reason: str  # Completed | Error | OOMKilled
    started_at: float | None
    finished_at: float | None
    container_id: str | None = None
    message: str | None = None
    signal: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"terminated": _drop_none({
            "exitCode": self.exit_code,
            "signal": self.signal,
            "reason": self.reason,
            "message": self.message,
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(self.finished_at),
            "containerID": f"docker://{self.container_id}" if self.container_id else None,
        })}


ContainerState = Waiting | Running | Terminated


def terminated_reason(exit_code: int, oom_killed: bool) -> str:
    if oom_killed:
        return OOM_KILLED
    return COMPLETED if exit_code == 0 else ERROR


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    name: str
    image: str
    state: ContainerState
    last_state: Terminated | None = None
    ready: bool = False
    started: bool = False  # running and past its startup probe
    restart_count: int = 0
    container_id: str | None = None
    image_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id or "",
            "containerID": f"docker://{self.container_id}" if self.container_id else None,
            "state": self.state.to_dict(),
            "lastState": self.last_state.to_dict() if self.last_state else {},
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
        })


@dataclass(frozen=True, slots=True)
class PodCondition:
    type: str  # PodScheduled | Initialized | ContainersReady | Ready
    status: bool
    last_transition_time: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({
            "type": self.type,
            "status": "True" if self.status else "False",
            "lastTransitionTime": rfc3339(self.last_transition_time),
            "reason": self.reason,
        })


@dataclass(frozen=True, slots=True)
class PodStatus:
    uid: str
    namespace: str
    name: str
    phase: str
    conditions: tuple[PodCondition, ...] = ()
    container_statuses: tuple[ContainerStatus, ...] = ()
    pod_ip: str | None = None
    host_ip: str | None = None
    start_time: float | None = None
    message: str | None = None
    reason: str | None = None
    deleted: bool = False  # set on the last update a subscriber gets for a Pod that is gone
    init_container_statuses: tuple[ContainerStatus, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status for c in self.conditions)

    def container(self, name: str) -> ContainerStatus | None:
        """The status of the container or init container of that name."""
        for c in (*self.container_statuses, *self.init_container_statuses):
            if c.name == name:
                return c
        return None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({
            "phase": self.phase,
            "conditions": [c.to_dict() for c in self.conditions],
            "hostIP": self.host_ip,
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}] if self.pod_ip else None,
            "startTime": rfc3339(self.start_time),
            "initContainerStatuses": [c.to_dict() for c in self.init_container_statuses] or None,
            "containerStatuses": [c.to_dict() for c in self.container_statuses],
            "message": self.message,
            "reason": self.reason,
        })


def pod_phase(restart_policy: str, containers: tuple[ContainerStatus, ...] | list[ContainerStatus]) -> str:
    """The Pod phase from its containers, with kubelet's rules.

    A waiting container that has run before (it has a lastState) counts as stopped, not
    as waiting: a Pod in CrashLoopBackOff is Running, not Pending.
    """
    if not containers:
        return "Pending"
    waiting = running = stopped = succeeded = 0
    for c in containers:
        if isinstance(c.state, Running):
            running += 1
        elif isinstance(c.state, Terminated):
            stopped += 1
            succeeded += c.state.exit_code == 0
        elif c.last_state is not None:
            stopped += 1
            succeeded += c.last_state.exit_code == 0
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    # Every container has stopped.
    if restart_policy == "Always":
        return "Running"  # they are being restarted
    if succeeded == len(containers):
        return "Succeeded"
    if restart_policy == "OnFailure":
        return "Running"  # the failed ones are being restarted
    return "Failed"


def init_status_word(init_statuses: tuple[ContainerStatus, ...] | list[ContainerStatus],
                     sidecars: frozenset[str] | set[str]) -> str | None:
    """kubectl's STATUS word while a Pod initializes ("Init:1/3", "Init:Error",
    "Init:CrashLoopBackOff"), or None once every init container is done (a regular one
    exited 0, a sidecar started)."""
    for i, c in enumerate(init_statuses):
        state = c.state
        if isinstance(state, Terminated) and state.exit_code == 0 and c.name not in sidecars:
            continue
        if c.name in sidecars and c.started:
            continue
        if isinstance(state, Terminated):
            return "Init:" + (state.reason or f"ExitCode:{state.exit_code}")
        if isinstance(state, Waiting) and state.reason and state.reason != POD_INITIALIZING:
            return "Init:" + state.reason
        return f"Init:{i}/{len(init_statuses)}"
    return None


def containers_ready(containers: tuple[ContainerStatus, ...] | list[ContainerStatus]) -> bool:
    return bool(containers) and all(c.ready for c in containers)
