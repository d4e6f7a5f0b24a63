"""The drain's sorting of a node's Pods, the leader's hand-off when its Node is cordoned,
and the rebalancer's plan (one Pod per uneven Deployment, within its budget)."""

from __future__ import annotations

from agent.cli.drain import sort_pods
from agent.control.handoff import handoff_target
from agent.control.rebalance import plan_rebalance
from agent.state import commands as c
from agent.state import pod_lifecycle as pods
from agent.state.machine import is_error
from agent.state.objects import meta_of
from tests.unit.state_helpers import pod
from tests.unit.workload_helpers import Cluster, deployment, rolling

# ---------------------------------------------------------------- drain


def test_drain_skips_mirrors_and_stops_at_bare_pods_without_force() -> None:
    cluster = Cluster()
    cluster.apply(deployment("web", replicas=2, strategy=rolling(1, 1)))
    cluster.settle()
    cluster.apply(pod("bare", node="n1"))
    cluster.run(c.sync_mirror_pods("n1", [pod("etcd-n1")], ["static-uid"], cluster.now))
    on_n1 = [p for p in cluster.machine.list("Pod") if pods.node_name_of(p) == "n1"]
    plan = sort_pods(on_n1, force=False)
    assert plan.mirrors == ["default/etcd-n1"] and plan.bare == ["default/bare"]
    assert ("default", "bare") not in plan.evict and ("default", "etcd-n1") not in plan.evict
    web = [meta_of(p)["name"] for p in on_n1 if meta_of(p)["name"].startswith("web-")]
    assert sorted(n for _, n in plan.evict) == sorted(web)
    forced = sort_pods(on_n1, force=True)
    assert ("default", "bare") in forced.evict and ("default", "etcd-n1") not in forced.evict


# ---------------------------------------------------------------- hand-off


def _node(ready: bool = True, cordoned: bool = False) -> dict:
    doc = {"metadata": {"name": "x"}, "spec": {"unschedulable": True} if cordoned else {},
           "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    return doc


def test_a_cordoned_leader_hands_off_to_a_ready_uncordoned_caught_up_voter() -> None:
    voters = ("s1", "s2", "s3")
    nodes = {"s1": _node(cordoned=True), "s2": _node(), "s3": _node()}
    assert handoff_target("s1", nodes, voters, {"s2", "s3"}) == "s2"
    assert handoff_target("s1", nodes, voters, {"s3"}) == "s3"  # s2 lags
    assert handoff_target("s1", dict(nodes, s2=_node(ready=False)), voters, {"s2", "s3"}) == "s3"
    assert handoff_target("s1", dict(nodes, s2=_node(cordoned=True), s3=_node(cordoned=True)), voters,
                          {"s2", "s3"}) is None  # no ping-pong between cordoned servers
    assert handoff_target("s2", nodes, voters, {"s1", "s3"}) is None  # the leader's node is not cordoned
    assert handoff_target("s1", nodes, ("s1",), set()) is None


# ---------------------------------------------------------------- rebalancing


def _settled(cluster: Cluster) -> None:
    cluster.settle()
    cluster.tick(5)


def _spread(cluster: Cluster) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in cluster.machine.list("Pod"):
        if not pods.is_finished(p):
            out[pods.node_name_of(p)] = out.get(pods.node_name_of(p), 0) + 1
    return out


def test_rebalance_moves_one_pod_at_a_time_onto_a_new_node_until_even() -> None:
    cluster = Cluster(nodes=("n1", "n2"))
    cluster.apply(deployment("web", replicas=6, strategy=rolling(1, 1)))
    _settled(cluster)
    assert _spread(cluster) == {"n1": 3, "n2": 3}
    assert plan_rebalance(cluster.machine, now=cluster.now) == []  # even: nothing to do
    cluster.log.ready_node("n3")
    steps = 0
    for _ in range(20):
        plan = plan_rebalance(cluster.machine, now=cluster.now)
        if not plan:
            break
        assert len(plan) == 1  # one step per Deployment
        assert not is_error(cluster.run(plan[0]))
        steps += 1
        # The step is in flight until the replacement is available: no second one before.
        assert plan_rebalance(cluster.machine, now=cluster.now) == []
        cluster.reconcile()
        assert plan_rebalance(cluster.machine, now=cluster.now) == []  # placed, not yet Ready
        _settled(cluster)
    assert steps == 2 and _spread(cluster) == {"n1": 2, "n2": 2, "n3": 2}


def test_rebalance_leaves_alone_what_it_must() -> None:
    cluster = Cluster(nodes=("n1",))
    cluster.apply(deployment("web", replicas=4, strategy=rolling(1, 0)))  # no Pod may be unavailable
    cluster.apply(deployment("api", replicas=4, strategy=rolling(1, 1), labels={"app": "api"}))
    _settled(cluster)
    cluster.log.ready_node("n2")
    cluster.run(c.patch_object("Node", "", "n2", {"spec": {"unschedulable": True}}, cluster.now))
    assert plan_rebalance(cluster.machine, now=cluster.now) == []  # the only other node is cordoned
    cluster.run(c.patch_object("Node", "", "n2", {"spec": {"unschedulable": None}}, cluster.now))
    (only,) = plan_rebalance(cluster.machine, now=cluster.now)
    assert c.decode(only)["name"].startswith("api-")  # web's budget allows no move
    # A paused Deployment, or one whose Pods are not all available, is not moved.
    cluster.run(c.patch_object("Deployment", "default", "api", {"spec": {"paused": True}}, cluster.now))
    assert plan_rebalance(cluster.machine, now=cluster.now) == []


def test_rebalance_never_moves_a_pod_the_new_node_cannot_hold() -> None:
    cluster = Cluster(nodes=("n1",))
    cluster.apply(deployment("web", replicas=4, strategy=rolling(1, 1)))
    _settled(cluster)
    cluster.log.ready_node("n2", cpu=50)  # less than one Pod's 100m
    assert plan_rebalance(cluster.machine, now=cluster.now) == []
