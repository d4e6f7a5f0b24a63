"""The commands of the cluster state machine: their encoding, and their shape check.

Owns: one encoder per operation (used by the leader and the API, which stamp times, uids
and sessions into the command) and `decode`, which turns log bytes back into a checked
command or says why they are not one.

Rules it keeps:
- A command is a msgpack map with an "op" and the fields its op needs; nothing in it
  depends on when or where it is applied: the leader puts the time (`ts`, unix seconds)
  and any new uids into it, so applying it is a pure function of the state.
- `decode` checks the shape (types of every field, bounded sizes) and never raises:
  garbage in the log (a damaged or hostile command) becomes a refused result at apply,
  identical on every node, and changes nothing.
- Ops are only ever added; a field's meaning never changes.
- Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

__all__ = ["Command", "CommandError", "decode", "MAX_COMMAND_BYTES"]

# One command's bytes: a manifest is at most ~3 MiB (the manifest loader's bound) and a
# batch of statuses or bindings stays well below it.
MAX_COMMAND_BYTES = 8 * 1024 * 1024
MAX_ITEMS = 100_000  # items in one list field: bindings, reports, documents


class CommandError(Exception):
    """Bytes that are not a well-formed command."""


@dataclass(frozen=True, slots=True)
class Command:
    op: str
    fields: Mapping[str, Any]
    session: tuple[str, int] | None  # (client id, seq) for exactly-once writes

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def _pack(op: str, session: tuple[str, int] | None = None, **fields: Any) -> bytes:
    body: dict[str, Any] = {"op": op}
    body.update(fields)
    if session is not None:
        body["session"] = [session[0], session[1]]
    return msgpack.packb(body, use_bin_type=True)


# --------------------------------------------------------------------------- encoders


def apply_objects(docs: Sequence[Mapping[str, Any]], uids: Sequence[str], ts: float, *,
                  create_only: bool = False, session: tuple[str, int] | None = None) -> bytes:
    """Create or update objects, all or nothing. `uids[i]` names docs[i] if it is created."""
    return _pack("apply", session, docs=list(docs), uids=list(uids), ts=ts, create_only=create_only)


def patch_object(kind: str, namespace: str, name: str, patch: Mapping[str, Any], ts: float, *,
                 resource_version: str = "", session: tuple[str, int] | None = None) -> bytes:
    return _pack("patch", session, kind=kind, namespace=namespace, name=name, patch=dict(patch), ts=ts,
                 rv=resource_version)


def delete_object(kind: str, namespace: str, name: str, ts: float, *, resource_version: str = "",
                  uid: str = "", session: tuple[str, int] | None = None) -> bytes:
    return _pack("delete", session, kind=kind, namespace=namespace, name=name, ts=ts, rv=resource_version, uid=uid)


def bind_pods(bindings: Sequence[tuple[str, str, str, str]], ts: float) -> bytes:
    """Place pending Pods: (namespace, name, uid, node) each, checked one by one at apply."""
    return _pack("bind", bindings=[list(b) for b in bindings], ts=ts)


def mark_unschedulable(pods: Sequence[tuple[str, str, str, str]], ts: float) -> bytes:
    """(namespace, name, uid, message) of Pods the scheduler could place nowhere."""
    return _pack("unschedulable", pods=[list(p) for p in pods], ts=ts)


def upsert_node(name: str, uid: str, facts: Mapping[str, Any], ts: float) -> bytes:
    """Register a Node, or refresh what its agent advertises (capacity, addresses, labels)."""
    return _pack("node_upsert", name=name, uid=uid, facts=dict(facts), ts=ts)


def set_node_ready(name: str, status: str, reason: str, message: str, ts: float) -> bytes:
    """The Node's Ready condition: status "True" | "False" | "Unknown"."""
    return _pack("node_ready", name=name, status=status, reason=reason, message=message, ts=ts)


def set_node_role(name: str, role: str, ts: float) -> bytes:
    return _pack("node_role", name=name, role=role, ts=ts)


def evict_pods(node: str, pods: Sequence[tuple[str, str, str, str]], reason: str, message: str, ts: float) -> bytes:
    """Take Pods off a node that is gone: (namespace, name, uid, action) with action
    "reschedule" (back to Pending, for the scheduler) or "fail" (phase Failed)."""
    return _pack("evict", node=node, pods=[list(p) for p in pods], reason=reason, message=message, ts=ts)


def report_pod_statuses(node: str, reports: Sequence[tuple[str, str, str, int, Mapping[str, Any]]],
                        ts: float) -> bytes:
    """Statuses a node's agent observed: (namespace, name, uid, placement epoch, status)."""
    return _pack("pod_status", node=node, reports=[[ns, n, u, e, dict(s)] for ns, n, u, e, s in reports], ts=ts)


def sync_mirror_pods(node: str, docs: Sequence[Mapping[str, Any]], uids: Sequence[str], ts: float) -> bytes:
    """The whole set of a node's static Pods, to be mirrored in the state: mirrors missing
    are created (with the static Pod's own uid), changed ones replaced, others deleted."""
    return _pack("mirror_sync", node=node, docs=list(docs), uids=list(uids), ts=ts)


def record_events(events: Sequence[tuple[str, str, str, str, str, str, str]], ts: float) -> bytes:
    """Events that are not a change of an object (a leader elected, a server replaced):
    (kind, namespace, name, type, reason, message, source) each, about an existing object."""
    return _pack("record_events", events=[list(e) for e in events], ts=ts)


def set_workload_status(kind: str, namespace: str, name: str, uid: str, status: Mapping[str, Any],
                        ts: float) -> bytes:
    """The whole `status` of a Deployment or ReplicaSet, as its controller computed it; refused
    when the object is gone or has another uid, a no-op when the status is what it was."""
    return _pack("workload_status", kind=kind, namespace=namespace, name=name, uid=uid, status=dict(status), ts=ts)


def set_owner_references(rows: Sequence[tuple[str, str, str, str, Sequence[Mapping[str, Any]]]],
                         ts: float) -> bytes:
    """Adopt or release objects: (kind, namespace, name, uid, the whole new ownerReferences
    list) each; a row whose object is gone or has another uid is skipped."""
    return _pack("owner_refs", rows=[[k, ns, n, u, [dict(r) for r in refs]] for k, ns, n, u, refs in rows], ts=ts)


def delete_objects(rows: Sequence[tuple[str, str, str, str]], ts: float) -> bytes:
    """Delete objects (kind, namespace, name, uid) with their dependents, each on its own:
    one already gone, or whose uid is another, is skipped."""
    return _pack("delete_many", rows=[list(r) for r in rows], ts=ts)


def evict_pod(namespace: str, name: str, uid: str, ts: float, *, force: bool = False,
              session: tuple[str, int] | None = None) -> bytes:
    """Evict one Pod (delete it) if its workload's budget allows it now (state/eviction.py);
    `uid` (optional) must be the Pod's; `force` lets a Pod with no controller go."""
    return _pack("evict_pod", session, namespace=namespace, name=name, uid=uid, force=force, ts=ts)


def register_session(ts: float) -> bytes:
    return _pack("register_session", ts=ts)


# --------------------------------------------------------------------------- decoding

_STR, _INT, _NUM, _BOOL, _MAP, _LIST = str, int, (int, float), bool, dict, list

# op -> required fields and their types (a type or a tuple of types).
_SCHEMA: dict[str, dict[str, Any]] = {
    "apply": {"docs": _LIST, "uids": _LIST, "ts": _NUM, "create_only": _BOOL},
    "patch": {"kind": _STR, "namespace": _STR, "name": _STR, "patch": _MAP, "ts": _NUM, "rv": _STR},
    "delete": {"kind": _STR, "namespace": _STR, "name": _STR, "ts": _NUM, "rv": _STR, "uid": _STR},
    "bind": {"bindings": _LIST, "ts": _NUM},
    "unschedulable": {"pods": _LIST, "ts": _NUM},
    "node_upsert": {"name": _STR, "uid": _STR, "facts": _MAP, "ts": _NUM},
    "node_ready": {"name": _STR, "status": _STR, "reason": _STR, "message": _STR, "ts": _NUM},
    "node_role": {"name": _STR, "role": _STR, "ts": _NUM},
    "evict": {"node": _STR, "pods": _LIST, "reason": _STR, "message": _STR, "ts": _NUM},
    "pod_status": {"node": _STR, "reports": _LIST, "ts": _NUM},
    "register_session": {"ts": _NUM},
    "mirror_sync": {"node": _STR, "docs": _LIST, "uids": _LIST, "ts": _NUM},
    "record_events": {"events": _LIST, "ts": _NUM},
    "workload_status": {"kind": _STR, "namespace": _STR, "name": _STR, "uid": _STR, "status": _MAP, "ts": _NUM},
    "owner_refs": {"rows": _LIST, "ts": _NUM},
    "delete_many": {"rows": _LIST, "ts": _NUM},
    "evict_pod": {"namespace": _STR, "name": _STR, "uid": _STR, "force": _BOOL, "ts": _NUM},
}
# Fields holding lists of fixed-shape rows: op -> (field, row types).
_ROWS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "bind": ("bindings", (_STR, _STR, _STR, _STR)),
    "unschedulable": ("pods", (_STR, _STR, _STR, _STR)),
    "evict": ("pods", (_STR, _STR, _STR, _STR)),
    "pod_status": ("reports", (_STR, _STR, _STR, _INT, _MAP)),
    "record_events": ("events", (_STR, _STR, _STR, _STR, _STR, _STR, _STR)),
    "owner_refs": ("rows", (_STR, _STR, _STR, _STR, _LIST)),
    "delete_many": ("rows", (_STR, _STR, _STR, _STR)),
}
OPS = frozenset(_SCHEMA)


def _is(value: Any, kind: Any) -> bool:
    if kind is _INT or kind is _NUM or kind == _NUM:
        if isinstance(value, bool):
            return False
    return isinstance(value, kind)


def decode(data: bytes) -> Command:
    """The command `data` encodes. Raises CommandError saying what is wrong."""
    if len(data) > MAX_COMMAND_BYTES:
        raise CommandError(f"command of {len(data)} bytes exceeds {MAX_COMMAND_BYTES}")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=MAX_COMMAND_BYTES,
                               max_str_len=MAX_COMMAND_BYTES, max_array_len=MAX_ITEMS, max_map_len=MAX_ITEMS)
    except Exception as exc:  # noqa: BLE001 - any decoding failure means "not a command"
        raise CommandError(f"not msgpack: {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise CommandError("not a map")
    op = body.get("op")
    schema = _SCHEMA.get(op) if isinstance(op, str) else None
    if schema is None:
        raise CommandError(f"unknown op {op!r}")
    for field, kind in schema.items():
        if field not in body:
            raise CommandError(f"{op}: missing {field}")
        if not _is(body[field], kind):
            raise CommandError(f"{op}: {field} has the wrong type")
    if isinstance(body.get("ts"), float) and body["ts"] != body["ts"]:
        raise CommandError(f"{op}: ts is NaN")
    if op in _ROWS:
        field, row_types = _ROWS[op]
        for row in body[field]:
            if not isinstance(row, list) or len(row) != len(row_types) or not all(
                _is(value, kind) for value, kind in zip(row, row_types)
            ):
                raise CommandError(f"{op}: malformed row in {field}")
    session = None
    if "session" in body:
        raw = body["session"]
        if (not isinstance(raw, list) or len(raw) != 2 or not isinstance(raw[0], str) or not raw[0]
                or not _is(raw[1], _INT) or raw[1] < 1):
            raise CommandError(f"{op}: malformed session")
        session = (raw[0], raw[1])
    fields = {k: v for k, v in body.items() if k not in ("op", "session")}
    return Command(op, fields, session)
