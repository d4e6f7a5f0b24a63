"""Unit tests of the pure Raft core, each tagged with the paper or thesis section it checks."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from agent.raft.config import TEST_PROFILE
from agent.raft.confchange import ConfChange, ConfChangeKind, decode_conf_state, encode_conf_state
from agent.raft.core import RaftCore, Role
from agent.raft.errors import ConfChangeRejected, NotLeader, RaftInvariantError, TransferInProgress
from agent.raft.memlog import MemLog
from agent.raft.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    ReadIndexRequest,
    ReadIndexResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from agent.raft.types import NUMBER_LIMIT, ConfState, Entry, EntryKind, HardState, SnapshotMeta

PLAIN = replace(TEST_PROFILE, pre_vote=False, check_quorum=False)


def make_core(node_id="a", voters=("a", "b", "c"), learners=(), config=PLAIN, entries=(), hard=HardState(), seed=1):
    storage = MemLog(snapshot=SnapshotMeta(0, 0, ConfState(tuple(voters), tuple(learners))), hard_state=hard)
    storage.append(list(entries))
    core = RaftCore(node_id, storage, config, random.Random(seed), hard_state=hard)
    return core, storage


def drain(core, storage):
    """Process every Ready by the contract; return the messages sent and the entries applied."""
    sent, applied = [], []
    while core.has_ready():
        rd = core.ready()
        sent.extend(rd.early_messages)  # a leader's appends may leave before its write
        storage.persist(rd)
        sent.extend(rd.messages)
        applied.extend(rd.committed_entries)
        core.advance(rd)
    return sent, applied


class Cluster:
    """Cores wired by a perfect in-memory network; `cut` holds directed links that drop."""

    def __init__(self, ids=("a", "b", "c"), learners=(), config=PLAIN, spares=()):
        self.nodes = {}
        for seed, node_id in enumerate(ids + tuple(learners)):
            self.nodes[node_id] = make_core(node_id, ids, learners, config, seed=seed + 1)
        for node_id in spares:
            storage = MemLog()
            self.nodes[node_id] = (RaftCore(node_id, storage, config, random.Random(99)), storage)
        self.cut: set[tuple[str, str]] = set()
        self.down: set[str] = set()
        self.applied = {node_id: [] for node_id in self.nodes}
        self.log = []

    def core(self, node_id):
        return self.nodes[node_id][0]

    def settle(self, rounds=50):
        for _ in range(rounds):
            moved = False
            for node_id, (core, storage) in list(self.nodes.items()):
                if node_id in self.down:
                    continue
                sent, applied = drain(core, storage)
                self.applied[node_id].extend(applied)
                for msg in sent:
                    moved = True
                    self.log.append(msg)
                    if (msg.src, msg.dst) in self.cut or msg.dst in self.down:
                        continue
                    self.nodes[msg.dst][0].step(msg)
            if not moved:
                return

    def tick(self, times=1):
        for _ in range(times):
            for node_id, (core, _) in self.nodes.items():
                if node_id not in self.down:
                    core.tick()
            self.settle()

    def elect(self, node_id):
        self.core(node_id).campaign()
        self.settle()
        assert self.core(node_id).role == Role.LEADER
        return self.core(node_id)

    def isolate(self, node_id):
        for other in self.nodes:
            if other != node_id:
                self.cut |= {(node_id, other), (other, node_id)}


# ---------------------------------------------------------------- elections (Raft §5.2)


def test_single_voter_elects_itself_and_commits__raft_5_2():
    core, storage = make_core("a", voters=("a",))
    core.campaign()
    assert core.role == Role.LEADER
    index = core.propose(b"x")
    _, applied = drain(core, storage)
    assert [e.index for e in applied] == [1, index]
    assert applied[0].kind == EntryKind.NOOP and applied[1].data == b"x"


def test_election_timeout_is_randomized_in_t_to_2t__raft_5_2():
    timeouts = set()
    for seed in range(30):
        core, _ = make_core("a", seed=seed)
        ticks = 0
        while core.role == Role.FOLLOWER:
            core.tick()
            ticks += 1
        timeouts.add(ticks)
    assert min(timeouts) >= PLAIN.election_timeout_ticks
    assert max(timeouts) < 2 * PLAIN.election_timeout_ticks
    assert len(timeouts) > 3


def test_three_nodes_elect_exactly_one_leader__raft_5_2():
    cluster = Cluster()
    cluster.tick(25)
    leaders = [c for c, _ in cluster.nodes.values() if c.role == Role.LEADER]
    assert len(leaders) == 1
    terms = {c.term for c, _ in cluster.nodes.values()}
    assert terms == {leaders[0].term}


def test_votes_once_per_term__raft_5_2():
    core, storage = make_core("a")
    core.step(VoteRequest("b", "a", 1, 0, 0))
    core.step(VoteRequest("c", "a", 1, 0, 0))
    sent, _ = drain(core, storage)
    grants = {m.dst: m.granted for m in sent if isinstance(m, VoteResponse)}
    assert grants == {"b": True, "c": False}
    assert storage.hard_state == HardState(1, "b", 0)


def test_vote_denied_to_candidate_with_stale_log__raft_5_4_1():
    core, storage = make_core("a", entries=[Entry(1, 1), Entry(2, 2)], hard=HardState(2, None, 0))
    core.step(VoteRequest("b", "a", 3, 5, 1))  # longer log but older last term
    core.step(VoteRequest("c", "a", 3, 1, 2))  # same last term, shorter log
    sent, _ = drain(core, storage)
    assert [m.granted for m in sent if isinstance(m, VoteResponse)] == [False, False]
    core.step(VoteRequest("c", "a", 3, 2, 2))
    sent, _ = drain(core, storage)
    assert [m.granted for m in sent if isinstance(m, VoteResponse)] == [True]


def test_stale_term_message_is_counted_and_ignored__raft_5_1():
    core, storage = make_core("a", hard=HardState(5, None, 0))
    core.step(AppendEntries("b", "a", 3, 0, 0, (Entry(1, 3),), 0))
    assert core.stats["dropped_stale_term"] == 1
    assert core.last_index() == 0 and core.term == 5


def test_leader_steps_down_on_higher_term__raft_5_1():
    cluster = Cluster()
    leader = cluster.elect("a")
    leader.step(HeartbeatResponse("b", "a", leader.term + 3))
    assert leader.role == Role.FOLLOWER and leader.term > 1


# ---------------------------------------------------------------- PreVote and CheckQuorum


def test_prevote_rejoining_node_does_not_disrupt_leader__thesis_9_6():
    config = replace(TEST_PROFILE, pre_vote=True, check_quorum=True)
    cluster = Cluster(config=config)
    leader = cluster.elect("a")
    term = leader.term
    cluster.isolate("c")
    cluster.tick(60)  # c times out again and again but only runs PreVotes
    assert cluster.core("c").term == term
    cluster.cut.clear()
    cluster.tick(5)
    assert leader.role == Role.LEADER and leader.term == term
    assert cluster.core("c").term == term and cluster.core("c").leader_id == "a"


def test_without_prevote_rejoining_node_raises_term__thesis_9_6():
    cluster = Cluster(config=PLAIN)
    leader = cluster.elect("a")
    term = leader.term
    cluster.isolate("c")
    cluster.tick(60)
    assert cluster.core("c").term > term  # the disruption PreVote exists to prevent


def test_check_quorum_leader_steps_down_when_isolated__thesis_6_2():
    config = replace(TEST_PROFILE, pre_vote=True, check_quorum=True)
    cluster = Cluster(config=config)
    leader = cluster.elect("a")
    cluster.isolate("a")
    cluster.tick(2 * config.election_timeout_ticks + 1)
    assert leader.role == Role.FOLLOWER
    assert leader.stats["check_quorum_step_downs"] == 1


def test_follower_in_lease_ignores_vote_request__thesis_4_2_3():
    config = replace(TEST_PROFILE, pre_vote=False, check_quorum=True)
    cluster = Cluster(config=config)
    leader = cluster.elect("a")
    follower = cluster.core("b")
    follower.step(VoteRequest("c", "b", leader.term + 1, 100, leader.term))
    assert follower.term == leader.term
    assert follower.stats["ignored_vote_in_lease"] == 1


# ---------------------------------------------------------------- replication (Raft §5.3)


def test_replication_commits_and_applies_everywhere__raft_5_3():
    cluster = Cluster()
    leader = cluster.elect("a")
    for k in range(20):
        leader.propose(b"cmd%d" % k)
    cluster.settle()
    cluster.tick(2)
    for node_id in "abc":
        datas = [e.data for e in cluster.applied[node_id] if e.kind == EntryKind.NORMAL]
        assert datas == [b"cmd%d" % k for k in range(20)]


def test_appends_batched_by_count_and_bytes():
    config = replace(PLAIN, max_entries_per_msg=5, max_bytes_per_msg=100, max_inflight_msgs=1000)
    cluster = Cluster(config=config)
    leader = cluster.elect("a")
    cluster.log.clear()
    leader.propose_many([b"x" * 10] * 23)
    leader.propose(b"y" * 300)  # alone bigger than the byte bound: still sent, alone
    cluster.settle()
    appends = [m for m in cluster.log if isinstance(m, AppendEntries) and m.entries]
    assert appends
    for msg in appends:
        assert len(msg.entries) <= 5
        assert len(msg.entries) == 1 or sum(len(e.data) for e in msg.entries) <= 100
    assert max(len(m.entries) for m in appends) == 5


def test_pipeline_bounded_by_inflight_window():
    config = replace(PLAIN, max_entries_per_msg=1, max_inflight_msgs=3)
    core, storage = make_core("a", config=config)
    core.campaign()
    for node in "bc":
        core.step(VoteResponse(node, "a", 1, True))
    drain(core, storage)
    core.step(AppendResponse("b", "a", 1, 1))  # b matched the NOOP: replicate state
    drain(core, storage)
    for k in range(10):
        core.propose(b"%d" % k)
    sent, _ = drain(core, storage)
    to_b = [m for m in sent if isinstance(m, AppendEntries) and m.dst == "b"]
    to_c = [m for m in sent if isinstance(m, AppendEntries) and m.dst == "c"]
    assert len(to_b) == 3  # optimistic: three batches without waiting
    assert to_c == []  # c still probing: one append at a time, the NOOP one is unanswered
    core.step(AppendResponse("b", "a", 1, 3))
    sent, _ = drain(core, storage)
    assert len([m for m in sent if isinstance(m, AppendEntries) and m.dst == "b"]) == 2


def test_follower_truncates_conflicting_suffix__raft_5_3():
    core, storage = make_core("b", entries=[Entry(1, 1), Entry(2, 1), Entry(3, 2), Entry(4, 2)], hard=HardState(2))
    core.step(AppendEntries("a", "b", 3, 2, 1, (Entry(3, 3), Entry(4, 3), Entry(5, 3)), 0))
    sent, _ = drain(core, storage)
    assert [(e.index, e.term) for e in storage.all_entries()] == [(1, 1), (2, 1), (3, 3), (4, 3), (5, 3)]
    assert sent[-1] == AppendResponse("b", "a", 3, 5)


def test_follower_ignores_append_already_held_no_truncation__raft_5_3():
    core, storage = make_core("b", entries=[Entry(1, 1), Entry(2, 1), Entry(3, 1)], hard=HardState(1))
    core.step(AppendEntries("a", "b", 1, 0, 0, (Entry(1, 1),), 0))  # old, reordered message
    drain(core, storage)
    assert core.last_index() == 3


def test_fast_backoff_skips_conflicting_term_in_one_round__raft_5_3():
    # b holds many entries of term 2 that the leader (term 3) never had.
    stale = [Entry(1, 1)] + [Entry(i, 2) for i in range(2, 40)]
    follower, fstore = make_core("b", entries=stale, hard=HardState(2))
    leader_log = [Entry(1, 1), Entry(2, 3)]
    leader, lstore = make_core("a", entries=leader_log, hard=HardState(3, "a", 1))
    leader.campaign()
    leader.step(VoteResponse("c", "a", 4, True))
    assert leader.role == Role.LEADER
    sent, _ = drain(leader, lstore)
    rounds = 0
    while rounds < 10:
        to_b = [m for m in sent if m.dst == "b"]
        if not to_b:
            break
        rounds += 1
        for msg in to_b:
            follower.step(msg)
        replies, _ = drain(follower, fstore)
        for msg in replies:
            leader.step(msg)
        sent, _ = drain(leader, lstore)
        if leader.progress_match("b") == leader.last_index():
            break
    assert leader.progress_match("b") == leader.last_index()
    assert rounds <= 3  # reject with hint, then append from index 2, done
    assert [e.term for e in fstore.all_entries()] == [1, 3, 4]


def test_commit_only_current_term_entries__raft_5_4_2():
    """Figure 8: a leader must not count replicas of an older-term entry to commit it."""
    leader, storage = make_core("a", entries=[Entry(1, 1), Entry(2, 2)], hard=HardState(3, None, 1))
    leader.campaign()
    leader.step(VoteResponse("b", "a", 4, True))
    assert leader.role == Role.LEADER and leader.term == 4
    drain(leader, storage)
    leader.step(AppendResponse("b", "a", 4, 2))  # b holds index 2 (term 2): a majority
    drain(leader, storage)
    assert leader.commit_index == 1
    leader.step(AppendResponse("b", "a", 4, 3))  # b holds the term-4 NOOP
    drain(leader, storage)
    assert leader.commit_index == 3


def test_leader_appends_noop_on_election__raft_8():
    cluster = Cluster()
    leader = cluster.elect("b")
    entry = leader.log_entries(1, 2)[0]
    assert entry.kind == EntryKind.NOOP and entry.term == leader.term


def test_proposal_on_follower_raises_not_leader_with_hint__raft_8():
    cluster = Cluster()
    cluster.elect("a")
    with pytest.raises(NotLeader) as info:
        cluster.core("b").propose(b"x")
    assert info.value.leader_hint == "a"


# ---------------------------------------------------------------- durability (Figure 2)


def test_vote_is_in_the_same_ready_as_its_grant__raft_5_figure2():
    core, _ = make_core("a")
    core.step(VoteRequest("b", "a", 1, 0, 0))
    rd = core.ready()
    assert rd.hard_state == HardState(1, "b", 0)
    assert VoteResponse("a", "b", 1, True) in rd.messages
    with pytest.raises(RaftInvariantError):
        core.ready()  # a second batch cannot be taken before the first is advanced
    core.advance(rd)


def test_append_ack_travels_with_the_entries_it_acknowledges__raft_5_figure2():
    core, _ = make_core("b")
    core.step(AppendEntries("a", "b", 1, 0, 0, (Entry(1, 1), Entry(2, 1)), 0))
    rd = core.ready()
    assert [e.index for e in rd.entries] == [1, 2]
    assert rd.messages == [AppendResponse("b", "a", 1, 2)]


def test_restart_recovers_exactly_from_durable_state__raft_5_figure2():
    cluster = Cluster()
    leader = cluster.elect("a")
    for k in range(5):
        leader.propose(b"%d" % k)
    cluster.settle()
    cluster.tick(1)
    old, storage = cluster.nodes["b"]
    reborn = RaftCore("b", storage, PLAIN, random.Random(5), hard_state=storage.hard_state)
    assert (reborn.term, reborn.voted_for) == (old.term, old.voted_for)
    assert reborn.last_index() == old.last_index()
    assert reborn.commit_index == old.commit_index
    assert reborn.log_entries(1, reborn.last_index() + 1) == old.log_entries(1, old.last_index() + 1)
    assert reborn.conf_state == old.conf_state
    _, applied = drain(reborn, storage)  # re-applies from the snapshot point
    assert [e.index for e in applied] == list(range(1, old.commit_index + 1))


def test_unpersisted_entries_are_not_in_storage_until_ready_is_processed():
    core, storage = make_core("a", voters=("a",))
    core.campaign()
    core.propose(b"x")
    assert storage.last_index() == 0
    rd = core.ready()
    assert storage.last_index() == 0
    storage.persist(rd)
    core.advance(rd)
    assert storage.last_index() == 2



def test_leader_replicates_before_its_own_write_but_counts_only_durable__thesis_10_2_1():
    cluster = Cluster()
    leader = cluster.elect("a")
    storage = cluster.nodes["a"][1]
    index = leader.propose(b"x")
    rd = leader.ready()
    appends = [m for m in rd.early_messages if isinstance(m, AppendEntries)]
    assert sorted(m.dst for m in appends) == ["b", "c"] and all(m.entries[-1].index == index for m in appends)
    assert not any(isinstance(m, AppendEntries) for m in rd.messages)
    # One follower made it durable; the leader has not yet: one copy of three is no quorum.
    leader.step(AppendResponse("b", "a", leader.term, index))
    assert leader.commit_index < index
    storage.persist(rd)
    leader.advance(rd)  # now durable here too: two copies of three
    assert leader.commit_index == index


def test_followers_alone_can_commit_what_the_leader_has_not_yet_written__thesis_10_2_1():
    cluster = Cluster()
    leader = cluster.elect("a")
    index = leader.propose(b"x")
    rd = leader.ready()
    leader.step(AppendResponse("b", "a", leader.term, index))
    leader.step(AppendResponse("c", "a", leader.term, index))
    assert leader.commit_index == index  # b and c hold it durably: a quorum without a
    cluster.nodes["a"][1].persist(rd)
    leader.advance(rd)
    _, applied = drain(leader, cluster.nodes["a"][1])
    assert applied[-1].index == index  # applied only after the leader's own write


def test_no_early_messages_while_the_term_or_vote_is_not_yet_durable__thesis_10_2_1():
    core, storage = make_core("a", voters=("a",), learners=("l",))
    core.campaign()  # a lone voter wins at once: the new term is in this very Ready
    rd = core.ready()
    assert core.role == Role.LEADER and rd.hard_state is not None
    assert rd.early_messages == []
    assert any(isinstance(m, AppendEntries) and m.dst == "l" for m in rd.messages)
    storage.persist(rd)
    core.advance(rd)
    core.step(AppendResponse("l", "a", core.term, core.last_index()))
    drain(core, storage)
    core.propose(b"x")
    rd = core.ready()  # the term and vote are durable now
    assert any(isinstance(m, AppendEntries) and m.dst == "l" for m in rd.early_messages)


# ---------------------------------------------------------------- snapshots (Raft §7)


def test_lagging_follower_gets_snapshot_in_chunks__raft_7():
    config = replace(PLAIN, snapshot_chunk_bytes=10)
    cluster = Cluster(config=config)
    leader = cluster.elect("a")
    cluster.down.add("c")
    for k in range(10):
        leader.propose(b"v%d" % k)
    cluster.settle()
    cluster.tick(1)
    _, storage = cluster.nodes["a"]
    meta = leader.snapshot_meta_for(leader.applied_index)
    data = bytes(range(95))
    storage.compact(meta, data)
    leader.propose(b"after")
    cluster.down.clear()
    cluster.log.clear()
    cluster.tick(3)
    chunks = [m for m in cluster.log if isinstance(m, InstallSnapshot) and m.dst == "c"]
    assert len({m.offset for m in chunks}) == 10
    assert all(len(m.data) <= 10 for m in chunks)
    follower, fstore = cluster.nodes["c"]
    assert fstore.snapshot_meta() == meta and fstore.snapshot_data() == data
    assert follower.commit_index == leader.commit_index
    assert [e.data for e in cluster.applied["c"]][-1] == b"after"
    assert leader.progress_match("c") == leader.last_index()


def test_snapshot_chunk_out_of_order_is_not_assembled__raft_7():
    core, storage = make_core("b")
    meta = SnapshotMeta(10, 1, ConfState(("a", "b", "c")))
    core.step(InstallSnapshot("a", "b", 1, meta, 0, b"abc", False))
    core.step(InstallSnapshot("a", "b", 1, meta, 6, b"ghi", True))  # 3..6 missing
    sent, _ = drain(core, storage)
    assert sent[-1].next_offset == 3 and not sent[-1].done
    assert storage.snapshot_meta().index == 0
    core.step(InstallSnapshot("a", "b", 1, meta, 3, b"def", False))
    core.step(InstallSnapshot("a", "b", 1, meta, 6, b"ghi", True))
    rd = core.ready()
    assert rd.snapshot == (meta, b"abcdefghi")
    storage.persist(rd)
    core.advance(rd)
    assert core.commit_index == 10 and core.applied_index == 10


# ---------------------------------------------------------------- membership (thesis §4)


def test_learner_receives_log_but_never_votes_or_counts__thesis_4_2_1():
    cluster = Cluster(ids=("a", "b", "c"), learners=("d",))
    leader = cluster.elect("a")
    leader.propose(b"x")
    cluster.settle()
    cluster.tick(1)
    assert [e.data for e in cluster.applied["d"]][-1] == b"x"
    assert not any(isinstance(m, VoteRequest) and m.dst == "d" for m in cluster.log)
    learner = cluster.core("d")
    for _ in range(100):
        learner.tick()
    assert learner.role == Role.FOLLOWER  # never campaigns


def test_a_learner_cut_off_names_its_old_leader_but_counts_the_silence():
    """A learner never campaigns, so `leader_id` keeps naming a leader it no longer hears;
    `leader_silent_ticks` is what tells the agent it is cut off (and must fence its Pods)."""
    cluster = Cluster(ids=("a", "b", "c"), learners=("d",))
    leader = cluster.elect("a")
    leader.propose(b"x")
    cluster.settle()
    learner = cluster.core("d")
    assert learner.leader_id == "a" and learner.leader_silent_ticks <= 1
    assert leader.leader_silent_ticks == 0
    for _ in range(50):
        learner.tick()  # nothing delivered: the learner hears nobody
    assert learner.leader_id == "a"  # still named, and the silence counted
    assert learner.leader_silent_ticks >= 50
    cluster.tick(1)  # the leader's heartbeat reaches it again
    assert learner.leader_silent_ticks <= 1


def test_add_learner_promote_and_remove_one_at_a_time__thesis_4_1():
    cluster = Cluster(spares=("d",))
    leader = cluster.elect("a")
    leader.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, "d"))
    with pytest.raises(ConfChangeRejected):  # the first one is not committed yet
        leader.propose_conf_change(ConfChange(ConfChangeKind.REMOVE, "c"))
    assert "d" in leader.learners  # in effect as soon as appended
    cluster.settle()
    cluster.tick(2)
    assert cluster.core("d").conf_state == leader.conf_state
    leader.propose_conf_change(ConfChange(ConfChangeKind.PROMOTE, "d"))
    cluster.settle()
    cluster.tick(2)
    assert leader.voters == {"a", "b", "c", "d"}
    leader.propose_conf_change(ConfChange(ConfChangeKind.REMOVE, "c"))
    cluster.settle()
    cluster.tick(2)
    assert leader.voters == {"a", "b", "d"}
    assert cluster.core("d").voters == {"a", "b", "d"}


def test_promote_refused_until_learner_caught_up__thesis_4_2_1():
    cluster = Cluster(spares=("d",))
    leader = cluster.elect("a")
    cluster.down.add("d")
    leader.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, "d"))
    cluster.settle()
    cluster.tick(1)
    with pytest.raises(ConfChangeRejected):
        leader.propose_conf_change(ConfChange(ConfChangeKind.PROMOTE, "d"))


def test_removed_leader_steps_down_after_commit__thesis_4_2_2():
    cluster = Cluster()
    leader = cluster.elect("a")
    cluster.cut |= {("b", "a"), ("c", "a")}  # hold acks back
    leader.propose_conf_change(ConfChange(ConfChangeKind.REMOVE, "a"))
    cluster.settle()
    assert leader.role == Role.LEADER  # not committed yet
    with pytest.raises(NotLeader):
        leader.propose(b"x")  # no longer a member: refuses new work
    cluster.cut.clear()
    cluster.tick(1)
    assert leader.role == Role.FOLLOWER
    cluster.tick(40)
    new_leaders = [n for n in "bc" if cluster.core(n).role == Role.LEADER]
    assert len(new_leaders) == 1
    assert leader.role == Role.FOLLOWER and "a" not in cluster.core(new_leaders[0]).voters


def test_config_reverts_when_its_entry_is_truncated__thesis_4_1():
    conf = encode_conf_state(ConfState(("a", "b"), ()))
    core, storage = make_core("c", entries=[Entry(1, 1), Entry(2, 2, EntryKind.CONFIG, conf)], hard=HardState(2))
    assert core.voters == {"a", "b"}
    core.step(AppendEntries("a", "c", 3, 1, 1, (Entry(2, 3),), 1))
    assert core.voters == {"a", "b", "c"}
    assert decode_conf_state(conf) == ConfState(("a", "b"), ())


# ---------------------------------------------------------------- leadership transfer (thesis §3.10)


def test_leadership_transfer_hands_over_and_refuses_proposals__thesis_3_10():
    cluster = Cluster()
    leader = cluster.elect("a")
    cluster.cut.add(("a", "b"))
    leader.propose(b"x")
    cluster.settle()
    leader.transfer_leadership("b")
    with pytest.raises(TransferInProgress):
        leader.propose(b"y")
    cluster.cut.clear()
    cluster.tick(2)  # heartbeat -> b catches up -> TimeoutNow -> b wins
    assert cluster.core("b").role == Role.LEADER
    assert any(isinstance(m, TimeoutNow) for m in cluster.log)
    assert leader.role == Role.FOLLOWER


def test_leadership_transfer_aborts_after_election_timeout__thesis_3_10():
    cluster = Cluster()
    leader = cluster.elect("a")
    cluster.down.add("b")
    leader.transfer_leadership("b")
    cluster.tick(PLAIN.election_timeout_ticks)
    assert leader.role == Role.LEADER
    leader.propose(b"ok again")
    assert leader.stats["transfers_aborted"] == 1


# ---------------------------------------------------------------- ReadIndex (thesis §6.4)


def _read_states(core, storage):
    states, dropped = [], []
    while core.has_ready():
        rd = core.ready()
        storage.persist(rd)
        states += rd.read_states
        dropped += rd.dropped_reads
        core.advance(rd)
    return states, dropped


def test_read_index_needs_quorum_heartbeat_round__thesis_6_4():
    core, storage = make_core("a")
    core.campaign()
    core.step(VoteResponse("b", "a", 1, True))
    drain(core, storage)
    core.step(AppendResponse("b", "a", 1, 1))  # NOOP committed
    drain(core, storage)
    core.read_index(b"r1")
    rd = core.ready()
    beats = [m for m in rd.early_messages if isinstance(m, Heartbeat)]
    assert rd.read_states == [] and len(beats) == 2
    core.advance(rd)
    core.step(HeartbeatResponse("b", "a", 1, beats[0].context - 1))  # an older round does not count
    assert _read_states(core, storage) == ([], [])
    core.step(HeartbeatResponse("b", "a", 1, beats[0].context))
    states, _ = _read_states(core, storage)
    assert [(s.context, s.index) for s in states] == [(b"r1", 1)]


def test_read_index_waits_for_commit_in_term__thesis_6_4():
    core, storage = make_core("a")
    core.campaign()
    core.step(VoteResponse("b", "a", 1, True))
    core.read_index(b"early")
    sent, _ = drain(core, storage)
    assert not any(isinstance(m, Heartbeat) and m.context for m in sent)
    core.step(AppendResponse("b", "a", 1, 1))
    sent, _ = drain(core, storage)
    beat = [m for m in sent if isinstance(m, Heartbeat) and m.dst == "b"][0]
    core.step(HeartbeatResponse("b", "a", 1, beat.context))
    states, _ = _read_states(core, storage)
    assert [s.context for s in states] == [b"early"]


def test_follower_forwards_read_index_to_leader__thesis_6_4():
    cluster = Cluster()
    cluster.elect("a")
    follower, storage = cluster.nodes["b"]
    follower.read_index(b"fr")
    rd = follower.ready()
    forwarded = [m for m in rd.messages if isinstance(m, ReadIndexRequest)]
    follower.advance(rd)
    assert forwarded and forwarded[0].dst == "a"
    leader = cluster.core("a")
    leader.step(forwarded[0])
    lstore = cluster.nodes["a"][1]
    sent, _ = drain(leader, lstore)
    for beat in (m for m in sent if isinstance(m, Heartbeat)):
        leader.step(HeartbeatResponse(beat.dst, "a", beat.term, beat.context))
    sent, _ = drain(leader, lstore)
    replies = [m for m in sent if isinstance(m, ReadIndexResponse)]
    assert len(replies) == 1 and not replies[0].reject and replies[0].index == leader.commit_index
    follower.step(replies[0])
    states, _ = _read_states(follower, storage)
    assert [(s.context, s.index) for s in states] == [(b"fr", leader.commit_index)]


def test_deposed_leader_fails_pending_reads__thesis_6_4():
    cluster = Cluster()
    leader = cluster.elect("a")
    core, storage = cluster.nodes["a"]
    cluster.isolate("a")
    leader.read_index(b"r")
    drain(core, storage)
    leader.step(HeartbeatResponse("b", "a", leader.term + 1))
    states, dropped = _read_states(core, storage)
    assert states == [] and dropped == [b"r"]


# ---------------------------------------------------------------- bad input


def _append(*entries, term=1):
    return AppendEntries("b", "a", term, 0, 0, tuple(entries), 0)


CONF_AB = encode_conf_state(ConfState(("a", "b")))


@pytest.mark.parametrize(
    "msg, counter",
    [
        (_append(Entry(5, 1)), "malformed_bad_entry_index"),  # gap
        (_append(Entry(True, 1)), "malformed_bad_entry_index"),
        (_append(Entry(1, 9)), "malformed_bad_entry_term"),  # term above the message's
        (_append(Entry(1, 2), Entry(2, 1), term=2), "malformed_bad_entry_term"),  # terms go down
        (_append(Entry(1, True)), "malformed_bad_entry_term"),
        (_append(Entry(1, 1, EntryKind.NORMAL, "text")), "malformed_bad_entry_data"),
        (_append(Entry(1, 1, 7, b"")), "malformed_bad_entry_kind"),  # not an EntryKind
        (AppendEntries("b", "a", 1, 0, 0, [Entry(1, 1)], 0), "malformed_bad_entries"),  # not a tuple
        (_append(Entry(1, 1), "entry"), "malformed_bad_entry"),
        # CONFIG entries: the one payload the core parses, checked before anything is appended.
        (_append(Entry(1, 1, EntryKind.CONFIG, b"garbage")), "malformed_bad_config_entry"),
        (_append(Entry(1, 1, EntryKind.CONFIG, b"")), "malformed_bad_config_entry"),
        (_append(Entry(1, 1, EntryKind.CONFIG, b'{"voters": ["a"], "learners": []}')), "malformed_bad_config_entry"),
        (_append(Entry(1, 1, EntryKind.CONFIG, CONF_AB[:-1])), "malformed_bad_config_entry"),  # truncated
        (_append(Entry(1, 1, EntryKind.CONFIG, CONF_AB + b"\x00")), "malformed_bad_config_entry"),
        (_append(Entry(1, 1), Entry(2, 1, EntryKind.CONFIG, b"\x01\x02\x00")), "malformed_bad_config_entry"),
        (Heartbeat("b", "a", -1, 0), "malformed_bad_term"),
        (Heartbeat("b", "a", 1, 0, context="x"), "malformed_bad_context"),
        (Heartbeat("", "a", 1, 0), "malformed_bad_src"),
        (InstallSnapshot("b", "a", 1, SnapshotMeta(1, 1, ConfState(("a", "a"))), 0, b"", True),
         "malformed_bad_snapshot_conf"),
        (InstallSnapshot("b", "a", 1, SnapshotMeta(1, 1), 0, "text", True), "malformed_bad_data"),
        ("not a message", "malformed_unknown_type"),
        (VoteRequest("zz", "a", 9, 0, 0), "dropped_not_member"),
        (Heartbeat("b", "q", 1, 0), "dropped_misaddressed"),
    ],
)
def test_bad_input_is_counted_never_raises(msg, counter):
    core, storage = make_core("a")
    core.step(msg)
    drain(core, storage)
    assert core.stats[counter] == 1
    assert core.term == 0 and core.last_index() == 0 and core.conf_state == ConfState(("a", "b", "c"))


@pytest.mark.parametrize("kind, data", [(EntryKind.NORMAL, b"\xc1 not a batch"), (EntryKind.NORMAL, b"\xff"),
                                        (EntryKind.NOOP, b"junk")])
def test_entries_the_core_does_not_parse_are_appended_and_applied_as_they_are(kind, data):
    """NORMAL and NOOP payloads are the state machine's to judge (it answers a malformed
    command with an error result, never a raise): the core appends them untouched."""
    core, storage = make_core("a")
    core.step(AppendEntries("b", "a", 1, 0, 0, (Entry(1, 1, kind, data),), 1))
    _, applied = drain(core, storage)
    assert core.stats["dropped_malformed"] == 0
    assert applied == [Entry(1, 1, kind, data)]


def test_a_valid_config_entry_from_the_leader_takes_effect__thesis_4_1():
    core, storage = make_core("a")
    core.step(_append(Entry(1, 1, EntryKind.CONFIG, CONF_AB)))
    drain(core, storage)
    assert core.conf_state == ConfState(("a", "b")) and core.last_index() == 1


def test_restart_takes_config_from_entries_after_the_snapshot_only__thesis_4_1():
    """Storage may retain entries below its snapshot; an old CONFIG there must not win."""
    old_conf = encode_conf_state(ConfState(("a", "b"), ()))
    entries = [Entry(1, 1), Entry(2, 1, EntryKind.CONFIG, old_conf), Entry(3, 1), Entry(4, 1)]
    snapshot = SnapshotMeta(3, 1, ConfState(("a", "b", "c")))  # newer than the entry at 2
    storage = _RetainingLog(entries, snapshot)
    core = RaftCore("a", storage, PLAIN, random.Random(1), hard_state=HardState(1, None, 3))
    assert core.voters == {"a", "b", "c"}
    assert core.snapshot_meta_for(3).conf == snapshot.conf


class _RetainingLog:
    """A LogReader whose first index lies below its snapshot (entries retained)."""

    def __init__(self, entries, meta):
        self.entries_list = entries
        self.meta = meta

    def first_index(self):
        return 1

    def last_index(self):
        return len(self.entries_list)

    def term_at(self, index):
        if index == 0:
            return 0
        return self.entries_list[index - 1].term if 1 <= index <= len(self.entries_list) else None

    def entries(self, lo, hi, max_bytes=None):
        return self.entries_list[lo - 1 : hi - 1]

    def snapshot_meta(self):
        return self.meta

    def snapshot_data(self):
        return b""


def _node(node_id, entries, hard, config, voters=("s1", "s2", "s3", "s4", "s5")):
    return make_core(node_id, voters, (), config, entries, hard, seed=int(node_id[1:]))


def test_figure8_old_term_entry_is_not_committed_then_safely_overwritten__raft_5_4_2():
    """The paper's Figure 8 end to end with five servers.

    s1 leads term 4 holding index 2 from term 2; s5 holds a different index 2 from term 3.
    s1 copies index 2 (alone) to s3: a majority now holds it, yet it must not commit.
    s1 then crashes and s5 wins term 5 and overwrites index 2 everywhere: had index 2
    been committed and applied, two state machines would disagree.
    """
    config = replace(PLAIN, max_entries_per_msg=1, max_inflight_msgs=1)
    e1, e2, e3 = Entry(1, 1, data=b"one"), Entry(2, 2, data=b"two@2"), Entry(2, 3, data=b"two@3")
    nodes = {
        "s1": _node("s1", [e1, e2], HardState(3, None, 1), config),
        "s2": _node("s2", [e1, e2], HardState(3, None, 1), config),
        "s3": _node("s3", [e1], HardState(3, None, 1), config),
        "s4": _node("s4", [e1], HardState(3, None, 1), config),
        "s5": _node("s5", [e1, e3], HardState(3, "s5", 1), config),
    }
    applied = {n: [] for n in nodes}

    def pump(down=(), rounds=30):
        for _ in range(rounds):
            moved = False
            for node_id, (core, storage) in nodes.items():
                if node_id in down:
                    continue
                sent, done = drain(core, storage)
                applied[node_id] += done
                for msg in sent:
                    if msg.dst not in down:
                        moved = True
                        nodes[msg.dst][0].step(msg)
            if not moved:
                return

    s1, s5 = nodes["s1"][0], nodes["s5"][0]
    s1.campaign()
    pump(down=("s4", "s5", "s2"), rounds=1)  # votes from s3 only: not yet leader
    nodes["s2"][0].step(VoteRequest("s1", "s2", 4, 2, 2))
    for msg in drain(*nodes["s2"])[0]:
        s1.step(msg)
    assert s1.role == Role.LEADER and s1.term == 4
    # s1 -> s3 only, one entry per message: s3 first gets index 2 (term 2) alone.
    sent, _ = drain(*nodes["s1"])
    for msg in sent:
        if msg.dst == "s3":
            nodes["s3"][0].step(msg)
    for _ in range(3):  # s3 rejects, s1 backs off and sends index 2; the NOOP (index 3) is lost
        for msg in drain(*nodes["s3"])[0]:
            s1.step(msg)
        for msg in drain(*nodes["s1"])[0]:
            carries_noop = isinstance(msg, AppendEntries) and any(e.index == 3 for e in msg.entries)
            if msg.dst == "s3" and not carries_noop:
                nodes["s3"][0].step(msg)
    s1.step(AppendResponse("s2", "s1", 4, 2))  # s2 confirms it holds index 2 as well
    applied["s1"] += drain(*nodes["s1"])[1]
    assert nodes["s3"][0].term_at(2) == 2  # s1, s2, s3: a majority holds index 2 of term 2
    assert s1.commit_index == 1  # ...and it is still not committed (Raft §5.4.2)
    # s1 crashes; s5 (last term 3) wins term 5 with s2, s3, s4 and overwrites index 2.
    s5.campaign()  # term 4: s2 and s3 already voted for s1 in it
    pump(down=("s1",))
    assert s5.role == Role.CANDIDATE
    s5.campaign()  # term 5: its last term 3 beats their last term 2 (Raft §5.4.1)
    pump(down=("s1",))
    assert s5.role == Role.LEADER and s5.term == 5
    s5.propose(b"after")
    pump(down=("s1",))
    for node_id in ("s2", "s3", "s4", "s5"):
        assert nodes[node_id][0].term_at(2) == 3
    all_applied = {(e.index, e.term) for entries in applied.values() for e in entries}
    assert (2, 2) not in all_applied and (2, 3) in all_applied


def test_deposed_leader_reports_role_change_so_pending_writes_fail__raft_5_1():
    cluster = Cluster()
    leader = cluster.elect("a")
    core, storage = cluster.nodes["a"]
    cluster.isolate("a")
    index = leader.propose(b"maybe")
    term = leader.term
    drain(core, storage)
    leader.step(HeartbeatResponse("b", "a", term + 1))
    rd = core.ready()
    assert rd.soft_state is not None and rd.soft_state.role == Role.FOLLOWER
    core.advance(rd)
    with pytest.raises(NotLeader):
        leader.propose(b"more")
    # the new leader overwrites the unacknowledged entry: it never applies with its term
    cluster.cut.clear()
    cluster.elect("b")
    cluster.core("b").propose(b"new")
    cluster.settle()
    cluster.tick(2)
    applied_a = {e.index: e.term for e in cluster.applied["a"]}
    assert applied_a.get(index) != term


def test_single_voter_read_index_is_immediate_after_noop__thesis_6_4():
    core, storage = make_core("a", voters=("a",))
    core.campaign()
    drain(core, storage)
    core.read_index(b"solo")
    states, _ = _read_states(core, storage)
    assert [(s.context, s.index) for s in states] == [(b"solo", 1)]


def test_read_index_without_known_leader_raises__thesis_6_4():
    core, _ = make_core("b")
    with pytest.raises(NotLeader):
        core.read_index(b"r")


def test_propose_many_returns_contiguous_range__raft_5_3():
    core, storage = make_core("a", voters=("a",))
    core.campaign()
    first, last = core.propose_many([b"a", b"b", b"c"])
    assert (first, last) == (2, 4)
    _, applied = drain(core, storage)
    assert [e.data for e in applied[1:]] == [b"a", b"b", b"c"]


# ---------------------------------------------------------------- numbers at the limit (types.NUMBER_LIMIT)


@pytest.mark.parametrize(
    "msg, reason",
    [
        (Heartbeat("b", "a", NUMBER_LIMIT, 0), "out_of_range_term"),
        (Heartbeat("b", "a", 2**64 - 1, 0), "out_of_range_term"),
        (Heartbeat("b", "a", 1, NUMBER_LIMIT), "out_of_range_commit"),
        (Heartbeat("b", "a", 1, 0, context=NUMBER_LIMIT), "out_of_range_context"),
        (AppendEntries("b", "a", 1, NUMBER_LIMIT - 1, 0, (Entry(NUMBER_LIMIT, 1),), 0), "out_of_range_entry_index"),
        (AppendResponse("b", "a", 1, 0, True, NUMBER_LIMIT, 0), "out_of_range_hint_term"),
        (VoteRequest("b", "a", 1, NUMBER_LIMIT, 0), "out_of_range_last_index"),
        (InstallSnapshot("b", "a", 1, SnapshotMeta(NUMBER_LIMIT, 1), 0, b"", True), "out_of_range_snapshot_index"),
        (InstallSnapshot("b", "a", 1, SnapshotMeta(1, 1), NUMBER_LIMIT, b"", True), "out_of_range_offset"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_a_number_at_or_past_the_limit_is_refused_before_the_core_acts(msg, reason):
    core, storage = make_core("a")
    core.step(msg)
    drain(core, storage)
    assert core.stats["dropped_malformed"] == 1 and core.stats[f"malformed_{reason}"] == 1
    assert core.term == 0 and core.last_index() == 0 and storage.hard_state == HardState()


def test_a_node_pushed_to_the_last_term_stays_a_follower_and_says_why():
    """A forger (a spoofed member) may still move a node to NUMBER_LIMIT - 1: campaigning
    would make a term nobody may accept, so the node does not campaign; it never crashes."""
    config = replace(PLAIN, pre_vote=True)
    core, storage = make_core("a", config=config)
    core.step(Heartbeat("b", "a", NUMBER_LIMIT - 1, 0))
    drain(core, storage)
    assert core.term == NUMBER_LIMIT - 1 and storage.hard_state.term == NUMBER_LIMIT - 1
    for _ in range(3 * config.election_timeout_ticks):
        core.tick()
    sent, _ = drain(core, storage)
    assert core.role == Role.FOLLOWER and core.term == NUMBER_LIMIT - 1
    assert not any(isinstance(m, VoteRequest) for m in sent)
    assert core.stats["campaigns_refused_number_limit"] >= 2
    with pytest.raises(RaftInvariantError):  # a state past the limit is never loaded
        make_core("a", hard=HardState(NUMBER_LIMIT))


def test_a_heartbeat_ack_of_a_read_round_never_started_confirms_nothing__thesis_6_4():
    core, storage = make_core("a", voters=("a", "b", "c", "d", "e"))
    core.campaign()
    core.step(VoteResponse("b", "a", 1, True))
    core.step(VoteResponse("c", "a", 1, True))
    drain(core, storage)
    core.step(AppendResponse("b", "a", 1, 1))
    core.step(AppendResponse("c", "a", 1, 1))  # the NOOP commits
    drain(core, storage)
    core.step(HeartbeatResponse("b", "a", 1, context=NUMBER_LIMIT - 1))  # forged: "every future round"
    core.read_index(b"r")
    sent, _ = drain(core, storage)
    beat = next(m for m in sent if isinstance(m, Heartbeat) and m.dst == "c")
    core.step(HeartbeatResponse("c", "a", 1, beat.context))  # a, c: two of five, no quorum
    assert _read_states(core, storage) == ([], [])
    assert core.stats["dropped_bad_read_context"] == 1
    core.step(HeartbeatResponse("d", "a", 1, beat.context))  # a, c, d: now it may be served
    states, _ = _read_states(core, storage)
    assert [s.context for s in states] == [b"r"]


# ---------------------------------------------------------------- who may send (thesis §4)


@pytest.mark.parametrize(
    "msg",
    [
        Heartbeat("evil", "a", 5, 0),
        AppendEntries("evil", "a", 5, 0, 0, (Entry(1, 5),), 0),  # commit not past ours: proves nothing
        InstallSnapshot("evil", "a", 5, SnapshotMeta(0, 0, ConfState(("evil",))), 0, b"", True),
        VoteRequest("evil", "a", 5, 9, 5),
        VoteRequest("evil", "a", 5, 9, 5, pre_vote=True),
        TimeoutNow("evil", "a", 5),
        ReadIndexRequest("evil", "a", 5, b"r"),
        AppendResponse("evil", "a", 5, 0, reject=True),
    ],
    ids=lambda m: type(m).__name__,
)
def test_a_sender_outside_the_configuration_is_refused_and_counted__thesis_4(msg):
    core, storage = make_core("a")
    core.step(msg)
    sent, _ = drain(core, storage)
    assert core.stats["dropped_not_member"] == 1
    assert sent == [] and core.term == 0 and core.leader_id is None and core.last_index() == 0


def test_a_brand_new_node_takes_the_leaders_appends_before_it_knows_any_configuration__thesis_4_2_1():
    cluster = Cluster(spares=("d",))
    leader = cluster.elect("a")
    leader.propose(b"x")
    cluster.settle()
    d = cluster.core("d")
    assert d.conf_state == ConfState()  # empty: holds no configuration
    # Before the leader adds it, anyone's appends reach it (it cannot judge who leads).
    d.step(AppendEntries("a", "d", leader.term, 0, 0, (), 0))
    assert d.leader_id == "a" and d.stats["dropped_not_member"] == 0
    leader.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, "d"))
    cluster.settle()
    cluster.tick(2)
    assert d.conf_state == leader.conf_state and d.commit_index == leader.commit_index
    # Now it holds a configuration: a stranger is refused.
    d.step(Heartbeat("evil", "d", leader.term + 1, 0))
    assert d.stats["dropped_not_member"] == 1 and d.term == leader.term


def test_a_removed_node_is_heard_until_its_removal_commits_then_refused__thesis_4_2_2():
    core, storage = make_core("b", voters=("a", "b", "c", "d"))
    without_d = encode_conf_state(ConfState(("a", "b", "c")))
    core.step(AppendEntries("a", "b", 1, 0, 0, (Entry(1, 1, EntryKind.CONFIG, without_d),), 0))
    drain(core, storage)
    assert core.voters == {"a", "b", "c"} and core.commit_index == 0
    core.step(VoteRequest("d", "b", 2, 1, 1, pre_vote=True))  # uncommitted: d may come back
    sent, _ = drain(core, storage)
    assert core.stats["dropped_not_member"] == 0 and any(isinstance(m, VoteResponse) for m in sent)
    core.step(Heartbeat("a", "b", 1, 1))  # the removal commits here
    drain(core, storage)
    core.step(VoteRequest("d", "b", 2, 1, 1, pre_vote=True))
    sent, _ = drain(core, storage)
    assert core.stats["dropped_not_member"] == 1 and sent == []


def _newer_leader_cluster():
    """a, b, c; c is cut off while d joins, is promoted and takes over leadership, and a
    leaves: c's configuration {a, b, c} knows nothing of its new leader d."""
    cluster = Cluster(spares=("d",))
    leader = cluster.elect("a")
    cluster.isolate("c")
    for change in (ConfChange(ConfChangeKind.ADD_LEARNER, "d"), ConfChange(ConfChangeKind.PROMOTE, "d")):
        leader.propose_conf_change(change)
        cluster.settle()
        cluster.tick(2)
    leader.transfer_leadership("d")
    cluster.tick(3)
    d = cluster.core("d")
    assert d.role == Role.LEADER
    d.propose_conf_change(ConfChange(ConfChangeKind.REMOVE, "a"))
    cluster.tick(3)
    d.propose(b"while c was away")
    cluster.tick(2)
    c = cluster.core("c")
    assert "d" not in c.conf_state.voters + c.conf_state.learners
    return cluster, c, d


def test_a_leader_newer_than_our_configuration_is_followed_once_it_proves_it_is_ahead__thesis_4():
    cluster, c, d = _newer_leader_cluster()
    cluster.cut.clear()
    cluster.tick(5)
    assert c.leader_id == "d" and c.commit_index == d.commit_index
    assert c.conf_state == d.conf_state == ConfState(("b", "c", "d"))
    assert c.stats["dropped_not_member"] >= 1  # its heartbeats, refused until then


def test_a_newer_leaders_lost_probe_is_sent_again_though_its_heartbeats_are_refused__thesis_4():
    """The one append that proves the leader ahead is lost; its heartbeats prove nothing
    and are refused, so nothing would ever answer the probe: it is sent again."""
    cluster, c, d = _newer_leader_cluster()
    cluster.cut = {("d", "c")}  # c hears b again, but none of d's messages
    cluster.tick(3)
    cluster.cut.clear()
    cluster.tick(2 * 3 + 2)  # _RESEND_HEARTBEATS heartbeat intervals, twice over
    assert d.stats["probes_resent"] >= 1
    assert c.leader_id == "d" and c.commit_index == d.commit_index
