"""A small replicated key-value store with client sessions, for tests and benchmarks.

Owns: the command encoding of the test store and its deterministic application.
Rules: every command carries (client_id, seq); a client has at most one command
outstanding and numbers them 1, 2, 3...; a command whose seq was already applied is
not applied again and returns the cached result (thesis §6.3), so clients may retry a
write freely. A malformed command returns an error result, never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

import msgpack

from agent.raft.types import Entry, EntryKind


@dataclass(frozen=True, slots=True)
class KvError:
    """The result of a command that could not be applied."""

    reason: str


STALE = KvError("stale_sequence")  # the seq is older than the session's last: its result is gone


def encode_put(client_id: str, seq: int, key: str, value: str) -> bytes:
    return msgpack.packb((client_id, seq, "put", key, value))


def encode_cas(client_id: str, seq: int, key: str, expected: str | None, value: str) -> bytes:
    """Set key to value only when it currently holds `expected`; result is True/False."""
    return msgpack.packb((client_id, seq, "cas", key, value, expected))


def encode_delete(client_id: str, seq: int, key: str) -> bytes:
    return msgpack.packb((client_id, seq, "del", key))


class KvStore:
    """Implements agent.raft.statemachine.StateMachine."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.sessions: dict[str, tuple[int, object]] = {}  # client -> (last seq, its result)
        self.applied_index = 0
        self.commands_applied = 0  # how many commands changed (or tried to change) state

    def get(self, key: str) -> str | None:
        """Local read; linearizable only behind a ReadIndex (thesis §6.4)."""
        return self.data.get(key)

    def apply(self, entry: Entry) -> object:
        self._advance_to(entry.index)
        if entry.kind != EntryKind.NORMAL:
            return None
        return self._apply_command(entry.data)

    def apply_batch(self, entry: Entry, commands: list[bytes]) -> list[object]:
        """Apply the commands packed in one batch entry (node.CommandBatches), in order;
        each keeps its own session check and result."""
        self._advance_to(entry.index)
        apply_command = self._apply_command
        return [apply_command(command) for command in commands]

    def _advance_to(self, index: int) -> None:
        if index != self.applied_index + 1:
            raise ValueError(f"apply {index} after {self.applied_index}: entries out of order")
        self.applied_index = index

    def _apply_command(self, data: bytes) -> object:
        try:
            command = msgpack.unpackb(data)
            client_id, seq, op = command[0], command[1], command[2]
            if type(client_id) is not str or type(seq) is not int:
                return KvError("bad_session")
        except Exception:  # a malformed command from a client must not stop the log
            return KvError("malformed")
        last = self.sessions.get(client_id)
        if last is not None:
            if seq == last[0]:
                return last[1]
            if seq < last[0]:
                return STALE
        result = self._execute(op, command)
        self.sessions[client_id] = (seq, result)
        self.commands_applied += 1
        return result

    def _execute(self, op: object, command: list) -> object:
        try:
            if op == "put":
                self.data[command[3]] = command[4]
                return None
            if op == "del":
                return self.data.pop(command[3], None) is not None
            if op == "cas":
                key, value, expected = command[3], command[4], command[5]
                if self.data.get(key) != expected:
                    return False
                self.data[key] = value
                return True
        except (IndexError, TypeError):
            return KvError("malformed")
        return KvError("unknown_op")

    def snapshot(self) -> bytes:
        return bytes(self.snapshot_builder()())

    def snapshot_builder(self) -> Callable[[], bytearray]:
        """Copy the containers now (about 12 ms for 500,000 keys); pack them later, off
        the node's task, chunk by chunk (see _SNAPSHOT_CHUNK)."""
        index, data, sessions = self.applied_index, self.data.copy(), self.sessions.copy()

        def pack() -> bytearray:
            parts = [msgpack.packb({"v": _SNAPSHOT_VERSION, "i": index, "d": len(data), "s": len(sessions)})]
            pairs = iter(data.items())
            while chunk := list(islice(pairs, _SNAPSHOT_CHUNK)):
                parts.append(msgpack.packb([item for pair in chunk for item in pair]))
            triples = iter(sessions.items())
            while chunk := list(islice(triples, _SNAPSHOT_CHUNK)):
                flat = []
                for client, (seq, result) in chunk:
                    flat += (client, seq, _encode_result(result))
                parts.append(msgpack.packb(flat))
            return _join_in_pieces(parts)

        return pack

    def restore(self, data: bytes | bytearray | memoryview) -> None:
        self.restore_builder(data)()

    def restore_builder(self, data: bytes | bytearray | memoryview) -> Callable[[], None]:
        """Decode a snapshot now, chunk by chunk (the slow part, for a worker thread);
        the function returned puts it in place at once (for the node's task)."""
        objects = _unpack_in_pieces(data)
        header = next(objects, None)
        if type(header) is not dict or header.get("v") != _SNAPSHOT_VERSION:
            raise ValueError("not a KvStore snapshot")
        store: dict[str, str] = {}
        while len(store) < header["d"]:
            flat = next(objects)
            store.update(zip(flat[::2], flat[1::2]))
        sessions: dict[str, tuple[int, object]] = {}
        while len(sessions) < header["s"]:
            flat = next(objects)
            for k in range(0, len(flat), 3):
                sessions[flat[k]] = (flat[k + 1], _decode_result(flat[k + 2]))
        index = header["i"]

        def install() -> None:
            self.applied_index, self.data, self.sessions = index, store, sessions

        return install


# A snapshot is a stream of msgpack objects: a header {"v", "i": applied index, "d": keys,
# "s": sessions}, then the keys as flat [key, value, ...] lists and the sessions as flat
# [client, seq, result, ...] lists of at most _SNAPSHOT_CHUNK items each. Every step of
# packing and unpacking is then short: a worker thread doing it lets the node's Trio
# thread have the GIL between steps (one msgpack call over the whole state held it for
# hundreds of milliseconds).
_SNAPSHOT_VERSION = 2
_SNAPSHOT_CHUNK = 2048
_FEED_BYTES = 256 * 1024


def _unpack_in_pieces(data: bytes | bytearray | memoryview) -> Iterator[object]:
    unpacker = msgpack.Unpacker(raw=False)
    view = memoryview(data)
    for start in range(0, len(view), _FEED_BYTES):
        unpacker.feed(view[start : start + _FEED_BYTES])
        yield from unpacker


def _join_in_pieces(parts: list[bytes]) -> bytearray:
    """b"".join(parts), copied part by part: one large copy holds the GIL for long."""
    joined = bytearray(sum(map(len, parts)))
    position = 0
    for part in parts:
        joined[position : position + len(part)] = part
        position += len(part)
    return joined


def _encode_result(result: object) -> object:
    if isinstance(result, KvError):
        return {"err": result.reason}
    return result


def _decode_result(result: object) -> object:
    if isinstance(result, dict) and "err" in result:
        return KvError(result["err"])
    return result
