"""The Trio driver of one Raft node: it owns the RaftCore, its storage and its state machine.

Owns: the one task that runs the core (`RaftNode.run`); the clock that ticks it; the
Ready loop (persist, send, apply, serve reads, advance); taking state-machine snapshots
and compacting the log; and the async API the rest of agentd calls: `propose`,
`propose_many`, `read`, `transfer_leadership`, `add_learner`, `promote`, `remove`,
`status`, `soft_state` and `wait_status_change`, `wait_leader`, `wait_applied`. A node
joining a cluster starts from an empty storage, without bootstrap: once its address is
known to the others (`RaftTransport.add_peer` on both sides) the leader adds it with
`add_learner` and it takes the log (or a snapshot) from the leader.

Rules it keeps:
- The core is touched only in `_turn` (and when a snapshot's Ready is finished), never
  across an await, so turns never interleave.
  Callers queue requests (proposals, reads, admin calls, peer messages) and wait on
  their own waiter. The run task ticks the clock and takes a turn whenever woken, so
  proposals and reads queued meanwhile share one turn (one entry, one heartbeat
  round). Peer messages, which arrive one batch per RPC, and a proposal to an idle
  leader take a turn at once in the caller's own task: that saves a switch to the run
  task (about 0.1 ms, measured) on every write's path when there is nothing to batch. A
  turn drains at most `max_inputs_per_turn` queued items and leaves the rest to the
  run task, so a flood cannot starve ticks and heartbeats.
- The Ready contract of core.py, in order: a leader's early messages (its appends) go
  to the transport first, so the followers' writes overlap ours; then storage
  (snapshot, then entries and hard state, one fdatasync); only then the other
  messages; then apply committed entries, serve reads, `advance`. Processing a Ready
  never awaits, so nothing can interleave with it -- except a Ready carrying a
  leader's snapshot, whose slow parts run on worker threads (below).
- The Trio thread is shared (with SWIM, in agentd): no step of the node may hold it
  for long. Whatever is slow runs on a worker thread: recovery at start (restoring
  the snapshot, reading the log), writing, placing and removing files for snapshots
  and compaction, and decoding a snapshot for the state machine. The Ready contract
  still holds: a leader's snapshot is written, placed and the log rebased on it
  before anything of its Ready is written or sent; the state machine's new state is
  put in place, on the node's task, before the entries after it are applied; no
  other Ready is taken meanwhile, while turns go on taking inputs and ticks. One
  snapshot is placed at a time (`_snapshot_lock`): ours and the leader's never race.
- Many proposals waiting at one turn become few log entries: with `pack_commands` the
  commands are packed into batch entries (batches.py), each command keeping its own
  result; one fsync and one RPC per peer carry them all. Who waits for which command
  is proposals.py's bookkeeping.
- A proposal is answered only when its entry is applied with the term it was proposed
  in. When this node stops leading (or its term moves on), every pending proposal fails
  with NotLeader: its outcome is unknown and the client retries with its session.
- Reads are linearizable through ReadIndex (thesis §6.4): served once the state machine
  has applied the index the leader confirmed with a quorum. Never from local state alone.
- Snapshots (Raft §7): the state is captured in a turn, at an applied index (a cheap
  copy when the machine has `snapshot_builder`, its bytes otherwise); serializing,
  writing and fsyncing run on a worker thread (storage.prepare_snapshot), one snapshot
  at a time; then it is placed (a thread) and adopted (the node's task), and only then
  is the log compacted. A leader's snapshot installed meanwhile supersedes ours.
- A storage failure or a broken invariant stops the node, wherever the turn ran (in the
  run task or in a caller's task): the failure is recorded in one log line, every
  waiting caller gets NodeStopped, no turn is taken again, and `run` raises NodeStopped
  (the cause chained), ending its caller's nursery. Never a node half alive.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

from agent.raft.batches import CommandBatches, capture_snapshot, prepare_restore
from agent.raft.config import RaftConfig
from agent.raft.confchange import ConfChange, ConfChangeKind
from agent.raft.core import RaftCore, Ready, Role, SoftState
from agent.raft.errors import NodeStopped, NotLeader, RaftError, RaftInvariantError
from agent.raft.messages import Message
from agent.raft.proposals import Proposals, Waiter, pack_requests
from agent.raft.statemachine import StateMachine
from agent.raft.storage import RaftStorage, SnapshotData, StorageError
from agent.raft.types import ConfState, Entry, SnapshotMeta

__all__ = ["NodeConfig", "RaftNode", "bootstrap_storage"]

log = logging.getLogger(__name__)
T = TypeVar("T")

# --------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class NodeConfig:
    # Take a state-machine snapshot after this many applied entries, then compact the
    # log: bounds disk use and restart time.
    snapshot_every_entries: int = 10_000
    # ... or after this many bytes of applied entries, whichever comes first: batch
    # entries can carry thousands of commands each.
    snapshot_every_bytes: int = 64 * 1024 * 1024
    # Entries kept behind a snapshot, so a follower a little behind catches up with
    # appends instead of a whole snapshot.
    compaction_retain_entries: int = 2_000
    # Pack the commands waiting at one turn into batch entries (the state machine is
    # wrapped in CommandBatches): one entry, one fsync and one append serve them all.
    pack_commands: bool = True
    # Bounds of one batch entry: small enough that applying one stays a short pause.
    max_commands_per_entry: int = 1024
    max_entry_bytes: int = 128 * 1024
    # Commands taken from the proposal queue per loop turn (the rest wait a turn): bounds
    # the work of one turn, and one Ready's write, to a few milliseconds.
    max_commands_per_turn: int = 16_384
    # Inputs (peer batches, proposals, reads, admin calls) handled per loop turn: bounds
    # the work between two clock checks so ticks and heartbeats are never starved.
    max_inputs_per_turn: int = 256
    # Peer message batches waiting for the run task; above it the transport's handler
    # waits, which pushes back on the sender.
    max_queued_peer_batches: int = 1024


def bootstrap_storage(storage: RaftStorage, voters: Sequence[str], initial_state: bytes) -> bool:
    """Give a brand-new storage its first configuration: a snapshot at index 0 naming the
    voters (the state machine's empty state as data). Returns False, doing nothing, when
    the storage already holds anything (a restart must recover, never re-bootstrap)."""
    if storage.load_snapshot() is not None or storage.last_index() > 0 or storage.hard_state().term > 0:
        return False
    storage.save_snapshot(SnapshotMeta(0, 0, ConfState(voters=tuple(voters))), initial_state)
    return True


# --------------------------------------------------------------------------- the node


class RaftNode:
    """One Raft node driven by Trio. Start it with `await nursery.start(node.run)`: run()
    recovers the node (on a worker thread) before it reports started; `core`, `status()`
    and the calls that need them are for a started node."""

    def __init__(
        self,
        node_id: str,
        storage: RaftStorage,
        state_machine: StateMachine,
        send: Callable[[list[Message]], None],
        raft_config: RaftConfig = RaftConfig(),
        config: NodeConfig = NodeConfig(),
        rng: random.Random | None = None,
    ) -> None:
        self.id = node_id
        self.config = config
        self.raft_config = raft_config
        self.storage = storage
        self.state_machine = state_machine  # what reads query
        self._applier: StateMachine = CommandBatches(state_machine) if config.pack_commands else state_machine
        self._send = send
        self._rng = rng or random.Random()
        self.stats: Counter[str] = Counter()
        # The core: built by run(), off the Trio thread (it reads the whole log).
        self.core: RaftCore = None  # type: ignore[assignment]

        self._last_snapshot_index = 0
        self._bytes_since_snapshot = 0
        self._snapshot_writing = False  # a snapshot file is being written on a worker thread
        self._snapshot_lock = trio.Lock()  # one snapshot placed (and the log rebased) at a time
        self._background: trio.Nursery | None = None

        # Inputs, drained by the run task.
        self._peer_batches: deque[tuple[list[Message], Waiter | None]] = deque()
        self._collectors: dict[str, Waiter] = {}  # peer -> the RPC waiting for our messages to it
        self._peer_space = trio.Event()
        self._proposals = Proposals()
        self._reads: deque[tuple[bytes, Waiter]] = deque()
        self._admin: deque[tuple[Callable[[RaftCore], Any], Waiter]] = deque()
        self._wakeup = trio.Event()

        # Waiting for the core or the state machine.
        self._read_waiters: dict[bytes, Waiter] = {}  # read context -> waiter
        self._forwarded_reads: dict[bytes, str | None] = {}  # read context -> leader asked
        self._reads_to_apply: list[tuple[int, int, bytes]] = []  # heap of (index, seq, context)
        self._read_ids = itertools.count(1)
        self._apply_waiters: list[tuple[int, int, Waiter]] = []  # heap: wait until applied >= index
        self._status_changed = trio.Event()  # set (and replaced) when term, leader or role change

        self._term = 0
        self._leader_id: str | None = None
        self._role = Role.FOLLOWER
        self.leader_changes = 0  # times a different leader (or none) was seen
        self._running = False
        self._failure: BaseException | None = None  # what stopped the node, for good

    # ----------------------------------------------------------------- public: facts
    @property
    def leader_id(self) -> str | None:
        return self._leader_id

    @property
    def term(self) -> int:
        return self._term

    @property
    def role(self) -> Role:
        return self._role

    def is_leader(self) -> bool:
        return self._role == Role.LEADER

    @property
    def soft_state(self) -> SoftState:
        """This node's term, the leader it knows (None when unknown) and its own role."""
        return SoftState(self._term, self._leader_id, self._role)

    async def wait_status_change(self, seen: SoftState) -> SoftState:
        """Return `soft_state` as soon as it differs from `seen` (at once when it already
        does): how the rest of agentd follows elections. NodeStopped if the node fails."""
        while True:
            self._check_running()
            current = self.soft_state
            if current != seen:
                return current
            await self._status_changed.wait()

    def leader_silent_s(self) -> float:
        """Seconds since this node last heard from a leader (0 on the leader)."""
        return self.core.leader_silent_ticks * self.raft_config.tick_interval_ms / 1000

    def status(self) -> dict[str, Any]:
        """A consistent-enough picture of this node for status pages and tests."""
        core = self.core
        counters = Counter(core.stats)
        counters.update(self.stats)
        conf = core.conf_state
        return {
            "node_id": self.id,
            "term": core.term,
            "role": core.role.name.lower(),
            "leader_id": core.leader_id,
            "commit_index": core.commit_index,
            "applied_index": self._applier.applied_index,
            "last_index": core.last_index(),
            "first_index": self.storage.first_index(),
            "snapshot_index": self.storage.snapshot_meta().index,
            "voters": list(conf.voters),
            "learners": list(conf.learners),
            "counters": dict(counters),
        }

    # ----------------------------------------------------------------- public: calls
    async def receive(self, messages: list[Message]) -> None:
        """Hand messages from peers to the node (replies to our own RPCs, for instance)."""
        await self._enqueue_peer_batch(messages, None)
        self._turn_now()

    async def exchange(self, messages: list[Message], queued: Callable[[], None] | None = None) -> list[Message]:
        """Hand messages from one peer to the node and return what the node has for that
        peer once it processed them: the acks they caused, already made durable (the
        Ready contract). The transport's servicer answers an RPC with these. `queued`
        is called as soon as the messages are in the node's queue (order is kept)."""
        collector = Waiter(1)
        collector.results[0] = []
        await self._enqueue_peer_batch(messages, collector)
        if queued is not None:
            queued()
        self._turn_now()
        await collector.wait()
        return collector.results[0]  # type: ignore[return-value]

    async def _enqueue_peer_batch(self, messages: list[Message], collector: Waiter | None) -> None:
        self._check_running()
        while len(self._peer_batches) >= self.config.max_queued_peer_batches:
            self.stats["peer_input_waits"] += 1
            if self._peer_space.is_set():  # one event shared by every waiting handler
                self._peer_space = trio.Event()
            await self._peer_space.wait()
            self._check_running()
        self._peer_batches.append((messages, collector))

    async def propose(self, command: bytes) -> object:
        """Replicate one command; return what the state machine's apply returned for it.

        Raises NotLeader (outcome unknown: retry with the same session) or another
        RaftError the core refuses with. Cancel the caller to give up waiting.
        """
        return (await self.propose_many([command]))[0]

    async def propose_many(self, commands: Sequence[bytes]) -> list[object]:
        """Replicate several commands together; their results, in order."""
        if not commands:
            return []
        self._check_running()
        if self._role != Role.LEADER:
            raise NotLeader(self._leader_id)
        waiter = Waiter(len(commands))
        queued = self._proposals.queued
        queued.append((list(commands), waiter))
        if not self._proposals.has_pending() and len(queued) == 1:
            self._turn_now()  # an idle leader: no batch to wait for, go at once
        else:
            self._wakeup.set()  # under load the run task packs all waiting proposals together
        return await waiter.wait()

    async def read(self, query: Callable[[Any], T]) -> T:
        """Run `query(state_machine)` at a linearizable point (ReadIndex, thesis §6.4).

        Works on followers too (the leader confirms the read index). Raises NotLeader
        when no leader can confirm it.
        """
        self._check_running()
        context = next(self._read_ids).to_bytes(8, "big")
        waiter = Waiter(1)
        self._read_waiters[context] = waiter
        self._reads.append((context, waiter))
        self._wakeup.set()
        try:
            await waiter.wait()
        finally:
            self._read_waiters.pop(context, None)
            self._forwarded_reads.pop(context, None)
        return query(self.state_machine)

    async def transfer_leadership(self, target: str, *, timeout_s: float | None = None) -> bool:
        """Ask the leader (this node) to hand over to `target` (thesis §3.10); True once
        `target` is seen leading within `timeout_s` (default: two election timeouts)."""
        await self._call_core(lambda core: core.transfer_leadership(target))
        if timeout_s is None:
            timeout_s = 2 * self._election_timeout_s()
        with trio.move_on_after(timeout_s):
            while self._leader_id != target:
                await self._status_changed.wait()
            return True
        return False

    async def add_learner(self, node_id: str) -> int:
        """Add a non-voting member; returns the index of the applied CONFIG entry."""
        return await self._conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, node_id))

    async def promote(self, node_id: str) -> int:
        """Make a caught-up learner a voter (thesis §4.1)."""
        return await self._conf_change(ConfChange(ConfChangeKind.PROMOTE, node_id))

    async def remove(self, node_id: str) -> int:
        """Remove a voter or learner."""
        return await self._conf_change(ConfChange(ConfChangeKind.REMOVE, node_id))

    async def wait_applied(self, index: int) -> None:
        """Return once the state machine has applied `index`."""
        if self._applier.applied_index >= index:
            return
        self._check_running()
        waiter = Waiter(1)
        heapq.heappush(self._apply_waiters, (index, id(waiter), waiter))
        await waiter.wait()

    async def wait_leader(self) -> str:
        """Return the leader's id once one is known."""
        while self._leader_id is None:
            self._check_running()
            await self._status_changed.wait()
        return self._leader_id

    async def _conf_change(self, change: ConfChange) -> int:
        applied = Waiter(1)

        def propose(core: RaftCore) -> int:
            # Runs in the run task: the entry is tracked before it can possibly apply.
            index = core.propose_conf_change(change)
            self._proposals.track(index, core.term, False, [[(applied, 0, 1)]])
            return index

        index = await self._call_core(propose)
        await applied.wait()
        return index

    async def _call_core(self, fn: Callable[[RaftCore], T]) -> T:
        self._check_running()
        waiter = Waiter(1)
        self._admin.append((fn, waiter))
        self._wakeup.set()
        return (await waiter.wait())[0]  # type: ignore[return-value]

    def _election_timeout_s(self) -> float:
        cfg = self.raft_config
        return cfg.election_timeout_ticks * cfg.tick_interval_ms / 1000

    # ----------------------------------------------------------------- the run task
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Drive the core (with its snapshot writers, in a nursery of its own) until
        cancelled, or until the node fails: then it raises NodeStopped."""
        if self.core is not None:
            raise RaftInvariantError("RaftNode.run started twice")
        await trio.to_thread.run_sync(self._recover)
        tick_s = self.raft_config.tick_interval_ms / 1000
        log.info("%s event=raft_node_started term=%d last=%d applied=%d voters=%s", self.id, self.core.term,
                 self.core.last_index(), self._applier.applied_index, ",".join(self.core.conf_state.voters))
        try:
            async with trio.open_nursery() as background:
                self._background = background
                self._running = True
                task_status.started()
                await self._loop(tick_s)
                background.cancel_scope.cancel()  # failed: nothing more gets written
        finally:
            self._background = None
            self._fail_everything(NotLeader(None))
            self._running = False
        raise NodeStopped(f"{self.id} stopped: {self._failure!r}") from self._failure

    def _recover(self) -> None:
        """Restore the state machine from the snapshot and build the core from the log.
        Slow for a large state or a long log: run() calls it on a worker thread, before
        anything else may touch the node's storage or state machine."""
        storage, machine = self.storage, self.state_machine
        snapshot = storage.load_snapshot()
        if snapshot is not None:
            machine.restore(snapshot[1])
            if machine.applied_index != snapshot[0].index:
                raise RaftInvariantError(
                    f"{self.id} snapshot at {snapshot[0].index} restored to applied {machine.applied_index}"
                )
        self._last_snapshot_index = storage.snapshot_meta().index
        self.core = RaftCore(
            self.id, storage, self.raft_config, self._rng, storage.hard_state(), machine.applied_index
        )
        self._term = self.core.term

    async def _loop(self, tick_s: float) -> None:
        """Tick the clock and take a turn whenever woken, until cancelled or failed."""
        next_tick = trio.current_time() + tick_s
        while self._failure is None:
            if not self._has_input() and not self.core.has_ready():
                with trio.move_on_at(next_tick):
                    await self._wakeup.wait()
            self._wakeup = trio.Event()
            now = trio.current_time()
            if now >= next_tick:
                self._guarded(self.core.tick)
                next_tick += tick_s
                if next_tick <= now:  # the loop stalled (or the process was stopped)
                    self.stats["ticks_late"] += 1
                    next_tick = now + tick_s
            self._turn()
            await trio.lowlevel.checkpoint()

    def _turn(self) -> None:
        """One turn of the core: take the queued inputs, process the Ready they caused,
        answer the RPCs waiting for our messages. Never awaits, so it is atomic."""
        self._guarded(self._turn_body)

    def _turn_body(self) -> None:
        self._take_inputs()
        if self.core.has_ready():
            rd = self.core.ready()
            if rd.snapshot is None:
                self._handle_ready(rd)
            else:  # a leader's snapshot: slow, so its Ready is processed off this turn
                self._background.start_soon(self._install_snapshot_ready, rd)
        if self._collectors:
            self._answer_collectors()
        if self._has_input() or self.core.has_ready():
            self._wakeup.set()  # over this turn's budget: the run task goes on with it

    def _turn_now(self) -> None:
        """Take a turn in the caller's task, right after it queued its input: saves a
        switch to the run task on the path of every write (the run task still ticks and
        takes whatever is left over). Only while the run task runs."""
        if self._running:
            self._turn()
        else:
            self._wakeup.set()

    def _guarded(self, step: Callable[[], object]) -> None:
        """Run one step of the node's work, unless it has failed; a failure stops it."""
        if self._failure is not None:
            return
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - storage, invariants: every one stops the node
            self._stop(exc)

    def _stop(self, failure: BaseException) -> None:
        """The node failed: say so once, fail every waiting caller, wake the run task
        (which then raises NodeStopped). No turn is taken after this."""
        if self._failure is not None:
            return
        self._failure = failure
        storage = isinstance(failure, (OSError, StorageError))
        log.critical("%s event=raft_node_failed cause=%s error=%r action=stop", self.id,
                     "storage" if storage else "bug", failure, exc_info=not storage)
        stopped = NodeStopped(f"{self.id} stopped: {failure!r}")
        for collector in self._collectors.values():
            collector.fail(stopped)
        self._collectors.clear()
        self._fail_everything(stopped)
        self._peer_space.set()
        self._status_changed.set()
        self._wakeup.set()

    def _check_running(self) -> None:
        if self._failure is not None:
            raise NodeStopped(f"{self.id} stopped: {self._failure!r}")

    def _has_input(self) -> bool:
        return bool(self._peer_batches or self._proposals.queued or self._reads or self._admin)

    def _take_inputs(self) -> None:
        budget = self.config.max_inputs_per_turn
        core = self.core
        batches = self._peer_batches
        collectors = self._collectors
        while batches and budget > 0:
            budget -= 1
            messages, collector = batches.popleft()
            for msg in messages:
                core.step(msg)
            if collector is not None:
                src = messages[0].src
                earlier = collectors.get(src)
                if earlier is not None:
                    earlier.set_result(0, earlier.results[0])  # answer it now, empty-handed
                collectors[src] = collector
        if len(batches) < self.config.max_queued_peer_batches:
            self._peer_space.set()
        while self._admin and budget > 0:
            budget -= 1
            fn, waiter = self._admin.popleft()
            try:
                result = fn(core)
            except RaftError as exc:
                waiter.fail(exc)
            else:
                waiter.set_result(0, result)
        while self._reads and budget > 0:
            budget -= 1
            context, waiter = self._reads.popleft()
            if waiter.event.is_set() or context not in self._read_waiters:
                continue  # the caller gave up
            try:
                core.read_index(context)
            except RaftError as exc:
                self._read_waiters.pop(context, None)
                waiter.fail(exc)
            else:
                if core.role != Role.LEADER:
                    self._forwarded_reads[context] = core.leader_id
        if self._proposals.queued:
            self._propose_waiting()

    def _propose_waiting(self) -> None:
        """Turn the waiting proposals into as few log entries as the bounds allow."""
        core = self.core
        cfg = self.config
        taken, commands = self._proposals.take(cfg.max_commands_per_turn)
        if not taken:
            return
        if core.role != Role.LEADER:
            for _, waiter in taken:
                waiter.fail(NotLeader(core.leader_id))
            return
        datas, owners_per_entry = pack_requests(
            taken, pack=cfg.pack_commands, max_commands=cfg.max_commands_per_entry, max_bytes=cfg.max_entry_bytes
        )
        try:
            first, _last = core.propose_many(datas)
        except RaftError as exc:
            for _, waiter in taken:
                waiter.fail(exc)
            return
        self._proposals.track(first, core.term, cfg.pack_commands, owners_per_entry)
        self.stats["commands_proposed"] += commands
        self.stats["entries_proposed"] += len(datas)

    # ----------------------------------------------------------------- the Ready contract
    def _handle_ready(self, rd: Ready, restore: Callable[[], None] | None = None) -> None:
        """Process a Ready by the contract; one carrying a snapshot arrives here with the
        snapshot already durable and `restore`, which puts its state in place."""
        storage = self.storage
        # 0. A leader's appends leave now, so followers write while we do (thesis §10.2.1).
        if rd.early_messages:
            self._send(rd.early_messages)
        # 1. Durable first: snapshot (done by _install_snapshot_ready), then entries and
        # hard state (one fdatasync).
        if (rd.snapshot is None) != (restore is None):
            raise RaftInvariantError("a snapshot is installed by _install_snapshot_ready, and only a snapshot")
        if rd.entries or rd.hard_state is not None:
            storage.save(rd.hard_state, rd.entries)
        # 2. Only now may anything that depends on it leave.
        if rd.messages:
            self._send_messages(rd.messages)
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.term, rd.soft_state.leader_id, rd.soft_state.role)
        # 3. Apply.
        if rd.snapshot is not None:
            meta = rd.snapshot[0]
            restore()
            if self._applier.applied_index != meta.index:
                raise RaftInvariantError(f"{self.id} snapshot at {meta.index} restored to {self._applier.applied_index}")
            self._last_snapshot_index, self._bytes_since_snapshot = meta.index, 0
            self.stats["snapshots_restored"] += 1
            self._proposals.fail_below(meta.index + 1, NotLeader(self.core.leader_id))
        for entry in rd.committed_entries:
            self._apply(entry)
        # 4. Reads.
        for read_state in rd.read_states:
            self._forwarded_reads.pop(read_state.context, None)  # answered: only applying is left
            heapq.heappush(self._reads_to_apply, (read_state.index, next(self._read_ids), read_state.context))
        for context in rd.dropped_reads:
            self._forwarded_reads.pop(context, None)
            waiter = self._read_waiters.pop(context, None)
            if waiter is not None:
                waiter.fail(NotLeader(self.core.leader_id))
        self._release_waiters()
        # 5. Done.
        self.core.advance(rd)
        self._maybe_snapshot()

    def _send_messages(self, messages: list[Message]) -> None:
        collectors = self._collectors
        if not collectors:
            self._send(messages)
            return
        rest = []
        for msg in messages:
            collector = collectors.get(msg.dst)
            if collector is not None:
                collector.results[0].append(msg)
            else:
                rest.append(msg)
        if rest:
            self._send(rest)
        self._answer_collectors()

    def _answer_collectors(self) -> None:
        for collector in self._collectors.values():
            collector.set_result(0, collector.results[0])
        self._collectors.clear()

    def _apply(self, entry: Entry) -> None:
        result = self._applier.apply(entry)
        self._bytes_since_snapshot += len(entry.data)
        self._proposals.resolve(entry, result, self.core.leader_id)

    def _release_waiters(self) -> None:
        applied = self._applier.applied_index
        reads = self._reads_to_apply
        while reads and reads[0][0] <= applied:
            _, _, context = heapq.heappop(reads)
            self._forwarded_reads.pop(context, None)
            waiter = self._read_waiters.pop(context, None)
            if waiter is not None:
                waiter.set_result(0, None)
        waits = self._apply_waiters
        while waits and waits[0][0] <= applied:
            heapq.heappop(waits)[2].set_result(0, None)

    def _on_soft_state(self, term: int, leader_id: str | None, role: Role) -> None:
        if leader_id != self._leader_id:
            self.leader_changes += 1
            self._fail_forwarded_reads(leader_id)
            log.info("%s event=raft_leader_changed term=%d leader=%s role=%s", self.id, term, leader_id,
                     role.name.lower())
        if role in (Role.PRE_CANDIDATE, Role.CANDIDATE) and role != self._role:
            self.stats["campaigns_started"] += 1  # PreVote rounds included: most end at once
        if role == Role.LEADER and self._role != Role.LEADER:
            self.stats["became_leader"] += 1
        deposed = self._proposals.deposed(role == Role.LEADER, term)
        if (term, leader_id, role) != (self._term, self._leader_id, self._role):
            self._status_changed.set()
            self._status_changed = trio.Event()
        self._term, self._leader_id, self._role = term, leader_id, role
        if deposed:
            self.stats["proposals_failed_deposed"] += self._proposals.fail_below(None, NotLeader(leader_id))

    def _fail_forwarded_reads(self, new_leader: str | None) -> None:
        """Reads a follower forwarded to a leader that is no longer the leader will never
        be answered: fail them now (NotLeader: the caller retries) instead of at its timeout."""
        for context, asked in list(self._forwarded_reads.items()):
            if asked == new_leader:
                continue  # forwarded to the new leader itself (in this very turn)
            del self._forwarded_reads[context]
            waiter = self._read_waiters.pop(context, None)
            if waiter is not None:
                waiter.fail(NotLeader(new_leader))

    def _fail_everything(self, error: BaseException) -> None:
        self._answer_collectors()
        self._proposals.fail_all(error)
        for waiter in list(self._read_waiters.values()):
            waiter.fail(error)
        self._read_waiters.clear()
        for _, waiter in self._admin:
            waiter.fail(error)
        self._admin.clear()
        for _, _, waiter in self._apply_waiters:
            waiter.fail(error)
        self._apply_waiters.clear()

    # ----------------------------------------------------------------- snapshots (Raft §7)
    def _maybe_snapshot(self) -> None:
        """Start a snapshot of the state machine once enough was applied since the last one.

        The state is captured here, between two applies, so it is exactly the state at
        `applied`; serializing, writing and fsyncing it (the slow part: hundreds of ms for
        tens of MB) happen on a worker thread, so ticks, heartbeats and writes go on.
        """
        applied = self._applier.applied_index
        if (
            self._snapshot_writing
            or self._background is None
            or applied <= self._last_snapshot_index
            or (
                applied - self._last_snapshot_index < self.config.snapshot_every_entries
                and self._bytes_since_snapshot < self.config.snapshot_every_bytes
            )
        ):
            return
        core = self.core
        if applied > core.applied_index:
            return  # the core learns about it at advance; try again next turn
        meta = core.snapshot_meta_for(applied)
        build = capture_snapshot(self._applier)
        self._snapshot_writing = True
        self._bytes_since_snapshot = 0
        self._background.start_soon(self._write_snapshot, meta, build)

    async def _write_snapshot(self, meta: SnapshotMeta, build: Callable[[], SnapshotData]) -> None:
        storage = self.storage
        try:
            prepared = await trio.to_thread.run_sync(lambda: storage.prepare_snapshot(meta, build()))
        except OSError as exc:
            # The log is untouched; the next turn past the threshold tries again.
            self.stats["snapshot_write_failures"] += 1
            log.error("%s event=raft_snapshot_write_failed index=%d error=%r", self.id, meta.index, exc)
            self._snapshot_writing = False
            return
        except Exception as exc:  # noqa: BLE001 - the state machine's builder broke: a bug
            self._stop(exc)
            return
        try:
            async with self._snapshot_lock:
                if self._failure is not None:
                    return
                if storage.snapshot_is_superseded(meta):  # a leader's, installed meanwhile
                    storage.discard_snapshot(prepared)
                    self.stats["snapshots_superseded"] += 1
                    return
                await trio.to_thread.run_sync(storage.place_snapshot, prepared)
                storage.adopt_snapshot(prepared)
                self._last_snapshot_index = max(self._last_snapshot_index, meta.index)
                compact_to = meta.index - self.config.compaction_retain_entries
                if compact_to >= storage.first_index():
                    storage.compact(compact_to, remove_segments=False)  # a STATE record: quick
                    await trio.to_thread.run_sync(storage.remove_segments, storage.detach_dead_segments())
            self.stats["snapshots_taken"] += 1
            log.info("%s event=raft_snapshot index=%d term=%d bytes=%d first_index=%d", self.id, meta.index,
                     meta.term, len(prepared.data), storage.first_index())
        except Exception as exc:  # noqa: BLE001 - storage, invariants: the node stops
            self._stop(exc)
        finally:
            self._snapshot_writing = False

    async def _install_snapshot_ready(self, rd: Ready) -> None:
        """Process a Ready carrying a leader's snapshot (Raft §7), its slow parts on
        worker threads: write the snapshot and place it, rebase the log on it (a STATE
        record, on this task), remove the segments it frees, decode the new state; only
        then the rest of the Ready, by the contract (_handle_ready)."""
        meta, data = rd.snapshot
        storage = self.storage
        try:
            async with self._snapshot_lock:
                prepared = await trio.to_thread.run_sync(storage.prepare_snapshot, meta, data)
                await trio.to_thread.run_sync(storage.place_snapshot, prepared)
                if self._failure is not None:
                    return
                storage.adopt_snapshot(prepared)
                storage.rebase_on_snapshot()
                await trio.to_thread.run_sync(storage.remove_segments, storage.detach_dead_segments())
            restore = await trio.to_thread.run_sync(prepare_restore, self._applier, data)
        except Exception as exc:  # noqa: BLE001 - storage, a snapshot the machine cannot read: stop
            self._stop(exc)
            return
        self._guarded(lambda: self._handle_ready(rd, restore))
        self._wakeup.set()  # what arrived meanwhile waits for the next turn
