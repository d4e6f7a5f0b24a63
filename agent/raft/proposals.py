"""The node's proposal bookkeeping: who waits for which command, until it is applied.

Owns: `Waiter`, what every caller of the node waits on (results by slot, or an error);
`Proposals`, the commands queued for the next turn and the entries proposed but not yet
applied, each with the callers (and their slots) it answers; and `pack_requests`, which
turns the queued requests into as few log entries as the bounds allow.

Rules it keeps:
- A proposal is answered only when its entry is applied with the term it was proposed
  in; an entry applied with another term (another leader's entry replaced ours) fails
  its callers with NotLeader: the outcome is unknown, the client retries with its session.
- A batch entry (batches.py) answers each command with its own result, in order; a plain
  entry answers its one caller.
- No I/O; nothing awaits but a caller in `Waiter.wait`. The node (node.py) calls the
  rest from within a turn.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import trio

from agent.raft.batches import encode_batch
from agent.raft.errors import NotLeader
from agent.raft.types import Entry

__all__ = ["Owners", "Proposals", "Waiter", "pack_requests"]


class Waiter:
    """One caller waiting for the node: results by slot, or an error."""

    __slots__ = ("event", "results", "remaining", "error")

    def __init__(self, slots: int) -> None:
        self.event = trio.Event()
        self.results: list[object] = [None] * slots
        self.remaining = slots
        self.error: BaseException | None = None

    def set_result(self, slot: int, value: object) -> None:
        if self.event.is_set():
            return
        self.results[slot] = value
        self.remaining -= 1
        if self.remaining <= 0:
            self.event.set()

    def set_results(self, first_slot: int, values: list[object]) -> None:
        if self.event.is_set():
            return
        self.results[first_slot : first_slot + len(values)] = values
        self.remaining -= len(values)
        if self.remaining <= 0:
            self.event.set()

    def fail(self, error: BaseException) -> None:
        if not self.event.is_set():
            self.error = error
            self.event.set()

    async def wait(self) -> list[object]:
        await self.event.wait()
        if self.error is not None:
            raise self.error
        return self.results


# (waiter, first slot, count) runs, in an entry's command order.
Owners = list[tuple[Waiter, int, int]]


@dataclass(slots=True)
class _PendingEntry:
    """A proposed entry of this leader: who waits for it, for which of their slots."""

    term: int
    batch: bool  # a batch entry: its result is a list, one item per command
    owners: Owners


def pack_requests(
    requests: list[tuple[list[bytes], Waiter]], *, pack: bool, max_commands: int, max_bytes: int
) -> tuple[list[bytes], list[Owners]]:
    """The entries' data for these requests, and who waits for each entry's commands.

    With `pack`, commands share batch entries of at most `max_commands` commands and
    (unless one command alone is bigger) `max_bytes` bytes; otherwise one entry each.
    """
    datas: list[bytes] = []
    owners_per_entry: list[Owners] = []
    if not pack:
        for commands, waiter in requests:
            for slot, command in enumerate(commands):
                datas.append(command)
                owners_per_entry.append([(waiter, slot, 1)])
        return datas, owners_per_entry
    chunk: list[bytes] = []
    owners: Owners = []
    size = 0
    for commands, waiter in requests:
        slot = 0
        while slot < len(commands):
            if chunk and (len(chunk) >= max_commands or size >= max_bytes):
                datas.append(encode_batch(chunk))
                owners_per_entry.append(owners)
                chunk, owners, size = [], [], 0
            # Take as many of this request's commands as fit: whole runs, not one by one.
            end = min(len(commands), slot + max_commands - len(chunk))
            run = commands[slot:end]
            run_bytes = sum(map(len, run))
            while len(run) > 1 and size + run_bytes > max_bytes:
                run = run[: len(run) // 2]
                run_bytes = sum(map(len, run))
            chunk.extend(run)
            owners.append((waiter, slot, len(run)))
            size += run_bytes
            slot += len(run)
    if chunk:
        datas.append(encode_batch(chunk))
        owners_per_entry.append(owners)
    return datas, owners_per_entry


class Proposals:
    """Commands waiting for a turn, and proposed entries waiting to be applied."""

    __slots__ = ("queued", "_pending", "term")

    def __init__(self) -> None:
        self.queued: deque[tuple[list[bytes], Waiter]] = deque()
        self._pending: dict[int, _PendingEntry] = {}  # entry index -> owners
        self.term = 0  # the term the pending entries were proposed in

    def has_pending(self) -> bool:
        return bool(self._pending)

    def take(self, max_commands: int) -> tuple[list[tuple[list[bytes], Waiter]], int]:
        """Queued requests, oldest first, up to about `max_commands` commands (whole
        requests), skipping callers already failed; and how many commands they hold."""
        taken: list[tuple[list[bytes], Waiter]] = []
        commands = 0
        queued = self.queued
        while queued and commands < max_commands:
            request = queued.popleft()
            if not request[1].event.is_set():
                taken.append(request)
                commands += len(request[0])
        return taken, commands

    def track(self, first_index: int, term: int, batch: bool, owners_per_entry: list[Owners]) -> None:
        """Entries first_index, first_index + 1, ... were proposed in `term` for these owners."""
        self.term = term
        for offset, owners in enumerate(owners_per_entry):
            self._pending[first_index + offset] = _PendingEntry(term, batch, owners)

    def resolve(self, entry: Entry, result: object, leader_hint: str | None) -> None:
        """`entry` was applied with `result`: answer whoever proposed it."""
        pending = self._pending.pop(entry.index, None) if self._pending else None
        if pending is None:
            return
        if pending.term != entry.term:
            # Another leader's entry replaced ours at this index: our outcome is unknown.
            for waiter, _, _ in pending.owners:
                waiter.fail(NotLeader(leader_hint))
            return
        if pending.batch and type(result) is list:
            position = 0
            for waiter, first_slot, count in pending.owners:
                waiter.set_results(first_slot, result[position : position + count])
                position += count
        else:
            for waiter, first_slot, count in pending.owners:
                waiter.set_results(first_slot, [result] * count)

    def deposed(self, is_leader: bool, term: int) -> bool:
        """True when entries are pending and this node no longer leads the term they
        were proposed in: their outcome is unknown."""
        return bool(self._pending) and (not is_leader or term != self.term)

    def fail_below(self, bound: int | None, error: BaseException) -> int:
        """Fail pending entries (all, or those below `bound`, which a snapshot covered);
        returns how many entries were failed."""
        if bound is None:
            pending, self._pending = self._pending, {}
        else:
            pending = {i: p for i, p in self._pending.items() if i < bound}
            for index in pending:
                del self._pending[index]
        for entry in pending.values():
            for waiter, _, _ in entry.owners:
                waiter.fail(error)
        return len(pending)

    def fail_all(self, error: BaseException) -> None:
        """The node stops: every queued and pending caller gets `error`."""
        self.fail_below(None, error)
        for _, waiter in self.queued:
            waiter.fail(error)
        self.queued.clear()
