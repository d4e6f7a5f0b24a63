"""Server replacement in the roles controller (agent/control/roles.py): a voter or standby
down for `replace_dead_server_after_s` is replaced, one single-server change at a time
(Raft thesis §4.1), promoting before removing, never shrinking below a majority of the
target; and, in the Raft core, a removed server restarted with its old log cannot disturb
the leader (thesis §4.2.2, §9.6)."""

from __future__ import annotations

import pytest

from agent.control.members import MemberView
from agent.control.roles import (
    MEMBER,
    STALE,
    WAIT,
    RaftMembership,
    RoleTargets,
    own_raft_data_verdict,
    plan_roles,
    quorum,
)
from agent.raft.confchange import ConfChange, ConfChangeKind
from agent.raft.core import Role
from agent.raft.messages import VoteRequest
from tests.unit.state_helpers import facts
from tests.unit.test_raft_core import PLAIN, Cluster

AFTER = 30.0
FIVE = RoleTargets(voters=5, standbys=1, replace_dead_server_after_s=AFTER)


def member(name: str, state: str = "alive", role: str = "worker", eligible: bool = True) -> MemberView:
    return MemberView(name, state, facts(address="10.0.0.1"), role, eligible)


def live(*names: str) -> dict[str, MemberView]:
    return {n: member(n) for n in names}


def labels_of(voters, learners, workers=()) -> dict[str, str]:
    return {**{n: "voter" for n in voters}, **{n: "standby" for n in learners}, **{n: "worker" for n in workers}}


V5 = ("a", "b", "c", "d", "e")


def five_and_a_standby(dead: str = "a", state: str = "dead"):
    conf = RaftMembership(V5, ("f",), caught_up=frozenset({"f"}))
    members = live(*V5, "f") | {dead: member(dead, state)}
    return conf, members, labels_of(V5, ("f",))


# ------------------------------------------------------------------ timing


@pytest.mark.parametrize("elapsed, acts", [(0.0, False), (AFTER - 0.1, False), (AFTER, True), (AFTER * 3, True)])
def test_a_dead_voter_is_replaced_only_once_it_has_been_dead_long_enough(elapsed, acts):
    conf, members, roles = five_and_a_standby()
    plan = plan_roles(conf, members, roles, FIVE, now=100.0 + elapsed, down_since={"a": 100.0})
    assert (plan.promote == "f") is acts
    assert plan.remove is None
    if not acts:
        assert plan.empty


def test_a_voter_without_a_down_since_time_is_not_replaced():
    """The driver starts the clock (e.g. a new leader, or gossip not settled): no time, no action."""
    conf, members, roles = five_and_a_standby()
    assert plan_roles(conf, members, roles, FIVE, now=1e9, down_since={}).empty


@pytest.mark.parametrize("state", ["alive", "suspect"])
def test_a_voter_seen_up_again_is_never_replaced_whatever_its_old_down_time(state):
    conf, members, roles = five_and_a_standby(state=state)
    assert plan_roles(conf, members, roles, FIVE, now=1e9, down_since={"a": 0.0}).empty


@pytest.mark.parametrize("how", ["left", "absent"])
def test_a_voter_that_left_or_is_absent_from_gossip_counts_as_down(how):
    conf, members, roles = five_and_a_standby(state="left")
    if how == "absent":
        del members["a"]
    plan = plan_roles(conf, members, roles, FIVE, now=AFTER, down_since={"a": 0.0})
    assert plan.promote == "f"


# ------------------------------------------------------------------ order: promote, then remove


def test_promote_first_then_remove_the_dead_voter():
    conf, members, roles = five_and_a_standby()
    first = plan_roles(conf, members, roles, FIVE, now=AFTER, down_since={"a": 0.0})
    assert (first.promote, first.remove, first.add_learner) == ("f", None, None)
    # The promotion committed: six voters, one dead. Next, the removal.
    conf = RaftMembership((*V5, "f"), ())
    second = plan_roles(conf, members, labels_of((*V5, "f"), ()), FIVE, now=AFTER + 1, down_since={"a": 0.0})
    assert (second.promote, second.remove) == (None, "a")
    assert ("f", "voter") not in second.labels  # already labelled so: labels are written only when they differ


def test_without_a_ready_standby_the_dead_voter_is_removed_at_once():
    conf = RaftMembership(V5, ("f",), caught_up=frozenset())  # f still catching up
    members = live(*V5, "f") | {"a": member("a", "dead")}
    plan = plan_roles(conf, members, labels_of(V5, ("f",)), FIVE, now=AFTER, down_since={"a": 0.0})
    assert plan.remove == "a" and plan.promote is None


def test_a_dead_standby_is_never_promoted():
    conf = RaftMembership(V5, ("f",), caught_up=frozenset({"f"}))
    members = live("b", "c", "d", "e") | {"a": member("a", "dead"), "f": member("f", "dead")}
    plan = plan_roles(conf, members, labels_of(V5, ("f",)), FIVE, now=AFTER, down_since={"a": 0.0, "f": 0.0})
    assert plan.promote is None and plan.remove == "a"  # voters before learners


def test_never_more_than_one_voter_above_the_target():
    """Six voters (one promoted in place of a dead one) and a second ready standby: the
    dead voter goes before anyone else is promoted."""
    conf = RaftMembership((*V5, "f"), ("g",), caught_up=frozenset({"g"}))
    members = live("b", "c", "d", "e", "f", "g") | {"a": member("a", "dead")}
    plan = plan_roles(conf, members, labels_of((*V5, "f"), ("g",)), RoleTargets(5, 1, AFTER),
                      now=AFTER, down_since={"a": 0.0})
    assert plan.promote is None and plan.remove == "a"


# ------------------------------------------------------------------ never below a majority


@pytest.mark.parametrize("target, voters, removable", [
    (5, ("a", "b", "c", "d"), True),    # 4 -> 3: a majority of 5 is left
    (5, ("a", "b", "c"), False),        # 3 -> 2: fewer than 3 of 5
    (3, ("a", "b", "c"), True),         # 3 -> 2: a majority of 3
    (3, ("a", "b"), False),             # 2 -> 1
])
def test_a_dead_voter_is_never_removed_below_a_majority_of_the_target(target, voters, removable):
    conf = RaftMembership(voters, ())
    members = live(*voters[1:]) | {"a": member("a", "dead")}
    plan = plan_roles(conf, members, labels_of(voters, ()), RoleTargets(target, 0, AFTER),
                      now=AFTER, down_since={"a": 0.0})
    assert (plan.remove == "a") is removable
    if not removable:
        assert len(voters) - 1 < quorum(target)


def test_several_dead_voters_are_removed_one_plan_at_a_time_lowest_name_first():
    conf = RaftMembership(V5, ())
    members = live("c", "d", "e") | {"a": member("a", "dead"), "b": member("b", "dead")}
    plan = plan_roles(conf, members, labels_of(V5, ()), RoleTargets(5, 0, AFTER), now=AFTER,
                      down_since={"a": 0.0, "b": 0.0})
    assert plan.remove == "a" and plan.promote is None and plan.add_learner is None


# ------------------------------------------------------------------ one change at a time


def test_nothing_at_all_while_a_change_is_uncommitted():
    conf, members, roles = five_and_a_standby()
    pending = RaftMembership(conf.voters, conf.learners, conf.caught_up, change_pending=True)
    roles["g"] = "voter"  # even a wrong label waits: labels follow the committed configuration
    members["g"] = member("g")
    assert plan_roles(pending, members, roles, FIVE, now=AFTER, down_since={"a": 0.0}).empty
    done = plan_roles(conf, members, roles, FIVE, now=AFTER, down_since={"a": 0.0})
    assert done.promote == "f" and ("g", "worker") in done.labels


def test_a_plan_never_holds_two_membership_changes():
    conf = RaftMembership(V5, ("f",), caught_up=frozenset({"f"}))
    members = live("b", "c", "d", "e", "g", "h") | {"a": member("a", "dead"), "f": member("f")}
    roles = labels_of(V5, ("f",), ("g", "h"))
    for now in (0.0, AFTER, AFTER * 2):
        plan = plan_roles(conf, members, roles, RoleTargets(5, 2, AFTER), now=now, down_since={"a": 0.0})
        assert sum(x is not None for x in (plan.promote, plan.remove, plan.add_learner)) <= 1


# ------------------------------------------------------------------ dead standbys


def test_a_dead_standby_is_removed_after_the_same_time_then_a_new_one_made():
    conf = RaftMembership(("a", "b", "c"), ("d",))
    members = live("a", "b", "c", "e") | {"d": member("d", "dead")}
    roles = labels_of(("a", "b", "c"), ("d",), ("e",))
    targets = RoleTargets(3, 1, AFTER)
    early = plan_roles(conf, members, roles, targets, now=AFTER - 1, down_since={"d": 0.0})
    assert early.empty
    plan = plan_roles(conf, members, roles, targets, now=AFTER, down_since={"d": 0.0})
    assert plan.remove == "d"
    after = RaftMembership(("a", "b", "c"), ())
    announce = plan_roles(after, members, roles, targets, now=AFTER, down_since={})
    assert set(announce.labels) == {("d", "worker"), ("e", "standby")} and announce.add_learner is None
    roles |= dict(announce.labels)
    assert plan_roles(after, members, roles, targets, now=AFTER).add_learner == "e"


# ------------------------------------------------------------------ a replaced server comes back


def test_a_restarted_replaced_server_is_labelled_worker_and_never_promoted_directly():
    """It advertises `voter` (its old log says so) but is no member: it is a worker, and
    may only become a new standby, announced and added as a learner."""
    voters = ("b", "c", "d", "e", "f")
    conf = RaftMembership(voters, ())
    members = live(*voters) | {"a": member("a", role="voter")}
    roles = labels_of(voters, (), ("a",))
    plan = plan_roles(conf, members, roles, RoleTargets(5, 1, AFTER), now=1e6, down_since={"a": 0.0})
    assert plan.promote is None and plan.remove is None and plan.add_learner is None
    assert plan.labels == (("a", "standby"),)  # a healthy eligible agent: a new standby, announced
    roles["a"] = "standby"
    plan = plan_roles(conf, members, roles, RoleTargets(5, 1, AFTER), now=1e6)
    assert plan.add_learner == "a" and plan.promote is None


def test_a_replaced_servers_stale_voter_label_is_corrected():
    voters = ("b", "c", "d", "e", "f")
    plan = plan_roles(RaftMembership(voters, ("g",)), live(*voters, "g") | {"a": member("a", role="voter")},
                      labels_of(("a", *voters), ("g",)), RoleTargets(5, 1, AFTER))
    assert plan.labels == (("a", "worker"),) and plan.promote is None


# ------------------------------------------------------------------ the whole story, planned


class World:
    """The planner's world: a configuration, gossip, labels and a clock, changed only by
    applying each plan (every change commits at once; a new learner catches up at once)."""

    def __init__(self, voters, learners, workers, targets):
        self.voters, self.learners = list(voters), list(learners)
        self.roles = labels_of(voters, learners, workers)
        self.members = live(*voters, *learners, *workers)
        self.targets = targets
        self.now = 0.0
        self.down_since: dict[str, float] = {}
        self.history: list[tuple[float, str, str]] = []

    def kill(self, name):
        self.members[name] = member(name, "dead")
        self.down_since[name] = self.now

    def revive(self, name):
        self.members[name] = member(name)
        self.down_since.pop(name, None)

    def live_voters(self):
        return [v for v in self.voters if self.members[v].up]

    def step(self, dt=1.0):
        self.now += dt
        plan = plan_roles(RaftMembership(tuple(self.voters), tuple(self.learners), frozenset(self.learners)),
                          self.members, self.roles, self.targets, now=self.now, down_since=self.down_since)
        self.roles.update(dict(plan.labels))
        if plan.add_learner:
            self.learners.append(plan.add_learner)
        if plan.promote:
            self.learners.remove(plan.promote)
            self.voters.append(plan.promote)
        if plan.remove:
            (self.voters if plan.remove in self.voters else self.learners).remove(plan.remove)
        for kind, who in (("promote", plan.promote), ("remove", plan.remove), ("add", plan.add_learner)):
            if who:
                self.history.append((self.now, kind, who))
        # Quorum is never lost on the way.
        assert len(self.live_voters()) >= quorum(len(self.voters)), (self.voters, self.members)

    def settle(self, seconds):
        for _ in range(int(seconds)):
            self.step()


def test_five_voters_survive_three_dying_one_after_another():
    """Six agents, five voters and a standby; each dead voter is replaced, and the one
    killed before comes back as a worker and is made the next standby."""
    world = World(V5, ("f",), (), RoleTargets(5, 1, 3.0))
    killed = []
    for victim in ("a", "b", "c"):
        world.kill(victim)
        killed.append(victim)
        world.settle(2)
        assert victim in world.voters  # not yet: 3 s
        world.settle(5)
        assert victim not in world.voters and len(world.voters) == 5 == len(world.live_voters())
        # The first action on the dead voter was a promotion, the next its removal.
        mine = [(k, w) for t, k, w in world.history if t > world.down_since.get(victim, 0)]
        assert [k for k, _ in mine][:2] == ["promote", "remove"], mine
        world.revive(victim)  # restarted: it is a worker, then a new standby, never a voter at once
        world.step()
        assert victim not in world.voters and world.roles[victim] in ("worker", "standby")
        world.settle(3)
        assert world.learners == [victim] and victim not in world.voters
    assert sorted(world.voters) == ["a", "b", "d", "e", "f"] and world.learners == ["c"]


def test_two_voters_dead_at_once_with_no_standby_the_cluster_shrinks_to_three_and_grows_back():
    world = World(V5, (), ("f", "g"), RoleTargets(5, 0, 3.0))
    world.kill("a")
    world.kill("b")
    world.settle(10)
    assert sorted(world.voters) == ["c", "d", "e", "f", "g"]


# ------------------------------------------------------------------ the core: a removed server is harmless


def test_a_removed_voter_restarted_with_its_old_log_cannot_disturb_the_leader__thesis_4_2_2_9_6():
    cluster = Cluster(ids=V5, config=PLAIN)
    leader = cluster.elect("a")
    cluster.down.add("e")
    leader.propose_conf_change(ConfChange(ConfChangeKind.REMOVE, "e"))
    cluster.tick(3)
    assert leader.conf_state.voters == ("a", "b", "c", "d") and leader.commit_index >= leader.conf_index
    term = leader.term
    stale = cluster.core("e")
    assert "e" in stale.conf_state.voters  # its log never heard of the removal
    cluster.down.discard("e")
    cluster.tick(60)  # many election timeouts: e campaigns again and again
    assert any(isinstance(m, VoteRequest) and m.src == "e" for m in cluster.log)  # it did try
    assert leader.role == Role.LEADER and leader.term == term
    assert all(cluster.core(n).term == term for n in "abcd")
    assert sum(cluster.core(n).stats["dropped_not_member"] for n in "abcd") > 0
    assert stale.role != Role.LEADER


# ------------------------------------------------------------------ the setting


def test_the_replacement_time_is_a_flag_with_a_reasoned_default():
    from agent.agentd.config import DEFAULT_REPLACE_DEAD_SERVER_AFTER_S, AgentConfig
    from agent.daemon import build_parser

    parse = lambda *a: build_parser().parse_args(["--data-dir", "/tmp/unused", *a])  # noqa: E731
    assert parse().replace_dead_server_after_s == DEFAULT_REPLACE_DEAD_SERVER_AFTER_S == 30.0
    assert AgentConfig("n", "/tmp").replace_dead_server_after_s == 30.0
    assert parse("--replace-dead-server-after", "3").replace_dead_server_after_s == 3.0
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SystemExit):
            parse("--replace-dead-server-after", bad)


# ------------------------------------------------------------------ a server's own Raft data against the leader's


@pytest.mark.parametrize("own, leader, label, verdict", [
    ("voter", "voter", None, MEMBER),
    ("standby", "standby", None, MEMBER),
    ("voter", "", "worker", STALE),        # removed; restarted with its old log
    ("voter", "", "standby", STALE),       # removed, and already announced as a new standby
    ("standby", "", "worker", STALE),      # a dead standby, removed
    ("voter", "standby", "standby", STALE),  # re-added as a learner, its old log still says voter
    ("voter", "", "voter", WAIT),          # the removal is not committed: it may still be a voter
    ("voter", "standby", "voter", WAIT),
    ("voter", "", None, WAIT),             # the label could not be read
    ("standby", "voter", "voter", WAIT),   # promoted: its log is behind
    ("", "voter", "voter", WAIT),
    ("", "standby", "standby", WAIT),      # just added: catching up
    ("", "", "standby", WAIT),             # empty, waiting to be added
    ("", "", "worker", STALE),             # its log holds its own removal, and nobody wants it
])
def test_a_servers_raft_data_is_deleted_only_when_the_cluster_let_it_go(own, leader, label, verdict):
    assert own_raft_data_verdict(own, leader, label) == verdict


# ------------------------------------------------------------------ the loop's down-since times


def test_the_leader_times_each_server_from_when_it_first_saw_it_down():
    from types import SimpleNamespace

    from agent.agentd.config import AgentConfig
    from agent.agentd.controllers import ControlLoop

    gossip = SimpleNamespace(settled=lambda: False)
    loop = ControlLoop(AgentConfig("a", "/tmp/unused"), SimpleNamespace(), gossip, SimpleNamespace())
    conf = ("a", "b", "c", "d")
    members = live("a", "c") | {"b": member("b", "dead")}  # d: absent from gossip
    loop._note_down(conf, members, 10.0)
    assert loop.down_since == {"b": 10.0}  # absent counts only once gossip has settled
    gossip.settled = lambda: True
    loop._note_down(conf, members, 12.0)
    assert loop.down_since == {"b": 10.0, "d": 12.0}  # b keeps its first time
    members["b"] = member("b", "suspect")
    loop._note_down(conf, members, 13.0)
    assert loop.down_since == {"d": 12.0}  # seen up again: forgotten
    members["b"] = member("b", "dead")
    loop._note_down(conf, members, 14.0)
    assert loop.down_since == {"b": 14.0, "d": 12.0}  # a flapping member starts over
    loop._note_down(("a", "b", "c"), members, 15.0)
    assert loop.down_since == {"b": 14.0}  # d left the configuration
