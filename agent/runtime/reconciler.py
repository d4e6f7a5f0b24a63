"""The reconcile plan: which Pods to start, stop or replace (pure).

Owns: comparing the desired Pods with the Pods that have a worker. Rules: pure; Pods are
compared by uid and spec hash only. A Pod whose spec changed under the same uid is
replaced (torn down, then started again), as kubelet does for a static Pod whose file changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

RESTART_POLICIES = ("Always", "OnFailure", "Never")


@dataclass(frozen=True, slots=True)
class ReconcilePlan:
    start: tuple[str, ...]  # uids desired and not running
    stop: tuple[str, ...]  # uids running and no longer desired
    replace: tuple[str, ...]  # uids running with another spec than desired


def plan_reconcile(*, desired: Mapping[str, str], current: Mapping[str, str]) -> ReconcilePlan:
    """`desired` and `current` map pod uid -> spec hash."""
    start = tuple(sorted(uid for uid in desired if uid not in current))
    stop = tuple(sorted(uid for uid in current if uid not in desired))
    replace = tuple(sorted(uid for uid in desired if uid in current and current[uid] != desired[uid]))
    return ReconcilePlan(start=start, stop=stop, replace=replace)


def runnable_problem(pod: Any) -> str | None:
    """Why this node cannot run `pod` at all (None if it can). Pods from outside are checked
    here so a malformed one is rejected and reported instead of breaking the runtime."""
    if not getattr(pod.metadata, "uid", None):
        return "metadata.uid: required"
    if pod.spec.restart_policy not in RESTART_POLICIES:
        return f"spec.restartPolicy: unsupported value {pod.spec.restart_policy!r}"
    if not pod.spec.containers:
        return "spec.containers: at least one container is required"
    names = [c.name for c in (*pod.spec.containers, *pod.spec.init_containers)]
    if len(set(names)) != len(names):
        return "spec.containers: duplicate container names (in containers and initContainers)"
    return None
