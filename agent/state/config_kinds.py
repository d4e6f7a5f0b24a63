"""The configuration kinds: v1 ConfigMap and v1 Secret, as Kubernetes writes them.

Owns: validating the person-written part of a ConfigMap (data, binaryData, immutable)
or a Secret (data in base64, stringData, type, immutable) into the canonical stored
form; the update rules of both (`immutable`, a Secret's `type`); decoding an object's
entries (key -> bytes) for the node; the ConfigMaps and Secrets a Pod document refers
to; and the sizes `describe` shows.

Rules it keeps:
- Keys are Kubernetes' config keys: at most 253 characters of [-._a-zA-Z0-9], not "."
  or "..", not starting with "..". A key is in data or binaryData, not both. The
  entries of one object total at most 1 MiB (Kubernetes' MaxSecretSize), counted on
  the decoded bytes.
- A Secret's stringData is folded into data (a key in both takes stringData's value),
  as the API server does; the stored form never has stringData. `type` defaults to
  Opaque; the well-known types must carry their required keys.
- Once `immutable` is true, data, binaryData and immutable never change (the object
  can only be deleted); a Secret's type never changes.
- A value is never part of a message: errors name the object, the field and the key,
  and say what is wrong with its shape (not base64, too long), never what it holds.
- Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from agent.state.pod import FieldError, ManifestError
from agent.state.pod.parser import ManifestReader
from agent.state.pod.syntax import config_key_problem, quote, type_name

__all__ = [
    "CONFIG_MAP",
    "MAX_DATA_BYTES",
    "SECRET",
    "admit_config_map",
    "admit_secret",
    "config_key_problem",
    "decoded_entries",
    "entry_sizes",
    "pod_references",
    "update_problems",
]

API_VERSION = "v1"
CONFIG_MAP = "ConfigMap"
SECRET = "Secret"
MAX_DATA_BYTES = 1024 * 1024
OPAQUE = "Opaque"
# The well-known Secret types and the keys each must carry (one of, for basic-auth).
SECRET_TYPE_KEYS: dict[str, tuple[tuple[str, ...], bool]] = {
    OPAQUE: ((), False),
    "kubernetes.io/tls": (("tls.crt", "tls.key"), False),
    "kubernetes.io/basic-auth": (("username", "password"), True),
    "kubernetes.io/ssh-auth": (("ssh-privatekey",), False),
    "kubernetes.io/dockercfg": ((".dockercfg",), False),
    "kubernetes.io/dockerconfigjson": ((".dockerconfigjson",), False),
}
# Types this cluster has no controller for: refused rather than stored and never acted on.
UNSUPPORTED_SECRET_TYPES = ("kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token")


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _ConfigReader(ManifestReader):
    """The Pod parser's field-path reader, taught the configuration kinds' fields."""

    def top(self, doc: Any, kind: str, fields: tuple[str, ...]) -> tuple[Mapping[str, Any], dict[str, Any]]:
        return self.document_top(doc, kind, API_VERSION, fields)

    def entries(self, top: Mapping[str, Any], field: str, *, encoded: bool) -> dict[str, bytes]:
        """A map of config keys to values (base64 text when `encoded`): key -> bytes.
        Never quotes a value in an error."""
        raw = top.get(field)
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail(field, f"must be an object, got {type_name(raw)}")
            return {}
        out: dict[str, bytes] = {}
        for key, value in raw.items():
            where = f"{field}[{quote(key)}]"
            if not isinstance(key, str):
                self.fail(where, f"key must be a string, got {type_name(key)}")
                continue
            problem = config_key_problem(key)
            if problem:
                self.fail(where, f"key {problem}")
                continue
            if value is None:
                value = ""
            if not isinstance(value, str):
                self.fail(where, f"must be a string, got {type_name(value)}")
                continue
            if encoded:
                decoded = _b64decode(value)
                if decoded is None:
                    self.fail(where, "must be base64-encoded (illegal base64 data)")
                    continue
                out[key] = decoded
            else:
                out[key] = value.encode()
        return out

    def size(self, *maps: Mapping[str, bytes]) -> None:
        total = sum(len(v) for m in maps for v in m.values())
        if total > MAX_DATA_BYTES:
            self.fail("data", f"too long: must have at most {MAX_DATA_BYTES} bytes (has {total})")

    def immutable(self, top: Mapping[str, Any]) -> bool | None:
        value = top.get("immutable")
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail("immutable", f"must be a boolean, got {type_name(value)}")
            return None
        return value

    def raise_errors(self) -> None:
        if self.errors:
            raise ManifestError(self.errors)


def admit_config_map(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A ConfigMap's person-written part -> its canonical stored form. Raises ManifestError."""
    reader = _ConfigReader()
    top, meta = reader.top(doc, CONFIG_MAP, ("data", "binaryData", "immutable"))
    data = reader.entries(top, "data", encoded=False)
    binary = reader.entries(top, "binaryData", encoded=True)
    for key in sorted(set(data) & set(binary)):
        reader.fail(f"data[{quote(key)}]", "duplicate of key present in binaryData")
    reader.size(data, binary)
    immutable = reader.immutable(top)
    reader.raise_errors()
    out: dict[str, Any] = {"apiVersion": API_VERSION, "kind": CONFIG_MAP, "metadata": meta}
    if data:
        out["data"] = {k: data[k].decode() for k in sorted(data)}
    if binary:
        out["binaryData"] = {k: _b64(binary[k]) for k in sorted(binary)}
    if immutable is not None:
        out["immutable"] = immutable
    return out


def admit_secret(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret's person-written part -> its canonical stored form (stringData folded
    into data). Raises ManifestError."""
    reader = _ConfigReader()
    top, meta = reader.top(doc, SECRET, ("data", "stringData", "type", "immutable"))
    data = reader.entries(top, "data", encoded=True)
    data.update(reader.entries(top, "stringData", encoded=False))
    reader.size(data)
    secret_type = top.get("type")
    if secret_type in (None, ""):
        secret_type = OPAQUE
    elif not isinstance(secret_type, str):
        reader.fail("type", f"must be a string, got {type_name(secret_type)}")
        secret_type = OPAQUE
    elif secret_type in UNSUPPORTED_SECRET_TYPES:
        reader.fail("type", f"{quote(secret_type)} is not supported by agentd")
    elif secret_type in SECRET_TYPE_KEYS:
        required, any_of = SECRET_TYPE_KEYS[secret_type]
        if any_of and required and not any(k in data for k in required):
            reader.fail("data", f"must contain at least one of {', '.join(quote(k) for k in required)} "
                                f"for type {quote(secret_type)}")
        elif not any_of:
            for key in required:
                if key not in data:
                    reader.fail(f"data[{quote(key)}]", f"required for type {quote(secret_type)}")
    elif len(secret_type) > 253:
        reader.fail("type", "must be no more than 253 characters")
    immutable = reader.immutable(top)
    reader.raise_errors()
    out: dict[str, Any] = {"apiVersion": API_VERSION, "kind": SECRET, "metadata": meta}
    if data:
        out["data"] = {k: _b64(data[k]) for k in sorted(data)}
    out["type"] = secret_type
    if immutable is not None:
        out["immutable"] = immutable
    return out


# The top-level fields each kind keeps besides metadata (what an apply replaces).
BODY_FIELDS: dict[str, tuple[str, ...]] = {
    CONFIG_MAP: ("data", "binaryData", "immutable"),
    SECRET: ("data", "type", "immutable"),
}


def update_problems(kind: str, current: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldError]:
    """What Kubernetes refuses in an update of a ConfigMap or Secret from `current` to `new`."""
    problems = []
    if current.get("immutable") is True:
        for field in ("data", "binaryData", "immutable"):
            if current.get(field) != new.get(field):
                problems.append(FieldError(field, "field is immutable when `immutable` is set"))
    if kind == SECRET and current.get("type", OPAQUE) != new.get("type", OPAQUE):
        problems.append(FieldError("type", "field is immutable"))
    return problems


def decoded_entries(doc: Mapping[str, Any]) -> dict[str, bytes]:
    """A stored ConfigMap's or Secret's entries as key -> bytes (for env and volumes)."""
    out: dict[str, bytes] = {}
    if doc.get("kind") == CONFIG_MAP:
        for key, value in (doc.get("data") or {}).items():
            out[key] = str(value).encode()
        for key, value in (doc.get("binaryData") or {}).items():
            out[key] = _b64decode(str(value)) or b""
    else:
        for key, value in (doc.get("data") or {}).items():
            out[key] = _b64decode(str(value)) or b""
    return out


def entry_sizes(doc: Mapping[str, Any]) -> dict[str, int]:
    """key -> size in bytes: what `describe` shows instead of values."""
    return {k: len(v) for k, v in sorted(decoded_entries(doc).items())}


def pod_references(pod: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """The (kind, namespace, name) of every ConfigMap and Secret a stored Pod document
    refers to: env valueFrom, envFrom, and volumes."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    spec = pod.get("spec") or {}
    out: set[tuple[str, str, str]] = set()

    def add(kind: str, name: Any) -> None:
        if isinstance(name, str) and name:
            out.add((kind, namespace, name))

    for container in (*(spec.get("containers") or ()), *(spec.get("initContainers") or ())):
        for var in container.get("env") or ():
            source = var.get("valueFrom") or {}
            add(CONFIG_MAP, (source.get("configMapKeyRef") or {}).get("name"))
            add(SECRET, (source.get("secretKeyRef") or {}).get("name"))
        for source in container.get("envFrom") or ():
            add(CONFIG_MAP, (source.get("configMapRef") or {}).get("name"))
            add(SECRET, (source.get("secretRef") or {}).get("name"))
    for volume in spec.get("volumes") or ():
        add(CONFIG_MAP, (volume.get("configMap") or {}).get("name"))
        add(SECRET, (volume.get("secret") or {}).get("secretName"))
    return out
