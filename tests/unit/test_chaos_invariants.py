"""The chaos suite's invariants over sampled data (tests/chaos/invariants.py): one leader
per term (Raft §5.2, Election Safety), Pods running twice, Pods below their count."""

from __future__ import annotations

from tests.chaos.invariants import (EngineSample, LeaderSeen, PodSample, below_count, duplicate_runs,
                                    leaders_from_log, running_counts, terms_with_two_leaders)


def test_two_leaders_in_one_term_are_found_from_logs_and_status():
    log = ["node=n1 ts=2026-12-03T16:32:01.859 level=info logger=agent.raft.node event=raft_leader_changed "
           "term=1 leader=n1 role=leader",
           "node=n2 ts=2026-12-03T16:32:02.000 level=info logger=agent.raft.node event=raft_leader_changed "
           "term=2 leader=None role=pre_candidate",
           "node=n2 ts=2026-12-03T16:32:03.000 level=info logger=agent.gossip event=member_alive member=n3"]
    seen = leaders_from_log("n2", log)
    assert [(s.source, s.term, s.leader) for s in seen] == [("n1", 1, "n1")]  # "no leader" is not a leader
    assert terms_with_two_leaders(seen) == {}
    status = [LeaderSeen(5.0, "n3", 1, "n1"), LeaderSeen(6.0, "n4", 2, "n3"), LeaderSeen(7.0, "n5", 2, "n2")]
    assert terms_with_two_leaders(seen + status) == {2: {"n2", "n3"}}


def test_duplicate_runs_last_from_first_to_the_first_sample_without():
    samples = [EngineSample(0.0, {"u": frozenset({"n1"})}),
               EngineSample(1.0, {"u": frozenset({"n1", "n2"}), "v": frozenset({"n3"})}),
               EngineSample(2.0, {"u": frozenset({"n1", "n2"})}),
               EngineSample(3.0, {"u": frozenset({"n2"})}),
               EngineSample(4.0, {"v": frozenset({"n3", "n4"})})]
    runs = duplicate_runs(samples)
    assert [(r.start, r.end, r.what) for r in runs] == [(1.0, 3.0, "u on n1,n2"),
                                                       (4.0, 4.0, "v on n3,n4 (still at the end)")]
    assert runs[0].length_s == 2.0


def test_below_count_stretches_and_the_excused_start():
    points = [(0, 3), (1, 2), (2, 1), (4, 3), (5, 3), (6, 0), (7, 0)]
    assert [(i.start, i.end) for i in below_count(points, 3)] == [(1, 4), (6, 7)]
    # Counted from 3: the first stretch is cut to its part after 3; one that ended before is dropped.
    assert [(i.start, i.end) for i in below_count(points, 3, counted_from=3)] == [(3, 4), (6, 7)]
    assert [(i.start, i.end) for i in below_count(points, 3, counted_from=5)] == [(6, 7)]


def test_running_counts_come_from_the_engines_on_nodes_the_api_calls_ready():
    api = [PodSample(0, {"a": ("n1", "Running", "ua"), "b": ("n2", "Running", "ub")}, frozenset({"n1", "n2"})),
           PodSample(5, {"a": ("n3", "Pending", "ua"), "b": ("n2", "Running", "ub")}, frozenset({"n2", "n3"}))]
    engines = [EngineSample(-1, {"ua": frozenset({"n1"})}),  # before any API answer: not counted
               EngineSample(1, {"ua": frozenset({"n1"}), "ub": frozenset({"n2"})}),
               # n1 died: the API cannot answer (no sample) but the engines show a is gone,
               EngineSample(2, {"ub": frozenset({"n2"})}),
               # a runs on n3, which the API has not yet called Ready,
               EngineSample(4, {"ua": frozenset({"n3"}), "ub": frozenset({"n2"})}),
               # and now it has; n1's stale copy (n1 NotReady) would not count.
               EngineSample(6, {"ua": frozenset({"n3", "n1"}), "ub": frozenset({"n2"})})]
    assert running_counts(api, engines) == [(1, 2), (2, 1), (4, 1), (6, 2)]
    assert [(i.start, i.end) for i in below_count(running_counts(api, engines), 2)] == [(2, 6)]


def test_a_pod_running_on_a_node_that_is_not_ready_does_not_count():
    sample = PodSample(0, {"a": ("n1", "Running", "ua"), "b": ("n9", "Running", "ub")}, frozenset({"n1"}))
    assert sample.running_on_ready() == 1


def test_placed_as_run_needs_the_containers_where_the_state_says_and_only_there():
    sample = PodSample(0, {"a": ("n1", "Running", "ua"), "b": ("n2", "Running", "ub")}, frozenset({"n1", "n2"}))
    assert sample.placed_as_run(EngineSample(1, {"ua": frozenset({"n1"}), "ub": frozenset({"n2"})}))
    assert not sample.placed_as_run(EngineSample(1, {"ua": frozenset({"n1"})}))  # b reported, not running
    assert not sample.placed_as_run(EngineSample(1, {"ua": frozenset({"n1"}), "ub": frozenset({"n2", "n1"})}))
    assert not sample.placed_as_run(EngineSample(1, {"ua": frozenset({"n2"}), "ub": frozenset({"n2"})}))
