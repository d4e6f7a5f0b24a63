"""The cluster state machine: every object of the cluster, replicated by Raft.

Owns: applying committed commands (commands.py) to the object store (store.py), each
change stamped with its resourceVersion and recorded in the watch window (history.py);
client sessions (sessions.py); snapshots and their restore; and the reads the API and
the controllers make (get, list with selectors, changes since a version, per-node usage).

Rules it keeps:
- `apply` is deterministic: the same entries give the same state on every node. No clock,
  no randomness, no uid generation: times and uids come inside the commands, and ids this
  machine makes (session ids) derive from the log index.
- Every object carries a uid, a resourceVersion (the Raft index of the entry that last
  changed it, as a string, as Kubernetes writes it) and a generation (incremented when
  its spec changes).
- A command that fails changes nothing: an apply of many documents is validated whole
  before any is stored; a refused command returns {"error": code, "message": ...}.
  Garbage never raises out of `apply` (it is a refused result, the same on every node).
  Commands that act on many items (bindings, status reports, evictions) decide per item
  and say which were taken.
- The cluster is never overcommitted: a binding is refused when the node's allocatable
  cannot hold the Pod's requests next to what is already bound there, or a host port is
  taken, whatever the scheduler believed.
- Deleting an object deletes its dependents (objects whose ownerReferences name only
  owners that are gone, recursively) in the same command, as Kubernetes' background
  garbage collection ends up doing: a deleted Deployment takes its ReplicaSets and their
  Pods with it, and a Pod deleted so leaves its node's desired set at once.
- A ConfigMap's or Secret's body is at the top level (data, binaryData, type,
  immutable) and an apply replaces it whole; an immutable one's body and a Secret's
  type never change (config_kinds.py).
- A workload's status is its controller's (`workload_status`, guarded by uid, written only
  when it differs); a person's apply never touches it, and a selector never changes.
- A snapshot serializes the objects one by one on a worker thread (so the GIL is not held
  for the whole of it), from a capture taken in a turn; restore rebuilds every index.
- Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from agent.raft.types import Entry, EntryKind
from agent.state import commands as cmd
from agent.state import config_kinds
from agent.state import events as ev
from agent.state import eviction
from agent.state import node as node_kind
from agent.state import pod_lifecycle as pods
from agent.state.history import ADDED, DELETED, MODIFIED, Change, WatchWindow
from agent.state.objects import (
    KINDS,
    WORKLOAD_KINDS,
    Admitted,
    Kind,
    admit,
    annotations_of,
    canonical_order,
    controller_of,
    format_time,
    labels_of,
    meta_of,
    object_key,
    owner_references_of,
    with_metadata,
)
from agent.state.pod import (
    FieldError,
    ManifestError,
    label_value_problem,
    owner_reference_to_dict,
    qualified_name_problem,
)
from agent.state.pod.parser import ManifestReader
from agent.state.selectors import FieldSelector, LabelSelector
from agent.state.sessions import SessionRefused, Sessions
from agent.state.store import Key, ObjectStore, ports_conflict

__all__ = ["ClusterState", "StateConfig", "error_result", "is_error"]

SNAPSHOT_FORMAT = 1
# A workload's status is a handful of counts and two conditions; this bounds a hostile one.
MAX_WORKLOAD_STATUS_BYTES = 16 * 1024
# Annotations the cluster writes; a person's apply keeps them as they are.
SYSTEM_ANNOTATIONS = (pods.EPOCH_ANNOTATION, pods.MIRROR_ANNOTATION, pods.SOURCE_ANNOTATION)


@dataclass(frozen=True, slots=True)
class StateConfig:
    # Changes kept for watches. Watchers are normally within a few changes of the head;
    # Kubernetes' own watch cache keeps 100 per kind. 1024 lets a watcher that was cut off
    # for a few seconds resume without listing again, at a bounded memory cost.
    max_watch_changes: int = 1024
    # ... and about this many bytes of the commands that made them (documents are shared
    # with the state, so this bounds superseded versions held only for watchers).
    max_watch_bytes: int = 4 * 1024 * 1024
    # Registered clients remembered for exactly-once writes (thesis §6.3); the least
    # recently used is forgotten past it.
    max_sessions: int = 10_000
    # Events kept (Kubernetes keeps them for an hour; we keep a number): past it the one
    # updated longest ago goes. A repeat is counted in place and costs no room.
    max_events: int = 1000


def error_result(code: str, message: str, fields: Iterable[FieldError] = ()) -> dict[str, Any]:
    """A refused command's result. `code`: invalid | not_found | already_exists | conflict |
    forbidden | session_expired | stale_sequence | malformed | too_many_requests. Without a message, the
    fields' problems are the message."""
    fields = list(fields)
    if not message:
        message = "; ".join(str(f) for f in fields)
    return {"error": code, "message": message, "fields": [[f.path, f.message, f.location] for f in fields]}


def is_error(result: object) -> bool:
    return isinstance(result, dict) and "error" in result


class _Refused(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["message"])
        self.result = result


def _refuse(code: str, message: str, fields: Iterable[FieldError] = ()) -> _Refused:
    return _Refused(error_result(code, message, fields))


@dataclass(slots=True)
class _Plan:
    """One object of an apply: what would be stored, and what the apply does to it."""

    admitted: Admitted
    action: str  # created | configured | unchanged
    doc: Mapping[str, Any]  # the person-written part merged onto the current object
    uid: str


class ClusterState:
    """Implements agent.raft.statemachine.StateMachine (with apply_batch)."""

    def __init__(self, config: StateConfig = StateConfig()) -> None:
        self.config = config
        self.applied_index = 0
        self.store = ObjectStore()
        self.window = WatchWindow(max_changes=config.max_watch_changes, max_bytes=config.max_watch_bytes)
        self.sessions = Sessions(config.max_sessions)
        self.commands_refused = 0
        # Called with the applied index after every entry that changed an object (the
        # driver wakes its watchers with it). Not state: never in a snapshot.
        self.on_change: Callable[[int], None] | None = None
        self._index = 0  # the entry being applied
        self._changed = False
        self._charge = 0  # bytes of the current command not yet charged to a change
        self.events = ev.EventBook()
        self._events_made = 0  # events created by the entry being applied (their names count it)

    # ================================================================== StateMachine
    def apply(self, entry: Entry) -> object:
        self._begin(entry.index)
        result: object = None
        if entry.kind == EntryKind.NORMAL:
            result = self._apply_command(entry.data, 0)
        self._end()
        return result

    def apply_batch(self, entry: Entry, commands: list[bytes]) -> list[object]:
        self._begin(entry.index)
        results = [self._apply_command(data, slot) for slot, data in enumerate(commands)]
        self._end()
        return results

    def _begin(self, index: int) -> None:
        if index != self.applied_index + 1:
            raise ValueError(f"apply {index} after {self.applied_index}: entries out of order")
        self._index = index
        self._changed = False
        self._events_made = 0

    def _end(self) -> None:
        self.applied_index = self._index
        if self._changed and self.on_change is not None:
            self.on_change(self._index)

    def _apply_command(self, data: bytes, slot: int) -> object:
        try:
            command = cmd.decode(data)
        except cmd.CommandError as exc:
            self.commands_refused += 1
            return error_result("malformed", str(exc))
        self._charge = len(data)
        session = command.session
        if session is not None:
            try:
                retry, cached = self.sessions.check(session[0], session[1], self._index)
            except SessionRefused as exc:
                self.commands_refused += 1
                return error_result(exc.reason, exc.message)
            if retry:
                return cached
        try:
            result = self._HANDLERS[command.op](self, command, slot)
        except _Refused as refused:
            self.commands_refused += 1
            result = refused.result
        if session is not None:
            self.sessions.record(session[0], session[1], result, self._index)
        return result

    # ================================================================== recording changes
    def _record(self, kind: str, key: Key, doc: Mapping[str, Any], change: str) -> None:
        if change == DELETED:
            old = self.store.remove(kind, key)
        else:
            old = self.store.put(kind, key, doc)
        if kind == "Event":
            if change == DELETED:
                self.events.forget(key)
            else:
                self.events.touch(key, ev.fold_key(doc))
        self.window.record(Change(self._index, change, doc, old, self._charge))
        self._charge = 0
        self._changed = True

    def _stamp(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return with_metadata(doc, resourceVersion=str(self._index))

    def _say(self, doc: Mapping[str, Any], said: Iterable[ev.Said], ts: float) -> None:
        """Record events about `doc` (as it is after the change they describe)."""
        ref = ev.involved(doc)
        when = format_time(ts)
        for event_type, reason, message, source in said:
            fold = (ref.get("uid", ""), reason, message[:ev.MAX_MESSAGE], source)
            key = self.events.find(fold)
            current = self.store.get("Event", key) if key is not None else None
            if current is not None and key is not None:
                self._record("Event", key, ev.repeated(current, when, str(self._index)), MODIFIED)
                continue
            self._events_made += 1
            name = f"{ref.get('name', 'object')}.{self._index:x}.{self._events_made}"
            event = ev.new_event(name, f"event-{self._index}-{self._events_made}", ref, event_type, reason, message,
                                 source, when, str(self._index))
            self._record("Event", (event["metadata"]["namespace"], name), event, ADDED)
        while len(self.events) > self.config.max_events:
            oldest = self.events.oldest()
            gone = self.store.get("Event", oldest) if oldest is not None else None
            if oldest is None or gone is None:
                if oldest is not None:
                    self.events.forget(oldest)
                continue
            self._record("Event", oldest, self._stamp(gone), DELETED)

    # ================================================================== apply / patch / delete
    def _op_apply(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        docs, uids = command["docs"], command["uids"]
        plans = self.plan_apply(docs, create_only=command["create_only"])
        if is_error(plans):
            raise _Refused(plans)  # type: ignore[arg-type]
        results = []
        for i, plan in enumerate(plans):  # type: ignore[union-attr]
            kind = plan.admitted.kind
            doc = plan.doc
            before = self.store.get(kind.name, plan.admitted.key)
            if plan.action == "created":
                uid = uids[i] if i < len(uids) and isinstance(uids[i], str) and uids[i] else ""
                if not uid:
                    raise _refuse("malformed", f"apply: no uid for document {i + 1}")
                doc = self._created(kind, doc, uid, command["ts"])
                self._record(kind.name, plan.admitted.key, doc, ADDED)
            elif plan.action == "configured":
                doc = self._stamp(doc)
                self._record(kind.name, plan.admitted.key, doc, MODIFIED)
            if plan.action != "unchanged":
                self._said_owned(kind.name, before, doc, command["ts"])
            results.append([kind.name, plan.admitted.namespace, plan.admitted.name, plan.action, doc])
        return {"results": results}

    def plan_apply(self, docs: list[Any], *, create_only: bool = False) -> list[_Plan] | dict[str, Any]:
        """What applying `docs` would do, or the refusal (every problem, by document and
        field). Changes nothing: the API uses it for dry runs."""
        errors: list[FieldError] = []
        plans: list[_Plan] = []
        seen: dict[tuple[str, Key], int] = {}
        conflict: dict[str, Any] | None = None
        for i, raw in enumerate(docs):
            where = f"document {i + 1}" if len(docs) > 1 else ""
            try:
                admitted = admit(raw, location=where)
            except ManifestError as exc:
                errors.extend(exc.errors)
                continue
            kind = admitted.kind
            ident = (kind.name, admitted.key)
            if ident in seen:
                errors.append(FieldError("metadata.name", f"{kind.name} {_show(admitted.key)} is also document "
                                                          f"{seen[ident] + 1} of this apply", where))
                continue
            seen[ident] = i
            current = self.store.get(kind.name, admitted.key)
            try:
                plans.append(self._plan_one(admitted, current, create_only, where))
            except _Refused as refused:
                if refused.result["error"] == "invalid":
                    errors.extend(FieldError(p, m, loc) for p, m, loc in refused.result["fields"])
                elif conflict is None:
                    conflict = refused.result
        if errors:
            return error_result("invalid", "; ".join(str(e) for e in errors), errors)
        if conflict is not None:
            return conflict
        return plans

    def _plan_one(self, admitted: Admitted, current: Mapping[str, Any] | None, create_only: bool,
                  where: str) -> _Plan:
        kind = admitted.kind
        label = f"{kind.plural} {_show(admitted.key)!s}"
        if current is None:
            if not kind.creatable:
                raise _refuse("forbidden", f"{kind.plural} cannot be created: a {kind.name} registers itself "
                                           f"when its agent joins the cluster")
            if admitted.resource_version:
                raise _refuse("conflict", f"{label}: resourceVersion should not be set on objects to be created")
            if admitted.uid:
                raise _refuse("not_found", f"{label} not found (uid precondition {admitted.uid})")
            return _Plan(admitted, "created", admitted.doc, "")
        if create_only:
            raise _refuse("already_exists", f'{label} already exists')
        meta = meta_of(current)
        if admitted.resource_version and admitted.resource_version != meta.get("resourceVersion"):
            raise _refuse("conflict", f"Operation cannot be fulfilled on {label}: the object has been modified; "
                                      f"please apply your changes to the latest version and try again "
                                      f"(asked for resourceVersion {admitted.resource_version}, "
                                      f"it is at {meta.get('resourceVersion')})")
        if admitted.uid and admitted.uid != meta.get("uid"):
            raise _refuse("conflict", f"{label}: uid precondition failed ({admitted.uid} != {meta.get('uid')})")
        merged = self._merge_person_part(kind, current, admitted.doc, where)
        action = "unchanged" if merged == current else "configured"
        return _Plan(admitted, action, merged, meta.get("uid", ""))

    def _merge_person_part(self, kind: Kind, current: Mapping[str, Any], new: Mapping[str, Any],
                           where: str) -> Mapping[str, Any]:
        """`current` with the person-written part of `new`: labels, annotations, spec; the
        system part of metadata, system labels and annotations, and status are kept."""
        meta = dict(meta_of(current))
        new_meta = meta_of(new)
        labels = dict(new_meta.get("labels") or {})
        if kind.name == "Node":
            for key in node_kind.SYSTEM_LABELS:
                if key in labels and labels[key] != labels_of(current).get(key):
                    raise _refuse("invalid", "", [FieldError(f"metadata.labels.{key}", "is set by the cluster", where)])
                if key in labels_of(current):
                    labels[key] = labels_of(current)[key]
        annotations = dict(new_meta.get("annotations") or {})
        for key in SYSTEM_ANNOTATIONS:
            if key in annotations and annotations[key] != annotations_of(current).get(key):
                raise _refuse("invalid", "", [FieldError(f"metadata.annotations.{key}", "is set by the cluster",
                                                         where)])
            if key in annotations_of(current):
                annotations[key] = annotations_of(current)[key]
        for field, value in (("labels", labels), ("annotations", annotations)):
            if value:
                meta[field] = dict(sorted(value.items()))
            else:
                meta.pop(field, None)
        if new_meta.get("ownerReferences"):
            meta["ownerReferences"] = new_meta["ownerReferences"]
        else:
            meta.pop("ownerReferences", None)
        if kind.name in config_kinds.BODY_FIELDS:
            return self._merge_config_body(kind, current, meta, new, where)
        spec = dict(new.get("spec") or {})
        if kind.name in WORKLOAD_KINDS and spec.get("selector") != (current.get("spec") or {}).get("selector"):
            raise _refuse("invalid", "", [FieldError("spec.selector", "field is immutable", where)])
        if kind.name == "Pod":
            bound = pods.node_name_of(current)
            wanted = spec.get("nodeName")
            if bound and wanted and wanted != bound:
                raise _refuse("invalid", "", [FieldError(
                    "spec.nodeName", f"may not be changed once the Pod is placed (it is on {bound}); "
                                     f"delete the Pod and create it again", where)])
            if bound:
                spec["nodeName"] = bound
        if spec != (current.get("spec") or {}):
            meta["generation"] = int(meta.get("generation") or 1) + 1
        out = dict(current)
        out["metadata"] = meta
        out["spec"] = spec
        return canonical_order(out)

    def _merge_config_body(self, kind: Kind, current: Mapping[str, Any], meta: dict[str, Any],
                           new: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        """A ConfigMap's or Secret's new body (data, binaryData, type, immutable) under the
        merged metadata, refused as Kubernetes refuses changing an immutable one."""
        problems = config_kinds.update_problems(kind.name, current, new)
        if problems:
            raise _refuse("invalid", "", [FieldError(p.path, p.message, where) for p in problems])
        out = {k: v for k, v in current.items() if k not in config_kinds.BODY_FIELDS[kind.name]}
        out["metadata"] = meta
        for field in config_kinds.BODY_FIELDS[kind.name]:
            if field in new:
                out[field] = new[field]
        return canonical_order(out)

    def _created(self, kind: Kind, doc: Mapping[str, Any], uid: str, ts: float) -> dict[str, Any]:
        meta = dict(meta_of(doc))
        meta.update(uid=uid, resourceVersion=str(self._index), generation=1, creationTimestamp=format_time(ts))
        out = dict(doc)
        out["metadata"] = meta
        if kind.name == "Pod":
            out["status"] = pods.initial_status(out, ts)
            node = pods.node_name_of(out)
            if node:  # placed by its author (spec.nodeName): the scheduler is skipped, as in Kubernetes
                out = pods.bind(out, node, ts)
        return canonical_order(out)

    def _op_patch(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        kind = self._kind(command["kind"])
        key = object_key(kind, command["namespace"], command["name"])
        current = self.store.get(kind.name, key)
        if current is None:
            raise _refuse("not_found", f'{kind.plural} "{command["name"]}" not found')
        if command["rv"] and command["rv"] != meta_of(current).get("resourceVersion"):
            raise _refuse("conflict", f"{kind.plural} {_show(key)}: resourceVersion {command['rv']} is stale "
                                      f"(now {meta_of(current).get('resourceVersion')})")
        patched = json_merge_patch(person_part(current), command["patch"])
        try:
            admitted = admit(patched)
        except ManifestError as exc:
            raise _refuse("invalid", str(exc), exc.errors) from None
        if admitted.key != key or admitted.kind is not kind:
            raise _refuse("invalid", "a patch may not change an object's kind, name or namespace")
        merged = self._merge_person_part(kind, current, admitted.doc, "")
        if merged == current:
            return {"object": current, "action": "unchanged"}
        doc = self._stamp(merged)
        self._record(kind.name, key, doc, MODIFIED)
        return {"object": doc, "action": "configured"}

    def _op_delete(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        kind = self._kind(command["kind"])
        key = object_key(kind, command["namespace"], command["name"])
        current = self.store.get(kind.name, key)
        if current is None:
            raise _refuse("not_found", f'{kind.plural} "{command["name"]}" not found')
        meta = meta_of(current)
        if command["rv"] and command["rv"] != meta.get("resourceVersion"):
            raise _refuse("conflict", f"{kind.plural} {_show(key)}: resourceVersion {command['rv']} is stale "
                                      f"(now {meta.get('resourceVersion')})")
        if command["uid"] and command["uid"] != meta.get("uid"):
            raise _refuse("conflict", f"{kind.plural} {_show(key)}: uid precondition failed")
        gone = self._stamp(current)
        dependents = self._delete_cascading(kind, key, current, command["ts"])
        result: dict[str, Any] = {"object": gone}
        if dependents:
            result["dependents"] = dependents
        return result

    def _delete_cascading(self, kind: Kind, key: Key, current: Mapping[str, Any], ts: float) -> list[list[str]]:
        """Delete an object and, in the same command, every object that depends on it: those
        whose ownerReferences name only owners that are gone (recursively), as Kubernetes'
        background garbage collection ends up doing. Returns the dependents deleted."""
        self._record(kind.name, key, self._stamp(current), DELETED)
        self._said_gone(kind.name, current, ts)
        if not kind.namespaced:
            return []
        namespace = key[0]
        deleted: list[list[str]] = []
        owners = [meta_of(current).get("uid", "")]
        while owners:
            owner = owners.pop(0)
            for kind_name, obj_key in self.store.dependents(owner):
                doc = self.store.get(kind_name, obj_key)
                if doc is None or obj_key[0] != namespace:
                    continue
                if any(self.store.holds_uid(ref.get("uid", "")) for ref in owner_references_of(doc)):
                    continue  # another owner lives: it keeps the object
                self._record(kind_name, obj_key, self._stamp(doc), DELETED)
                self._said_gone(kind_name, doc, ts)
                deleted.append([kind_name, obj_key[0], obj_key[1]])
                owners.append(meta_of(doc).get("uid", ""))
        return deleted

    def _said_gone(self, kind_name: str, doc: Mapping[str, Any], ts: float) -> None:
        """Events for an object just deleted: a placed Pod's containers are stopped, and its
        ReplicaSet says it deleted it."""
        if kind_name == "Pod" and not pods.is_finished(doc):
            self._say(doc, ev.killing_events(doc, ""), ts)
        self._said_owned(kind_name, doc, None, ts)

    def _said_owned(self, kind_name: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
                    ts: float) -> None:
        """Events on a controller for what happened to an object it owns: a ReplicaSet made
        or deleted a Pod (SuccessfulCreate/SuccessfulDelete), a Deployment scaled one of its
        ReplicaSets (ScalingReplicaSet)."""
        doc = after if after is not None else before
        ref = controller_of(doc) if doc is not None else None
        if ref is None or doc is None:
            return
        owner_kind = KINDS.get(str(ref.get("kind", "")))
        namespace = meta_of(doc).get("namespace", "default")
        owner = self.store.get(owner_kind.name, object_key(owner_kind, namespace, str(ref.get("name", "")))) \
            if owner_kind is not None else None
        if owner is None or meta_of(owner).get("uid") != ref.get("uid"):
            return
        name = meta_of(doc)["name"]
        if kind_name == "Pod" and owner_kind.name == "ReplicaSet" and (before is None) != (after is None):
            word, said = ("SuccessfulCreate", "Created") if before is None else ("SuccessfulDelete", "Deleted")
            self._say(owner, [(ev.NORMAL, word, f"{said} pod: {name}", "replicaset-controller")], ts)
        elif kind_name == "ReplicaSet" and owner_kind.name == "Deployment":
            old = int((before or {}).get("spec", {}).get("replicas", 0)) if before is not None else 0
            new = int((after or {}).get("spec", {}).get("replicas", 0)) if after is not None else 0
            if old != new and after is not None:
                way = "up" if new > old else "down"
                self._say(owner, [(ev.NORMAL, "ScalingReplicaSet", f"Scaled {way} replica set {name} from {old} "
                                                                   f"to {new}", "deployment-controller")], ts)

    def _op_delete_many(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        deleted = skipped = 0
        dependents = 0
        for kind_name, namespace, name, uid in command["rows"]:
            kind = KINDS.get(kind_name)
            if kind is None:
                skipped += 1
                continue
            key = object_key(kind, namespace, name)
            current = self.store.get(kind.name, key)
            if current is None or (uid and meta_of(current).get("uid") != uid):
                skipped += 1
                continue
            dependents += len(self._delete_cascading(kind, key, current, command["ts"]))
            deleted += 1
        return {"deleted": deleted, "skipped": skipped, "dependents": dependents}

    def _op_evict_pod(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        """Delete a Pod if its workload's budget allows it now (state/eviction.py), checked
        against the state as it is when the command applies."""
        namespace, name = command["namespace"] or "default", command["name"]
        key = (namespace, name)
        current = self.store.get("Pod", key)
        if current is None:
            raise _refuse("not_found", f'pods "{name}" not found')
        if command["uid"] and command["uid"] != meta_of(current).get("uid"):
            raise _refuse("conflict", f"pods {_show(key)}: uid precondition failed")
        problem = eviction.eviction_problem(self.store, current, force=command["force"], now=command["ts"])
        if problem is not None:
            raise _refuse(*problem)
        gone = self._stamp(current)
        node = pods.node_name_of(current)
        self._say(current, [(ev.NORMAL, "Evicted", f"Evicted from {node or 'no node'}"
                             + (" (forced)" if command["force"] else " within its Deployment's budget"),
                             "eviction")], command["ts"])
        self._delete_cascading(KINDS["Pod"], key, current, command["ts"])
        return {"object": gone}

    # ================================================================== workloads
    def _op_workload_status(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        kind_name, name, uid, status = command["kind"], command["name"], command["uid"], command["status"]
        if kind_name not in WORKLOAD_KINDS:
            raise _refuse("invalid", f"workload_status: {kind_name!r} is not one of {', '.join(WORKLOAD_KINDS)}")
        kind = KINDS[kind_name]
        key = object_key(kind, command["namespace"], name)
        current = self.store.get(kind_name, key)
        if current is None:
            raise _refuse("not_found", f'{kind.plural} "{name}" not found')
        if meta_of(current).get("uid") != uid:
            raise _refuse("conflict", f"{kind.plural} {_show(key)}: uid precondition failed ({uid} != "
                                      f"{meta_of(current).get('uid')})")
        if len(msgpack.packb(status)) > MAX_WORKLOAD_STATUS_BYTES:
            raise _refuse("invalid", f"{kind.plural} {_show(key)}: status exceeds {MAX_WORKLOAD_STATUS_BYTES} bytes")
        if current.get("status") == status:
            return {"changed": False}
        new = dict(current)
        new["status"] = status
        self._record(kind_name, key, self._stamp(new), MODIFIED)
        return {"changed": True}

    def _op_owner_refs(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        changed = skipped = 0
        for kind_name, namespace, name, uid, refs in command["rows"]:
            kind = KINDS.get(kind_name)
            current = self.store.get(kind_name, object_key(kind, namespace, name)) if kind else None
            if kind is None or not kind.namespaced or current is None or meta_of(current).get("uid") != uid:
                skipped += 1
                continue
            reader = ManifestReader()
            parsed = reader.owner_references({"ownerReferences": refs}, "metadata")
            if reader.errors:
                skipped += 1
                continue
            canonical = [owner_reference_to_dict(r) for r in parsed]
            if canonical == owner_references_of(current):
                continue
            had, wants = controller_of(current), next((r for r in canonical if r.get("controller")), None)
            if had is not None and wants is not None and had.get("uid") != wants.get("uid"):
                skipped += 1  # another controller claimed it first: it must release the object before
                continue
            new = with_metadata(current, ownerReferences=canonical or None)
            self._record(kind_name, object_key(kind, namespace, name), self._stamp(canonical_order(new)), MODIFIED)
            changed += 1
        return {"changed": changed, "skipped": skipped}

    def _kind(self, name: str) -> Kind:
        kind = KINDS.get(name)
        if kind is None:
            raise _refuse("invalid", f"unknown kind {name!r}")
        return kind

    # ================================================================== placement
    def _op_bind(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        """Each binding is checked against the state as it is when applied; the ones that
        no longer hold (Pod gone or placed, node gone, not Ready, full) are refused alone."""
        outcomes = []
        ts = command["ts"]
        for namespace, name, uid, node in command["bindings"]:
            problem = self.binding_problem(namespace, name, uid, node)
            if problem is None:
                key = (namespace, name)
                bound = self._stamp(pods.bind(self.store.get("Pod", key), node, ts))
                self._record("Pod", key, bound, MODIFIED)
                self._say(bound, [(ev.NORMAL, "Scheduled", f"Successfully assigned {namespace}/{name} to {node}",
                                   ev.SCHEDULER)], ts)
            outcomes.append(problem or "")
        return {"refused": outcomes, "bound": sum(1 for o in outcomes if not o)}

    def binding_problem(self, namespace: str, name: str, uid: str, node: str) -> str | None:
        """Why the Pod cannot be bound to `node` now, or None."""
        doc = self.store.get("Pod", (namespace, name))
        if doc is None or meta_of(doc).get("uid") != uid:
            return "pod gone"
        if pods.node_name_of(doc):
            return "pod already placed"
        if pods.is_finished(doc):
            return "pod finished"
        node_doc = self.store.get("Node", ("", node))
        if node_doc is None:
            return "node gone"
        if not node_kind.is_ready(node_doc):
            return "node not ready"
        alloc = self.store.allocatable(node)
        usage = self.store.usage(node)
        demand = self.store.demand((namespace, name))
        if alloc is None:
            return "node has no allocatable"
        if usage.cpu_millicores + demand.cpu_millicores > alloc.cpu_millicores:
            return "Insufficient cpu"
        if usage.memory_bytes + demand.memory_bytes > alloc.memory_bytes:
            return "Insufficient memory"
        if usage.pods + 1 > alloc.pods:
            return "Insufficient pods"
        if demand.host_ports and ports_conflict(demand.host_ports, usage.host_ports):
            return "host port taken"
        return None

    def _op_unschedulable(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        changed = 0
        for namespace, name, uid, message in command["pods"]:
            key = (namespace, name)
            doc = self.store.get("Pod", key)
            if doc is None or meta_of(doc).get("uid") != uid or pods.node_name_of(doc):
                continue
            new = pods.mark_unschedulable(doc, message[:1024], command["ts"])
            if new is not doc:
                new = self._stamp(new)
                self._record("Pod", key, new, MODIFIED)
                self._say(new, [(ev.WARNING, "FailedScheduling", message[:1024], ev.SCHEDULER)], command["ts"])
                changed += 1
        return {"changed": changed}

    def _op_evict(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        node, ts = command["node"], command["ts"]
        reason, message = command["reason"][:128], command["message"][:1024]
        moved = failed = 0
        for namespace, name, uid, action in command["pods"]:
            key = (namespace, name)
            doc = self.store.get("Pod", key)
            if doc is None or meta_of(doc).get("uid") != uid or pods.node_name_of(doc) != node:
                continue
            if action == "reschedule":
                new = self._stamp(pods.unbind_for_reschedule(doc, reason, message, ts))
                self._record("Pod", key, new, MODIFIED)
                self._say(new, [(ev.WARNING, "Rescheduled", f"{message} (was on {node}; placed again)",
                                 ev.NODE_CONTROLLER)], ts)
                moved += 1
            elif action == "fail":
                new = self._stamp(pods.fail_lost(doc, reason, message, ts))
                self._record("Pod", key, new, MODIFIED)
                self._say(new, [(ev.WARNING, reason, message, ev.NODE_CONTROLLER)], ts)
                failed += 1
        return {"rescheduled": moved, "failed": failed}

    def _op_pod_status(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        node = command["node"]
        accepted = ignored = 0
        for namespace, name, uid, epoch, status in command["reports"]:
            key = (namespace, name)
            doc = self.store.get("Pod", key)
            if (doc is None or meta_of(doc).get("uid") != uid or pods.node_name_of(doc) != node
                    or pods.placement_epoch(doc) != epoch or pods.reported_status_problem(status) is not None
                    or len(msgpack.packb(status)) > pods.MAX_REPORTED_STATUS_BYTES):
                ignored += 1
                continue
            new = pods.merge_reported_status(doc, status)
            if new is not doc:
                new = self._stamp(new)
                self._record("Pod", key, new, MODIFIED)
                self._say(new, ev.pod_status_events(doc, new), command["ts"])
            accepted += 1
        return {"accepted": accepted, "ignored": ignored}

    # ================================================================== nodes
    def _op_node_upsert(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        name, ts = command["name"], command["ts"]
        facts = node_facts_from_wire(name, command["facts"])
        if facts is None:
            raise _refuse("invalid", f"node {name}: malformed facts")
        key = ("", name)
        current = self.store.get("Node", key)
        status_part = node_kind.node_status_from_facts(facts)
        agent_labels = node_kind.node_labels_from_facts(facts)
        if current is None:
            if not command["uid"]:
                raise _refuse("malformed", "node_upsert: no uid")
            labels = dict(agent_labels)
            labels.setdefault(node_kind.ROLE_LABEL, "worker")
            doc = {
                "apiVersion": node_kind.API_VERSION,
                "kind": node_kind.KIND,
                "metadata": {"name": name, "uid": command["uid"], "resourceVersion": str(self._index),
                             "generation": 1, "creationTimestamp": format_time(ts),
                             "labels": dict(sorted(labels.items()))},
                "spec": {},
                "status": dict(status_part, conditions=[{
                    "type": "Ready", "status": "Unknown", "reason": "NodeRegistered",
                    "message": "the node's agent joined; waiting for its first report",
                    "lastHeartbeatTime": format_time(ts), "lastTransitionTime": format_time(ts)}]),
            }
            self._record("Node", key, doc, ADDED)
            return {"action": "created"}
        labels = dict(labels_of(current))
        labels.update(agent_labels)
        status = dict(current.get("status") or {})
        status.update(status_part)
        new = with_metadata(current, labels=dict(sorted(labels.items())))
        new["status"] = status
        if new == current:
            return {"action": "unchanged"}
        self._record("Node", key, self._stamp(new), MODIFIED)
        return {"action": "configured"}

    def _op_node_ready(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        name, ts, wanted = command["name"], command["ts"], command["status"]
        if wanted not in ("True", "False", "Unknown"):
            raise _refuse("invalid", f"node condition status {wanted!r}")
        key = ("", name)
        current = self.store.get("Node", key)
        if current is None:
            raise _refuse("not_found", f'nodes "{name}" not found')
        old = node_kind.ready_condition(current) or {}
        reason, message = command["reason"][:128], command["message"][:1024]
        if old.get("status") == wanted and old.get("reason") == reason and old.get("message") == message:
            return {"changed": False}
        cond = {"type": "Ready", "status": wanted, "reason": reason, "message": message,
                "lastHeartbeatTime": format_time(ts),
                "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == wanted
                else format_time(ts)}
        status = dict(current.get("status") or {})
        status["conditions"] = [cond] + [c for c in status.get("conditions") or () if c.get("type") != "Ready"]
        new = self._stamp(dict(current, status=status))
        self._record("Node", key, new, MODIFIED)
        if old.get("status") != wanted:
            word = "NodeReady" if wanted == "True" else "NodeNotReady"
            self._say(new, [(ev.NORMAL if wanted == "True" else ev.WARNING, word,
                             f"Node {name} status is now: {word}" + (f" ({message})" if message else ""),
                             ev.NODE_CONTROLLER)], ts)
        return {"changed": True}

    def _op_node_role(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        name, role = command["name"], command["role"]
        if role not in node_kind.ROLES:
            raise _refuse("invalid", f"unknown role {role!r}")
        key = ("", name)
        current = self.store.get("Node", key)
        if current is None:
            raise _refuse("not_found", f'nodes "{name}" not found')
        if node_kind.role_of(current) == role:
            return {"changed": False}
        labels = dict(labels_of(current))
        labels[node_kind.ROLE_LABEL] = role
        self._record("Node", key, self._stamp(with_metadata(current, labels=dict(sorted(labels.items())))), MODIFIED)
        return {"changed": True}

    def _op_mirror_sync(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        """Make the node's mirror Pods exactly its static Pods. A static Pod whose name is
        taken by a Pod that is not its mirror is refused alone (as kubelet's mirror Pod
        creation fails), and said so in the result."""
        node, ts, uids = command["node"], command["ts"], command["uids"]
        wanted: dict[Key, tuple[Admitted, str]] = {}
        refused = []
        for i, raw in enumerate(command["docs"]):
            uid = uids[i] if i < len(uids) and isinstance(uids[i], str) else ""
            try:
                admitted = admit(raw)
            except ManifestError as exc:
                refused.append(f"document {i + 1}: {exc}")
                continue
            if admitted.kind.name != "Pod" or not uid:
                refused.append(f"document {i + 1}: not a Pod with a uid")
                continue
            wanted[admitted.key] = (admitted, uid)
        created = deleted = 0
        mirrors = [d for d in self.list("Pod") if pods.is_mirror(d) and pods.node_name_of(d) == node]
        for doc in mirrors:
            key = (meta_of(doc).get("namespace", "default"), meta_of(doc)["name"])
            want = wanted.get(key)
            if want is None or want[1] != meta_of(doc).get("uid"):
                self._record("Pod", key, self._stamp(doc), DELETED)
                deleted += 1
        for key, (admitted, uid) in wanted.items():
            current = self.store.get("Pod", key)
            if current is not None:
                if not pods.is_mirror(current):
                    refused.append(f"pods {_show(key)} exists and is not the mirror of a static Pod")
                continue  # the mirror is there, with this uid (others were deleted above)
            doc = dict(admitted.doc)
            annotations = dict(meta_of(doc).get("annotations") or {})
            annotations[pods.MIRROR_ANNOTATION] = uid
            annotations[pods.SOURCE_ANNOTATION] = "file"
            doc = with_metadata(doc, annotations=dict(sorted(annotations.items())))
            doc["spec"] = dict(doc.get("spec") or {}, nodeName=node)
            self._record("Pod", key, self._created(admitted.kind, doc, uid, ts), ADDED)
            created += 1
        return {"created": created, "deleted": deleted, "refused": refused}

    def _op_record_events(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        recorded = 0
        for kind_name, namespace, name, event_type, reason, message, source in command["events"]:
            kind = KINDS.get(kind_name)
            doc = self.store.get(kind_name, object_key(kind, namespace, name)) if kind is not None else None
            if doc is None or event_type not in (ev.NORMAL, ev.WARNING) or not reason:
                continue
            self._say(doc, [(event_type, reason[:128], message, source[:128])], command["ts"])
            recorded += 1
        return {"recorded": recorded}

    def _op_register_session(self, command: cmd.Command, slot: int) -> dict[str, Any]:
        client_id = f"c{self._index}.{slot}"
        self.sessions.register(client_id, self._index)
        return {"client_id": client_id}

    _HANDLERS: dict[str, Callable[[ClusterState, cmd.Command, int], dict[str, Any]]] = {
        "apply": _op_apply,
        "patch": _op_patch,
        "delete": _op_delete,
        "bind": _op_bind,
        "unschedulable": _op_unschedulable,
        "evict": _op_evict,
        "pod_status": _op_pod_status,
        "node_upsert": _op_node_upsert,
        "node_ready": _op_node_ready,
        "node_role": _op_node_role,
        "register_session": _op_register_session,
        "mirror_sync": _op_mirror_sync,
        "record_events": _op_record_events,
        "workload_status": _op_workload_status,
        "owner_refs": _op_owner_refs,
        "delete_many": _op_delete_many,
        "evict_pod": _op_evict_pod,
    }

    # ================================================================== reads
    def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        k = KINDS[kind]
        return self.store.get(kind, object_key(k, namespace, name))

    def list(self, kind: str, *, namespace: str = "", labels: LabelSelector | None = None,
             fields: FieldSelector | None = None) -> list[Mapping[str, Any]]:
        """Objects of a kind, sorted by (namespace, name); namespace '' means all."""
        if kind == "Pod" and fields is not None and fields.value_of("spec.nodeName"):
            candidates: Iterable[Mapping[str, Any]] = self.store.pods_on(fields.value_of("spec.nodeName") or "")
            candidates = sorted(candidates, key=lambda d: (meta_of(d).get("namespace", ""), meta_of(d)["name"]))
        else:
            objects = self.store.of_kind(kind)
            candidates = [objects[key] for key in sorted(objects)]
        out = []
        for doc in candidates:
            meta = meta_of(doc)
            if namespace and meta.get("namespace", "") != namespace:
                continue
            if labels is not None and not labels.matches(meta.get("labels")):
                continue
            if fields is not None and not fields.matches(doc):
                continue
            out.append(doc)
        return out

    def changes_since(self, version: int) -> list[Change]:
        """Every change after `version` (raises history.Expired when the window no longer holds them)."""
        return self.window.since(version)

    # ================================================================== snapshots
    def snapshot(self) -> bytes:
        return self.snapshot_builder()()

    def snapshot_builder(self) -> Callable[[], bytes]:
        """Capture now (copies of the maps; documents are shared, being immutable), pack later."""
        index = self.applied_index
        objects = self.store.shallow_copy()
        sessions = self.sessions.to_wire()

        def pack() -> bytes:
            packb = msgpack.packb
            # One small packb per object, so a big state never holds the GIL in one long call.
            packed = {kind: [packb(doc, use_bin_type=True) for doc in docs.values()] for kind, docs in objects.items()}
            return packb({"format": SNAPSHOT_FORMAT, "index": index, "objects": packed, "sessions": sessions},
                         use_bin_type=True)

        return pack

    def restore(self, data: bytes) -> None:
        body = msgpack.unpackb(data, raw=False, strict_map_key=False)
        if body.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown cluster-state snapshot format {body.get('format')!r}")
        objects: dict[str, dict[Key, Mapping[str, Any]]] = {}
        for kind_name, packed_docs in body["objects"].items():
            kind = KINDS[kind_name]
            docs = objects.setdefault(kind_name, {})
            for packed in packed_docs:
                doc = msgpack.unpackb(packed, raw=False)
                meta = doc["metadata"]
                docs[object_key(kind, meta.get("namespace", ""), meta["name"])] = doc
        self.store.replace_all(objects)
        self.events.rebuild(self.store.of_kind("Event").values())
        self.sessions.restore(body["sessions"])
        self.applied_index = body["index"]
        self.window.reset(self.applied_index)
        if self.on_change is not None:
            self.on_change(self.applied_index)


# ====================================================================== helpers


def _show(key: Key) -> str:
    return f'"{key[1]}"' if not key[0] else f'"{key[1]}" in namespace "{key[0]}"'


def person_part(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What a person wrote of an object: no system metadata, no system annotations, no status."""
    meta = {k: v for k, v in meta_of(doc).items()
            if k in ("name", "namespace", "labels", "annotations", "ownerReferences")}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in SYSTEM_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    if doc.get("kind") == "Node":
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in node_kind.SYSTEM_LABELS}
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)
    out = {"apiVersion": doc.get("apiVersion"), "kind": doc.get("kind"), "metadata": meta}
    if "spec" in doc:
        out["spec"] = doc["spec"]
    for field in config_kinds.BODY_FIELDS.get(doc.get("kind"), ()):  # type: ignore[arg-type]
        if field in doc:
            out[field] = doc[field]
    return out


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: a null removes a member, an object merges, anything else replaces."""
    if not isinstance(patch, Mapping):
        return json.loads(json.dumps(patch))
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = json_merge_patch(out.get(key), value)
    return out


_FACT_FIELDS = {
    "address": str, "api_port": int, "cpu": int, "memory": int, "alloc_cpu": int, "alloc_memory": int,
    "max_pods": int, "labels": dict, "version": str, "os": str, "arch": str,
}


def node_facts_from_wire(name: str, facts: Mapping[str, Any]) -> node_kind.NodeFacts | None:
    """NodeFacts from a node_upsert command's map, or None when it is malformed."""
    for field, kind in _FACT_FIELDS.items():
        value = facts.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            return None
    labels = facts["labels"]
    if not all(isinstance(k, str) and isinstance(v, str) and qualified_name_problem(k) is None
               and label_value_problem(v) is None for k, v in labels.items()):
        return None
    if min(facts["cpu"], facts["memory"], facts["alloc_cpu"], facts["alloc_memory"], facts["max_pods"]) < 0:
        return None
    return node_kind.NodeFacts(
        name=name, address=facts["address"], api_port=facts["api_port"],
        capacity_cpu_millicores=facts["cpu"], capacity_memory_bytes=facts["memory"],
        allocatable_cpu_millicores=facts["alloc_cpu"], allocatable_memory_bytes=facts["alloc_memory"],
        max_pods=facts["max_pods"], labels=labels, version=facts["version"], os=facts["os"], arch=facts["arch"],
    )
