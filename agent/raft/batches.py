"""Batch entries: many client commands in one Raft log entry, and snapshot capture.

Owns: the encoding of a batch entry (`encode_batch`, `decode_batch`), `CommandBatches`,
the StateMachine wrapper that applies a batch entry command by command,
`capture_snapshot`, which takes a state machine's state for a snapshot built later, and
`prepare_restore`, which decodes a snapshot for a state machine to put in place later.

Rules: a batch entry is BATCH_MARK followed by a msgpack list of byte strings; no
msgpack-encoded command can start with that mark, so a plain command is never mistaken
for a batch. Each command of a batch is applied as if it were an entry of its own at the
batch's index, keeping its own session check and result. A damaged batch is applied as
a NOOP (deterministically on every node), never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgpack

from agent.raft.statemachine import StateMachine
from agent.raft.types import Entry, EntryKind

__all__ = ["BATCH_MARK", "CommandBatches", "capture_snapshot", "decode_batch", "encode_batch", "prepare_restore"]

# 0xc1 is the one byte msgpack never uses, so no msgpack-encoded command starts with it.
BATCH_MARK = b"\xc1"


def encode_batch(commands: Sequence[bytes]) -> bytes:
    """The data of one log entry carrying many commands."""
    return BATCH_MARK + msgpack.packb(list(commands), use_bin_type=True)


def decode_batch(data: bytes) -> list[bytes] | None:
    """The commands of a batch entry; None when `data` is not a well-formed batch."""
    if data[:1] != BATCH_MARK:
        return None
    try:
        commands = msgpack.unpackb(data[1:], raw=False)
    except Exception:  # noqa: BLE001 - any damage means "not a batch"
        return None
    if type(commands) is not list or not set(map(type, commands)) <= {bytes}:
        return None
    return commands


class CommandBatches:
    """A StateMachine that unpacks batch entries for the machine it wraps.

    Each command of a batch is applied as if it were a NORMAL entry at the batch's index
    (the wrapped machine sees its applied index step back before each one), and the
    batch's result is the list of the commands' results, in order. A machine with its
    own `apply_batch(entry, commands)` gets the whole batch instead.
    """

    def __init__(self, inner: StateMachine) -> None:
        self.inner = inner
        self._apply_batch = getattr(inner, "apply_batch", None)

    @property
    def applied_index(self) -> int:
        return self.inner.applied_index

    def apply(self, entry: Entry) -> object:
        if entry.kind != EntryKind.NORMAL or entry.data[:1] != BATCH_MARK:
            return self.inner.apply(entry)
        commands = decode_batch(entry.data)
        if commands is None:
            # Only a leader writes entries, so this is a damaged log, not a peer's fault;
            # still, the machine must advance past it deterministically.
            return self.inner.apply(Entry(entry.index, entry.term, EntryKind.NOOP, b""))
        if self._apply_batch is not None:
            return self._apply_batch(entry, commands)
        if not commands:
            return self.inner.apply(Entry(entry.index, entry.term, EntryKind.NOOP, b""))
        inner = self.inner
        apply = inner.apply
        index, term, normal = entry.index, entry.term, EntryKind.NORMAL
        before = index - 1
        results = []
        append = results.append
        for command in commands:
            inner.applied_index = before
            append(apply(Entry(index, term, normal, command)))
        return results

    def snapshot(self) -> bytes:
        return self.inner.snapshot()

    def snapshot_builder(self) -> Callable[[], bytes]:
        return capture_snapshot(self.inner)

    def restore(self, data: bytes) -> None:
        self.inner.restore(data)

    def restore_builder(self, data: bytes) -> Callable[[], None]:
        return prepare_restore(self.inner, data)


def capture_snapshot(machine: StateMachine) -> Callable[[], bytes]:
    """The machine's state as of now, serialized by the function returned: with its
    `snapshot_builder` when it has one (a cheap capture now, the work later), else its
    bytes taken now."""
    builder = getattr(machine, "snapshot_builder", None)
    if builder is not None:
        return builder()
    data = machine.snapshot()
    return lambda: data


def prepare_restore(machine: StateMachine, data: bytes) -> Callable[[], None]:
    """Decode a snapshot for `machine` now (call it on a worker thread) and return what
    puts it in place (call that on the node's task): with the machine's
    `restore_builder` when it has one, else the whole `restore` waits for that call."""
    builder = getattr(machine, "restore_builder", None)
    if builder is not None:
        return builder(data)
    return lambda: machine.restore(data)
