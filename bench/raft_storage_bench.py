"""Benchmark of Raft's log storage: our segment files against SQLite, on this machine's disk.

Prints one JSON line. For each backend and batch size (1, 64, 1024 entries of 100 bytes per
durable save) it gives appends/s and the p50/p99 latency of one save, the backends taking
turns save by save so that a disk shared with other work slows both alike; it also gives the raw
fdatasync p50 of the disk, and for the segment files the time to reopen (recover) the log
and to read entries back from the cache and from disk.

The SQLite backend is a comparison only (stdlib sqlite3, WAL mode, synchronous=FULL, one
transaction per save), kept small on purpose: the storage agentd uses is agent/raft/storage.py.

Run: .venv/bin/python bench/raft_storage_bench.py [--seconds-per-case 1.0] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.raft.storage import RaftStorage
from agent.raft.types import Entry, HardState

ENTRY_BYTES = 100
BATCH_SIZES = (1, 64, 1024)


class SqliteLog:
    """The same save() contract on SQLite: hard state and entries in one transaction."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, term, kind, data BLOB)")
        self._db.execute("CREATE TABLE IF NOT EXISTS hard_state (id INTEGER PRIMARY KEY, term, vote, commit_index)")
        self._last = self._db.execute("SELECT COALESCE(MAX(idx), 0) FROM log").fetchone()[0]

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        db = self._db
        db.execute("BEGIN")
        if entries and entries[0].index <= self._last:
            db.execute("DELETE FROM log WHERE idx >= ?", (entries[0].index,))
        db.executemany(
            "INSERT INTO log (idx, term, kind, data) VALUES (?, ?, ?, ?)",
            [(e.index, e.term, int(e.kind), e.data) for e in entries],
        )
        if hard_state is not None:
            db.execute(
                "INSERT OR REPLACE INTO hard_state VALUES (0, ?, ?, ?)",
                (hard_state.term, hard_state.voted_for, hard_state.commit),
            )
        db.execute("COMMIT")
        if entries:
            self._last = entries[-1].index

    def close(self) -> None:
        self._db.close()


def _run_interleaved(
    backends: dict[str, Callable[[HardState | None, Sequence[Entry]], None]], batch: int, seconds: float
) -> dict[str, dict]:
    """Save batches on every backend in turn, so a disk shared with others slows all alike."""
    payload = os.urandom(ENTRY_BYTES)
    latencies: dict[str, list[float]] = {name: [] for name in backends}
    next_index = 1
    started = time.perf_counter()
    while time.perf_counter() - started < seconds * len(backends) or len(latencies[next(iter(backends))]) < 5:
        entries = [Entry(i, 1, data=payload) for i in range(next_index, next_index + batch)]
        hard_state = HardState(1, "n1", next_index - 1)
        for name, save in backends.items():
            t0 = time.perf_counter()
            save(hard_state, entries)
            latencies[name].append(time.perf_counter() - t0)
        next_index += batch
    result = {}
    for name, samples in latencies.items():
        total = sum(samples)
        samples.sort()
        result[name] = {
            "appends_per_s": round(batch * len(samples) / total),
            "save_p50_ms": round(samples[len(samples) // 2] * 1e3, 3),
            "save_p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3, 3),
        }
    return result


def _fsync_p50_ms(directory: Path) -> float:
    fd = os.open(directory / "fsync-probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    samples = []
    try:
        for _ in range(200):
            os.write(fd, b"x" * ENTRY_BYTES)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            samples.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return round(statistics.median(samples) * 1e3, 3)


def _segment_extras(directory: Path) -> dict:
    """Recovery and read speed of the segment files for 200k entries."""
    path = directory / "recovery"
    storage = RaftStorage.open(path)
    payload = os.urandom(ENTRY_BYTES)
    total = 200_000
    for start in range(1, total + 1, 1024):
        storage.save(None, [Entry(i, 1, data=payload) for i in range(start, min(start + 1024, total + 1))])
    t0 = time.perf_counter()
    cached = storage.entries(total - 1000, total + 1)
    cached_s = time.perf_counter() - t0
    storage.close()
    t0 = time.perf_counter()
    storage = RaftStorage.open(path)
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    from_disk = storage.entries(1, 100_001)
    disk_s = time.perf_counter() - t0
    storage.close()
    assert len(cached) == 1001 and len(from_disk) == 100_000
    return {
        "recover_200k_entries_s": round(open_s, 3),
        "read_cached_entries_per_s": round(len(cached) / cached_s),
        "read_disk_entries_per_s": round(len(from_disk) / disk_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-per-case", type=float, default=1.0)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        result: dict = {"bench": "raft_storage", "entry_bytes": ENTRY_BYTES, "fdatasync_p50_ms": _fsync_p50_ms(root)}
        for batch in BATCH_SIZES:
            storage = RaftStorage.open(root / f"segments-{batch}")
            sqlite_log = SqliteLog(root / f"sqlite-{batch}.db")
            backends = {"segments": storage.save, "sqlite": sqlite_log.save}
            figures = _run_interleaved(backends, batch, args.seconds_per_case)
            storage.close()
            sqlite_log.close()
            for name, values in figures.items():
                result[f"{name}_batch_{batch}"] = values
        result.update(_segment_extras(root))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
