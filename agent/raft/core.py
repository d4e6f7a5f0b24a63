"""The Raft consensus algorithm as a pure state machine.

Owns: elections (randomized timeouts, PreVote, CheckQuorum), log replication
(batched, pipelined AppendEntries with a bounded window, fast back-off on conflicts),
commitment, snapshots sent in chunks, learners and single-server membership changes,
leadership transfer and ReadIndex reads. Its parts live beside it, as etcd-io/raft
splits them: the log it reads and appends to (raftlog.py), what a leader knows of each
follower (progress.py), ReadIndex bookkeeping (readonly.py) and membership changes
(confchange.py). Section numbers refer to the Raft paper ("Raft §5.3") and Ongaro's
thesis ("thesis §6.4").

Rules this module keeps:
- No I/O, no clock, no randomness of its own. Time is `tick()`; randomness is the
  injected `random.Random`; durable state is read through a `LogReader` (memlog.py).
- Input: `step(msg)` for messages from peers, `tick()`, `propose*()`, `read_index()`,
  `transfer_leadership()`. Output: a `Ready` batch the caller collects with `ready()`.
- THE READY CONTRACT. For each Ready, in this order, the caller must:
    0. send `early_messages` whenever it likes, even before step 1: they are a
       leader's appends, heartbeats and snapshot chunks under a term and vote that
       are already durable. A leader may write its log in parallel with replicating
       it (thesis §10.2.1) because it counts itself toward commitment only for entries
       the caller has made durable (entries of Readies already advanced);
    1. make durable: `snapshot` (replacing the whole log), then `entries` (first
       dropping every stored entry whose index >= entries[0].index), then `hard_state`
       (term, vote, commit) -- and fsync them;
    2. only then send `messages` (a vote grant or an append ack must never leave
       before the vote or the entries it acknowledges are durable, Raft §5 Figure 2);
    3. restore the state machine from `snapshot` if present, then apply
       `committed_entries` in order (they may include this Ready's own `entries`,
       which is why step 1 comes first);
    4. serve `read_states` once its applied index reaches each state's index, fail the
       reads listed in `dropped_reads`;
    5. call `advance(ready)`.
  `ready()` is refused while a Ready is outstanding (not yet advanced); `step`,
  `tick` and proposals may continue meanwhile and their output waits for the next one.
- A proposal is acknowledged only through commitment: `propose()` returns the index;
  the caller answers its client when the entry at that index is applied *with the
  term the proposal got* (`term` right after proposing). When `soft_state` shows the
  node is no longer leader (or its term changed), the caller fails its pending
  proposals with NotLeader: the outcome is unknown and clients retry with sessions.
- Bad input from a peer (malformed, stale term, a sender that may not send) is
  counted in `stats` and dropped. A broken internal invariant raises RaftInvariantError.
- WHO MAY SEND (thesis §4). Refusing a message is never unsafe (it is a lost message),
  so the rule is about liveness: refuse strangers, accept whom the node needs.
    * The members of every configuration that is, or may again be, in effect here --
      the newest committed one and every later one, which a truncation may revert --
      may send anything. A node removed by a committed change is no member: its vote
      requests can no longer disturb anyone, and a leader removing itself keeps
      being heard until its removal commits.
    * Anyone else is refused and counted (`dropped_not_member`), except a leader's
      messages (AppendEntries, Heartbeat, InstallSnapshot) in two cases. A node that
      holds no configuration at all (brand new, joining as a learner) cannot judge
      who leads: it takes them from whoever sends, as plain Raft would. And a leader
      newer than this node's configuration (added by entries it has not received yet)
      proves it is ahead: an AppendEntries whose commit passes ours (that leader
      committed the entry that added it, which we lack; log matching still checks
      every entry) or an InstallSnapshot past our commit is taken. Such a leader's
      heartbeats are refused (their commit is not checked against the log), so a
      probe left unanswered is sent again after a few heartbeat intervals.
  Without authentication this keeps out confused and removed nodes, not forgers.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING

from agent.raft.confchange import (
    ConfChange,
    ConfChangeKind,
    ConfigHistory,
    changed_conf,
    decode_conf_state,
    encode_conf_state,
)
from agent.raft.config import RaftConfig
from agent.raft.errors import (
    ConfChangeRejected,
    NotLeader,
    RaftError,
    RaftInvariantError,
    SnapshotUnavailable,
    TransferInProgress,
)
from agent.raft.memlog import LogReader
from agent.raft.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    validate,
)
from agent.raft.progress import Progress, ProgressState
from agent.raft.raftlog import RaftLog
from agent.raft.readonly import ReadOnly, ReadState
from agent.raft.types import NUMBER_LIMIT, ConfState, Entry, EntryKind, HardState, SnapshotMeta

if TYPE_CHECKING:
    import random  # only the type: the caller injects the generator

__all__ = ["RaftCore", "Ready", "Role", "SoftState"]

_logger = logging.getLogger("agent.raft")


class Role(enum.IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile facts the caller reacts to: who leads, and this node's role and term."""

    term: int
    leader_id: str | None
    role: Role


@dataclass(slots=True)
class Ready:
    """One batch of output. Process it following the contract in the module banner."""

    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: tuple[SnapshotMeta, bytes] | None = None
    messages: list = field(default_factory=list)
    early_messages: list = field(default_factory=list)  # may leave before step 1
    committed_entries: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    dropped_reads: list[bytes] = field(default_factory=list)
    soft_state: SoftState | None = None


_LEADER_MESSAGES = (AppendEntries, Heartbeat, InstallSnapshot)
_kind_of = attrgetter("kind")
# Snapshot chunks and probes go stop-and-wait; one left unanswered is sent again after
# this many heartbeat intervals (a lost message or answer must not stall replication; a
# probe is otherwise released by a heartbeat ack, which a follower may refuse).
_RESEND_HEARTBEATS = 3


class RaftCore:
    """One Raft node's algorithm. Single-threaded: call it from one task only."""

    def __init__(
        self,
        node_id: str,
        storage: LogReader,
        config: RaftConfig,
        rng: random.Random,
        hard_state: HardState = HardState(),
        applied: int | None = None,
    ) -> None:
        """Start (or restart) from what `storage` holds and the persisted `hard_state`.

        `applied` is the index the state machine already reflects; by default the
        snapshot index (the caller restored the state machine from the snapshot).
        """
        self.id = node_id
        self.config = config
        self._rng = rng
        self._log = RaftLog(storage)
        self.stats: Counter[str] = Counter()
        meta = storage.snapshot_meta()
        if not 0 <= hard_state.term < NUMBER_LIMIT or storage.last_index() >= NUMBER_LIMIT:
            raise RaftInvariantError(f"{node_id} starts at term {hard_state.term}, last index "
                                     f"{storage.last_index()}: at or past the limit {NUMBER_LIMIT}")
        self.term = hard_state.term
        self.voted_for = hard_state.voted_for
        self.commit_index = max(hard_state.commit, meta.index)
        if self.commit_index > self._log.last_index():
            raise RaftInvariantError(f"{node_id} commit {self.commit_index} beyond log end")
        self.applied_index = meta.index if applied is None else max(applied, meta.index)
        if self.applied_index > self.commit_index:
            raise RaftInvariantError(f"{node_id} applied {self.applied_index} beyond commit")
        self._applying = self.applied_index  # last index handed out for applying

        # Membership (thesis §4.1): a configuration takes effect once appended, so it
        # is the newest CONFIG entry in the log, else the snapshot's.
        self._confs = ConfigHistory(meta.index, meta.conf)
        # Storage may keep entries below its snapshot: only those after it count.
        # Scanned in bounded batches so a long log is never held in memory at once.
        lo, end = max(storage.first_index(), meta.index + 1), storage.last_index() + 1
        while lo < end:
            batch = storage.entries(lo, min(end, lo + 4096), None)
            for entry in batch:
                if entry.kind == EntryKind.CONFIG:
                    try:
                        conf = decode_conf_state(entry.data)
                    except ValueError as exc:  # every appended CONFIG entry was checked first
                        raise RaftInvariantError(f"{node_id} CONFIG entry {entry.index}: {exc}") from exc
                    self._confs.add(entry.index, conf)
            lo += len(batch)
        self._senders: frozenset[str] = frozenset()  # who may send (see WHO MAY SEND)
        self._senders_change_at: int | None = None  # ... until commit reaches this index
        self.voters: frozenset[str] = frozenset()
        self.learners: frozenset[str] = frozenset()
        self._voter_list: tuple[str, ...] = ()
        self._quorum = 1

        self.role = Role.FOLLOWER
        self.leader_id: str | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = 0
        self._votes: dict[str, bool] = {}
        self._progress: dict[str, Progress] = {}
        self._transferee: str | None = None
        self._snapshot_rx: tuple[SnapshotMeta, bytearray] | None = None

        self._reads = ReadOnly()  # a leader's ReadIndex rounds (thesis §6.4)

        # output buffers
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._dropped_reads: list[bytes] = []
        self._bcast_needed = False  # new entries wait to be sent
        self._commit_bcast_needed = False  # the commit index moved: followers should hear
        self._outstanding: Ready | None = None
        self._prev_hard = HardState(self.term, self.voted_for, self.commit_index)
        self._prev_soft = SoftState(self.term, None, Role.FOLLOWER)

        self._apply_conf(self._confs.latest)
        self._become_follower(self.term, None)

    # ------------------------------------------------------------------ queries
    @property
    def leader_silent_ticks(self) -> int:
        """Ticks since this node last heard from a leader (0 on the leader itself). A
        learner never campaigns, so its `leader_id` names the last leader however long
        that leader has been silent: this says how long."""
        return 0 if self.role == Role.LEADER else self._election_elapsed

    @property
    def conf_state(self) -> ConfState:
        return self._confs.latest

    @property
    def conf_index(self) -> int:
        """Index of the entry (or snapshot) that set the current configuration."""
        return self._confs.latest_index

    def last_index(self) -> int:
        return self._log.last_index()

    def first_index(self) -> int:
        return self._log.first_index()

    def term_at(self, index: int) -> int | None:
        return self._log.term_at(index)

    def log_entries(self, lo: int, hi: int) -> list[Entry]:
        """Entries [lo, hi) of this node's log, persisted or not (checks and tests)."""
        return self._log.entries(lo, hi, None)

    def is_leader(self) -> bool:
        return self.role == Role.LEADER

    def snapshot_meta_for(self, index: int) -> SnapshotMeta:
        """The SnapshotMeta to store with a state-machine snapshot taken at applied `index`.

        The caller stores (meta, data) and compacts its log up to meta.index; the core
        reads the result through its LogReader. Only applied indexes may be snapshotted.
        Raises SnapshotUnavailable when a snapshot received from the leader (not yet
        persisted) already replaced that point: the caller then simply skips compaction.
        """
        if index > self.applied_index:
            raise RaftError(f"cannot snapshot {index}: applied is {self.applied_index}")
        term = self._log.term_at(index)
        conf = self._confs.at(index)
        if term is None or conf is None:
            raise SnapshotUnavailable(f"index {index} is no longer in the log")
        return SnapshotMeta(index=index, term=term, conf=conf)

    def progress_match(self, node_id: str) -> int | None:
        """Leader only: the highest index known replicated on `node_id`."""
        pr = self._progress.get(node_id)
        return None if pr is None else pr.match

    # ------------------------------------------------------------------ inputs
    def tick(self) -> None:
        """Advance abstract time by one tick."""
        if self.role == Role.LEADER:
            self._tick_leader()
            return
        self._election_elapsed += 1
        if self._election_elapsed >= self._randomized_timeout and self._promotable():
            self._election_elapsed = 0
            self._campaign(pre=self.config.pre_vote, transfer=False)

    def campaign(self) -> None:
        """Start an election now (bootstrap or tests); PreVote first when configured."""
        if self.role != Role.LEADER and self._promotable():
            self._campaign(pre=self.config.pre_vote, transfer=False)

    def propose(self, data: bytes) -> int:
        """Append a command; return its index. Raises NotLeader / TransferInProgress."""
        self._check_can_propose()
        index = self._log.last_index() + 1
        self._append_local([Entry(index, self.term, EntryKind.NORMAL, data)])
        return index

    def propose_many(self, datas: list[bytes]) -> tuple[int, int]:
        """Append many commands at once; return (first index, last index)."""
        self._check_can_propose()
        first = self._log.last_index() + 1
        term = self.term
        normal = EntryKind.NORMAL
        entries = [Entry(first + k, term, normal, data) for k, data in enumerate(datas)]
        if entries:
            self._append_local(entries)
        return first, first + len(entries) - 1

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose one single-server membership change (thesis §4.1); return its index."""
        self._check_can_propose()
        if self.conf_index > self.commit_index:
            raise ConfChangeRejected("a membership change is still uncommitted")
        if self._log.term_at(self.commit_index) != self.term:
            raise ConfChangeRejected("no entry of this term committed yet")
        conf = changed_conf(self.conf_state, change)
        if change.kind == ConfChangeKind.PROMOTE:
            pr = self._progress.get(change.node_id)
            if pr is None or pr.match < self.commit_index:
                raise ConfChangeRejected(f"{change.node_id} has not caught up")
        data = encode_conf_state(conf)
        index = self._log.last_index() + 1
        self._append_local([Entry(index, self.term, EntryKind.CONFIG, data)], config=True)
        return index

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point (thesis §6.4) without writing the log.

        The answer arrives as a ReadState with this `context` (or in dropped_reads).
        A follower forwards the request to the leader; with no known leader it raises
        NotLeader.
        """
        if self.role == Role.LEADER:
            self._leader_read(context, self.id)
        elif self.leader_id is not None and self.leader_id in self._senders:
            self._send(ReadIndexRequest(self.id, self.leader_id, self.term, context))
        else:
            raise NotLeader(self.leader_id)

    def transfer_leadership(self, target: str) -> None:
        """Hand leadership to `target` (thesis §3.10); aborted after an election timeout."""
        if self.role != Role.LEADER:
            raise NotLeader(self.leader_id)
        if target == self.id or target == self._transferee:
            return
        if target not in self.voters:
            raise RaftError(f"{target} is not a voter")
        self._transferee = target
        self._election_elapsed = 0
        pr = self._progress[target]
        if pr.match == self._log.last_index():
            self._send(TimeoutNow(self.id, target, self.term))
        else:
            self._send_append(target, allow_empty=True)

    def step(self, msg: Message) -> None:
        """Feed one message from a peer. Never raises on bad input: it counts and drops."""
        problem = validate(msg)
        if problem is not None:
            self.stats["dropped_malformed"] += 1
            self.stats[f"malformed_{problem}"] += 1
            return
        if msg.dst != self.id or msg.src == self.id:
            self.stats["dropped_misaddressed"] += 1
            return
        if self._senders_change_at is not None and self.commit_index >= self._senders_change_at:
            self._refresh_senders()  # a configuration committed: the ones before it are gone
        if msg.src not in self._senders and not self._stranger_leader_needed(msg):
            self.stats["dropped_not_member"] += 1
            return
        if msg.term > self.term:
            if isinstance(msg, VoteRequest):
                in_lease = (
                    self.config.check_quorum
                    and self.leader_id is not None
                    and self._election_elapsed < self.config.election_timeout_ticks
                )
                if in_lease and not msg.transfer:
                    # A leader was heard recently: this candidate cannot win a fair
                    # election, do not let it raise our term (thesis §4.2.3, §9.6).
                    self.stats["ignored_vote_in_lease"] += 1
                    return
                if not msg.pre_vote:
                    self._become_follower(msg.term, None)
            elif isinstance(msg, VoteResponse) and msg.pre_vote and msg.granted:
                pass  # granted PreVotes carry the proposed term; nothing changes
            else:
                leader = msg.src if isinstance(msg, _LEADER_MESSAGES) else None
                self._become_follower(msg.term, leader)
        elif msg.term < self.term:
            self.stats["dropped_stale_term"] += 1
            if isinstance(msg, (AppendEntries, Heartbeat)) and (
                self.config.check_quorum or self.config.pre_vote
            ):
                # Tell the stale leader about the newer term so it steps down; with
                # PreVote or CheckQuorum terms do not otherwise reach it (thesis §9.6).
                self._send(AppendResponse(self.id, msg.src, self.term, 0, reject=True))
            elif isinstance(msg, VoteRequest) and msg.pre_vote:
                self._send(VoteResponse(self.id, msg.src, self.term, False, pre_vote=True))
            return

        if isinstance(msg, VoteRequest):
            self._handle_vote_request(msg)
        elif self.role == Role.LEADER:
            self._step_leader(msg)
        elif self.role == Role.FOLLOWER:
            self._step_follower(msg)
        else:
            self._step_candidate(msg)

    # ------------------------------------------------------------------ output
    def has_ready(self) -> bool:
        if self._outstanding is not None:
            return False
        self._flush()
        return bool(
            self._msgs
            or self._log.unstable
            or self._log.pending_snapshot is not None
            or self._read_states
            or self._dropped_reads
            or self.commit_index > self._applying
            or self._hard_state() != self._prev_hard
            or self._soft_state() != self._prev_soft
        )

    def ready(self) -> Ready:
        """Collect the output accumulated so far (see the Ready contract above)."""
        if self._outstanding is not None:
            raise RaftInvariantError("ready() called again before advance()")
        self._flush()
        rd = Ready()
        hard = self._hard_state()
        durable_vote = (hard.term, hard.voted_for) == (self._prev_hard.term, self._prev_hard.voted_for)
        if hard != self._prev_hard:
            rd.hard_state = hard
            self._prev_hard = hard
        soft = self._soft_state()
        if soft != self._prev_soft:
            rd.soft_state = soft
            self._prev_soft = soft
        rd.entries = tuple(self._log.unstable)
        rd.snapshot = self._log.pending_snapshot
        if rd.snapshot is not None:
            self._applying = max(self._applying, rd.snapshot[0].index)
        if self.commit_index > self._applying:
            rd.committed_entries = self._log.entries(
                self._applying + 1, self.commit_index + 1, self.config.max_committed_bytes_per_ready
            )
            self._applying = rd.committed_entries[-1].index
        messages, self._msgs = self._msgs, []
        if self.role == Role.LEADER and durable_vote:
            # Leading all along under a durable term and vote (a leader never changes
            # either without stepping down): its replication may overlap its own write.
            rd.early_messages = [m for m in messages if type(m) in _LEADER_MESSAGES]
            if len(rd.early_messages) < len(messages):
                messages = [m for m in messages if type(m) not in _LEADER_MESSAGES]
            else:
                messages = []
        rd.messages = messages
        rd.read_states, self._read_states = self._read_states, []
        rd.dropped_reads, self._dropped_reads = self._dropped_reads, []
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """The caller finished processing `rd` (persisted, sent, applied)."""
        if rd is not self._outstanding:
            raise RaftInvariantError("advance() with a Ready that is not the outstanding one")
        self._outstanding = None
        if rd.snapshot is not None:
            if self._log.pending_snapshot is rd.snapshot:
                self._log.pending_snapshot = None
            self.applied_index = max(self.applied_index, rd.snapshot[0].index)
        if rd.entries:
            last = rd.entries[-1]
            self._log.stable_to(last.index, last.term)
            if self.role == Role.LEADER and self._maybe_commit():
                # Our own entries just became durable and may complete a quorum.
                self._on_commit_advanced()
                if self.role == Role.LEADER:
                    self._commit_bcast_needed = True
        if rd.committed_entries:
            self.applied_index = max(self.applied_index, rd.committed_entries[-1].index)

    # ------------------------------------------------------------------ internals: state changes
    def _hard_state(self) -> HardState:
        return HardState(self.term, self.voted_for, self.commit_index)

    def _soft_state(self) -> SoftState:
        return SoftState(self.term, self.leader_id, self.role)

    def _promotable(self) -> bool:
        if self.id not in self.voters or self._log.pending_snapshot is not None:
            return False
        if self.term + 1 >= NUMBER_LIMIT or self._log.last_index() + 1 >= NUMBER_LIMIT:
            # Only a forger gets a node here (types.NUMBER_LIMIT): campaigning would make
            # a term or an index nobody may accept. Stay a follower, and say why.
            self.stats["campaigns_refused_number_limit"] += 1
            return False
        return True

    def _reset_timers(self) -> None:
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        timeout = self.config.election_timeout_ticks
        self._randomized_timeout = timeout + self._rng.randrange(timeout)

    def _become_follower(self, term: int, leader: str | None) -> None:
        was_leader = self.role == Role.LEADER
        if term != self.term:
            self.term = term
            self.voted_for = None
        if was_leader:
            self._fail_leader_reads()
            self._progress = {}
            self._transferee = None
            self._bcast_needed = self._commit_bcast_needed = False
        self.role = Role.FOLLOWER
        self.leader_id = leader
        self._reset_timers()
        if was_leader:
            self._log_event("stepped_down")

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self.role = Role.PRE_CANDIDATE
            self.leader_id = None
            term = self.term + 1
        else:
            self.term += 1
            self.voted_for = self.id
            self.role = Role.CANDIDATE
            self.leader_id = None
            term = self.term
        self._reset_timers()
        self._votes = {self.id: True}
        self._log_event("campaign", pre_vote=pre, campaign_term=term)
        if self._quorum <= 1:
            self._win_vote(pre)
            return
        last = self._log.last_index()
        last_term = self._log.term_at(last)
        for voter in self._voter_list:
            if voter != self.id:
                self._send(VoteRequest(self.id, voter, term, last, last_term, pre, transfer))

    def _win_vote(self, pre: bool) -> None:
        if pre:
            self._campaign(pre=False, transfer=False)
        else:
            self._become_leader()

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader_id = self.id
        self._transferee = None
        self._reset_timers()
        last = self._log.last_index()
        self._progress = {}
        conf = self.conf_state
        for node in conf.voters + conf.learners:  # tuples: a deterministic order
            if node != self.id:
                self._progress[node] = Progress(last + 1)
        self._reads.reset()
        self._log_event("became_leader")
        # A new leader commits an entry of its own term (Raft §5.4.2, §8).
        self._append_local([Entry(last + 1, self.term, EntryKind.NOOP, b"")])

    def _apply_conf(self, conf: ConfState) -> None:
        self.voters = frozenset(conf.voters)
        self.learners = frozenset(conf.learners)
        self._voter_list = tuple(conf.voters)
        self._quorum = len(self._voter_list) // 2 + 1
        self._refresh_senders()
        if self.role == Role.LEADER:
            members = conf.voters + conf.learners
            for node in list(self._progress):
                if node not in members:
                    del self._progress[node]
            next_index = self._log.last_index() + 1
            for node in members:
                if node != self.id and node not in self._progress:
                    self._progress[node] = Progress(next_index)
            if self._transferee is not None and self._transferee not in self.voters:
                self._transferee = None

    def _refresh_senders(self) -> None:
        self._senders, self._senders_change_at = self._confs.members_since(self.commit_index)

    def _stranger_leader_needed(self, msg: Message) -> bool:
        """A leader's message from outside our configurations that we must take (see WHO
        MAY SEND): we hold no configuration, or it proves it is ahead of our commit."""
        if not isinstance(msg, _LEADER_MESSAGES):
            return False
        if not self.voters and not self.learners:
            return True
        if isinstance(msg, AppendEntries):
            return msg.commit > self.commit_index
        if isinstance(msg, InstallSnapshot):
            return msg.meta.index > self.commit_index
        return False

    def _note_config_entries(self, entries) -> None:
        if EntryKind.CONFIG not in set(map(_kind_of, entries)):
            return  # the common case, checked at C speed
        for entry in entries:
            if entry.kind == EntryKind.CONFIG:
                self._confs.add(entry.index, decode_conf_state(entry.data))
        self._apply_conf(self._confs.latest)

    def _truncate_conf_history(self, first_replaced: int) -> None:
        if self._confs.truncate_from(first_replaced):
            self._apply_conf(self._confs.latest)

    # ------------------------------------------------------------------ internals: leader
    def _check_can_propose(self) -> None:
        if self.role != Role.LEADER:
            raise NotLeader(self.leader_id)
        if self._transferee is not None:
            raise TransferInProgress(f"transferring to {self._transferee}")
        if self.id not in self.voters and self.id not in self.learners:
            raise NotLeader(None)  # removed; steps down once the removal commits

    def _append_local(self, entries: list[Entry], config: bool = False) -> None:
        self._log.append(entries)
        if config:
            self._note_config_entries(entries)
        if self._maybe_commit():
            self._on_commit_advanced()
        self._bcast_needed = True

    def _maybe_commit(self) -> bool:
        """Raise commit to the highest index a quorum of voters holds, if it is of the
        current term (Raft §5.4.2: older entries commit only indirectly). O(voters)."""
        if not self._voter_list:
            return False
        # This leader counts only what it has made durable (thesis §10.2.1): entries
        # still unstable may be lost by a crash of this node alone.
        durable = self._log.durable_index()
        progress = self._progress
        matches = [durable if v == self.id else progress[v].match for v in self._voter_list]
        matches.sort(reverse=True)
        candidate = matches[self._quorum - 1]
        if candidate > self.commit_index and self._log.term_at(candidate) == self.term:
            self.commit_index = candidate
            return True
        return False

    def _on_commit_advanced(self) -> None:
        reads = self._reads
        if reads.awaiting_term_commit and self._log.term_at(self.commit_index) == self.term:
            waiting, reads.awaiting_term_commit = reads.awaiting_term_commit, []
            for context, origin in waiting:
                self._leader_read(context, origin)
        if self.id not in self.voters and self.conf_index <= self.commit_index:
            # Removed from the configuration and the removal is committed (thesis §4.2.2).
            self._become_follower(self.term, None)

    def _flush(self) -> None:
        """Send what proposals and acks left pending, coalesced into as few appends as possible."""
        if self.role != Role.LEADER:
            return
        if self._bcast_needed or self._commit_bcast_needed:
            allow_empty = self._commit_bcast_needed  # an empty append still carries the commit
            self._bcast_needed = self._commit_bcast_needed = False
            for node in self._progress:
                if self._send_append(node, allow_empty=allow_empty):
                    while self._send_append(node, allow_empty=False):
                        pass
        if self._reads.start_round():
            self._bcast_heartbeat()

    def _bcast_heartbeat(self) -> None:
        context = self._reads.seq
        commit = self.commit_index
        for node, pr in self._progress.items():
            self._send(Heartbeat(self.id, node, self.term, min(pr.match, commit), context))

    def _send_append(self, to: str, allow_empty: bool, probe_only: bool = False) -> bool:
        """Send the next batch to `to` if its progress allows (`probe_only`: no entries,
        just the consistency check). True if more may follow."""
        pr = self._progress[to]
        if pr.state == ProgressState.SNAPSHOT:
            return False
        if pr.state == ProgressState.PROBE and pr.paused:
            return False
        if len(pr.inflight) >= self.config.max_inflight_msgs:
            return False
        log = self._log
        last = log.last_index()
        if pr.next > last + 1:
            raise RaftInvariantError(f"{to} next {pr.next} beyond last {last}")
        prev = pr.next - 1
        prev_term = log.term_at(prev)
        if prev_term is None:
            self._send_snapshot(to)
            return False
        if pr.next > last or probe_only:
            if not allow_empty:
                return False
            entries: list[Entry] = []
        else:
            hi = min(last + 1, pr.next + self.config.max_entries_per_msg)
            try:
                entries = log.entries(pr.next, hi, self.config.max_bytes_per_msg)
            except SnapshotUnavailable:
                self._send_snapshot(to)
                return False
        self._send(AppendEntries(self.id, to, self.term, prev, prev_term, tuple(entries), self.commit_index))
        if pr.state == ProgressState.REPLICATE:
            if entries:
                pr.next = entries[-1].index + 1
                pr.inflight.append(pr.next - 1)
                return pr.next <= last
            return False
        pr.paused = True
        pr.idle_ticks = 0
        return False

    def _send_snapshot(self, to: str) -> None:
        pr = self._progress[to]
        pr.state = ProgressState.SNAPSHOT
        pr.inflight.clear()
        pr.snap_index = self._log.storage.snapshot_meta().index
        pr.snap_offset = 0
        pr.idle_ticks = 0
        self.stats["snapshots_sent"] += 1
        self._send_snapshot_chunk(to)

    def _send_snapshot_chunk(self, to: str) -> None:
        pr = self._progress[to]
        storage = self._log.storage
        meta = storage.snapshot_meta()
        data = storage.snapshot_data()
        if meta.index != pr.snap_index:  # compacted again meanwhile: start over
            pr.snap_index = meta.index
            pr.snap_offset = 0
        offset = min(pr.snap_offset, len(data))
        chunk = bytes(memoryview(data)[offset : offset + self.config.snapshot_chunk_bytes])
        done = offset + len(chunk) >= len(data)
        self._send(InstallSnapshot(self.id, to, self.term, meta, offset, chunk, done))

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.config.election_timeout_ticks:
            self._election_elapsed = 0
            if self.config.check_quorum:
                # Step down when a majority was not heard from in a timeout (thesis §6.2).
                active = 1 if self.id in self.voters else 0
                for node, pr in self._progress.items():
                    if pr.recent_active and node in self.voters:
                        active += 1
                    pr.recent_active = False
                if active < self._quorum:
                    self.stats["check_quorum_step_downs"] += 1
                    self._become_follower(self.term, None)
                    return
            if self._transferee is not None:
                self.stats["transfers_aborted"] += 1
                self._transferee = None
        if self._heartbeat_elapsed >= self.config.heartbeat_interval_ticks:
            self._heartbeat_elapsed = 0
            self._bcast_heartbeat()
            for node, pr in self._progress.items():
                if pr.state == ProgressState.SNAPSHOT or (pr.state == ProgressState.PROBE and pr.paused):
                    pr.idle_ticks += 1
                    if pr.idle_ticks < _RESEND_HEARTBEATS:
                        continue
                    pr.idle_ticks = 0  # the message or its answer was lost: ask again
                    if pr.state == ProgressState.SNAPSHOT:
                        self._send_snapshot_chunk(node)
                    else:
                        self.stats["probes_resent"] += 1
                        pr.paused = False
                        self._send_append(node, allow_empty=True, probe_only=True)

    def _step_leader(self, msg: Message) -> None:
        if isinstance(msg, ReadIndexRequest):
            if msg.src in self._progress:
                self._leader_read(msg.context, msg.src)
            else:
                self.stats["dropped_unknown_node"] += 1
            return
        if isinstance(msg, _LEADER_MESSAGES):
            self.stats["dropped_second_leader"] += 1  # two leaders in one term: a forged message
            return
        if not isinstance(msg, (AppendResponse, HeartbeatResponse, SnapshotResponse)):
            self.stats["dropped_unexpected"] += 1
            return
        pr = self._progress.get(msg.src)
        if pr is None:
            self.stats["dropped_unknown_node"] += 1
            return
        pr.recent_active = True
        if isinstance(msg, AppendResponse):
            self._handle_append_response(msg, pr)
        elif isinstance(msg, HeartbeatResponse):
            self._handle_heartbeat_response(msg, pr)
        else:
            self._handle_snapshot_response(msg, pr)

    def _handle_append_response(self, msg: AppendResponse, pr: Progress) -> None:
        last = self._log.last_index()
        if msg.reject:
            if pr.state == ProgressState.SNAPSHOT:
                return
            stale = msg.index <= pr.match if pr.state == ProgressState.REPLICATE else msg.index != pr.next - 1
            if stale or msg.index > last:
                self.stats["stale_append_rejections"] += 1
                return
            pr.become_probe()
            pr.next = max(pr.match + 1, min(self._next_after_conflict(msg), msg.index))
            self._send_append(msg.src, allow_empty=True)
            return
        if msg.index > last:
            self.stats["dropped_bad_ack"] += 1
            return
        updated = msg.index > pr.match
        if updated:
            pr.match = msg.index
        if pr.next <= msg.index:
            pr.next = msg.index + 1
        if pr.state == ProgressState.PROBE:
            pr.state = ProgressState.REPLICATE
            pr.paused = False
            pr.next = pr.match + 1
            pr.inflight.clear()
        elif pr.state == ProgressState.REPLICATE:
            inflight = pr.inflight
            while inflight and inflight[0] <= msg.index:
                inflight.popleft()
        if updated and self._maybe_commit():
            self._on_commit_advanced()
            if self.role != Role.LEADER:
                return
            self._commit_bcast_needed = True  # tell everyone, once per Ready
        if msg.src == self._transferee and pr.match == last:
            self._send(TimeoutNow(self.id, msg.src, self.term))
        while self._send_append(msg.src, allow_empty=False):
            pass

    def _next_after_conflict(self, msg: AppendResponse) -> int:
        """Fast back-off (Raft §5.3 end, thesis §5.4.2 figure): skip the follower's whole
        conflicting term. If this log has that term, resume after its last entry of it;
        otherwise resume at the first index the follower holds with it."""
        if msg.hint_term == 0:
            return msg.hint_index
        index = min(msg.index, self._log.last_index())
        while True:
            term = self._log.term_at(index)
            if term is None or term < msg.hint_term:
                return msg.hint_index
            if term == msg.hint_term:
                return index + 1
            index -= 1

    def _handle_heartbeat_response(self, msg: HeartbeatResponse, pr: Progress) -> None:
        pr.paused = False
        if pr.state == ProgressState.REPLICATE and len(pr.inflight) >= self.config.max_inflight_msgs:
            pr.inflight.popleft()  # an ack may have been lost: let one more append out
        if pr.match < self._log.last_index():
            # The follower lags: if the appends in flight were lost, this empty append
            # makes it reject and the leader probes again from its match point.
            self._send_append(msg.src, allow_empty=True)
        if msg.context > self._reads.seq:
            self.stats["dropped_bad_read_context"] += 1  # a round this leader never started
        elif self._reads.ack(msg.src, msg.context):
            for read in self._reads.release(self._voter_list, self.id, self._quorum):
                self._answer_read(read.context, read.origin, read.index)

    def _handle_snapshot_response(self, msg: SnapshotResponse, pr: Progress) -> None:
        if msg.done:
            if msg.index > self._log.last_index():
                self.stats["dropped_bad_ack"] += 1
                return
            if msg.index > pr.match:
                pr.match = msg.index
            if pr.state == ProgressState.SNAPSHOT:
                pr.become_probe()
                self._send_append(msg.src, allow_empty=True)
            return
        if pr.state == ProgressState.SNAPSHOT and msg.index == pr.snap_index:
            pr.idle_ticks = 0
            pr.snap_offset = msg.next_offset
            self._send_snapshot_chunk(msg.src)

    def _leader_read(self, context: bytes, origin: str) -> None:
        if self._log.term_at(self.commit_index) != self.term:
            # Until an entry of this term commits, this leader's commit index may lag
            # the true one (thesis §6.4 step 1): wait for the NOOP to commit.
            self._reads.awaiting_term_commit.append((context, origin))
            return
        if self._quorum <= 1 and self.id in self.voters:
            self._answer_read(context, origin, self.commit_index)
            return
        self._reads.add(context, origin, self.commit_index)

    def _answer_read(self, context: bytes, origin: str, index: int) -> None:
        if origin == self.id:
            self._read_states.append(ReadState(context, index))
        else:
            self._send(ReadIndexResponse(self.id, origin, self.term, context, index))

    def _fail_leader_reads(self) -> None:
        for context, origin in self._reads.take_all():
            if origin == self.id:
                self._dropped_reads.append(context)
            else:
                self._send(ReadIndexResponse(self.id, origin, self.term, context, 0, reject=True))

    # ------------------------------------------------------------------ internals: followers
    def _step_candidate(self, msg: Message) -> None:
        if isinstance(msg, _LEADER_MESSAGES):
            # A leader of this term exists (Raft §5.2): give up and follow it.
            self._become_follower(msg.term, msg.src)
            self._step_follower(msg)
            return
        if isinstance(msg, VoteResponse):
            pre = self.role == Role.PRE_CANDIDATE
            if msg.pre_vote != pre or msg.src not in self.voters:
                self.stats["dropped_unexpected"] += 1
                return
            if pre and msg.granted and msg.term != self.term + 1:
                return
            self._votes[msg.src] = msg.granted
            granted = sum(1 for v in self._votes.values() if v)
            rejected = len(self._votes) - granted
            if granted >= self._quorum:
                self._win_vote(pre)
            elif rejected > len(self._voter_list) - self._quorum:
                self._become_follower(self.term, None)
            return
        if isinstance(msg, ReadIndexRequest):
            self._send(ReadIndexResponse(self.id, msg.src, self.term, msg.context, 0, reject=True))
            return
        if isinstance(msg, ReadIndexResponse):
            self._handle_read_index_response(msg)
            return
        self.stats["dropped_unexpected"] += 1

    def _step_follower(self, msg: Message) -> None:
        if isinstance(msg, _LEADER_MESSAGES):
            self._election_elapsed = 0
            self.leader_id = msg.src
            if isinstance(msg, AppendEntries):
                self._handle_append(msg)
            elif isinstance(msg, Heartbeat):
                self._commit_to(min(msg.commit, self._log.last_index()))
                self._send(HeartbeatResponse(self.id, msg.src, self.term, msg.context))
            else:
                self._handle_snapshot(msg)
        elif isinstance(msg, TimeoutNow):
            if self._promotable():
                self.stats["transfer_elections"] += 1
                self._campaign(pre=False, transfer=True)
        elif isinstance(msg, ReadIndexRequest):
            self._send(ReadIndexResponse(self.id, msg.src, self.term, msg.context, 0, reject=True))
        elif isinstance(msg, ReadIndexResponse):
            self._handle_read_index_response(msg)
        else:
            self.stats["dropped_unexpected"] += 1

    def _handle_read_index_response(self, msg: ReadIndexResponse) -> None:
        if msg.reject:
            self._dropped_reads.append(msg.context)
        else:
            self._read_states.append(ReadState(msg.context, msg.index))

    def _commit_to(self, index: int) -> None:
        if index > self.commit_index:
            self.commit_index = index

    def _handle_append(self, msg: AppendEntries) -> None:
        log = self._log
        if msg.prev_index < self.commit_index:
            # Everything up to commit already matches the leader (Leader Completeness).
            self._send(AppendResponse(self.id, msg.src, self.term, self.commit_index))
            return
        if log.term_at(msg.prev_index) != msg.prev_term:
            self._reject_append(msg)
            return
        entries = msg.entries
        last = log.last_index()
        start = 0
        for entry in entries:  # skip entries already held; find the first conflict
            if entry.index > last or log.term_at(entry.index) != entry.term:
                break
            start += 1
        if start < len(entries):
            new = entries[start:]
            first = new[0].index
            if first <= self.commit_index:
                raise RaftInvariantError(f"{self.id} would overwrite committed index {first}")
            if first <= last:
                self.stats["entries_truncated"] += last - first + 1
                self._truncate_conf_history(first)
            log.append(new)
            self._note_config_entries(new)
        last_new = msg.prev_index + len(entries)
        self._commit_to(min(msg.commit, last_new))
        self._send(AppendResponse(self.id, msg.src, self.term, last_new))

    def _reject_append(self, msg: AppendEntries) -> None:
        log = self._log
        last = log.last_index()
        if last < msg.prev_index:
            hint_term, hint_index = 0, last + 1
        else:
            hint_term = log.term_at(msg.prev_index)
            hint_index = msg.prev_index
            floor = max(self.commit_index, log.first_index() - 1)
            while hint_index - 1 > floor and log.term_at(hint_index - 1) == hint_term:
                hint_index -= 1
        self.stats["append_rejected"] += 1
        self._send(
            AppendResponse(self.id, msg.src, self.term, msg.prev_index, True, hint_term or 0, hint_index)
        )

    def _handle_snapshot(self, msg: InstallSnapshot) -> None:
        meta = msg.meta
        if meta.index <= self.commit_index:
            self._snapshot_rx = None
            self._send(SnapshotResponse(self.id, msg.src, self.term, meta.index, 0, done=True))
            return
        rx = self._snapshot_rx
        if msg.offset == 0:
            rx = (meta, bytearray())
        elif rx is None or rx[0] != meta or msg.offset != len(rx[1]):
            expected = len(rx[1]) if rx is not None and rx[0] == meta else 0
            self.stats["snapshot_chunks_out_of_order"] += 1
            self._send(SnapshotResponse(self.id, msg.src, self.term, meta.index, expected))
            return
        rx[1].extend(msg.data)
        if not msg.done:
            self._snapshot_rx = rx
            self._send(SnapshotResponse(self.id, msg.src, self.term, meta.index, len(rx[1])))
            return
        self._snapshot_rx = None
        if self._log.term_at(meta.index) == meta.term:
            # The log already holds the snapshot point: just move commit (Raft §7).
            self._commit_to(meta.index)
        else:
            self._log.restore(meta, rx[1])  # no copy of what may be tens of MB: nobody writes it again
            self.commit_index = meta.index
            self._confs.reset(meta.index, meta.conf)
            self._apply_conf(meta.conf)
            self.stats["snapshots_installed"] += 1
        self._send(SnapshotResponse(self.id, msg.src, self.term, meta.index, 0, done=True))

    # ------------------------------------------------------------------ internals: both
    def _handle_vote_request(self, msg: VoteRequest) -> None:
        can_vote = (
            self.voted_for == msg.src
            or (self.voted_for is None and self.leader_id is None)
            or (msg.pre_vote and msg.term > self.term)
        )
        last = self._log.last_index()
        last_term = self._log.term_at(last)
        up_to_date = msg.last_term > last_term or (msg.last_term == last_term and msg.last_index >= last)
        if can_vote and up_to_date:
            if not msg.pre_vote:
                self.voted_for = msg.src
                self._election_elapsed = 0
            self._send(VoteResponse(self.id, msg.src, msg.term, True, msg.pre_vote))
        else:
            self._send(VoteResponse(self.id, msg.src, self.term, False, msg.pre_vote))

    def _send(self, msg: Message) -> None:
        self._msgs.append(msg)

    def _log_event(self, event: str, **fields) -> None:
        if _logger.isEnabledFor(logging.DEBUG):
            extra = " ".join(f"{k}={v}" for k, v in fields.items())
            _logger.debug("%s event=%s term=%d role=%s %s", self.id, event, self.term, self.role.name, extra)
