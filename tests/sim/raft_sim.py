"""A deterministic simulator of a Raft cluster, for safety and liveness tests.

Owns: a seeded world of RaftCore nodes, a faulty network (drop, delay, duplicate,
reorder, symmetric and asymmetric partitions), crashes that keep only what was made
durable, membership changes, leadership transfers, snapshots, and clients issuing
writes (with sessions, retried) and ReadIndex reads. Rules: every random choice comes
from one random.Random(seed), so a seed replays the identical run:

    python -m tests.sim.raft_sim --seed N [--long]

After every step it checks Election Safety, Log Matching, Leader Completeness, State
Machine Safety, that commit never moves back within a node's life, and that only
committed entries are applied (Raft §5.4 Figure 3). At the end the clients' history
must be linearizable, and once faults stop a leader must be elected and every client
operation must complete.

Each seed picks one fault regime (partitions, crashes, lossy, membership, mixed,
delays, leader churn; see `params_for_seed`). Durability is modelled honestly: a Ready may sit
unpersisted for a few steps (a slow disk) and a crash loses it, together with everything
in memory, though a leader's early messages (its appends) left as it took the Ready; a node restarts from its MemLog (hard state, entries, snapshot) alone. A
client that gives up on a write records it as indeterminate ("info") for the checker.
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
from dataclasses import dataclass, field, replace

from agent.raft.config import TEST_PROFILE, RaftConfig
from agent.raft.confchange import ConfChange, ConfChangeKind
from agent.raft.core import RaftCore, Ready, Role
from agent.raft.errors import ConfChangeRejected, NotLeader, RaftError, SnapshotUnavailable, TransferInProgress
from agent.raft.kv import KvStore, encode_put
from agent.raft.linearizability import INFO, OK, Operation, check_history
from agent.raft.memlog import MemLog
from agent.raft.types import ConfState, Entry, SnapshotMeta


class SafetyViolation(AssertionError):
    """An invariant of Raft broke during the simulation."""


@dataclass(frozen=True)
class SimParams:
    seed: int
    voters: int = 3  # initial voters
    spares: int = 1  # extra nodes that can be added as learners and promoted
    fault_steps: int = 250  # steps with faults and client traffic
    settle_steps: int = 400  # after faults stop: all client ops must complete within this
    clients: int = 3
    keys: int = 2
    max_delay_ticks: int = 3
    drop_rate: float = 0.05
    duplicate_rate: float = 0.03
    crash_rate: float = 0.01
    # Chance per step that a leader crashes while it holds entries not yet committed or
    # a write in progress: short reigns leave entries of many terms scattered over the
    # logs (Raft §5.4.2 Figure 8), and writes lost after their appends left (§10.2.1).
    leader_churn_rate: float = 0.0
    restart_rate: float = 0.05  # chance per step that a crashed node restarts
    partition_rate: float = 0.02
    conf_change_rate: float = 0.02
    transfer_rate: float = 0.01
    slow_disk_rate: float = 0.15  # chance a Ready waits before being persisted ...
    slow_disk_max_steps: int = 4  # ... for 1..this many steps (while acks come and go)
    snapshot_every: int = 12  # entries applied between local snapshots
    client_timeout_ticks: int = 30
    give_up_after_attempts: int = 6  # then a write is recorded as indeterminate ("info")
    partition_max_ticks: int = 60  # a partition heals after 5..this many ticks
    config: RaftConfig = TEST_PROFILE


REGIMES = ("partitions", "crashes", "lossy", "membership", "mixed", "delays", "churn")


def params_for_seed(seed: int, long: bool = False) -> SimParams:
    """Pick a fault regime and its knobs from the seed, so many seeds cover many regimes.

    Sharp regimes (mostly one kind of fault) reach the corner each fault creates far
    more often than an even mix would: stale leaders behind partitions, lost
    unpersisted state behind crashes, pipelining gaps behind loss.
    """
    rng = random.Random(seed ^ 0x5EED)
    regime = REGIMES[seed % len(REGIMES)]
    config = replace(
        TEST_PROFILE,
        pre_vote=rng.random() < 0.8,
        check_quorum=rng.random() < 0.7,
        max_entries_per_msg=rng.choice((1, 2, 8)),
        max_inflight_msgs=rng.choice((1, 4)),
    )
    params = SimParams(
        seed=seed,
        voters=rng.choice((3, 3, 5)),
        spares=0,
        max_delay_ticks=rng.choice((0, 1, 2)),
        drop_rate=rng.choice((0.0, 0.02)),
        duplicate_rate=rng.choice((0.0, 0.02)),
        crash_rate=0.0,
        partition_rate=0.0,
        conf_change_rate=0.0,
        transfer_rate=0.0,
        snapshot_every=rng.choice((5, 12, 40)),
        config=config,
    )
    if regime == "partitions":
        # Without CheckQuorum a leader cut off from the others keeps believing it leads:
        # the case where reads must not be answered without a quorum round (thesis §6.4).
        config = replace(config, check_quorum=rng.random() < 0.5)
        params = replace(
            params,
            partition_rate=rng.choice((0.02, 0.05, 0.1)),
            partition_max_ticks=120,
            clients=4,
            client_timeout_ticks=15,
            config=config,
        )
    elif regime == "crashes":
        params = replace(params, crash_rate=rng.choice((0.02, 0.05, 0.1)), slow_disk_rate=rng.choice((0.15, 0.5)))
    elif regime == "lossy":
        params = replace(
            params,
            drop_rate=rng.choice((0.1, 0.25, 0.4)),
            duplicate_rate=rng.choice((0.02, 0.1)),
            max_delay_ticks=rng.choice((3, 6, 10)),
        )
    elif regime == "membership":
        params = replace(
            params,
            spares=rng.choice((1, 2)),
            conf_change_rate=rng.choice((0.02, 0.05, 0.1)),
            transfer_rate=rng.choice((0.0, 0.02, 0.05)),
            crash_rate=rng.choice((0.0, 0.01)),
            partition_rate=rng.choice((0.0, 0.02)),
        )
    elif regime == "delays":
        # Messages overtaking whole elections: stale votes and appends from old terms.
        config = replace(config, pre_vote=rng.random() < 0.5)
        params = replace(
            params,
            max_delay_ticks=rng.choice((15, 30)),
            drop_rate=rng.choice((0.05, 0.1)),
            duplicate_rate=0.1,
            crash_rate=rng.choice((0.0, 0.01)),
            config=config,
        )
    elif regime == "churn":
        # Leaders die with entries only partly replicated, and their successors do too:
        # a leader of a later term may then find an older term's entry on a majority,
        # which it must not count as committed by itself (Raft §5.4.2 Figure 8). Entries
        # travel one per message, so that older entry can arrive before the new term's.
        config = replace(config, max_entries_per_msg=1, max_inflight_msgs=1)
        params = replace(
            params,
            leader_churn_rate=rng.choice((0.1, 0.2, 0.3)),
            restart_rate=rng.choice((0.2, 0.5)),
            drop_rate=rng.choice((0.0, 0.1, 0.3)),
            max_delay_ticks=rng.choice((0, 1, 2)),
            slow_disk_rate=rng.choice((0.15, 0.5)),
            # Churn leaves hundreds of uncommitted entries of as many terms; once calm,
            # bringing a follower up to date one entry per message takes that long.
            settle_steps=4000,
            config=config,
        )
    else:
        params = replace(
            params,
            spares=rng.choice((0, 1, 2)),
            max_delay_ticks=rng.choice((0, 1, 3, 6)),
            drop_rate=rng.choice((0.0, 0.02, 0.1, 0.25)),
            duplicate_rate=rng.choice((0.0, 0.05)),
            crash_rate=rng.choice((0.0, 0.005, 0.02, 0.05)),
            partition_rate=rng.choice((0.0, 0.01, 0.04)),
            conf_change_rate=rng.choice((0.0, 0.02, 0.05)),
            transfer_rate=rng.choice((0.0, 0.01, 0.03)),
        )
    if long:
        params = replace(params, fault_steps=10_000, clients=4, keys=3)
    return params


@dataclass
class _Attempt:
    node: str
    deadline: int
    index: int = 0  # writes: proposal index
    term: int = 0  # writes: proposal term
    context: bytes = b""  # reads


@dataclass
class _ClientOp:
    kind: str
    key: str
    value: object
    seq: int
    invoke: int
    attempt: _Attempt | None = None
    retry_at: int = 0
    attempts: int = 0


@dataclass
class _Client:
    id: str
    seq: int = 0
    op: _ClientOp | None = None
    leader_guess: str | None = None
    idle_until: int = 0


@dataclass
class _Node:
    id: str
    storage: MemLog
    core: RaftCore | None = None
    kv: KvStore | None = None
    held_ready: Ready | None = None  # taken from the core, not yet persisted
    held_until: int = 0  # the step at which the slow disk finishes writing it
    proposals: dict[int, tuple[int, str]] = field(default_factory=dict)  # index -> (term, client)
    reads: dict[bytes, str] = field(default_factory=dict)  # context -> client
    read_waits: list[tuple[int, bytes]] = field(default_factory=list)  # (index, context)
    seen_commit: int = 0


class Simulation:
    def __init__(self, params: SimParams) -> None:
        self.p = params
        self.rng = random.Random(params.seed)
        self.now = 0
        self.clock = 0  # strictly increasing event counter for the history
        self.faults_on = True
        self.net: list[tuple[int, int, object]] = []
        self.net_seq = 0
        self.blocked: set[tuple[str, str]] = set()
        self.partition_until = 0
        voter_ids = [f"n{i}" for i in range(params.voters)]
        spare_ids = [f"n{i}" for i in range(params.voters, params.voters + params.spares)]
        boot = SnapshotMeta(0, 0, ConfState(voters=tuple(voter_ids)))
        self.nodes: dict[str, _Node] = {}
        for node_id in voter_ids:
            self.nodes[node_id] = _Node(node_id, MemLog(snapshot=boot))
        for node_id in spare_ids:
            self.nodes[node_id] = _Node(node_id, MemLog())
        for node in self.nodes.values():
            self._start(node)
        self.clients = [_Client(f"c{i}") for i in range(params.clients)]
        self.keys = [f"k{i}" for i in range(params.keys)]
        self.history: list[dict] = []
        # global knowledge for the invariants
        self.leader_of_term: dict[int, str] = {}
        self.entry_at: dict[tuple[int, int], tuple[int, bytes, int | None]] = {}
        self.committed: dict[int, int] = {}  # index -> term
        self.applied: dict[int, tuple[int, bytes]] = {}
        self.events: list[str] = []  # a short trace for failure reports
        self._completeness_checked: set[tuple[str, int]] = set()
        self.counts = dict.fromkeys(
            ("crashes", "conf_changes", "transfers", "snapshots", "ops", "abandoned_writes"), 0
        )

    # ------------------------------------------------------------------ node lifecycle
    def _start(self, node: _Node) -> None:
        storage = node.storage
        meta = storage.snapshot_meta()
        node.kv = KvStore()
        if storage.snapshot_data():
            node.kv.restore(storage.snapshot_data())
        node.kv.applied_index = meta.index
        node.core = RaftCore(
            node.id, storage, self.p.config, random.Random(self.rng.random()), hard_state=storage.hard_state
        )
        node.seen_commit = meta.index  # re-check what the restarted node believes committed
        node.held_ready = None
        node.proposals.clear()
        node.reads.clear()
        node.read_waits.clear()

    def _crash(self, node: _Node) -> None:
        node.core = None
        node.kv = None
        node.held_ready = None  # never persisted: lost
        node.proposals.clear()
        node.reads.clear()
        node.read_waits.clear()
        self.counts["crashes"] += 1
        self._trace(f"crash {node.id}")

    def _trace(self, text: str) -> None:
        self.events.append(f"t={self.now} {text}")
        if len(self.events) > 60:
            del self.events[:20]

    # ------------------------------------------------------------------ network
    def _send(self, msg) -> None:
        if self.faults_on and self.rng.random() < self.p.drop_rate:
            return
        copies = 2 if self.faults_on and self.rng.random() < self.p.duplicate_rate else 1
        for _ in range(copies):
            delay = self.rng.randint(0, self.p.max_delay_ticks) if self.faults_on else self.rng.randint(0, 1)
            self.net_seq += 1
            heapq.heappush(self.net, (self.now + 1 + delay, self.net_seq, msg))

    def _deliver(self) -> None:
        while self.net and self.net[0][0] <= self.now:
            _, _, msg = heapq.heappop(self.net)
            if (msg.src, msg.dst) in self.blocked:
                continue
            node = self.nodes[msg.dst]
            if node.core is not None:
                node.core.step(msg)

    # ------------------------------------------------------------------ faults
    def _faults(self) -> None:
        rng, p = self.rng, self.p
        ids = sorted(self.nodes)
        leader = self._some_leader()
        if rng.random() < p.crash_rate:
            # Half the crashes hit the leader: leadership churn is where Raft's subtle
            # cases live (Raft §5.4.2 Figure 8). A leader in the middle of a write is
            # the sharpest case (thesis §10.2.1: its appends are already out).
            writing = [n for n in self.nodes.values() if n.held_ready is not None and n is leader]
            if writing and rng.random() < 0.5:
                node = writing[0]
            else:
                node = leader if leader is not None and rng.random() < 0.5 else self.nodes[rng.choice(ids)]
            if node.core is not None:
                self._crash(node)
        if leader is not None and leader.core is not None and rng.random() < p.leader_churn_rate:
            if leader.core.last_index() > leader.core.commit_index or leader.held_ready is not None:
                self._crash(leader)
        for node in self.nodes.values():
            if node.core is None and rng.random() < p.restart_rate:
                self._start(node)
                self._trace(f"restart {node.id}")
        if self.blocked and self.now >= self.partition_until:
            self.blocked.clear()
            self._trace("heal")
        elif not self.blocked and rng.random() < p.partition_rate:
            kind = rng.randrange(3)
            if kind == 0:  # isolate one node, often the leader
                victim = leader.id if leader is not None and rng.random() < 0.5 else rng.choice(ids)
                self.blocked = {(victim, o) for o in ids if o != victim} | {(o, victim) for o in ids if o != victim}
            elif kind == 1:  # split in two
                side = set(rng.sample(ids, len(ids) // 2))
                self.blocked = {(a, b) for a in ids for b in ids if (a in side) != (b in side)}
            else:  # asymmetric: some directed links down
                self.blocked = {(a, b) for a in ids for b in ids if a != b and rng.random() < 0.3}
            self.partition_until = self.now + rng.randint(5, p.partition_max_ticks)
            self._trace(f"partition {sorted(self.blocked)}")
        leader = self._some_leader()  # may have changed: a crash above
        if leader is not None and rng.random() < p.conf_change_rate:
            self._random_conf_change(leader)
        if leader is not None and rng.random() < p.transfer_rate:
            others = sorted(v for v in leader.core.voters if v != leader.id)
            if others:
                target = rng.choice(others)
                leader.core.transfer_leadership(target)
                self.counts["transfers"] += 1
                self._trace(f"transfer {leader.id}->{target}")

    def _random_conf_change(self, leader: _Node) -> None:
        core = leader.core
        conf = core.conf_state
        members = set(conf.voters) | set(conf.learners)
        outsiders = sorted(n for n in self.nodes if n not in members)
        options: list[ConfChange] = []
        options += [ConfChange(ConfChangeKind.ADD_LEARNER, n) for n in outsiders]
        options += [ConfChange(ConfChangeKind.PROMOTE, n) for n in conf.learners]
        options += [ConfChange(ConfChangeKind.REMOVE, n) for n in conf.learners]
        if len(conf.voters) > self.p.voters:
            options += [ConfChange(ConfChangeKind.REMOVE, n) for n in sorted(conf.voters)]
        if not options:
            return
        change = self.rng.choice(options)
        try:
            index = core.propose_conf_change(change)
        except (ConfChangeRejected, TransferInProgress, NotLeader):
            return
        self.counts["conf_changes"] += 1
        self._trace(f"conf {leader.id} {change.kind.name} {change.node_id} at {index}")

    def _some_leader(self) -> _Node | None:
        leaders = [n for n in self.nodes.values() if n.core is not None and n.core.role == Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda n: n.core.term)

    # ------------------------------------------------------------------ clients
    def _tick_clients(self, issue_new: bool) -> None:
        for client in self.clients:
            op = client.op
            if op is None:
                if issue_new and self.now >= client.idle_until:
                    self._new_op(client)
                continue
            attempt = op.attempt
            if attempt is not None:
                if self.now >= attempt.deadline:
                    self._attempt_failed(client, "timeout")
                continue
            if self.now >= op.retry_at:
                self._try(client)

    def _new_op(self, client: _Client) -> None:
        client.seq += 1
        key = self.rng.choice(self.keys)
        if self.rng.random() < 0.5:
            op = _ClientOp("write", key, f"{client.id}.{client.seq}", client.seq, self._tick_clock())
        else:
            op = _ClientOp("read", key, None, client.seq, self._tick_clock())
        client.op = op
        self.counts["ops"] += 1
        self._try(client)

    def _tick_clock(self) -> int:
        self.clock += 1
        return self.clock

    def _try(self, client: _Client) -> None:
        op = client.op
        up = sorted(n for n, node in self.nodes.items() if node.core is not None)
        if not up:
            op.retry_at = self.now + 3
            return
        target = client.leader_guess if client.leader_guess in up and self.rng.random() < 0.7 else None
        if target is None:
            target = self.rng.choice(up)
        node = self.nodes[target]
        op.attempts += 1
        try:
            if op.kind == "write":
                data = encode_put(client.id, op.seq, op.key, op.value)
                index = node.core.propose(data)
                node.proposals[index] = (node.core.term, client.id)
                op.attempt = _Attempt(target, self.now + self.p.client_timeout_ticks, index, node.core.term)
            else:
                context = f"{client.id}/{op.seq}/{op.attempts}".encode()
                node.core.read_index(context)
                node.reads[context] = client.id
                op.attempt = _Attempt(target, self.now + self.p.client_timeout_ticks, context=context)
        except NotLeader as exc:
            client.leader_guess = exc.leader_hint
            op.retry_at = self.now + 1
        except TransferInProgress:
            op.retry_at = self.now + 2

    def _attempt_failed(self, client: _Client, why: str) -> None:
        op = client.op
        op.attempt = None
        op.retry_at = self.now + self.rng.randint(1, 4)
        client.leader_guess = None
        if op.attempts >= self.p.give_up_after_attempts and self.faults_on:
            # The client gives up: a write's outcome is now unknown (it may still be
            # applied, or not: its session refuses it once a later seq is applied).
            if op.kind == "write":
                self.history.append(
                    {"client": client.id, "kind": "write", "key": op.key, "value": op.value,
                     "invoke": op.invoke, "complete": None}
                )
                self.counts["abandoned_writes"] += 1
            client.op = None

    def _complete(self, client: _Client, result: object) -> None:
        op = client.op
        self.history.append(
            {
                "client": client.id,
                "kind": op.kind,
                "key": op.key,
                "value": result if op.kind == "read" else op.value,
                "invoke": op.invoke,
                "complete": self._tick_clock(),
            }
        )
        client.op = None
        client.idle_until = self.now + self.rng.randint(0, 3)

    def _client(self, client_id: str) -> _Client:
        return self.clients[int(client_id[1:])]

    # ------------------------------------------------------------------ node processing
    def _process_node(self, node: _Node) -> None:
        if node.held_ready is not None:
            if self.now < node.held_until and self.faults_on:
                return  # still being written; the core keeps stepping meanwhile
            rd, node.held_ready = node.held_ready, None
            if not self._handle_ready(node, rd):
                return
        for _ in range(10):
            if node.core is None or not node.core.has_ready():
                return
            rd = node.core.ready()
            self._check_new_entries(node, rd)
            for msg in rd.early_messages:  # a leader's appends overlap its write (thesis §10.2.1)
                self._send(msg)
            if self.faults_on and self.rng.random() < self.p.slow_disk_rate:
                node.held_ready = rd
                node.held_until = self.now + self.rng.randint(1, self.p.slow_disk_max_steps)
                return
            if not self._handle_ready(node, rd):
                return

    def _handle_ready(self, node: _Node, rd: Ready) -> bool:
        core = node.core
        node.storage.persist(rd)
        if self.faults_on and self.rng.random() < self.p.crash_rate / 4:
            self._crash(node)  # durable, but crashed before sending anything
            return False
        for msg in rd.messages:
            self._send(msg)
        if rd.soft_state is not None:
            self._fail_proposals(node, rd.soft_state)
        if rd.snapshot is not None:
            meta, data = rd.snapshot
            node.kv = KvStore()
            if data:
                node.kv.restore(data)
            node.kv.applied_index = meta.index
            self._trace(f"{node.id} installed snapshot {meta.index}")
        self._check_commit(node)
        for entry in rd.committed_entries:
            self._apply(node, entry)
        for state in rd.read_states:
            node.read_waits.append((state.index, state.context))
        for context in rd.dropped_reads:
            self._read_failed(node, context)
        core.advance(rd)
        self._serve_reads(node)
        self._maybe_snapshot(node)
        return True

    def _fail_proposals(self, node: _Node, soft) -> None:
        """Leadership lost or term changed: the outcome of pending proposals is unknown."""
        for index, (term, client_id) in list(node.proposals.items()):
            if term != soft.term or soft.role != Role.LEADER:
                del node.proposals[index]
                client = self._client(client_id)
                if client.op is not None and client.op.attempt is not None and client.op.attempt.node == node.id:
                    if client.op.attempt.index == index:
                        self._attempt_failed(client, "not_leader")

    def _apply(self, node: _Node, entry: Entry) -> None:
        if entry.index > node.core.commit_index:
            raise SafetyViolation(f"{node.id} applies {entry.index} beyond commit {node.core.commit_index}")
        if self.committed.get(entry.index) != entry.term:
            raise SafetyViolation(f"{node.id} applies {entry.index}/{entry.term} not known committed")
        seen = self.applied.setdefault(entry.index, (entry.term, entry.data))
        if seen != (entry.term, entry.data):
            raise SafetyViolation(f"State Machine Safety: {node.id} applies {entry.index} differently")
        result = node.kv.apply(entry)
        proposal = node.proposals.pop(entry.index, None)
        if proposal is None:
            return
        term, client_id = proposal
        client = self._client(client_id)
        op = client.op
        if op is None or op.attempt is None or op.attempt.node != node.id or op.attempt.index != entry.index:
            return
        if entry.term == term:
            if result is not None:
                raise SafetyViolation(f"put returned {result!r}")
            self._complete(client, None)
        else:
            self._attempt_failed(client, "overwritten")

    def _read_failed(self, node: _Node, context: bytes) -> None:
        client_id = node.reads.pop(context, None)
        if client_id is None:
            return
        client = self._client(client_id)
        if client.op is not None and client.op.attempt is not None and client.op.attempt.context == context:
            self._attempt_failed(client, "read_dropped")

    def _serve_reads(self, node: _Node) -> None:
        if not node.read_waits:
            return
        waiting = []
        for index, context in node.read_waits:
            if node.kv.applied_index < index:
                waiting.append((index, context))
                continue
            client_id = node.reads.pop(context, None)
            if client_id is None:
                continue
            client = self._client(client_id)
            op = client.op
            if op is not None and op.attempt is not None and op.attempt.context == context:
                self._complete(client, node.kv.get(op.key))
        node.read_waits = waiting

    def _maybe_snapshot(self, node: _Node) -> None:
        applied = node.kv.applied_index
        if applied - node.storage.snapshot_meta().index >= self.p.snapshot_every:
            if applied > node.storage.last_index():
                raise SafetyViolation(f"{node.id} applied {applied} beyond its durable log")
            try:
                meta = node.core.snapshot_meta_for(applied)
            except SnapshotUnavailable:
                return  # a snapshot from the leader, not yet persisted, replaced this point
            node.storage.compact(meta, node.kv.snapshot())
            self.counts["snapshots"] += 1

    # ------------------------------------------------------------------ invariants
    def _check_new_entries(self, node: _Node, rd: Ready) -> None:
        """Log Matching (Raft §5.3): an (index, term) pair names one entry, with one predecessor term."""
        prev_term = node.core.term_at(rd.entries[0].index - 1) if rd.entries else None
        for entry in rd.entries:
            fact = (int(entry.kind), entry.data, prev_term)
            known = self.entry_at.setdefault((entry.index, entry.term), fact)
            if known != fact:
                raise SafetyViolation(f"Log Matching: {node.id} entry {entry.index}/{entry.term} differs")
            prev_term = entry.term

    def _check_commit(self, node: _Node) -> None:
        core = node.core
        if core.commit_index < node.seen_commit:
            raise SafetyViolation(f"{node.id} commit went back {node.seen_commit} -> {core.commit_index}")
        first = core.first_index()
        for index in range(max(node.seen_commit + 1, first), core.commit_index + 1):
            term = core.term_at(index)
            known = self.committed.setdefault(index, term)
            if known != term:
                raise SafetyViolation(f"State Machine Safety: index {index} committed as {known} and {term}")
        node.seen_commit = core.commit_index

    def _check_step(self) -> None:
        for node in self.nodes.values():
            core = node.core
            if core is None:
                continue
            self._check_commit(node)
            if core.role == Role.LEADER:
                holder = self.leader_of_term.setdefault(core.term, node.id)
                if holder != node.id:
                    raise SafetyViolation(f"Election Safety: {holder} and {node.id} lead term {core.term}")
                if (node.id, core.term) not in self._completeness_checked:
                    self._completeness_checked.add((node.id, core.term))
                    self._check_leader_completeness(node)

    def _check_leader_completeness(self, node: _Node) -> None:
        """Leader Completeness (Raft §5.4.1): a leader holds every committed entry."""
        core = node.core
        first = core.first_index()
        for index, term in self.committed.items():
            if index < first - 1:
                continue
            if core.term_at(index) != term:
                raise SafetyViolation(
                    f"Leader Completeness: {node.id} leads term {core.term} without committed {index}/{term}"
                )

    # ------------------------------------------------------------------ run
    def step(self, faults: bool, issue_new: bool) -> None:
        self.now += 1
        self.faults_on = faults
        if faults:
            self._faults()
        self._deliver()
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            if node.core is not None:
                node.core.tick()
        self._tick_clients(issue_new)
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            if node.core is not None:
                self._process_node(node)
        self._check_step()

    def run(self) -> dict:
        for _ in range(self.p.fault_steps):
            self.step(faults=True, issue_new=True)
        # Faults stop: heal, restart everyone, let outstanding work finish.
        self.blocked.clear()
        for node in self.nodes.values():
            if node.core is None:
                self._start(node)
        settle_start = self.now
        while self.now - settle_start < self.p.settle_steps:
            self.step(faults=False, issue_new=False)
            if self._some_leader() is not None and all(c.op is None for c in self.clients):
                break
        else:
            pending = [(c.id, c.op.kind, c.op.attempts) for c in self.clients if c.op is not None]
            leader = self._some_leader()
            raise SafetyViolation(
                f"Liveness: after {self.p.settle_steps} calm steps leader={leader and leader.id} pending={pending}"
            )
        result = check_history(self._operations())
        if not result.ok:
            raise SafetyViolation(f"Linearizability: key={result.key} {result.reason}")
        return {
            "steps": self.now,
            "ops_completed": len(self.history),
            "max_term": max(n.core.term for n in self.nodes.values()),
            "commit": max(n.core.commit_index for n in self.nodes.values()),
            **self.counts,
        }

    def _operations(self) -> list[Operation]:
        ops = [
            Operation(
                h["client"], h["kind"], h["key"], h["value"], h["invoke"], h["complete"],
                OK if h["complete"] is not None else INFO,
            )
            for h in self.history
        ]
        for client in self.clients:  # never completed: outcome unknown
            op = client.op
            if op is not None and op.kind == "write":
                ops.append(Operation(client.id, "write", op.key, op.value, op.invoke, None, INFO))
        return ops


def run_seed(seed: int, long: bool = False) -> dict:
    """Run one seeded simulation; raises SafetyViolation (with a replay hint) on failure."""
    sim = Simulation(params_for_seed(seed, long))
    try:
        return sim.run()
    except (SafetyViolation, RaftError) as exc:
        trace = "\n  ".join(sim.events[-25:])
        flag = " --long" if long else ""
        raise SafetyViolation(
            f"seed {seed} failed: {exc}\n  replay: python -m tests.sim.raft_sim --seed {seed}{flag}\n"
            f"  params: {sim.p}\n  last events:\n  {trace}"
        ) from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=1, help="run seeds seed..seed+count-1")
    parser.add_argument("--long", action="store_true")
    args = parser.parse_args(argv)
    for seed in range(args.seed, args.seed + args.count):
        try:
            figures = run_seed(seed, args.long)
        except SafetyViolation as exc:
            print(exc)
            return 1
        print(f"seed={seed} ok {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
