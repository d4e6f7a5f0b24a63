"""Events: what happened to an object, as Kubernetes reports it (kind Event, v1).

Owns: the Event document (involvedObject, reason, message, type, source, count,
firstTimestamp, lastTimestamp), the `EventBook` that bounds how many the state keeps and
folds repeats into one, and the pure functions that say which events a change to a Pod
or a Node means (Scheduled, FailedScheduling, Started, BackOff, Unhealthy, Killing,
NodeReady, NodeNotReady ...).

Rules it keeps:
- Events are written by the state machine itself, inside the command whose change they
  describe (a binding, a status report, a node condition), or by the leader through the
  `record_events` command for what is not a change of an object (a leader elected, a
  server replaced). No event costs a Raft entry of its own, and every node derives the
  same events from the same log.
- A repeat (same object, reason, message and source) is counted, not stored again: its
  count goes up and its lastTimestamp moves, as Kubernetes' event correlator does.
- The number kept is bounded (`max_events`): past it, the event updated longest ago is
  deleted. Event names and uids derive from the log index, never from a clock or chance.
- Pure: no I/O, no clock (times come in the commands).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

NORMAL, WARNING = "Normal", "Warning"
SCHEDULER = "default-scheduler"
NODE_CONTROLLER = "node-controller"
KUBELET = "kubelet"
MAX_MESSAGE = 1024

Key = tuple[str, str]  # (namespace, name)
Fold = tuple[str, str, str, str]  # (involved uid, reason, message, source)


def involved(doc: Mapping[str, Any]) -> dict[str, str]:
    """The involvedObject reference to `doc`."""
    meta = doc.get("metadata") or {}
    ref = {"apiVersion": doc.get("apiVersion", "v1"), "kind": doc.get("kind", ""), "name": meta.get("name", ""),
           "uid": meta.get("uid", "")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return ref


def new_event(name: str, uid: str, ref: Mapping[str, str], event_type: str, reason: str, message: str,
              source: str, when: str, resource_version: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ref.get("namespace") or "default", "uid": uid,
                     "resourceVersion": resource_version, "creationTimestamp": when},
        "involvedObject": dict(ref), "reason": reason, "message": message[:MAX_MESSAGE], "type": event_type,
        "source": {"component": source}, "count": 1, "firstTimestamp": when, "lastTimestamp": when,
    }


def repeated(event: Mapping[str, Any], when: str, resource_version: str) -> dict[str, Any]:
    out = dict(event)
    out["metadata"] = dict(event["metadata"], resourceVersion=resource_version)
    out["count"] = int(event.get("count") or 1) + 1
    out["lastTimestamp"] = when
    return out


def fold_key(event: Mapping[str, Any]) -> Fold:
    return (event["involvedObject"].get("uid", ""), event.get("reason", ""), event.get("message", ""),
            (event.get("source") or {}).get("component", ""))


class EventBook:
    """Which stored event a repeat folds into, and which is the oldest (to drop past the bound)."""

    def __init__(self) -> None:
        self._by_fold: dict[Fold, Key] = {}
        self._order: OrderedDict[Key, Fold] = OrderedDict()  # least recently updated first

    def __len__(self) -> int:
        return len(self._order)

    def find(self, fold: Fold) -> Key | None:
        return self._by_fold.get(fold)

    def touch(self, key: Key, fold: Fold) -> None:
        self._by_fold[fold] = key
        self._order[key] = fold
        self._order.move_to_end(key)

    def forget(self, key: Key) -> None:
        fold = self._order.pop(key, None)
        if fold is not None and self._by_fold.get(fold) == key:
            del self._by_fold[fold]

    def oldest(self) -> Key | None:
        return next(iter(self._order), None)

    def rebuild(self, events: Iterable[Mapping[str, Any]]) -> None:
        self._by_fold.clear()
        self._order.clear()
        ordered = sorted(events, key=lambda e: (e.get("lastTimestamp", ""), int(e["metadata"]["resourceVersion"])))
        for event in ordered:
            meta = event["metadata"]
            self.touch((meta.get("namespace", "default"), meta["name"]), fold_key(event))


# ------------------------------------------------------------------- what a change means

Said = tuple[str, str, str, str]  # (type, reason, message, source)


def _containers(status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {cs.get("name", ""): cs for cs in status.get("containerStatuses") or () if isinstance(cs, Mapping)}


def pod_status_events(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Said]:
    """What the node's report that turned `old` into `new` says happened: a container
    started (Started), is waiting in CrashLoopBackOff (BackOff), turned not ready while
    running (Unhealthy), or the Pod failed."""
    out: list[Said] = []
    before, after = _containers(old.get("status") or {}), _containers(new.get("status") or {})
    for name, cs in sorted(after.items()):
        was = before.get(name) or {}
        state, old_state = cs.get("state") or {}, was.get("state") or {}
        running, was_running = state.get("running"), old_state.get("running")
        if isinstance(running, Mapping) and (not isinstance(was_running, Mapping)
                                             or running.get("startedAt") != was_running.get("startedAt")):
            out.append((NORMAL, "Started", f"Started container {name}", KUBELET))
        waiting = state.get("waiting") if isinstance(state.get("waiting"), Mapping) else {}
        old_waiting = old_state.get("waiting") if isinstance(old_state.get("waiting"), Mapping) else {}
        if waiting.get("reason") == "CrashLoopBackOff" and (old_waiting.get("reason") != "CrashLoopBackOff"
                                                            or cs.get("restartCount") != was.get("restartCount")):
            out.append((WARNING, "BackOff", f"Back-off restarting failed container {name}", KUBELET))
        if isinstance(running, Mapping) and was.get("ready") and not cs.get("ready"):
            out.append((WARNING, "Unhealthy", f"Readiness probe failed: container {name} is not ready", KUBELET))
    phase, old_phase = (new.get("status") or {}).get("phase"), (old.get("status") or {}).get("phase")
    if phase == "Failed" and old_phase != "Failed":
        message = (new.get("status") or {}).get("message") or "the Pod failed"
        out.append((WARNING, "Failed", message, KUBELET))
    return out


def killing_events(doc: Mapping[str, Any], why: str) -> list[Said]:
    """A placed Pod taken off its node (deleted, or moved off a lost node): its containers stop."""
    spec = doc.get("spec") or {}
    if not spec.get("nodeName"):
        return []
    return [(NORMAL, "Killing", f"Stopping container {c.get('name', '')}{why}", KUBELET)
            for c in spec.get("containers") or ()]
