"""Raft's durable storage: the log, the hard state and the latest snapshot of one node.

Owns: the files under one data directory and an in-memory index over them, so the pure
core can read the log directly (first_index, last_index, term_at, entries, snapshot_meta).

Layout of the directory:
    log/<seq>.seg    append-only segment files of records (format: wal_codec.py), space
                     preallocated (zeros); a new one is started once the data in the
                     current one passes `segment_max_bytes`
    snapshot         the latest snapshot, replaced whole (write temp, fsync, rename, fsync dir)
    snapshot.*.tmp   a snapshot being written; removed at open (it never became the snapshot)
    lock             held with flock while open: one process per directory

Rules it keeps:
- `save` returns only once its entries and hard state are on stable storage: one write and
  one fdatasync per call (plus a directory fsync when it created a file). The caller saves
  before it answers or sends anything that depends on what it saved (Raft §5, Figure 2).
- The hard state and the log's bounds (first, last, term before first) travel as STATE
  records inside the log, in the same write as the entries, so there is no second file to
  keep in step. The last STATE record read wins.
- Recovery gives back exactly what was made durable. A damaged record in the last write
  (the one a crash can tear) is cut off with everything after it; damage anywhere a later
  write proves was durable raises StorageCorruption and the node stops. Checksums are
  zlib.crc32 (IEEE), not crc32c: the standard library has no crc32c.
- Nothing is ever overwritten in place. Replacing a suffix (Raft §5.3) appends a STATE
  record that ends the log before it, then the new entries, in the same write; the dead
  bytes go when compaction deletes their segment. Only a torn tail is ever cut (zeroed),
  and that cut is made durable before anything is appended after it.
- Reads are served from memory where possible: the term and file position of every entry
  are indexed, and the most recent entries are cached.
- Compaction (Raft §7) only drops entries a durable snapshot covers; every step of it and
  of `save_snapshot` leaves a directory that recovers correctly if the node dies there.
- A failed write or fsync leaves the storage unusable (StorageFailed on every later call):
  after a failed fsync the kernel may have dropped the data, so retrying would lie.
- Not thread-safe: one task owns it. The exceptions are the slow file work, which
  touches no state of the object and may run on a worker thread while the owner goes on
  with the log: `open` (recovery, before anyone owns it), `prepare_snapshot` (write and
  fsync a temporary file), `place_snapshot` (rename it over the snapshot, fsync the
  directory) and `remove_segments` (delete segments already detached from the log). The
  owner serializes snapshot placements itself, and adopts each one from its own task
  (`adopt_snapshot`); `publish_snapshot`, `install_snapshot` and `compact` do it all at
  once, on the owner's task, for callers that do not mind the wait.
- Large snapshot data is never copied whole (a copy holds the GIL, and a 9 MB one takes
  15 ms on these machines): it is written with writev, read back as a memoryview.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path

from agent.raft import wal_codec
from agent.raft.errors import RaftError, RaftInvariantError, SnapshotUnavailable
from agent.raft.segments import Segment, SegmentDir, fsync_dir, later_write_start, next_nonzero, pwritev_all
from agent.raft.types import NUMBER_LIMIT, Entry, HardState, SnapshotMeta
from agent.raft.wal_codec import LogState

log = logging.getLogger(__name__)

MIB = 1024 * 1024


# A snapshot's state-machine bytes: any buffer, never copied whole.
SnapshotData = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class PreparedSnapshot:
    """A snapshot written and fsynced to its own temporary file, not yet the snapshot."""

    meta: SnapshotMeta
    data: SnapshotData
    path: Path


@dataclass(frozen=True, slots=True)
class StorageConfig:
    # Big enough that rollover (two fsyncs instead of one) is rare, small enough that
    # compaction frees disk in useful steps and recovery of one segment stays quick.
    segment_max_bytes: int = 64 * MIB
    # The recent suffix a leader re-reads to replicate to followers that are a little behind.
    cache_max_entries: int = 16_384
    # Bounds the cache's memory when entries are large.
    cache_max_bytes: int = 32 * MIB
    # Reserve each segment's space when it is created: appends then cost one cheaper fdatasync.
    preallocate: bool = True
    # Shown at the start of every log line, so lines from several nodes can be told apart.
    node_id: str = "-"


# Tiny segments and cache, so tests cross segment boundaries and read from disk.
TEST_CONFIG = StorageConfig(segment_max_bytes=4096, cache_max_entries=8, cache_max_bytes=4096)


class StorageError(RaftError):
    """Base of the errors of Raft's storage (misuse by the caller raises RaftInvariantError)."""


class StorageCorruption(StorageError):
    """The files hold damage that is not a torn last write: the node must not start on them."""


class StorageFailed(StorageError):
    """An earlier write or fsync failed; nothing written since can be trusted."""


class StorageUnusable(StorageError):
    """The files are intact but hold a state no node can run from (a term at or past
    types.NUMBER_LIMIT, say): the node must not start on them."""


_MAX_ENTRY_DATA_BYTES = wal_codec.MAX_RECORD_BYTES - wal_codec.ENTRY_HEADER_BYTES
_READ_GAP_BYTES = 64 * 1024  # records further apart than this are read with separate preads
_SNAPSHOT_NAME = "snapshot"
_snapshot_temp_numbers = itertools.count(1)  # each prepared snapshot gets a file of its own


@dataclass(slots=True)
class _Scan:
    """What recovery has learnt so far while reading the segments in order."""

    seen_any: bool = False  # has any valid record been read yet
    claimed_first: int = 1  # first_index as the newest STATE record read gives it
    claimed_prev_term: int = 0


class RaftStorage:
    """The durable log of one Raft node. Build it with `RaftStorage.open(directory)`."""

    # --- opening and recovery ---------------------------------------------------------

    @classmethod
    def open(cls, directory: str | os.PathLike[str], config: StorageConfig = StorageConfig()) -> RaftStorage:
        """Open (creating if needed) the storage in `directory`, recovering what was durable.

        Reads the whole log: seconds for a long one. From Trio, call it on a worker thread.
        """
        storage = cls(Path(directory), config)
        try:
            storage._recover()
        except BaseException:
            storage._close_files()
            raise
        return storage

    def __init__(self, directory: Path, config: StorageConfig) -> None:
        self._dir = directory
        self._config = config
        reserve_bytes = config.segment_max_bytes if config.preallocate else 0
        self._segdir = SegmentDir(directory / "log", preallocate_bytes=reserve_bytes)
        self._segments: list[Segment] = []
        self._lock_fd: int | None = None
        self._failed: BaseException | None = None
        self._closed = False
        # Durable state as of the last save (commit may be ahead of disk: it is saved lazily).
        self._hard_state = HardState()
        self._written_hard_state = HardState()
        self._snapshot_meta = SnapshotMeta()
        self._has_snapshot = False
        self._snapshot_data: SnapshotData | None = None  # read lazily, then kept
        # The log holds first..last; prev_term is the term of entry first - 1.
        self._first = 1
        self._last = 0
        self._prev_term = 0
        # Per entry i (at position i - first): its term, segment seq, offset and record size.
        self._terms = array("q")
        self._seg_seqs = array("q")
        self._offsets = array("q")
        self._sizes = array("q")
        # A contiguous window of recent entries, starting at index _cache_first.
        self._cache: list[Entry] = []
        self._cache_first = 1
        self._cache_bytes = 0

    def _recover(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self._dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StorageError(f"{self._dir} is already open in another process") from exc
            raise
        created_log_dir = not self._segdir.path.exists()
        self._segdir.path.mkdir(exist_ok=True)
        if created_log_dir:
            fsync_dir(self._dir)
        self._recover_snapshot()
        self._recover_log()
        if self._first - 1 > self._snapshot_meta.index:
            raise StorageCorruption(
                f"log starts at {self._first} but no snapshot covers {self._first - 1} "
                f"(snapshot index {self._snapshot_meta.index})"
            )
        self._check_usable_state()
        if not self._segments:
            self._start_segment(1)
            self._segdir.sync()
        log.info(
            "%s raft_storage=open dir=%s first=%d last=%d term=%d vote=%s commit=%d snapshot=%d segments=%d",
            self._config.node_id, self._dir, self._first, self._last, self._hard_state.term,
            self._hard_state.voted_for, self._hard_state.commit, self._snapshot_meta.index, len(self._segments),
        )

    def _check_usable_state(self) -> None:
        """Refuse a recovered state that no node can run from: numbers at or past
        NUMBER_LIMIT (terms never decrease along the log, so the last is the largest)."""
        hard = self._hard_state
        numbers = {
            "term": hard.term,
            "commit index": hard.commit,
            "last index": self._last,
            "last term": self._terms[-1] if self._terms else self._prev_term,
            "snapshot index": self._snapshot_meta.index,
            "snapshot term": self._snapshot_meta.term,
        }
        for name, value in numbers.items():
            if value >= NUMBER_LIMIT:
                raise StorageUnusable(
                    f"{self._dir}: the {name} {value} is at or past the limit {NUMBER_LIMIT} (2**62); "
                    "no node can run from this data directory"
                )

    def _recover_snapshot(self) -> None:
        temps = [p for p in self._dir.iterdir() if p.name.startswith(_SNAPSHOT_NAME + ".") and p.name.endswith(".tmp")]
        if temps:  # snapshots that died before their rename: none of them became the snapshot
            for temp in temps:
                temp.unlink()
            fsync_dir(self._dir)
        path = self._dir / _SNAPSHOT_NAME
        if not path.exists():
            return
        decoded = wal_codec.decode_snapshot(path.read_bytes())
        if decoded is None:
            raise StorageCorruption(f"snapshot file {path} is damaged")
        self._snapshot_meta, self._snapshot_data = decoded
        self._has_snapshot = True

    def _recover_log(self) -> None:
        seqs = self._segdir.sequence_numbers()
        scan = _Scan()
        for position, seq in enumerate(seqs):
            segment = self._segdir.open(seq)
            self._segments.append(segment)
            self._scan_segment(segment, scan, is_last=position == len(seqs) - 1)
        if scan.claimed_first != self._first:
            raise StorageCorruption(
                f"the log should start at {scan.claimed_first} but its entries start at {self._first}: "
                "a segment is missing"
            )
        self._prev_term = scan.claimed_prev_term
        self._cache, self._cache_first, self._cache_bytes = [], self._last + 1, 0
        if self._hard_state.commit > self._last:
            # A torn last write can keep its STATE record (it comes first) and lose the
            # entries that commit counted. Commit is recomputable; it must not pass the log.
            log.warning(
                "%s raft_storage=commit_clamped commit=%d last=%d",
                self._config.node_id, self._hard_state.commit, self._last,
            )
            self._hard_state = replace(self._hard_state, commit=self._last)
        self._written_hard_state = self._hard_state
        if self._dead_segments():
            # The newest STATE record may sit in a segment about to go: write it again first.
            self._write_state_record()
            self.remove_segments(self.detach_dead_segments())

    def _scan_segment(self, segment: Segment, scan: _Scan, *, is_last: bool) -> None:
        """Read every record of one segment into the index; `segment.size` becomes the end of its data."""
        buf = segment.read_all()
        offset = 0
        while offset < len(buf):
            record = wal_codec.decode_at(buf, offset)
            if record is None:
                segment.size = offset
                if next_nonzero(buf, offset) is not None:  # not just the preallocated zeros
                    self._handle_bad_record(segment, buf, offset, is_last=is_last)
                return
            where = f"{segment.path} offset {offset}"
            if record.entry is not None:
                entry = record.entry
                if not scan.seen_any:
                    # The oldest surviving record: the log's older part was compacted away.
                    self._first, self._last = entry.index, entry.index - 1
                elif entry.index != self._last + 1:
                    raise StorageCorruption(f"{where}: entry {entry.index} follows entry {self._last}")
                if entry.index > self._first and entry.term < self._terms[-1]:
                    raise StorageCorruption(f"{where}: entry {entry.index} has a lower term than entry {self._last}")
                self._append_index(entry.index, entry.term, segment.seq, offset, record.size)
                segment.max_index = max(segment.max_index, entry.index)
            else:
                assert record.state is not None
                self._apply_state(record.state, scan, where=where)
            scan.seen_any = True
            offset += record.size

    def _handle_bad_record(self, segment: Segment, buf: bytes, offset: int, *, is_last: bool) -> None:
        """A record at `offset` does not decode: cut it off as a torn last write, or stop on
        corruption (the rule is segments.later_write_start's). Damage inside the last write
        cannot be told from a tear, and a torn write was never acknowledged, so it is cut."""
        where = f"{segment.path} offset {offset}"
        if not is_last:
            raise StorageCorruption(f"{where}: damaged record in a segment that a later segment follows")
        durable_write = later_write_start(buf, offset)
        if durable_write is not None:
            raise StorageCorruption(f"{where}: damaged record, and a later durable write at offset {durable_write}")
        log.warning(
            "%s raft_storage=torn_tail segment=%s offset=%d dropped_bytes=%d",
            self._config.node_id, segment.path.name, offset, len(buf) - offset,
        )
        # Zero the torn bytes for good before anything is appended after them, so they can
        # never be read again after another crash.
        segment.cut(offset, len(buf) if self._config.preallocate else offset)

    def _apply_state(self, state: LogState, scan: _Scan, *, where: str) -> None:
        """Fit the log read so far to the bounds a STATE record gives.

        Until a STATE record moves the log start past them, the entries before the oldest
        surviving record are unknown (their segments were deleted after a compaction): the
        log held then starts later than the one claimed, which is fine until the end of
        recovery, when the two must agree.
        """
        empty = state.last_index == state.first_index - 1
        if not scan.seen_any:
            self._first, self._last = state.last_index + 1, state.last_index
        if state.last_index > self._last and not empty:
            raise StorageCorruption(f"{where}: state record counts entries to {state.last_index}, log has {self._last}")
        if state.first_index < scan.claimed_first:
            raise StorageCorruption(f"{where}: state record moves the log start back to {state.first_index}")
        held_first = min(max(self._first, state.first_index), state.last_index + 1)
        self._set_bounds(held_first, state.prev_term, state.last_index)
        scan.claimed_first, scan.claimed_prev_term = state.first_index, state.prev_term
        self._hard_state = state.hard_state

    def _dead_segments(self) -> list[Segment]:
        """The oldest segments, up to the first one still in use and never the last, whose
        records (replaced entries included) all come before first_index. Deleting only from
        the front keeps the surviving files one unbroken stretch of the log's history."""
        dead = []
        for segment in self._segments[:-1]:
            if segment.max_index >= self._first:
                break
            dead.append(segment)
        return dead

    # --- the in-memory index ----------------------------------------------------------

    def _append_index(self, index: int, term: int, seq: int, offset: int, size: int) -> None:
        self._terms.append(term)
        self._seg_seqs.append(seq)
        self._offsets.append(offset)
        self._sizes.append(size)
        self._last = index

    def _set_bounds(self, first: int, prev_term: int, last: int) -> None:
        """Make the log hold exactly first..last (dropping a prefix and/or a suffix, or all)."""
        if first > self._last or last < self._first:
            del self._terms[:], self._seg_seqs[:], self._offsets[:], self._sizes[:]
        else:
            keep_to = last - self._first + 1
            del self._terms[keep_to:], self._seg_seqs[keep_to:], self._offsets[keep_to:], self._sizes[keep_to:]
            drop = first - self._first
            if drop > 0:
                del self._terms[:drop], self._seg_seqs[:drop], self._offsets[:drop], self._sizes[:drop]
        self._first, self._prev_term, self._last = first, prev_term, last
        assert len(self._terms) == self._last - self._first + 1, (len(self._terms), first, last, prev_term)
        self._trim_cache()

    def _trim_cache(self) -> None:
        """Keep the cache a suffix of first..last within its entry and byte budgets."""
        cache = self._cache
        if cache:
            cache_last = self._cache_first + len(cache) - 1
            if cache_last > self._last:
                keep = max(0, self._last - self._cache_first + 1)
                self._cache_bytes -= sum(len(e.data) for e in cache[keep:])
                del cache[keep:]
            drop = min(len(cache), max(0, self._first - self._cache_first))
            dropped_bytes = sum(len(e.data) for e in cache[:drop])
            cfg = self._config
            while drop < len(cache) and (
                len(cache) - drop > cfg.cache_max_entries
                or self._cache_bytes - dropped_bytes > cfg.cache_max_bytes
            ):
                dropped_bytes += len(cache[drop].data)
                drop += 1
            del cache[:drop]
            self._cache_first += drop
            self._cache_bytes -= dropped_bytes
        if not cache:
            self._cache_first = self._last + 1
            self._cache_bytes = 0

    # --- the read side (what the core reads) ------------------------------------------

    def first_index(self) -> int:
        return self._first

    def last_index(self) -> int:
        return self._last

    def hard_state(self) -> HardState:
        return self._hard_state

    def snapshot_meta(self) -> SnapshotMeta:
        return self._snapshot_meta

    def term_at(self, index: int) -> int | None:
        """The term of entry `index`, of first_index - 1, or of the snapshot's index; None otherwise."""
        if self._first <= index <= self._last:
            return self._terms[index - self._first]
        if index == self._first - 1:
            return self._prev_term
        if index == self._snapshot_meta.index:
            return self._snapshot_meta.term
        return None

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries lo..hi-1. With `max_bytes`, stop before the data would pass it (at least one entry)."""
        self._check_usable()
        if lo < self._first:
            raise SnapshotUnavailable(f"entry {lo} is compacted (first index {self._first})")
        if hi > self._last + 1:
            raise RaftInvariantError(f"entries up to {hi - 1} asked, last index {self._last}")
        if lo >= hi:
            return []
        if max_bytes is not None:
            hi = self._limit_by_bytes(lo, hi, max_bytes)
        result: list[Entry] = []
        index = lo
        cache_first = self._cache_first
        assert cache_first + len(self._cache) == self._last + 1, "the cache must be a suffix of the log"
        while index < hi:
            if index >= cache_first:
                result.extend(self._cache[index - cache_first : hi - cache_first])
                break
            run_end = min(hi, cache_first)
            result.extend(self._read_from_disk(index, run_end))
            index = run_end
        return result

    def _limit_by_bytes(self, lo: int, hi: int, max_bytes: int) -> int:
        header = wal_codec.ENTRY_HEADER_BYTES
        total = 0
        for index in range(lo, hi):
            total += self._sizes[index - self._first] - header
            if total > max_bytes and index > lo:
                return index
        return hi

    def _read_from_disk(self, lo: int, hi: int) -> list[Entry]:
        """Entries lo..hi-1 read from the segments, one pread per run of nearby records."""
        by_seq = {segment.seq: segment for segment in self._segments}
        first, seqs, offsets, sizes = self._first, self._seg_seqs, self._offsets, self._sizes
        result: list[Entry] = []
        index = lo
        while index < hi:
            seq = seqs[index - first]
            start = offsets[index - first]
            run_end = index + 1
            end = start + sizes[index - first]
            # Extend the run while records stay in the same file and close together (STATE
            # records and replaced entries may sit between them).
            while run_end < hi and seqs[run_end - first] == seq:
                gap = offsets[run_end - first] - end
                if not 0 <= gap <= _READ_GAP_BYTES:
                    break
                end = offsets[run_end - first] + sizes[run_end - first]
                run_end += 1
            buf = by_seq[seq].read(start, end)
            for position in range(index - first, run_end - first):
                record = wal_codec.decode_at(buf, offsets[position] - start)
                if record is None or record.entry is None or record.entry.index != position + first:
                    where = f"segment {seq} offset {offsets[position]}"
                    raise StorageCorruption(f"{where}: entry {position + first} unreadable")
                result.append(record.entry)
            index = run_end
        return result

    # --- the write side -----------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        """Make `hard_state` and `entries` durable: one write, one fdatasync.

        Entries that start at or below last_index replace the log from there on (Raft §5.3).
        A change of commit alone is kept in memory and written with the next write: commit
        is recomputable and never needed for safety.
        """
        self._check_usable()
        if entries:
            self._check_entries(entries)
        if hard_state is not None and not self._hard_state.term <= hard_state.term < NUMBER_LIMIT:
            raise RaftInvariantError(f"term moves from {self._hard_state.term} to {hard_state.term}")
        new_hard_state = self._hard_state if hard_state is None else hard_state
        term_or_vote_changed = (new_hard_state.term, new_hard_state.voted_for) != (
            self._written_hard_state.term,
            self._written_hard_state.voted_for,
        )
        self._hard_state = new_hard_state
        if not entries and not term_or_vote_changed:
            return
        # An overwrite is logical: a STATE record ending the log before the first new entry,
        # then the new entries, appended in the same write. Nothing is overwritten in place,
        # so no stale byte can come back after a crash; the dead suffix goes with compaction.
        overwrite = bool(entries) and entries[0].index <= self._last
        if overwrite:
            log.info(
                "%s raft_storage=overwrite from=%d last=%d", self._config.node_id, entries[0].index, self._last
            )
            self._set_bounds(self._first, self._prev_term, entries[0].index - 1)
        commit_pending = self._hard_state.commit != self._written_hard_state.commit
        self._write(entries, with_state=term_or_vote_changed or overwrite or commit_pending)

    def _check_entries(self, entries: Sequence[Entry]) -> None:
        first = entries[0].index
        if first > self._last + 1:
            raise RaftInvariantError(f"entries start at {first}, leaving a gap after {self._last}")
        if first < self._first:
            raise RaftInvariantError(f"entries start at {first}, before the first index {self._first}")
        if first <= self._hard_state.commit:
            raise RaftInvariantError(f"entries start at {first}, at or below commit {self._hard_state.commit}")
        previous_term = self.term_at(first - 1)
        assert previous_term is not None  # first - 1 lies in first - 1..last
        expected = first
        for entry in entries:
            if entry.index != expected or entry.term < previous_term or len(entry.data) > _MAX_ENTRY_DATA_BYTES:
                raise RaftInvariantError(
                    f"bad entry {entry.index} (term {entry.term}, {len(entry.data)} bytes) in a batch: "
                    f"expected index {expected}, term >= {previous_term}, data <= {_MAX_ENTRY_DATA_BYTES} bytes"
                )
            previous_term = entry.term
            expected += 1

    def _write_state_record(self) -> None:
        self._write((), with_state=True)

    def _write(self, entries: Sequence[Entry], *, with_state: bool) -> None:
        """Append [a STATE record] + entries to the last segment in one write, then fdatasync."""
        try:
            segment = self._segments[-1]
            new_file = False
            if segment.size >= self._config.segment_max_bytes:
                segment = self._start_segment(segment.seq + 1)
                new_file = with_state = True  # every segment after the first opens with the state
            parts: list[bytes] = []
            if with_state:
                state = LogState(self._hard_state, self._first, self._prev_term, self._last)
                parts.append(wal_codec.encode_state(state, write_start=True))
            entry_parts, sizes = wal_codec.encode_entries(entries, write_start=not parts)
            offsets = array("q", accumulate(sizes, initial=segment.size + sum(len(p) for p in parts)))
            parts += entry_parts
            segment.append(b"".join(parts))
            if new_file:
                self._segdir.sync()
        except OSError as exc:
            self._fail(exc)
            raise
        end_of_write = offsets.pop()  # not an entry's offset
        assert end_of_write == segment.size, (end_of_write, segment.size)
        self._written_hard_state = self._hard_state
        if entries:
            self._terms.extend([e.term for e in entries])
            self._seg_seqs.extend([segment.seq] * len(entries))
            self._offsets.extend(offsets)
            self._sizes.extend(sizes)
            self._last = entries[-1].index
            segment.max_index = max(segment.max_index, self._last)
            self._cache_entries(entries)

    def _cache_entries(self, entries: Sequence[Entry]) -> None:
        if not self._cache or self._cache_first + len(self._cache) != entries[0].index:
            self._cache, self._cache_bytes = [], 0
            self._cache_first = entries[0].index
        self._cache.extend(entries)
        self._cache_bytes += sum(len(e.data) for e in entries)
        self._trim_cache()

    def _start_segment(self, seq: int) -> Segment:
        segment = self._segdir.create(seq)
        self._segments.append(segment)
        log.info("%s raft_storage=new_segment seq=%d", self._config.node_id, seq)
        return segment

    # --- snapshots and compaction (Raft §7) ---------------------------------------------

    def save_snapshot(self, meta: SnapshotMeta, data: SnapshotData) -> None:
        """Make `meta` + `data` the durable snapshot: write temp, fsync, rename, fsync dir."""
        self._check_usable()
        if self._has_snapshot and meta.index < self._snapshot_meta.index:
            raise RaftInvariantError(f"snapshot at {meta.index} older than the one kept at {self._snapshot_meta.index}")
        self.publish_snapshot(self.prepare_snapshot(meta, data))

    def prepare_snapshot(self, meta: SnapshotMeta, data: SnapshotData) -> PreparedSnapshot:
        """Write `meta` + `data` to a temporary file of their own and fsync it.

        The slow half of saving a snapshot, and safe on a worker thread while the owner
        keeps using the storage: it reads no state of this object and writes only its
        own file. Nothing changes until the snapshot is placed and adopted.
        """
        temp = self._dir / f"{_SNAPSHOT_NAME}.{meta.index}.{next(_snapshot_temp_numbers)}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                pwritev_all(fd, wal_codec.encode_snapshot(meta, data), 0)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            temp.unlink(missing_ok=True)
            raise  # the log is untouched: the caller may try again later
        return PreparedSnapshot(meta, data, temp)

    def snapshot_is_superseded(self, meta: SnapshotMeta) -> bool:
        """True when the snapshot kept is at least as new as `meta` (and another one)."""
        return self._has_snapshot and meta.index <= self._snapshot_meta.index and meta != self._snapshot_meta

    def place_snapshot(self, prepared: PreparedSnapshot) -> None:
        """Rename a prepared snapshot over the durable one and fsync the directory. Safe
        on a worker thread (it touches no state of this object); the caller serializes
        placements, checks `snapshot_is_superseded` first and `adopt_snapshot`s after.
        A failure leaves the storage unusable (the directory's state is unknown)."""
        try:
            os.replace(prepared.path, self._dir / _SNAPSHOT_NAME)
            fsync_dir(self._dir)
        except OSError as exc:
            self._fail(exc)
            raise

    def adopt_snapshot(self, prepared: PreparedSnapshot) -> None:
        """The owner's half of placing a snapshot: it is the snapshot from now on."""
        self._check_usable()
        meta = prepared.meta
        self._snapshot_meta, self._has_snapshot, self._snapshot_data = meta, True, prepared.data
        log.info(
            "%s raft_storage=snapshot index=%d term=%d bytes=%d", self._config.node_id, meta.index, meta.term,
            len(prepared.data),
        )

    def discard_snapshot(self, prepared: PreparedSnapshot) -> None:
        """Drop a prepared snapshot that will never be placed."""
        prepared.path.unlink(missing_ok=True)

    def publish_snapshot(self, prepared: PreparedSnapshot) -> bool:
        """Make a prepared snapshot the durable one (rename over it, fsync the directory).

        Returns False, dropping the prepared file, when the snapshot kept meanwhile is at
        least as new (a leader's snapshot installed while this one was being written).
        """
        self._check_usable()
        if self.snapshot_is_superseded(prepared.meta):
            self.discard_snapshot(prepared)
            return False
        self.place_snapshot(prepared)
        self.adopt_snapshot(prepared)
        return True

    def load_snapshot(self) -> tuple[SnapshotMeta, SnapshotData] | None:
        """The durable snapshot, or None if there is none yet."""
        self._check_usable()
        if not self._has_snapshot:
            return None
        return self._snapshot_meta, self.snapshot_data()

    def snapshot_data(self) -> SnapshotData:
        """The state-machine bytes of the durable snapshot (b"" if none), kept in memory once read."""
        if self._snapshot_data is None:
            if not self._has_snapshot:
                return b""
            path = self._dir / _SNAPSHOT_NAME
            decoded = wal_codec.decode_snapshot(path.read_bytes())
            if decoded is None or decoded[0] != self._snapshot_meta:
                raise StorageCorruption(f"snapshot file {path} is damaged")
            self._snapshot_data = decoded[1]
        return self._snapshot_data

    def compact(self, up_to_index: int, *, remove_segments: bool = True) -> None:
        """Drop entries <= up_to_index, which the durable snapshot must cover (Raft §7).
        With `remove_segments=False` the segments it leaves unused are only detached
        (`detach_dead_segments`), for the caller to remove off its task."""
        self._check_usable()
        if up_to_index < self._first:
            return
        if up_to_index > self._snapshot_meta.index:
            raise RaftInvariantError(f"compact({up_to_index}) past the snapshot index {self._snapshot_meta.index}")
        if up_to_index > self._last and up_to_index != self._snapshot_meta.index:
            raise RaftInvariantError(f"compact({up_to_index}) past the last index {self._last}")
        prev_term = self.term_at(up_to_index)
        assert prev_term is not None  # up_to_index is in the log or is the snapshot's index
        self._rebase(up_to_index + 1, prev_term, max(self._last, up_to_index))
        if remove_segments:
            self.remove_segments(self.detach_dead_segments())

    def install_snapshot(self, meta: SnapshotMeta, data: SnapshotData) -> None:
        """Make a snapshot received from the leader durable and let it replace the whole log
        (Raft §7; the Ready contract of core.py). The next entries start at meta.index + 1."""
        self.save_snapshot(meta, data)
        self.rebase_on_snapshot()
        self.remove_segments(self.detach_dead_segments())

    def rebase_on_snapshot(self) -> None:
        """Let the durable snapshot replace the whole log (its adopted half, on the owner's
        task): the next entries start after it. Unused segments are left to detach."""
        meta = self._snapshot_meta
        self._rebase(meta.index + 1, meta.term, meta.index)

    def _rebase(self, first: int, prev_term: int, last: int) -> None:
        """Durably make the log first..last (a STATE record)."""
        self._set_bounds(first, prev_term, last)
        self._write_state_record()
        log.info("%s raft_storage=compact first=%d last=%d", self._config.node_id, first, last)

    def detach_dead_segments(self) -> list[Segment]:
        """Take the segments the log no longer uses out of it (see _dead_segments), for
        `remove_segments`: nothing reads them again."""
        dead = self._dead_segments()
        if dead:
            self._segments = self._segments[len(dead) :]
        return dead

    def remove_segments(self, segments: list[Segment]) -> None:
        """Delete detached segments and fsync the directory. Safe on a worker thread: it
        touches only those segments. A failure leaves the storage unusable."""
        if not segments:
            return
        try:
            for segment in segments:
                segment.delete()
            self._segdir.sync()
        except OSError as exc:
            self._fail(exc)
            raise
        log.info("%s raft_storage=drop_segments count=%d", self._config.node_id, len(segments))

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Write a pending commit index, then release the files. Idempotent."""
        if self._closed:
            return
        try:
            if self._failed is None and self._hard_state != self._written_hard_state and self._segments:
                self._write_state_record()
        finally:
            self._close_files()

    def _close_files(self) -> None:
        self._closed = True
        for segment in self._segments:
            segment.close()
        self._segments = []
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RaftStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_usable(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")
        if self._failed is not None:
            raise StorageFailed(f"an earlier write failed: {self._failed!r}")

    def _fail(self, exc: BaseException) -> None:
        self._failed = exc  # the caller reports it: the exception propagates to it
