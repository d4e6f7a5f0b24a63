"""The byte format of Raft's log segments: one record per log entry or hard-state change.

Owns: encoding records to bytes and decoding them back, nothing else (no files, no I/O).
Rules it keeps:
- Every record is `length:u32 | crc:u32 | flags:u8 | body`, little-endian. `length` counts
  `flags + body`; `crc` is zlib.crc32 (the IEEE polynomial, not crc32c) over the length
  bytes, the flags byte and the body, so a damaged length is caught like damaged data.
- The low bits of `flags` say what the body is (an ENTRY or a STATE); the WRITE_START bit
  marks the first record of one durable write (one `save`). Recovery uses that mark to tell
  a torn last write from damage in the middle of the log.
- Decoding never trusts a byte: a record that does not fit, does not check, or does not
  parse is reported as `None` (the caller decides whether that is a torn tail or
  corruption); it never raises on bad input.
- Numbers here are on disk forever: record types and flag bits are only ever appended.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from agent.raft.confchange import decode_conf_state, encode_conf_state
from agent.raft.types import Entry, EntryKind, HardState, SnapshotMeta

# --- record framing -------------------------------------------------------------------

_PREFIX = struct.Struct("<II")  # length, crc
PREFIX_BYTES = _PREFIX.size  # 8
_LENGTH = struct.Struct("<I")

TYPE_ENTRY = 1  # body: a log entry
TYPE_STATE = 2  # body: hard state + the bounds of the log (see LogState)
TYPE_MASK = 0x0F
FLAG_WRITE_START = 0x40  # first record of one write; the records up to the next such mark went with it

_ENTRY_HEAD = struct.Struct("<QQB")  # index, term, kind; the entry's data follows
_STATE_HEAD = struct.Struct("<QQQQQH")  # term, commit, first_index, prev_term, last_index, vote length

# A record longer than this is damage, not data: it bounds the memory a bad length can ask for.
MAX_RECORD_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LogState:
    """What a STATE record makes durable: the hard state and the bounds of the log.

    The log holds exactly the entries first_index..last_index at the point the record is
    written (first_index = last_index + 1 means empty); `prev_term` is the term of entry
    first_index - 1, kept so the boundary can still answer the consistency check of
    AppendEntries (Raft §5.3) after compaction (Raft §7).
    """

    hard_state: HardState
    first_index: int
    prev_term: int
    last_index: int


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record: exactly one of `entry` and `state` is set."""

    entry: Entry | None
    state: LogState | None
    write_start: bool
    size: int  # bytes the record takes on disk, prefix included


# --- encoding -------------------------------------------------------------------------


def _frame(flags_and_body: bytes) -> bytes:
    length = _LENGTH.pack(len(flags_and_body))
    crc = zlib.crc32(flags_and_body, zlib.crc32(length))
    return length + _LENGTH.pack(crc) + flags_and_body


_ENTRY_CRC_INPUT = struct.Struct("<IBQQB")  # what the crc covers before the data: length, flags, index, term, kind
_ENTRY_HEADER = struct.Struct("<IIBQQB")  # length, crc, flags, index, term, kind
ENTRY_HEADER_BYTES = _ENTRY_HEADER.size


def encode_entry(entry: Entry, *, write_start: bool = False) -> bytes:
    """The record of one entry."""
    parts, _ = encode_entries((entry,), write_start=write_start)
    return b"".join(parts)


def encode_entries(entries: Sequence[Entry], *, write_start: bool) -> tuple[list[bytes], list[int]]:
    """The records of a batch of entries as parts to join, and the size of each record.

    The same bytes as `encode_entry` for each, with WRITE_START on the first if asked; one
    tight loop because this is the hot path of every save.
    """
    parts: list[bytes] = []
    sizes: list[int] = []
    crc32, crc_input, header = zlib.crc32, _ENTRY_CRC_INPUT.pack, _ENTRY_HEADER.pack
    body_head = 1 + _ENTRY_HEAD.size
    flags = TYPE_ENTRY | (FLAG_WRITE_START if write_start else 0)
    for entry in entries:
        data = entry.data
        length = body_head + len(data)
        index, term, kind = entry.index, entry.term, entry.kind
        crc = crc32(data, crc32(crc_input(length, flags, index, term, kind)))
        parts.append(header(length, crc, flags, index, term, kind))
        parts.append(data)
        sizes.append(PREFIX_BYTES + length)
        flags = TYPE_ENTRY
    return parts, sizes


def encode_state(state: LogState, *, write_start: bool = False) -> bytes:
    flags = TYPE_STATE | (FLAG_WRITE_START if write_start else 0)
    hs = state.hard_state
    vote = b"" if hs.voted_for is None else hs.voted_for.encode("utf-8")
    # A vote for "" and no vote must differ on disk: store the length + 1, 0 meaning none.
    vote_field = 0 if hs.voted_for is None else len(vote) + 1
    head = _STATE_HEAD.pack(hs.term, hs.commit, state.first_index, state.prev_term, state.last_index, vote_field)
    return _frame(bytes((flags,)) + head + vote)


# --- decoding -------------------------------------------------------------------------


def decode_at(buf: bytes | memoryview, offset: int) -> Record | None:
    """Decode the record starting at `offset` of `buf`; None if it is not a whole, valid record."""
    end_of_buf = len(buf)
    if offset + PREFIX_BYTES > end_of_buf:
        return None
    length, crc = _PREFIX.unpack_from(buf, offset)
    if length < 1 or length > MAX_RECORD_BYTES:
        return None
    start = offset + PREFIX_BYTES
    end = start + length
    if end > end_of_buf:
        return None
    payload = buf[start:end]
    if zlib.crc32(payload, zlib.crc32(_LENGTH.pack(length))) != crc:
        return None
    flags = payload[0]
    kind = flags & TYPE_MASK
    write_start = bool(flags & FLAG_WRITE_START)
    if flags & ~(TYPE_MASK | FLAG_WRITE_START):
        return None
    size = PREFIX_BYTES + length
    if kind == TYPE_ENTRY:
        entry = _decode_entry(payload)
        return None if entry is None else Record(entry, None, write_start, size)
    if kind == TYPE_STATE:
        state = _decode_state(payload)
        return None if state is None else Record(None, state, write_start, size)
    return None


def _decode_entry(payload: bytes | memoryview) -> Entry | None:
    if len(payload) < 1 + _ENTRY_HEAD.size:
        return None
    index, term, kind = _ENTRY_HEAD.unpack_from(payload, 1)
    try:
        entry_kind = EntryKind(kind)
    except ValueError:
        return None
    return Entry(index, term, entry_kind, bytes(payload[1 + _ENTRY_HEAD.size :]))


def _decode_state(payload: bytes | memoryview) -> LogState | None:
    if len(payload) < 1 + _STATE_HEAD.size:
        return None
    term, commit, first_index, prev_term, last_index, vote_field = _STATE_HEAD.unpack_from(payload, 1)
    vote_bytes = bytes(payload[1 + _STATE_HEAD.size :])
    if vote_field == 0:
        if vote_bytes:
            return None
        voted_for = None
    else:
        if len(vote_bytes) != vote_field - 1:
            return None
        try:
            voted_for = vote_bytes.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if first_index < 1 or last_index < first_index - 1:
        return None
    return LogState(HardState(term, voted_for, commit), first_index, prev_term, last_index)


# --- snapshot file --------------------------------------------------------------------
#
# `magic | version:u8 | index:u64 | term:u64 | conf_length:u32 | conf | data | crc:u32`,
# the conf in confchange.py's encoding, the crc (zlib.crc32) covering everything before
# it. The file is only ever renamed into place whole, so any damage found on reading is
# corruption, never a torn write.

SNAPSHOT_MAGIC = b"AGSNAP"
SNAPSHOT_VERSION = 2
_SNAPSHOT_HEAD = struct.Struct("<6sBQQI")


def encode_snapshot(meta: SnapshotMeta, data: bytes | bytearray | memoryview) -> list:
    """The snapshot file's bytes as parts to write in order (the data itself is never
    copied: it can be tens of MB)."""
    conf = encode_conf_state(meta.conf)
    head = _SNAPSHOT_HEAD.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, meta.index, meta.term, len(conf))
    crc = zlib.crc32(data, zlib.crc32(conf, zlib.crc32(head)))
    return [head, conf, data, _LENGTH.pack(crc)]


def decode_snapshot(blob: bytes) -> tuple[SnapshotMeta, memoryview] | None:
    """The snapshot in `blob` (its data a view into `blob`), or None if it is damaged."""
    if len(blob) < _SNAPSHOT_HEAD.size + _LENGTH.size:
        return None
    view = memoryview(blob)
    body, (crc,) = view[: -_LENGTH.size], _LENGTH.unpack_from(blob, len(blob) - _LENGTH.size)
    if zlib.crc32(body) != crc:
        return None
    magic, version, index, term, conf_length = _SNAPSHOT_HEAD.unpack_from(blob, 0)
    if magic != SNAPSHOT_MAGIC or version != SNAPSHOT_VERSION:
        return None
    conf_end = _SNAPSHOT_HEAD.size + conf_length
    if conf_end > len(body):
        return None
    try:
        conf = decode_conf_state(bytes(body[_SNAPSHOT_HEAD.size : conf_end]))
    except ValueError:
        return None
    return SnapshotMeta(index, term, conf), body[conf_end:]
