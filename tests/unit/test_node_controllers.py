"""The node lifecycle and roles controllers (agent/control/), pure functions of the state."""

from __future__ import annotations

import itertools

import pytest

from agent.agentd.bootstrap import first_voters
from agent.agentd.metadata import AgentMeta, MetadataTooLarge, decode, encode
from agent.control.members import MemberView
from agent.control.node_lifecycle import LifecycleConfig, reconcile_nodes
from agent.control.roles import RaftMembership, RoleTargets, plan_roles
from agent.state import commands as c
from agent.state.machine import is_error
from tests.unit.state_helpers import T0, Log, facts, pod


def member(name: str, state: str = "alive", **kw) -> MemberView:
    return MemberView(name, state, facts(address=f"10.0.0.{name[-1]}", **kw), "worker", True)


def uids():
    counter = itertools.count(1)
    return lambda: f"uid-{next(counter)}"


def run(log: Log, commands: list[bytes]) -> None:
    for data in commands:
        assert not is_error(log.run(data)), c.decode(data)


def ops(commands: list[bytes]) -> list[str]:
    return [c.decode(data).op for data in commands]


# ------------------------------------------------------------------ node lifecycle


def test_a_new_member_is_registered_ready_and_then_left_alone():
    log = Log()
    members = {"n1": member("n1")}
    first = reconcile_nodes(log.machine, members, now=T0, settled=True, new_uid=uids())
    assert ops(first) == ["node_upsert", "node_ready"]
    run(log, first)
    assert reconcile_nodes(log.machine, members, now=T0 + 1, settled=True, new_uid=uids()) == []


def test_a_changed_advertisement_refreshes_the_node():
    log = Log()
    run(log, reconcile_nodes(log.machine, {"n1": member("n1")}, now=T0, settled=True, new_uid=uids()))
    bigger = {"n1": member("n1", cpu=4000)}
    cmds = reconcile_nodes(log.machine, bigger, now=T0, settled=True, new_uid=uids())
    assert ops(cmds) == ["node_upsert"]
    run(log, cmds)
    assert log.machine.get("Node", "", "n1")["status"]["capacity"]["cpu"] == "4"


def _cluster_with_pods() -> Log:
    log = Log()
    members = {"n1": member("n1"), "n2": member("n2")}
    run(log, reconcile_nodes(log.machine, members, now=T0, settled=True, new_uid=uids()))
    log.create(pod("web"), pod("job", restart="Never"), pod("done"), pod("elsewhere"))
    log.run(c.bind_pods([("default", "web", "uid-web", "n1"), ("default", "job", "uid-job", "n1"),
                         ("default", "done", "uid-done", "n1"), ("default", "elsewhere", "uid-elsewhere", "n2")], T0))
    log.run(c.report_pod_statuses("n1", [("default", "done", "uid-done", 1, {"phase": "Succeeded"})], T0))
    return log


def test_a_dead_node_is_not_ready_and_its_pods_move_in_the_same_pass():
    log = _cluster_with_pods()
    members = {"n1": member("n1", "dead"), "n2": member("n2")}
    cmds = reconcile_nodes(log.machine, members, now=T0 + 10, settled=True, new_uid=uids())
    assert ops(cmds) == ["node_ready", "evict"]
    run(log, cmds)
    ready = log.machine.get("Node", "", "n1")["status"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "NodeDead")
    assert "nodeName" not in log.machine.get("Pod", "default", "web")["spec"]  # back to Pending
    assert log.machine.get("Pod", "default", "job")["status"]["phase"] == "Failed"  # Never: must not run twice
    assert log.machine.get("Pod", "default", "done")["status"]["phase"] == "Succeeded"  # finished: untouched
    assert log.machine.get("Pod", "default", "elsewhere")["spec"]["nodeName"] == "n2"
    assert reconcile_nodes(log.machine, members, now=T0 + 11, settled=True, new_uid=uids()) == []


def test_a_returning_node_is_ready_again():
    log = _cluster_with_pods()
    run(log, reconcile_nodes(log.machine, {"n1": member("n1", "dead"), "n2": member("n2")}, now=T0 + 10,
                             settled=True, new_uid=uids()))
    back = reconcile_nodes(log.machine, {"n1": member("n1"), "n2": member("n2")}, now=T0 + 20, settled=True,
                           new_uid=uids())
    assert ops(back) == ["node_ready"]
    run(log, back)
    assert log.machine.get("Node", "", "n1")["status"]["conditions"][0]["status"] == "True"


def test_a_suspect_node_is_left_alone():
    log = _cluster_with_pods()
    assert reconcile_nodes(log.machine, {"n1": member("n1", "suspect"), "n2": member("n2")}, now=T0,
                           settled=True, new_uid=uids()) == []


def test_a_node_that_left_keeps_its_pods_for_the_grace_period():
    log = _cluster_with_pods()
    members = {"n1": member("n1", "left"), "n2": member("n2")}
    config = LifecycleConfig(left_grace_s=30)
    first = reconcile_nodes(log.machine, members, now=T0 + 100, settled=True, new_uid=uids(), config=config)
    assert ops(first) == ["node_ready"]
    run(log, first)
    assert reconcile_nodes(log.machine, members, now=T0 + 120, settled=True, new_uid=uids(), config=config) == []
    later = reconcile_nodes(log.machine, members, now=T0 + 131, settled=True, new_uid=uids(), config=config)
    assert ops(later) == ["evict"]


def test_a_missing_member_counts_as_lost_only_once_gossip_has_settled():
    log = _cluster_with_pods()
    only_n2 = {"n2": member("n2")}
    assert reconcile_nodes(log.machine, only_n2, now=T0, settled=False, new_uid=uids()) == []
    assert ops(reconcile_nodes(log.machine, only_n2, now=T0, settled=True, new_uid=uids())) == [
        "node_ready", "evict"]


# ------------------------------------------------------------------ roles


def agents(*names: str, state: str = "alive") -> dict[str, MemberView]:
    return {n: member(n, state) for n in names}


def test_labels_follow_the_configuration():
    plan = plan_roles(RaftMembership(("a", "b", "c"), ("d",)), agents("a", "b", "c", "d", "e"),
                      {"a": "worker", "b": "voter", "c": "voter", "d": "worker", "e": "worker"},
                      RoleTargets(voters=3, standbys=1))
    assert plan.labels == (("a", "voter"), ("d", "standby"))
    assert plan.add_learner is None and plan.promote is None


def test_a_standby_is_announced_then_added():
    conf = RaftMembership(("a", "b", "c"), ())
    roles = {"a": "voter", "b": "voter", "c": "voter", "d": "worker", "e": "worker"}
    announce = plan_roles(conf, agents("a", "b", "c", "d", "e"), roles, RoleTargets(3, 1))
    assert announce.labels == (("d", "standby"),) and announce.add_learner is None
    roles["d"] = "standby"
    add = plan_roles(conf, agents("a", "b", "c", "d", "e"), roles, RoleTargets(3, 1))
    assert add.add_learner == "d" and add.labels == ()


def test_a_dead_candidate_is_relabelled_and_another_chosen():
    conf = RaftMembership(("a", "b", "c"), ())
    roles = {"a": "voter", "b": "voter", "c": "voter", "d": "standby", "e": "worker"}
    members = agents("a", "b", "c", "e") | {"d": member("d", "dead")}
    plan = plan_roles(conf, members, roles, RoleTargets(3, 1))
    assert set(plan.labels) == {("d", "worker"), ("e", "standby")}


def test_a_caught_up_learner_is_promoted_when_voters_are_short():
    conf = RaftMembership(("a", "b"), ("c", "d"), caught_up=frozenset({"d"}))
    roles = {"a": "voter", "b": "voter", "c": "standby", "d": "standby"}
    plan = plan_roles(conf, agents("a", "b", "c", "d"), roles, RoleTargets(3, 2))
    assert plan.promote == "d"  # c is not caught up


def test_targets_met_means_nothing_to_do():
    conf = RaftMembership(("a", "b", "c"), ("d", "e"))
    roles = {"a": "voter", "b": "voter", "c": "voter", "d": "standby", "e": "standby", "f": "worker"}
    assert plan_roles(conf, agents(*"abcdef"), roles).empty


def test_ineligible_agents_are_never_chosen():
    conf = RaftMembership(("a", "b", "c"), ())
    members = agents("a", "b", "c") | {"d": MemberView("d", "alive", facts(), "worker", False)}
    assert plan_roles(conf, members, {"a": "voter", "b": "voter", "c": "voter", "d": "worker"}).empty


# ------------------------------------------------------------------ bootstrap and metadata


def meta(role: str = "joining", expect: int = 3, formed: bool = False, eligible: bool = True) -> AgentMeta:
    return AgentMeta("10.0.0.1:7070", role=role, bootstrap_expect=expect, formed=formed, server_eligible=eligible)


def test_bootstrap_waits_for_the_expected_number_then_everyone_picks_the_same_voters():
    seen = {"n3": meta(), "n1": meta()}
    assert first_voters("n1", 3, seen) is None
    seen["n2"] = meta()
    seen["n4"] = meta()
    assert {first_voters(me, 3, seen) for me in seen} == {("n1", "n2", "n3")}


def test_bootstrap_never_happens_beside_a_formed_cluster():
    seen = {"n1": meta(), "n2": meta(), "n3": meta(), "old": meta(role="voter", formed=True)}
    assert first_voters("n1", 3, seen) is None


def test_bootstrap_ignores_agents_with_another_expectation_or_not_eligible():
    seen = {"n1": meta(), "n2": meta(expect=5), "n3": meta(eligible=False), "n4": meta()}
    assert first_voters("n1", 3, seen) is None


def test_metadata_round_trip_and_garbage():
    original = AgentMeta("10.1.2.3:7070", role="voter", bootstrap_expect=3, formed=True, cpu_millicores=2000,
                         memory_bytes=4 << 30, alloc_cpu_millicores=1900, alloc_memory_bytes=3 << 30,
                         labels={"zone": "a"}, version="0.1.0")
    data = encode(original, max_bytes=512)
    assert decode(data) == original
    for garbage in (b"", b"\x00\x01", encode(original, max_bytes=512)[:-3], b"\x81\xa1_\x02"):
        assert decode(garbage) is None
    with pytest.raises(MetadataTooLarge, match="above the gossip limit of 512"):
        encode(AgentMeta("x:1", labels={f"k{i}": "v" * 40 for i in range(20)}), max_bytes=512)


def test_a_dead_nodes_mirror_pods_stay_with_it():
    log = _cluster_with_pods()
    run(log, [c.sync_mirror_pods("n1", [pod("static")], ["static-uid"], T0)])
    cmds = reconcile_nodes(log.machine, {"n1": member("n1", "dead"), "n2": member("n2")}, now=T0 + 10,
                           settled=True, new_uid=uids())
    run(log, cmds)
    assert log.machine.get("Pod", "default", "static")["spec"]["nodeName"] == "n1"
    assert "nodeName" not in log.machine.get("Pod", "default", "web")["spec"]
