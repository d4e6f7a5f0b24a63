"""The log read interface of the Raft core, and an in-memory log that implements it.

Owns: `LogReader`, the Protocol through which the core reads the durable log (the
disk storage implements the same Protocol), and `MemLog`, a list-backed log used by
tests, the simulator and single-process benchmarks. Rules: index 0 is the empty
beginning (term 0); the log holds one snapshot point (`snapshot_meta().index`, whose
term stays readable) followed by contiguous entries; reading below the snapshot raises
`SnapshotUnavailable`; writing follows the Ready contract of core.py (snapshot, then
entries truncating any suffix they replace, then the hard state).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Iterable, Protocol, runtime_checkable

from agent.raft.errors import RaftInvariantError, SnapshotUnavailable
from agent.raft.types import Entry, HardState, SnapshotMeta


@runtime_checkable
class LogReader(Protocol):
    """What the core reads from durable storage. Only entries already persisted live here."""

    def first_index(self) -> int:
        """Index of the first entry still held (snapshot index + 1)."""

    def last_index(self) -> int:
        """Index of the last entry held, or the snapshot index when no entry is held."""

    def term_at(self, index: int) -> int | None:
        """Term of the entry at `index`; the snapshot's term at its index; None outside."""

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi), cut after `max_bytes` of data but never fewer than one.

        Raises SnapshotUnavailable when lo < first_index(); hi must be <= last_index()+1.
        """

    def snapshot_meta(self) -> SnapshotMeta:
        """The point the newest snapshot covers."""

    def snapshot_data(self) -> bytes:
        """The state-machine bytes of the newest snapshot."""


_data_of = attrgetter("data")


def cut_by_bytes(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    """Keep a prefix of `entries` whose data fits `max_bytes` (at least one entry)."""
    if max_bytes is None or not entries:
        return entries
    if sum(map(len, map(_data_of, entries))) <= max_bytes:  # the common case, at C speed
        return entries
    total = 0
    for count, entry in enumerate(entries):
        total += len(entry.data)
        if total > max_bytes and count > 0:
            return entries[:count]
    return entries


class MemLog:
    """An in-memory LogReader that the caller writes by persisting Ready batches."""

    def __init__(
        self,
        snapshot: SnapshotMeta = SnapshotMeta(),
        snapshot_data: bytes = b"",
        hard_state: HardState = HardState(),
    ) -> None:
        self._snapshot = snapshot
        self._snapshot_data = snapshot_data
        self._entries: list[Entry] = []
        self.hard_state = hard_state

    # ---- LogReader ----
    def first_index(self) -> int:
        return self._snapshot.index + 1

    def last_index(self) -> int:
        return self._snapshot.index + len(self._entries)

    def term_at(self, index: int) -> int | None:
        offset = index - self._snapshot.index
        if offset == 0:
            return self._snapshot.term
        if 0 < offset <= len(self._entries):
            return self._entries[offset - 1].term
        return None

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        base = self._snapshot.index + 1
        if lo < base:
            raise SnapshotUnavailable(f"entries from {lo} compacted (first={base})")
        if hi > self.last_index() + 1:
            raise RaftInvariantError(f"entries up to {hi} requested, last={self.last_index()}")
        return cut_by_bytes(self._entries[lo - base : hi - base], max_bytes)

    def snapshot_meta(self) -> SnapshotMeta:
        return self._snapshot

    def snapshot_data(self) -> bytes:
        return self._snapshot_data

    # ---- writing (the caller's side of the Ready contract) ----
    def append(self, entries: Iterable[Entry]) -> None:
        """Append entries, first dropping any held entry at or after the first new index."""
        entries = list(entries)
        if not entries:
            return
        first = entries[0].index
        base = self._snapshot.index + 1
        if first < base or first > self.last_index() + 1:
            raise RaftInvariantError(f"append at {first} outside [{base}, {self.last_index() + 1}]")
        del self._entries[first - base :]
        self._entries.extend(entries)

    def install_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        self._snapshot = meta
        self._snapshot_data = data
        self._entries = []

    def compact(self, meta: SnapshotMeta, data: bytes) -> None:
        """Record a local state-machine snapshot at meta.index and drop the entries it covers."""
        if meta.index <= self._snapshot.index:
            return
        if meta.index > self.last_index() or self.term_at(meta.index) != meta.term:
            raise RaftInvariantError(f"compact to {meta.index}/{meta.term} not in the log")
        del self._entries[: meta.index - self._snapshot.index]
        self._snapshot = meta
        self._snapshot_data = data

    def persist(self, ready) -> None:
        """Make one Ready durable in the order the contract requires."""
        if ready.snapshot is not None:
            meta, data = ready.snapshot
            self.install_snapshot(meta, data)
        if ready.entries:
            self.append(ready.entries)
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state

    def all_entries(self) -> list[Entry]:
        """Every held entry (tests and checks only)."""
        return list(self._entries)
