"""A node's view of its log: the durable part (through a LogReader) plus what is not
durable yet.

Owns: `RaftLog`, the log the core reads and appends to: entries the caller has made
durable are read through the LogReader (storage.py, memlog.py); entries appended since,
and a snapshot received from the leader, wait here ("unstable") until the caller has
persisted the Ready carrying them. Rules: no I/O of its own; appending never leaves a gap
or goes below a pending snapshot (RaftInvariantError); reading below the log's first
index raises SnapshotUnavailable, past its end RaftInvariantError.
"""

from __future__ import annotations

from agent.raft.errors import RaftInvariantError, SnapshotUnavailable
from agent.raft.memlog import LogReader, cut_by_bytes
from agent.raft.types import Entry, SnapshotMeta

__all__ = ["RaftLog"]


class RaftLog:
    """The durable log (through LogReader) plus entries and a snapshot not yet persisted."""

    __slots__ = ("storage", "unstable", "offset", "pending_snapshot")

    def __init__(self, storage: LogReader) -> None:
        self.storage = storage
        self.unstable: list[Entry] = []
        self.offset = storage.last_index() + 1  # index of unstable[0]
        self.pending_snapshot: tuple[SnapshotMeta, bytes] | None = None

    def last_index(self) -> int:
        return self.offset + len(self.unstable) - 1

    def durable_index(self) -> int:
        """The last index the caller has made durable (0 while a snapshot is pending)."""
        return 0 if self.pending_snapshot is not None else self.offset - 1

    def first_index(self) -> int:
        if self.pending_snapshot is not None:
            return self.pending_snapshot[0].index + 1
        return self.storage.first_index()

    def snapshot_meta(self) -> SnapshotMeta:
        if self.pending_snapshot is not None:
            return self.pending_snapshot[0]
        return self.storage.snapshot_meta()

    def term_at(self, index: int) -> int | None:
        if index >= self.offset:
            k = index - self.offset
            return self.unstable[k].term if k < len(self.unstable) else None
        if self.pending_snapshot is not None:
            meta = self.pending_snapshot[0]
            return meta.term if index == meta.index else None
        return self.storage.term_at(index)

    def entries(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        """Entries [lo, hi) cut by bytes (at least one). Raises SnapshotUnavailable below the log."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise SnapshotUnavailable(f"index {lo} compacted")
        if hi > self.last_index() + 1:
            raise RaftInvariantError(f"entries to {hi} beyond last {self.last_index()}")
        offset = self.offset
        if lo >= offset:
            return cut_by_bytes(self.unstable[lo - offset : hi - offset], max_bytes)
        stored = self.storage.entries(lo, min(hi, offset), max_bytes)
        if hi <= offset or len(stored) < offset - lo:
            return stored
        return cut_by_bytes(stored + self.unstable[: hi - offset], max_bytes)

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        first = entries[0].index
        offset = self.offset
        if first == offset + len(self.unstable):
            self.unstable.extend(entries)
        elif first <= offset:
            floor = self.pending_snapshot[0].index if self.pending_snapshot else 0
            if first <= floor:
                raise RaftInvariantError(f"append at {first} below snapshot {floor}")
            self.unstable = list(entries)
            self.offset = first
        else:
            del self.unstable[first - offset :]
            self.unstable.extend(entries)

    def stable_to(self, index: int, term: int) -> None:
        if index >= self.offset and self.term_at(index) == term:
            del self.unstable[: index - self.offset + 1]
            self.offset = index + 1

    def restore(self, meta: SnapshotMeta, data: bytes) -> None:
        self.pending_snapshot = (meta, data)
        self.unstable = []
        self.offset = meta.index + 1
