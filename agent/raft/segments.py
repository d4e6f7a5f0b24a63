"""The segment files of Raft's log, and the file-system steps that make writes durable.

Owns: one directory of segment files named by sequence number (`000000000001.seg`, ...):
creating them with their space preallocated, appending with one fdatasync, reading,
deleting; and the rule that tells a torn last write from damage in a segment.
Rules it keeps:
- A segment's data ends where its records end; the zeros after are preallocated space
  (`posix_fallocate`), so appends change no file size and each fdatasync stays cheap.
- A file that is created, renamed or deleted is durable only once its directory is fsynced:
  the callers here say when they need that (`fsync_dir`).
- It knows records only through wal_codec.decode_at and judges nothing about their
  content: what to index, and what is corruption, is decided by storage.py.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from agent.raft import wal_codec

SEGMENT_SUFFIX = ".seg"
_NONZERO = re.compile(rb"[^\x00]")


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (files created, renamed, deleted) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_data(fd: int) -> None:
    """Make written data and the file size durable (fdatasync where the platform has it)."""
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover - macOS and friends
        os.fsync(fd)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    pwritev_all(fd, [data], offset)


def pwritev_all(fd: int, parts: list, offset: int) -> None:
    """Write the buffers `parts` one after another from `offset`, without joining them."""
    views = [memoryview(part).cast("B") for part in parts if len(part)]
    while views:
        written = os.pwritev(fd, views, offset)
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


_ZERO_BLOCK = bytes(64 * 1024)


def next_nonzero(buf: bytes, start: int) -> int | None:
    """The offset of the first non-zero byte of `buf` at or after `start`, or None.

    Block by block: a segment ends in up to 64 MiB of preallocated zeros, and one regex
    search over them holds the GIL for almost half a second."""
    end, block = len(buf), len(_ZERO_BLOCK)
    position = start
    while position < end:
        stop = min(position + block, end)
        if buf[position:stop] != _ZERO_BLOCK[: stop - position]:
            match = _NONZERO.search(buf, position, stop)
            assert match is not None
            return match.start()
        position = stop
    return None


def preallocate(fd: int, offset: int, end: int) -> None:
    """Reserve zeroed space from `offset` to `end` where the file system can."""
    if end <= offset:
        return
    try:
        os.posix_fallocate(fd, offset, end - offset)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise


def later_write_start(buf: bytes, damaged_at: int) -> int | None:
    """The offset of a valid record that starts a write somewhere after `damaged_at`, or None.

    Only the last write (one save) can be torn by a crash: every write before it was fsynced
    before the next began. So a valid WRITE_START record after the damage proves that the
    damaged record belonged to an earlier, durable write (corruption); without one,
    everything from `damaged_at` on belongs to the last write (a torn tail).
    """
    probe: int | None = damaged_at + 1
    while probe is not None and probe < len(buf):
        record = wal_codec.decode_at(buf, probe)
        if record is None:
            # Skip runs of zeros fast: a record's 4-byte length is never 0, so a record
            # starts at most 3 bytes before the next non-zero byte.
            nonzero = next_nonzero(buf, probe + 1)
            probe = None if nonzero is None else max(probe + 1, nonzero - 3)
            continue
        if record.write_start:
            return probe
        probe += record.size
    return None


class Segment:
    """One open segment file: its sequence number, the end of its data (the file may be longer,
    preallocated with zeros) and the highest entry index ever written to it."""

    __slots__ = ("seq", "path", "fd", "size", "max_index")

    def __init__(self, seq: int, path: Path, fd: int, size: int) -> None:
        self.seq = seq
        self.path = path
        self.fd = fd
        self.size = size
        self.max_index = 0

    def read_all(self) -> bytes:
        """The whole file, preallocated zeros included."""
        return os.pread(self.fd, os.fstat(self.fd).st_size, 0)

    def read(self, start: int, end: int) -> bytes:
        return os.pread(self.fd, end - start, start)

    def append(self, data: bytes) -> None:
        """Write `data` at the end of the segment's data and make it durable (one fdatasync)."""
        pwrite_all(self.fd, data, self.size)
        sync_data(self.fd)
        self.size += len(data)

    def cut(self, offset: int, file_end: int) -> None:
        """Zero everything from `offset` on, durably, keeping the space preallocated up to `file_end`."""
        os.ftruncate(self.fd, offset)
        preallocate(self.fd, offset, file_end)
        sync_data(self.fd)
        self.size = offset

    def close(self) -> None:
        os.close(self.fd)

    def delete(self) -> None:
        """Close and unlink; the caller fsyncs the directory once for a group of deletions."""
        os.close(self.fd)
        self.path.unlink()


class SegmentDir:
    """The directory of segment files."""

    def __init__(self, path: Path, *, preallocate_bytes: int) -> None:
        self.path = path
        self._preallocate_bytes = preallocate_bytes

    def segment_path(self, seq: int) -> Path:
        return self.path / f"{seq:012d}{SEGMENT_SUFFIX}"

    def sequence_numbers(self) -> list[int]:
        """The sequence numbers of the segment files present, oldest first."""
        stems = (p.name[: -len(SEGMENT_SUFFIX)] for p in self.path.iterdir() if p.name.endswith(SEGMENT_SUFFIX))
        return sorted(int(stem) for stem in stems if stem.isdigit())

    def open(self, seq: int) -> Segment:
        path = self.segment_path(seq)
        fd = os.open(path, os.O_RDWR)
        return Segment(seq, path, fd, os.fstat(fd).st_size)

    def create(self, seq: int) -> Segment:
        """A new, empty segment with its space reserved. Durable once the directory is fsynced."""
        path = self.segment_path(seq)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            preallocate(fd, 0, self._preallocate_bytes)
        except OSError:
            os.close(fd)
            raise
        return Segment(seq, path, fd, 0)

    def sync(self) -> None:
        fsync_dir(self.path)
