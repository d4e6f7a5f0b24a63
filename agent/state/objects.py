"""The kinds the cluster holds, and how a document sent by a person becomes one of them.

Owns: the registry of kinds (`KINDS`: name, apiVersion, plural, short names, whether
namespaced, the validator of its person-written part), resolving what people type
(`pods`, `po`, `deployment.apps`), `admit` (a decoded document -> its canonical
person-written part plus the preconditions it carries), the system part of metadata
(uid, resourceVersion, generation, creationTimestamp), timestamps, and the small
accessors every other module uses on documents (labels, annotations, ownerReferences
and the controller among them).

Rules it keeps:
- A stored object is a plain dict shaped as Kubernetes shows it (apiVersion, kind,
  metadata, spec, status), never mutated in place: a change builds a new dict, so a
  reader (a watch, a snapshot in progress) may keep a reference to an old one safely.
- What a person writes is validated by the kind's parser, with field-path errors; the
  system part of metadata in a document is read as a precondition (resourceVersion,
  uid) or ignored as kubectl ignores it (creationTimestamp, generation, managedFields);
  `status` is always the cluster's and is ignored on input, as `kubectl apply` does.
- An unsupported kind says so and lists the supported ones.
- metadata.ownerReferences is person-written metadata on namespaced kinds (validated by
  the kind's parser: each names its owner fully, at most one is the controller); the
  controllers adopt and release through their own command (owner_refs).
- Pure: no I/O, no clock (times come in as numbers and are formatted here).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.state import config_kinds
from agent.state import node as node_kind
from agent.state import workloads
from agent.state.pod import FieldError, ManifestError, parse_pod, pod_to_dict

__all__ = [
    "Admitted",
    "KINDS",
    "Kind",
    "admit",
    "format_time",
    "kind_for",
    "object_key",
]

# Metadata fields the cluster writes. Read from a person's document only as preconditions.
SYSTEM_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# Real Kubernetes metadata fields this project does not support (said so, not "unknown").
UNSUPPORTED_METADATA = ("finalizers", "generateName")


@dataclass(frozen=True, slots=True)
class Kind:
    name: str  # "Pod"
    api_version: str  # "v1", "apps/v1"
    plural: str  # "pods"
    short_names: tuple[str, ...]  # ("po",)
    namespaced: bool
    # Validate the person-written part of a document (metadata without system fields,
    # spec); return it in canonical form. Raises ManifestError.
    admit: Callable[[Mapping[str, Any]], dict[str, Any]]
    # Whether people may create it (Nodes are registered by the cluster).
    creatable: bool = True
    # Whether people may write it at all (apply, patch): Events are the cluster's own.
    writable: bool = True


def _admit_pod(doc: Mapping[str, Any]) -> dict[str, Any]:
    return pod_to_dict(parse_pod(doc))


def _admit_event(doc: Mapping[str, Any]) -> dict[str, Any]:
    raise ManifestError([FieldError("", "events are written by the cluster; they cannot be created or changed")])


KINDS: dict[str, Kind] = {
    "Pod": Kind("Pod", "v1", "pods", ("po",), True, _admit_pod),
    "Node": Kind("Node", "v1", "nodes", ("no",), False, node_kind.admit_node, creatable=False),
    "Event": Kind("Event", "v1", "events", ("ev",), True, _admit_event, creatable=False, writable=False),
    "Deployment": Kind("Deployment", workloads.API_VERSION, "deployments", ("deploy",), True,
                       workloads.admit_deployment),
    "ReplicaSet": Kind("ReplicaSet", workloads.API_VERSION, "replicasets", ("rs",), True,
                       workloads.admit_replica_set),
    "ConfigMap": Kind("ConfigMap", "v1", "configmaps", ("cm",), True, config_kinds.admit_config_map),
    "Secret": Kind("Secret", "v1", "secrets", (), True, config_kinds.admit_secret),
}
# Kinds whose `status` the workload controllers write (the workload_status command).
WORKLOAD_KINDS = ("Deployment", "ReplicaSet")


def kind_for(text: str) -> Kind:
    """The kind a person means by `text`: Pod, pod, pods, po, pods.v1 ... Raises KeyError
    with a message listing the kinds there are."""
    wanted = text.strip()
    base = wanted.split(".", 1)[0]
    for kind in KINDS.values():
        if base in (kind.name, kind.name.lower(), kind.plural, *kind.short_names):
            return kind
    raise KeyError(f'the server doesn\'t have a resource type "{wanted}" '
                   f"(supported: {', '.join(sorted(k.plural for k in KINDS.values()))})")


def object_key(kind: Kind, namespace: str, name: str) -> tuple[str, str]:
    """An object's identity within its kind: (namespace, name); namespace '' for cluster-wide kinds."""
    return (namespace or "default", name) if kind.namespaced else ("", name)


def format_time(ts: float) -> str:
    """RFC 3339 in UTC with whole seconds, as Kubernetes writes times."""
    moment = datetime.datetime.fromtimestamp(int(ts), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> float | None:
    """The unix seconds of an RFC 3339 time as format_time writes it, or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


@dataclass(frozen=True, slots=True)
class Admitted:
    """A document that passed its kind's validation."""

    kind: Kind
    doc: dict[str, Any]  # the canonical person-written part
    resource_version: str | None  # precondition: the object must be at this version
    uid: str | None  # precondition: the object must have this uid

    @property
    def namespace(self) -> str:
        return self.doc["metadata"].get("namespace", "") if self.kind.namespaced else ""

    @property
    def name(self) -> str:
        return self.doc["metadata"]["name"]

    @property
    def key(self) -> tuple[str, str]:
        return object_key(self.kind, self.namespace, self.name)


def admit(doc: Any, *, location: str = "") -> Admitted:
    """Validate one decoded document. Raises ManifestError (every problem, by field path)."""
    if not isinstance(doc, Mapping):
        raise ManifestError([FieldError("", "must be an object", location)])
    api_version, kind_name = doc.get("apiVersion"), doc.get("kind")
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None or kind.api_version != api_version:
        supported = ", ".join(f"{k.api_version} {k.name}" for k in KINDS.values() if k.writable)
        raise ManifestError([FieldError(
            "", f"apiVersion {api_version}, kind {kind_name} is not supported (supported: {supported})", location)])
    meta = doc.get("metadata")
    errors: list[FieldError] = []
    resource_version = uid = None
    user_doc = {k: v for k, v in doc.items() if k != "status"}
    if isinstance(meta, Mapping):
        user_meta = {}
        for key, value in meta.items():
            if key == "resourceVersion":
                if value not in (None, ""):
                    if not isinstance(value, str) or not value.isdigit():
                        errors.append(FieldError("metadata.resourceVersion", "must be a string of digits", location))
                    else:
                        resource_version = value
            elif key == "uid":
                if value not in (None, ""):
                    if not isinstance(value, str):
                        errors.append(FieldError("metadata.uid", "must be a string", location))
                    else:
                        uid = value
            elif key in SYSTEM_METADATA:
                continue
            elif key in UNSUPPORTED_METADATA:
                errors.append(FieldError(f"metadata.{key}", "not supported by agentd", location))
            elif key == "namespace" and not kind.namespaced:
                continue  # kubectl writes none for cluster-wide kinds; tolerate an empty one
            else:
                user_meta[key] = value
        user_doc["metadata"] = user_meta
    if errors:
        raise ManifestError(errors)
    try:
        canonical = kind.admit(user_doc)
    except ManifestError as exc:
        if location:
            raise ManifestError([FieldError(e.path, e.message, e.location or location) for e in exc.errors]) from None
        raise
    return Admitted(kind, canonical, resource_version, uid)


# --------------------------------------------------------------------------- accessors


def meta_of(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    return doc.get("metadata") or {}


def labels_of(doc: Mapping[str, Any]) -> Mapping[str, str]:
    return meta_of(doc).get("labels") or {}


def owner_references_of(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    refs = meta_of(doc).get("ownerReferences")
    return [r for r in refs if isinstance(r, Mapping)] if isinstance(refs, list) else []


def controller_of(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with controller=true, if any: the object that manages this one."""
    for ref in owner_references_of(doc):
        if ref.get("controller") is True:
            return ref
    return None


def annotations_of(doc: Mapping[str, Any]) -> Mapping[str, str]:
    return meta_of(doc).get("annotations") or {}


def resource_version_of(doc: Mapping[str, Any]) -> int:
    return int(meta_of(doc).get("resourceVersion") or 0)


def with_metadata(doc: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of `doc` whose metadata has `changes` (a value of None removes the field)."""
    meta = dict(meta_of(doc))
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    out = dict(doc)
    out["metadata"] = meta
    return out


def canonical_order(doc: Mapping[str, Any]) -> dict[str, Any]:
    """apiVersion, kind, metadata, spec, status first, as kubectl prints them."""
    out = {}
    for key in ("apiVersion", "kind", "metadata", "spec", "status"):
        if key in doc:
            out[key] = doc[key]
    for key, value in doc.items():
        if key not in out:
            out[key] = value
    return out
