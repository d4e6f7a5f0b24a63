"""The watch window: the most recent changes of the cluster state, in order.

Owns: `Change` (one object added, modified or deleted at a resource version) and
`WatchWindow`, a bounded queue of them that answers "everything after version v".

Rules it keeps:
- Changes are appended in apply order, so their versions never decrease; several changes
  may share one version (the commands of one batch entry), and a watcher always gets all
  of a version's changes together.
- The window keeps at most `max_changes` changes and about `max_bytes` of them (the size
  each change is charged is given by the caller, e.g. the size of the command that made
  it); the oldest go first. `floor` is the newest version no longer (or never) held: a
  watch from a version below it cannot be served and gets `Expired` (Kubernetes' 410
  Gone), and the watcher lists again.
- Documents are shared with the state, never copied here (they are immutable). Each
  change holds the object before it too, so a filtered watch can tell an object that
  stopped matching (DELETED for that watcher) from one that never did.
- Pure: no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class Change:
    version: int
    type: str  # ADDED | MODIFIED | DELETED
    doc: Mapping[str, Any]  # the object after the change (as it was last, for DELETED)
    old: Mapping[str, Any] | None  # the object before the change (None for ADDED)
    size: int  # bytes this change is charged in the window


class Expired(Exception):
    """A watch asked for changes older than the window holds: list again."""

    def __init__(self, asked: int, floor: int) -> None:
        super().__init__(f"too old resource version: {asked} (the oldest still held is {floor + 1})")
        self.asked = asked
        self.floor = floor


class WatchWindow:
    def __init__(self, *, max_changes: int, max_bytes: int, floor: int = 0) -> None:
        self.max_changes = max_changes
        self.max_bytes = max_bytes
        self.floor = floor
        self._changes: deque[Change] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._changes)

    @property
    def bytes(self) -> int:
        return self._bytes

    def record(self, change: Change) -> None:
        changes = self._changes
        if changes and change.version < changes[-1].version:
            raise ValueError(f"change at {change.version} after {changes[-1].version}")
        changes.append(change)
        self._bytes += change.size
        # A version goes whole or not at all, and the newest one always stays (rather than
        # hold nothing of the present): one entry that changes more than the bounds allow
        # (a pass that creates a thousand Pods) is kept whole until the next version comes.
        while ((len(changes) > self.max_changes or self._bytes > self.max_bytes)
               and changes[0].version != changes[-1].version):
            self._drop_oldest_version()

    def _drop_oldest_version(self) -> None:
        """Drop every change of the oldest version held."""
        changes = self._changes
        version = changes[0].version
        while changes and changes[0].version == version:
            self._bytes -= changes.popleft().size
        self.floor = version

    def reset(self, floor: int) -> None:
        """Forget everything: the state was replaced (a snapshot installed) at `floor`."""
        self._changes.clear()
        self._bytes = 0
        self.floor = floor

    def since(self, version: int) -> list[Change]:
        """Every change after `version`, oldest first. Raises Expired if some are gone."""
        if version < self.floor:
            raise Expired(version, self.floor)
        changes = self._changes
        if not changes or changes[-1].version <= version:
            return []
        # Changes are ordered by version: walk back from the newest (watchers are usually near it).
        start = len(changes)
        while start > 0 and changes[start - 1].version > version:
            start -= 1
        return [changes[i] for i in range(start, len(changes))]


def events_for(changes: list[Change], matches: Callable[[Mapping[str, Any]], bool]) -> list[tuple[str, Mapping[str, Any]]]:
    """What a watcher that sees only objects for which `matches` holds gets from `changes`:
    an object that starts matching is ADDED for it, one that stops matching is DELETED for
    it (with its new state), as Kubernetes' filtered watches do."""
    out = []
    for change in changes:
        was = change.old is not None and matches(change.old)
        now = change.type != DELETED and matches(change.doc)
        if now:
            out.append((MODIFIED if was else ADDED, change.doc))
        elif was:
            out.append((DELETED, change.doc))
    return out
