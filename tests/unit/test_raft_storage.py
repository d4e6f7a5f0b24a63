"""Raft's durable log storage (agent/raft/storage.py): durability, recovery, damage, compaction.

Each test names the part of the Raft paper whose persistence rule it checks: Figure 2's
"persistent state on all servers" (currentTerm, votedFor, log[]), §5.3 (a follower's
conflicting suffix is replaced) and §7 (log compaction and snapshots). A crash is simulated
by editing the files the way a power cut could leave them, then opening the directory again.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.raft import segments as segments_module
from agent.raft import wal_codec
from agent.raft.errors import RaftError, RaftInvariantError, SnapshotUnavailable
from agent.raft.memlog import LogReader
from agent.raft.storage import (
    TEST_CONFIG,
    RaftStorage,
    StorageConfig,
    StorageCorruption,
    StorageError,
    StorageFailed,
    StorageUnusable,
)
from agent.raft.types import NUMBER_LIMIT, ConfState, Entry, EntryKind, HardState, SnapshotMeta
from tests.integration.raft_cluster import doctor_hard_state

CONF = ConfState(voters=("n1", "n2", "n3"))
SMALL_SEGMENTS = replace(TEST_CONFIG, segment_max_bytes=1024)


def make_entries(first: int, count: int, term: int, tag: bytes = b"x") -> list[Entry]:
    return [Entry(i, term, EntryKind.NORMAL, tag * (i % 7 + 5)) for i in range(first, first + count)]


def open_storage(path: Path, config: StorageConfig = TEST_CONFIG) -> RaftStorage:
    return RaftStorage.open(path, config)


def segment_files(path: Path) -> list[Path]:
    return sorted((path / "log").glob("*.seg"))


def all_entries(store: RaftStorage) -> list[Entry]:
    return store.entries(store.first_index(), store.last_index() + 1)


class Reopened:
    """What a fresh open of a directory reads back (the storage is closed again at once)."""

    def __init__(self, path: Path, config: StorageConfig = TEST_CONFIG) -> None:
        with RaftStorage.open(path, config) as store:
            self.entries = all_entries(store)
            self.hard_state = store.hard_state()
            self.first_index, self.last_index = store.first_index(), store.last_index()


def record_offsets(segment: Path) -> list[tuple[int, int, wal_codec.Record]]:
    """(offset, size, record) of every record in a segment file, in order."""
    buf = segment.read_bytes()
    offset, found = 0, []
    while offset < len(buf):
        record = wal_codec.decode_at(buf, offset)
        if record is None:
            assert not buf[offset:].strip(b"\x00"), f"test setup: damaged record at {offset}"
            break
        found.append((offset, record.size, record))
        offset += record.size
    return found


# --- round trips and restart -----------------------------------------------------------


def test_round_trip_entries_terms_and_bounds_raft_fig2_log(tmp_path: Path) -> None:
    """Raft Figure 2 (log[]): what is saved reads back, from the cache and from disk."""
    store = open_storage(tmp_path)
    assert isinstance(store, LogReader)
    assert (store.first_index(), store.last_index(), store.term_at(0)) == (1, 0, 0)
    batches = [make_entries(1, 5, 1), make_entries(6, 40, 2), make_entries(46, 3, 3)]
    for batch in batches:
        store.save(None, batch)
    expected = [e for batch in batches for e in batch]
    assert all_entries(store) == expected  # mostly from disk: TEST_CONFIG caches 8 entries
    assert store.entries(44, 49) == expected[43:48]  # across the cache boundary
    assert [store.term_at(i) for i in (0, 5, 6, 45, 46, 48)] == [0, 1, 2, 2, 3, 3]
    assert store.term_at(49) is None
    assert (store.first_index(), store.last_index()) == (1, 48)
    store.close()


def test_entries_max_bytes_returns_at_least_one(tmp_path: Path) -> None:
    """Raft §5.3: AppendEntries batches are cut by size, never to nothing."""
    store = open_storage(tmp_path)
    batch = [Entry(i, 1, EntryKind.NORMAL, b"d" * 10) for i in range(1, 21)]
    store.save(None, batch)
    assert store.entries(1, 21, max_bytes=35) == batch[:3]
    assert store.entries(1, 21, max_bytes=1) == batch[:1]
    assert store.entries(5, 5) == []
    with pytest.raises(RaftInvariantError):
        store.entries(1, 22)
    store.close()


def test_restart_recovers_entries_and_hard_state_raft_fig2(tmp_path: Path) -> None:
    """Raft Figure 2: currentTerm, votedFor and log[] survive a restart."""
    store = open_storage(tmp_path)
    store.save(HardState(1, "n2", 0), make_entries(1, 10, 1))
    store.save(HardState(2, "n3", 4), make_entries(11, 10, 2, b"y"))
    expected = all_entries(store)
    store.close()

    again = open_storage(tmp_path)
    assert again.hard_state() == HardState(2, "n3", 4)
    assert all_entries(again) == expected
    assert (again.first_index(), again.last_index(), again.term_at(20)) == (1, 20, 2)
    again.save(None, make_entries(21, 2, 2))  # appending goes on where it stopped
    again.close()
    assert Reopened(tmp_path).last_index == 22


def test_hard_state_alone_survives_and_vote_none_differs_from_empty_raft_fig2(tmp_path: Path) -> None:
    """Raft Figure 2: a vote is durable on its own (no entries), and "no vote" stays no vote."""
    store = open_storage(tmp_path)
    store.save(HardState(3, "", 0), [])
    store.close()
    assert Reopened(tmp_path).hard_state == HardState(3, "", 0)
    store = open_storage(tmp_path)
    store.save(HardState(4, None, 0), [])
    store.close()
    assert Reopened(tmp_path).hard_state == HardState(4, None, 0)


def test_commit_alone_is_written_lazily_then_on_close(tmp_path: Path) -> None:
    """Raft Figure 2: commitIndex is volatile; a commit-only change costs no write, close keeps it."""
    store = open_storage(tmp_path)
    store.save(HardState(1, "n1", 0), make_entries(1, 5, 1))
    size_before = sum(p.stat().st_size for p in segment_files(tmp_path))
    store.save(HardState(1, "n1", 5), [])
    assert sum(p.stat().st_size for p in segment_files(tmp_path)) == size_before
    assert store.hard_state().commit == 5
    store.close()
    assert Reopened(tmp_path).hard_state == HardState(1, "n1", 5)


def test_term_never_goes_back_and_gaps_are_refused(tmp_path: Path) -> None:
    """Raft §5.1: currentTerm only increases; the log has no holes (a caller bug raises)."""
    store = open_storage(tmp_path)
    store.save(HardState(5, "n1", 0), make_entries(1, 3, 5))
    with pytest.raises(RaftInvariantError):
        store.save(HardState(4, None, 0), [])
    with pytest.raises(RaftInvariantError):
        store.save(None, make_entries(5, 1, 5))  # gap after 3
    with pytest.raises(RaftInvariantError):
        store.save(None, make_entries(4, 1, 4))  # term below the entry before it
    store.save(HardState(5, "n1", 2), [])
    with pytest.raises(RaftInvariantError):
        store.save(None, make_entries(2, 1, 6))  # would replace committed entry 2 (§5.4)
    assert all_entries(store) == make_entries(1, 3, 5)
    store.close()


def test_second_open_of_the_same_directory_is_refused(tmp_path: Path) -> None:
    store = open_storage(tmp_path)
    with pytest.raises(StorageError):
        open_storage(tmp_path, SMALL_SEGMENTS)
    store.close()
    open_storage(tmp_path).close()


# --- §5.3 replacing a conflicting suffix ----------------------------------------------


def test_conflicting_suffix_replaced_and_survives_restart_raft_5_3(tmp_path: Path) -> None:
    """Raft §5.3: entries from a new leader replace the follower's conflicting suffix, durably."""
    store = open_storage(tmp_path)
    store.save(HardState(1, "n1", 0), make_entries(1, 30, 1))
    store.save(HardState(2, "n2", 0), make_entries(12, 4, 2, b"n"))  # replaces 12..30
    expected = make_entries(1, 11, 1) + make_entries(12, 4, 2, b"n")
    assert all_entries(store) == expected
    assert store.term_at(16) is None
    store.close()

    again = open_storage(tmp_path)
    assert all_entries(again) == expected
    assert again.hard_state() == HardState(2, "n2", 0)
    again.save(None, make_entries(16, 3, 2, b"m"))
    again.close()
    assert Reopened(tmp_path).entries == expected + make_entries(16, 3, 2, b"m")


def test_replacing_a_suffix_that_spans_segments_raft_5_3(tmp_path: Path) -> None:
    """Raft §5.3: the replaced suffix may start several segments back; restart agrees."""
    store = open_storage(tmp_path)
    for first in range(1, 400, 20):
        store.save(None, make_entries(first, 20, 1))
    assert len(segment_files(tmp_path)) > 3
    store.save(HardState(2, None, 0), make_entries(50, 2, 2, b"z"))
    expected = make_entries(1, 49, 1) + make_entries(50, 2, 2, b"z")
    assert all_entries(store) == expected
    store.close()
    assert Reopened(tmp_path).entries == expected


def test_replacing_twice_then_restart_keeps_the_newest_raft_5_3(tmp_path: Path) -> None:
    """Raft §5.3: two leader changes in a row; only the last replacement is the log."""
    store = open_storage(tmp_path)
    store.save(None, make_entries(1, 10, 1))
    store.save(None, make_entries(5, 10, 2, b"a"))
    store.save(None, make_entries(8, 2, 3, b"b"))
    expected = make_entries(1, 4, 1) + make_entries(5, 3, 2, b"a") + make_entries(8, 2, 3, b"b")
    assert all_entries(store) == expected
    store.close()
    assert Reopened(tmp_path).entries == expected


# --- crashes: torn tails and damage ----------------------------------------------------


def _three_writes(path: Path, config: StorageConfig = TEST_CONFIG) -> None:
    store = RaftStorage.open(path, config)
    store.save(HardState(1, "n1", 0), make_entries(1, 5, 1))
    store.save(None, make_entries(6, 3, 1))
    store.save(HardState(2, "n2", 0), make_entries(9, 3, 2))  # last write: a STATE record + 9..11
    store.close()


def test_torn_last_write_at_every_byte_recovers_whole_records_raft_fig2(tmp_path: Path) -> None:
    """Raft Figure 2: a crash mid-write leaves exactly the whole records before the tear."""
    template = tmp_path / "template"
    _three_writes(template)
    (segment,) = segment_files(template)
    records = record_offsets(segment)
    last_write_start = next(off for off, _, rec in reversed(records) if rec.write_start)
    data_end = records[-1][0] + records[-1][1]
    for cut in range(last_write_start, data_end + 1):
        case = tmp_path / f"cut{cut}"
        shutil.copytree(template, case)
        os.truncate(segment_files(case)[0], cut)
        store = open_storage(case)
        whole = [rec for off, size, rec in records if off + size <= cut]
        expected_entries = [rec.entry for rec in whole if rec.entry is not None]
        expected_state = [rec.state for rec in whole if rec.state is not None][-1]
        assert all_entries(store) == expected_entries, f"cut at {cut}"
        assert store.hard_state() == expected_state.hard_state, f"cut at {cut}"
        if cut % 5 == 0:  # (not at every cut: it costs fsyncs) the tear is gone for good
            store.save(None, make_entries(store.last_index() + 1, 1, 2, b"q"))
            store.close()
            appended = make_entries(len(expected_entries) + 1, 1, 2, b"q")
            assert Reopened(case).entries == expected_entries + appended, f"cut at {cut}"
        store.close()
        shutil.rmtree(case)


def test_torn_write_that_kept_its_state_record_never_commits_past_the_log_raft_fig2(tmp_path: Path) -> None:
    """Raft Figure 2: commitIndex <= the last durable entry, even when a tear keeps the new commit."""
    store = open_storage(tmp_path)
    store.save(HardState(1, "n1", 0), make_entries(1, 5, 1))
    store.save(HardState(1, "n1", 8), make_entries(6, 3, 1))  # a follower: entries and commit together
    store.close()
    (segment,) = segment_files(tmp_path)
    state_offset, state_size, state = next(r for r in reversed(record_offsets(segment)) if r[2].state is not None)
    assert state.state is not None and state.state.hard_state.commit == 8
    os.truncate(segment, state_offset + state_size)  # the tear: only the STATE record got through
    store = open_storage(tmp_path)
    assert (store.last_index(), store.hard_state()) == (5, HardState(1, "n1", 5))
    store.close()


@pytest.mark.parametrize("preallocate", [True, False])
@pytest.mark.parametrize("garbage", [b"\x00" * 300, b"\xff" * 7, bytes(range(256)) * 3])
def test_garbage_after_the_last_write_is_cut_raft_fig2(tmp_path: Path, garbage: bytes, preallocate: bool) -> None:
    """Raft Figure 2: bytes after the last whole record (a tear, zero fill) are never read as data."""
    config = replace(TEST_CONFIG, preallocate=preallocate)
    _three_writes(tmp_path, config)
    expected = Reopened(tmp_path, config).entries
    with open(segment_files(tmp_path)[0], "ab") as f:
        f.write(garbage)
    store = open_storage(tmp_path, config)
    assert all_entries(store) == expected
    assert store.hard_state() == HardState(2, "n2", 0)
    store.close()


def _flip_bit(path: Path, offset: int, bit: int = 0x10) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ bit]))


def test_flipped_bit_in_the_tail_record_drops_it_raft_fig2(tmp_path: Path) -> None:
    """Raft Figure 2: damage in the last record (crc32 mismatch) is a torn write: the record goes."""
    template = tmp_path / "template"
    store = open_storage(template)
    store.save(HardState(1, "n1", 0), make_entries(1, 4, 1))
    store.save(None, make_entries(5, 1, 1))
    store.close()
    (segment,) = segment_files(template)
    offset, size, _ = record_offsets(segment)[-1]
    for position in range(offset, offset + size):
        case = tmp_path / f"flip{position}"
        shutil.copytree(template, case)
        _flip_bit(segment_files(case)[0], position)
        store = open_storage(case)
        assert all_entries(store) == make_entries(1, 4, 1), f"bit flipped at {position}"
        assert store.hard_state() == HardState(1, "n1", 0)
        store.close()
        shutil.rmtree(case)


def test_flipped_bit_in_an_earlier_write_is_corruption_raft_fig2(tmp_path: Path) -> None:
    """Raft Figure 2: a durable record that no longer checks must stop the node, not shorten its log."""
    template = tmp_path / "template"
    _three_writes(template)
    (segment,) = segment_files(template)
    records = record_offsets(segment)
    entry_seven = next((off, size) for off, size, rec in records if rec.entry is not None and rec.entry.index == 7)
    first_state = next((off, size) for off, size, rec in records if rec.state is not None)
    for offset, size in (entry_seven, first_state):
        for position in range(offset, offset + size):
            case = tmp_path / f"flip{position}"
            shutil.copytree(template, case)
            _flip_bit(segment_files(case)[0], position)
            with pytest.raises(StorageCorruption):
                open_storage(case)
            shutil.rmtree(case)


def test_damage_in_a_segment_followed_by_another_is_corruption_raft_fig2(tmp_path: Path) -> None:
    """Raft Figure 2: a later segment proves the earlier one was durable, so its damage is corruption."""
    store = open_storage(tmp_path, SMALL_SEGMENTS)
    for first in range(1, 200, 20):
        store.save(None, make_entries(first, 20, 1))
    store.close()
    segments = segment_files(tmp_path)
    assert len(segments) >= 3
    offset, size, _ = record_offsets(segments[0])[-1]  # the very end of a non-last segment
    _flip_bit(segments[0], offset + size - 1)
    with pytest.raises(StorageCorruption):
        open_storage(tmp_path, SMALL_SEGMENTS)


def test_truncated_middle_segment_is_corruption(tmp_path: Path) -> None:
    """Raft Figure 2: a short (not last) segment lost durable entries: stop, do not guess."""
    store = open_storage(tmp_path, SMALL_SEGMENTS)
    for first in range(1, 200, 20):
        store.save(None, make_entries(first, 20, 1))
    store.close()
    segments = segment_files(tmp_path)
    os.truncate(segments[1], segments[1].stat().st_size - 3)
    with pytest.raises(StorageCorruption):
        open_storage(tmp_path, SMALL_SEGMENTS)


def test_missing_middle_segment_is_corruption(tmp_path: Path) -> None:
    """Raft Figure 2: a vanished segment leaves a hole in the log: stop."""
    store = open_storage(tmp_path, SMALL_SEGMENTS)
    for first in range(1, 200, 20):
        store.save(None, make_entries(first, 20, 1))
    store.close()
    segment_files(tmp_path)[1].unlink()
    with pytest.raises(StorageCorruption):
        open_storage(tmp_path, SMALL_SEGMENTS)


def test_torn_first_write_of_a_new_segment_keeps_the_previous_state_raft_fig2(tmp_path: Path) -> None:
    """Raft Figure 2: a crash right after rollover leaves an empty segment; term and vote survive."""
    store = open_storage(tmp_path, SMALL_SEGMENTS)
    store.save(HardState(7, "n3", 0), make_entries(1, 80, 7))
    store.save(None, make_entries(81, 5, 7))  # rolls over: the new segment opens with a STATE record
    store.close()
    segments = segment_files(tmp_path)
    assert len(segments) == 2
    os.truncate(segments[-1], 0)
    store = open_storage(tmp_path, SMALL_SEGMENTS)
    assert (store.last_index(), store.hard_state()) == (80, HardState(7, "n3", 0))
    store.save(None, make_entries(81, 1, 7))
    store.close()
    assert Reopened(tmp_path, SMALL_SEGMENTS).last_index == 81


def test_failed_fsync_makes_the_storage_unusable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Raft Figure 2: after a failed fsync nothing is known durable; never retry as if it were."""
    store = open_storage(tmp_path)
    store.save(None, make_entries(1, 2, 1))

    def failing_sync(fd: int) -> None:
        raise OSError(errno.EIO, "simulated I/O error")

    monkeypatch.setattr(segments_module, "sync_data", failing_sync)
    with pytest.raises(OSError):
        store.save(None, make_entries(3, 1, 1))
    monkeypatch.undo()
    with pytest.raises(StorageFailed):
        store.save(None, make_entries(3, 1, 1))
    store.close()
    # The failed write may or may not have reached the disk; what was durable before is intact.
    assert Reopened(tmp_path).entries in (make_entries(1, 2, 1), make_entries(1, 3, 1))


# --- many segments ---------------------------------------------------------------------


def test_many_segments_roll_over_and_recover(tmp_path: Path) -> None:
    """Raft Figure 2: a long log spread over many segment files reads back whole after restart."""
    config = replace(TEST_CONFIG, segment_max_bytes=2048)
    store = open_storage(tmp_path, config)
    rng = random.Random(7)
    index, term, expected = 1, 1, []
    while index <= 1500:
        if rng.random() < 0.05:
            term += 1
            store.save(HardState(term, f"n{term % 3}", 0), [])
        batch = make_entries(index, rng.randint(1, 40), term)
        store.save(None, batch)
        expected += batch
        index += len(batch)
    assert len(segment_files(tmp_path)) > 10
    store.close()
    again = open_storage(tmp_path, config)
    assert all_entries(again) == expected
    assert again.hard_state().term == term
    assert [again.term_at(e.index) for e in expected[::97]] == [e.term for e in expected[::97]]
    again.close()


# --- §7 snapshots and compaction -------------------------------------------------------


def test_snapshot_and_compaction_survive_restart_raft_7(tmp_path: Path) -> None:
    """Raft §7: entries a snapshot covers are dropped; the snapshot point's term stays readable."""
    store = open_storage(tmp_path)
    for first in range(1, 300, 25):
        store.save(HardState(1, "n1", first - 1), make_entries(first, 25, 1))
    segments_before = len(segment_files(tmp_path))
    meta = SnapshotMeta(200, 1, CONF)
    store.save_snapshot(meta, b"state at 200")
    store.compact(180)  # keep a little behind the snapshot for slow followers
    assert (store.first_index(), store.term_at(179), store.term_at(180)) == (181, None, 1)
    with pytest.raises(SnapshotUnavailable):
        store.entries(180, 190)
    assert len(segment_files(tmp_path)) < segments_before
    expected = all_entries(store)
    store.close()

    again = open_storage(tmp_path)
    assert again.load_snapshot() == (meta, b"state at 200")
    assert again.snapshot_meta() == meta and again.snapshot_data() == b"state at 200"
    assert (again.first_index(), again.last_index(), again.term_at(180)) == (181, 300, 1)
    assert all_entries(again) == expected
    again.compact(200)
    assert (again.first_index(), again.term_at(200)) == (201, 1)
    again.close()
    assert Reopened(tmp_path).first_index == 201


def test_compaction_beyond_the_snapshot_is_refused_raft_7(tmp_path: Path) -> None:
    """Raft §7: only entries a durable snapshot covers may be discarded."""
    store = open_storage(tmp_path)
    store.save(None, make_entries(1, 10, 1))
    with pytest.raises(RaftInvariantError):
        store.compact(5)
    store.save_snapshot(SnapshotMeta(5, 1, CONF), b"s")
    with pytest.raises(RaftInvariantError):
        store.compact(6)
    store.compact(5)
    with pytest.raises(RaftInvariantError):
        store.save_snapshot(SnapshotMeta(4, 1, CONF), b"older")
    store.close()


def test_install_snapshot_replaces_the_whole_log_raft_7(tmp_path: Path) -> None:
    """Raft §7: a snapshot from the leader replaces the log; new entries follow its index."""
    store = open_storage(tmp_path)
    store.save(HardState(1, "n1", 0), make_entries(1, 50, 1))
    meta = SnapshotMeta(500, 4, CONF)
    store.install_snapshot(meta, b"leader state")
    assert (store.first_index(), store.last_index(), store.term_at(500)) == (501, 500, 4)
    store.save(HardState(4, None, 500), make_entries(501, 3, 4))
    store.close()
    again = open_storage(tmp_path)
    assert (again.first_index(), again.last_index(), again.term_at(500)) == (501, 503, 4)
    assert all_entries(again) == make_entries(501, 3, 4)
    assert again.load_snapshot() == (meta, b"leader state")
    assert again.hard_state() == HardState(4, None, 500)
    again.close()


def test_crash_leaving_a_snapshot_temp_file_keeps_the_old_snapshot_raft_7(tmp_path: Path) -> None:
    """Raft §7: a crash before the rename leaves the previous snapshot in force."""
    store = open_storage(tmp_path)
    store.save(None, make_entries(1, 20, 1))
    store.save_snapshot(SnapshotMeta(10, 1, CONF), b"old")
    store.close()
    (tmp_path / "snapshot.tmp").write_bytes(b"half a new snapshot")
    store = open_storage(tmp_path)
    assert store.load_snapshot() == (SnapshotMeta(10, 1, CONF), b"old")
    assert not (tmp_path / "snapshot.tmp").exists()
    assert (store.first_index(), store.last_index()) == (1, 20)
    store.close()


def test_crash_between_snapshot_and_compaction_keeps_the_whole_log_raft_7(tmp_path: Path) -> None:
    """Raft §7: snapshot durable, compaction not yet begun: every entry is still there."""
    store = open_storage(tmp_path)
    store.save(None, make_entries(1, 20, 1))
    store.save_snapshot(SnapshotMeta(15, 1, CONF), b"s15")
    store.close()  # the "crash": compact() never ran
    store = open_storage(tmp_path)
    assert (store.first_index(), store.last_index(), store.snapshot_meta().index) == (1, 20, 15)
    store.compact(15)
    assert store.first_index() == 16
    store.close()


def test_crash_before_old_segments_are_deleted_raft_7(tmp_path: Path) -> None:
    """Raft §7: the new log start is durable before any file goes; leftovers are removed on open."""
    store = open_storage(tmp_path)
    for first in range(1, 300, 25):
        store.save(None, make_entries(first, 25, 1))
    saved = {p.name: p.read_bytes() for p in segment_files(tmp_path)}
    store.save_snapshot(SnapshotMeta(250, 1, CONF), b"s")
    store.compact(250)
    store.close()
    for name, data in saved.items():  # undo the deletions, as if the crash came before them
        if not (tmp_path / "log" / name).exists():
            (tmp_path / "log" / name).write_bytes(data)
    assert len(segment_files(tmp_path)) == len(saved)
    store = open_storage(tmp_path)
    assert (store.first_index(), store.last_index(), store.term_at(250)) == (251, 300, 1)
    assert all_entries(store) == make_entries(251, 50, 1)
    assert len(segment_files(tmp_path)) < len(saved)
    store.close()


def test_damaged_snapshot_file_is_corruption_raft_7(tmp_path: Path) -> None:
    """Raft §7: the snapshot is renamed into place whole, so damage in it is corruption."""
    store = open_storage(tmp_path)
    store.save(None, make_entries(1, 5, 1))
    store.save_snapshot(SnapshotMeta(5, 1, CONF), b"snapshot bytes")
    store.close()
    _flip_bit(tmp_path / "snapshot", 20)
    with pytest.raises(StorageCorruption):
        open_storage(tmp_path, SMALL_SEGMENTS)


# --- a seeded model check: random operations and crashes against a plain list --------------


class _Model:
    """What the log should hold: a list of entries after a snapshot point."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.first = 1
        self.prev_term = 0
        self.hard_state = HardState()
        self.snapshot = SnapshotMeta()

    @property
    def last(self) -> int:
        return self.first + len(self.entries) - 1

    def term_at(self, index: int) -> int:
        return self.prev_term if index == self.first - 1 else self.entries[index - self.first].term


@pytest.mark.parametrize("seed", range(int(os.environ.get("RAFT_STORAGE_SEEDS", "12"))))
def test_random_operations_and_restarts_match_a_model_raft_5_3_and_7(tmp_path: Path, seed: int) -> None:
    """Raft §5.3 and §7: any mix of appends, replaced suffixes, compactions, snapshots and restarts
    reads back as a plain in-memory log would, through clean restarts and crashes. Replay a
    failure with its seed; RAFT_STORAGE_SEEDS=1000 runs more of them."""
    rng = random.Random(seed)
    config = replace(TEST_CONFIG, segment_max_bytes=rng.choice([512, 2048, 1 << 20]), preallocate=rng.random() < 0.7)
    directory, generation = "gen0", 0
    store = open_storage(tmp_path / directory, config)
    model = _Model()
    for step in range(60):
        action = rng.random()
        term = model.hard_state.term
        if action < 0.45:  # append, sometimes replacing an uncommitted suffix (§5.3)
            lowest = max(model.first, model.hard_state.commit + 1)
            start = rng.randint(lowest, model.last + 1) if rng.random() < 0.3 else model.last + 1
            if rng.random() < 0.3:
                term += 1
            term = max(term, model.term_at(start - 1))
            batch = make_entries(start, rng.randint(1, 12), term, bytes([65 + step % 26]))
            hard_state = replace(model.hard_state, term=max(term, batch[-1].term))
            store.save(hard_state, batch)
            model.entries = model.entries[: start - model.first] + batch
            model.hard_state = hard_state
        elif action < 0.55:  # a vote in a new term
            model.hard_state = HardState(term + 1, rng.choice(["n1", "n2", None]), model.hard_state.commit)
            store.save(model.hard_state, [])
        elif action < 0.65 and model.last >= model.first:  # commit moves (lazily written)
            commit = rng.randint(model.hard_state.commit, model.last)
            model.hard_state = replace(model.hard_state, commit=max(model.hard_state.commit, commit))
            store.save(model.hard_state, [])
        elif action < 0.75 and model.hard_state.commit >= max(model.first, model.snapshot.index):
            # a local snapshot, then compaction (§7)
            point = rng.randint(max(model.first, model.snapshot.index), model.hard_state.commit)
            meta = SnapshotMeta(point, model.term_at(point), CONF)
            store.save_snapshot(meta, f"snap{point}".encode())
            model.snapshot = meta
            upto = rng.randint(model.first - 1, point)
            store.compact(upto)
            if upto >= model.first:
                model.prev_term = model.term_at(upto)
                model.entries = model.entries[upto - model.first + 1 :]
                model.first = upto + 1
        elif action < 0.8:  # snapshot from a leader replaces the log (§7)
            point = max(model.last, model.snapshot.index) + rng.randint(1, 30)
            meta = SnapshotMeta(point, max(term, 1), CONF)
            store.install_snapshot(meta, b"from leader")
            model.snapshot, model.entries, model.first, model.prev_term = meta, [], point + 1, meta.term
            model.hard_state = HardState(max(term, 1), model.hard_state.voted_for, point)
            store.save(model.hard_state, [])
        elif action < 0.9:  # clean restart
            store.close()
            store = open_storage(tmp_path / directory, config)
        else:  # crash: only what was fsynced is there (a commit-only change may be lost)
            generation += 1
            crashed_copy = tmp_path / f"gen{generation}"
            shutil.copytree(tmp_path / directory, crashed_copy, ignore=shutil.ignore_patterns("lock"))
            store.close()
            directory = f"gen{generation}"
            store = open_storage(tmp_path / directory, config)
            recovered = store.hard_state()
            assert replace(recovered, commit=0) == replace(model.hard_state, commit=0)
            assert recovered.commit <= model.hard_state.commit
            model.hard_state = recovered
        context = f"seed={seed} step={step} action={action:.2f}"
        assert (store.first_index(), store.last_index()) == (model.first, model.last), context
        assert store.term_at(model.first - 1) == model.prev_term, context
        assert store.hard_state() == model.hard_state, context
        if rng.random() < 0.3 or action >= 0.8:
            assert all_entries(store) == model.entries, context
    store.close()
    store = open_storage(tmp_path / directory, config)
    assert all_entries(store) == model.entries
    assert store.hard_state() == model.hard_state
    assert store.snapshot_meta() == model.snapshot
    store.close()


def test_errors_belong_to_the_raft_package() -> None:
    assert issubclass(StorageCorruption, RaftError) and issubclass(StorageFailed, StorageError)


# --- the record codec ------------------------------------------------------------------


def test_codec_round_trips_entries_and_states() -> None:
    entry = Entry(42, 7, EntryKind.CONFIG, b"\x00conf")
    record = wal_codec.decode_at(b"pad" + wal_codec.encode_entry(entry, write_start=True), 3)
    assert record is not None and record.entry == entry and record.write_start
    for vote in (None, "", "n2"):
        state = wal_codec.LogState(HardState(3, vote, 9), 5, 2, 40)
        decoded = wal_codec.decode_at(wal_codec.encode_state(state), 0)
        assert decoded is not None and decoded.state == state and not decoded.write_start


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=210))
@settings(max_examples=300, deadline=None)
def test_codec_never_raises_on_garbage(blob: bytes, offset: int) -> None:
    """Bad bytes decode to None (the caller decides torn tail or corruption), never an exception."""
    record = wal_codec.decode_at(blob, offset)
    assert record is None or record.size <= len(blob) - offset


@given(st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=7))
@settings(max_examples=200, deadline=None)
def test_codec_detects_any_single_bit_flip(position: int, bit: int) -> None:
    """crc32 (zlib, IEEE polynomial) catches every single-bit error in a record."""
    encoded = bytearray(wal_codec.encode_entry(Entry(3, 2, EntryKind.NORMAL, b"payload-of-some-bytes")))
    position %= len(encoded)
    encoded[position] ^= 1 << bit
    assert wal_codec.decode_at(bytes(encoded), 0) is None


def test_the_core_runs_on_this_storage_across_a_restart_raft_fig2(tmp_path: Path) -> None:
    """Raft Figure 2: the core reads its log from this storage (LogReader), its Ready output is
    saved here before anything is acknowledged, and after a restart it carries on from it."""
    from agent.raft.config import TEST_PROFILE
    from agent.raft.core import RaftCore

    def drive(store: RaftStorage, proposals: int) -> RaftCore:
        core = RaftCore("n1", store, TEST_PROFILE, random.Random(1), hard_state=store.hard_state())
        for _ in range(10 * TEST_PROFILE.election_timeout_ticks):
            if core.is_leader() and core.commit_index == store.last_index() and proposals == 0:
                break
            if core.is_leader() and proposals:
                core.propose_many([b"op"] * 10)
                proposals -= 1
            core.tick()
            while core.has_ready():
                ready = core.ready()
                if ready.snapshot is not None:
                    store.install_snapshot(*ready.snapshot)
                store.save(ready.hard_state, ready.entries)
                core.advance(ready)
        return core

    store = open_storage(tmp_path)
    store.save_snapshot(SnapshotMeta(0, 0, ConfState(voters=("n1",))), b"")
    core = drive(store, proposals=5)
    assert core.is_leader() and store.last_index() >= 51 and core.commit_index == store.last_index()
    before = all_entries(store)
    store.close()

    store = open_storage(tmp_path)
    assert all_entries(store) == before and store.hard_state().term == core.term
    core = drive(store, proposals=1)
    assert core.is_leader() and core.term > store.term_at(before[-1].index)
    assert all_entries(store)[: len(before)] == before and store.last_index() > before[-1].index
    store.close()


def test_a_prepared_snapshot_changes_nothing_until_published(tmp_path):
    storage = RaftStorage.open(tmp_path, StorageConfig(node_id="n"))
    storage.save(HardState(1, None, 0), [Entry(i, 1, EntryKind.NORMAL, b"x") for i in range(1, 11)])
    storage.save_snapshot(SnapshotMeta(4, 1, ConfState(("n",))), b"at-4")
    prepared = storage.prepare_snapshot(SnapshotMeta(8, 1, ConfState(("n",))), b"at-8")
    assert storage.snapshot_meta().index == 4 and storage.snapshot_data() == b"at-4"
    # A crash now: the prepared file is not the snapshot and is cleared at open.
    storage.close()
    reopened = RaftStorage.open(tmp_path, StorageConfig(node_id="n"))
    assert reopened.load_snapshot() == (SnapshotMeta(4, 1, ConfState(("n",))), b"at-4")
    assert not list(tmp_path.glob("snapshot.*.tmp"))
    assert not prepared.path.exists()
    prepared = reopened.prepare_snapshot(SnapshotMeta(8, 1, ConfState(("n",))), b"at-8")
    assert reopened.publish_snapshot(prepared)
    assert reopened.load_snapshot() == (SnapshotMeta(8, 1, ConfState(("n",))), b"at-8")
    reopened.close()


def test_publishing_a_snapshot_older_than_the_kept_one_is_a_no_op(tmp_path):
    storage = RaftStorage.open(tmp_path, StorageConfig(node_id="n"))
    storage.save(HardState(1, None, 0), [Entry(i, 1, EntryKind.NORMAL, b"x") for i in range(1, 11)])
    older = storage.prepare_snapshot(SnapshotMeta(5, 1, ConfState(("n",))), b"local")
    storage.install_snapshot(SnapshotMeta(9, 1, ConfState(("n",))), b"from-leader")  # meanwhile
    assert storage.publish_snapshot(older) is False
    assert not older.path.exists()
    assert storage.load_snapshot() == (SnapshotMeta(9, 1, ConfState(("n",))), b"from-leader")
    storage.close()


@pytest.mark.parametrize("term", [NUMBER_LIMIT, 2**64 - 1])
def test_a_hard_state_past_the_number_limit_is_unusable_not_a_crash_raft_fig2(tmp_path: Path, term: int) -> None:
    """A term no node may advance past (types.NUMBER_LIMIT) makes the directory unusable:
    refused at open with a message naming it, never loaded."""
    store = open_storage(tmp_path)
    store.save(HardState(2, "n1", 0), make_entries(1, 3, 2))
    store.close()
    doctor_hard_state(tmp_path, HardState(term, "n2", 0))
    with pytest.raises(StorageUnusable, match=f"term {term} is at or past the limit"):
        open_storage(tmp_path)


def test_the_last_term_below_the_limit_is_usable_and_the_limit_is_never_written_raft_fig2(tmp_path: Path) -> None:
    store = open_storage(tmp_path)
    store.save(HardState(2, "n1", 0), make_entries(1, 3, 2))
    store.close()
    doctor_hard_state(tmp_path, HardState(NUMBER_LIMIT - 1, None, 0))
    assert Reopened(tmp_path).hard_state == HardState(NUMBER_LIMIT - 1, None, 0)
    with open_storage(tmp_path) as store, pytest.raises(RaftInvariantError):
        store.save(HardState(NUMBER_LIMIT, None, 0), [])


def test_the_first_nonzero_byte_is_found_across_blocks_of_zeros() -> None:
    block = 64 * 1024
    for size, position in [(10, None), (block * 3, None), (block * 3, 0), (block * 3, block - 1),
                           (block * 3, block), (block * 3 + 7, block * 3 + 6), (block * 2, 5)]:
        buf = bytearray(size)
        if position is not None:
            buf[position] = 1
        for start in (0, 3, block + 1):
            expected = position if position is not None and position >= start else None
            assert segments_module.next_nonzero(bytes(buf), start) == expected, (size, position, start)


def test_parts_are_written_whole_however_short_each_write_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.pwritev
    monkeypatch.setattr(os, "pwritev", lambda fd, views, offset: real(fd, [bytes(views[0][:3])], offset))
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        parts = [b"head", b"", bytearray(b"0123456789"), memoryview(b"tail")[1:]]
        segments_module.pwritev_all(fd, parts, 2)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"\x00\x00head0123456789ail"


def test_a_snapshot_placed_by_another_thread_counts_once_adopted_and_segments_go_once_removed_raft_7(
    tmp_path: Path,
) -> None:
    """The split the node uses to keep slow file work off its task: prepare and place (any
    thread), adopt (the owner), compact leaving segments detached, remove them (any thread)."""
    store = open_storage(tmp_path)
    for first in range(1, 300, 25):
        store.save(None, make_entries(first, 25, 1))
    prepared = store.prepare_snapshot(SnapshotMeta(250, 1, CONF), memoryview(b"state at 250"))
    assert not store.snapshot_is_superseded(prepared.meta)
    store.place_snapshot(prepared)
    assert store.snapshot_meta().index == 0  # placed on disk, not yet adopted
    store.adopt_snapshot(prepared)
    before = segment_files(tmp_path)
    store.compact(250, remove_segments=False)
    assert segment_files(tmp_path) == before and store.first_index() == 251
    dead = store.detach_dead_segments()
    assert dead and store.detach_dead_segments() == []
    store.remove_segments(dead)
    assert len(segment_files(tmp_path)) == len(before) - len(dead)
    assert store.snapshot_is_superseded(SnapshotMeta(200, 1, CONF))
    store.close()
    with open_storage(tmp_path) as again:
        assert again.load_snapshot() == (SnapshotMeta(250, 1, CONF), b"state at 250")
        assert (again.first_index(), again.last_index()) == (251, 300)
