"""The ConfigMaps and Secrets this node knows: what its Pods' env and volumes read.

Owns: the node's copy of the ConfigMap and Secret documents its feed hands it (the
cluster assignments, or a test), the lookup env.py and config_volumes.py read them
through, and a change counter pod workers wait on to refresh their volumes.

Rules: documents are replaced whole (as the feed sees them); a lookup returns the
decoded entries of the current document, or None when there is none. Values are never
logged: only kinds, namespaces, names and counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import trio

from agent.state.config_kinds import decoded_entries

KINDS = ("ConfigMap", "Secret")
Key = tuple[str, str, str]  # (kind, namespace, name)


def key_of(doc: Mapping[str, Any]) -> Key:
    meta = doc.get("metadata") or {}
    return str(doc.get("kind")), meta.get("namespace") or "default", str(meta.get("name"))


def _version(doc: Mapping[str, Any]) -> int:
    text = (doc.get("metadata") or {}).get("resourceVersion")
    return int(text) if isinstance(text, str) and text.isdigit() else 0


class ConfigObjects:
    def __init__(self, docs: Iterable[Mapping[str, Any]] = ()) -> None:
        self._docs: dict[Key, Mapping[str, Any]] = {}
        self._entries: dict[Key, dict[str, bytes]] = {}
        self.version = 0
        self._changed = trio.Event()
        for doc in docs:
            self._docs[key_of(doc)] = doc

    def __len__(self) -> int:
        return len(self._docs)

    def doc(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._docs.get((kind, namespace or "default", name))

    def lookup(self, kind: str, namespace: str, name: str) -> Mapping[str, bytes] | None:
        key = (kind, namespace or "default", name)
        doc = self._docs.get(key)
        if doc is None:
            return None
        entries = self._entries.get(key)
        if entries is None:
            entries = self._entries[key] = decoded_entries(doc)
        return entries

    def _notify(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()

    def put(self, doc: Mapping[str, Any]) -> None:
        """Take a document, unless the one held is newer (a watch may repeat an older version)."""
        key = key_of(doc)
        held = self._docs.get(key)
        if held == doc or (held is not None and _version(held) > _version(doc)):
            return
        self._docs[key] = doc
        self._entries.pop(key, None)
        self._notify()

    def remove(self, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace or "default", name)
        if self._docs.pop(key, None) is not None:
            self._entries.pop(key, None)
            self._notify()

    def replace(self, docs: Iterable[Mapping[str, Any]]) -> None:
        new = {key_of(d): d for d in docs}
        if new == self._docs:
            return
        self._docs = new
        self._entries = {}
        self._notify()

    async def wait(self, seen: int) -> int:
        """Wait until the version is past `seen`; the new version."""
        while self.version == seen:
            await self._changed.wait()
        return self.version
