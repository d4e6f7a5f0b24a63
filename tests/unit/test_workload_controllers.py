"""The Deployment and ReplicaSet controllers (agent/control/deployments.py,
replicasets.py, workloads.py), pass by pass on a real cluster state: rollouts step by
step, Recreate, scaling, rollback, pause, restart, history, adoption, replacement, the
progress deadline, a node lost mid-rollout, and the status Kubernetes reports."""

from __future__ import annotations

import pytest

from agent.control.deployments import template_hash
from agent.control.node_lifecycle import reconcile_nodes
from agent.control.members import MemberView
from agent.control.replicasets import SAFE_ALPHABET, deletion_order, is_available, pod_name
from agent.control.workloads import plan_workloads
from agent.state import commands as c
from agent.state import pod_lifecycle as pods
from agent.state.objects import format_time, meta_of
from tests.unit.state_helpers import facts, pod
from tests.unit.workload_helpers import Cluster, deployment, replica_set, rolling

REVISION = "deployment.kubernetes.io/revision"


def live_pods(cluster: Cluster) -> list[dict]:
    return [p for p in cluster.machine.list("Pod") if not pods.is_finished(p)]


def available(cluster: Cluster, min_ready: int = 0) -> int:
    return sum(1 for p in live_pods(cluster) if is_available(p, min_ready, cluster.now))


def condition(doc: dict, kind: str) -> dict:
    return next(x for x in doc["status"]["conditions"] if x["type"] == kind)


def running(replicas: int = 4, **kw) -> Cluster:
    """A Deployment at `replicas`, all available, settled."""
    cluster = Cluster()
    cluster.apply(deployment(replicas=replicas, **kw))
    cluster.settle()
    return cluster


# ------------------------------------------------------------------ creating


def test_a_new_deployment_makes_one_replica_set_and_its_pods():
    cluster = Cluster()
    cluster.apply(deployment(replicas=3, annotations={"kubernetes.io/change-cause": "first"}))
    cluster.reconcile()
    [rs] = cluster.sets()
    d = cluster.get("Deployment", "web")
    hashed = template_hash(d["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{hashed}" and set(hashed) <= set(SAFE_ALPHABET)
    assert rs["metadata"]["labels"] == {"app": "web", "pod-template-hash": hashed}
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": hashed}
    assert rs["metadata"]["annotations"] == {
        REVISION: "1", "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4", "kubernetes.io/change-cause": "first"}
    assert rs["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                  "uid": d["metadata"]["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}]
    assert rs["spec"]["replicas"] == 3
    made = cluster.pods_of(rs)
    assert len(made) == 3  # created in the same pass as their set, and placed
    for p in made:
        name = p["metadata"]["name"]
        assert name.startswith(rs["metadata"]["name"] + "-") and len(name) == len(rs["metadata"]["name"]) + 6
        assert p["metadata"]["labels"]["pod-template-hash"] == hashed
        assert p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pods.node_name_of(p)
    cond = condition(cluster.get("Deployment", "web"), "Progressing")
    assert cond["reason"] == "NewReplicaSetCreated" and cond["message"] == f'Created new replica set "{rs["metadata"]["name"]}"'


def test_status_once_available_and_a_settled_pass_writes_nothing():
    cluster = running(3)
    d = cluster.get("Deployment", "web")
    status = dict(d["status"])
    conditions = status.pop("conditions")
    assert status == {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                      "availableReplicas": 3}
    assert [(x["type"], x["status"], x["reason"]) for x in conditions] == [
        ("Available", "True", "MinimumReplicasAvailable"), ("Progressing", "True", "NewReplicaSetAvailable")]
    [rs] = cluster.sets()
    assert rs["status"] == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
                            "observedGeneration": 1}
    cluster.tick(100)
    assert plan_workloads(cluster.machine, now=cluster.now, new_uid=cluster.uid) == []


def test_pod_names_come_from_uids_and_avoid_taken_ones():
    first = pod_name("web-abc", "some-uid", set())
    assert first == pod_name("web-abc", "some-uid", set())  # deterministic
    assert pod_name("web-abc", "some-uid", {first}) != first
    assert template_hash({"a": 1}) == template_hash({"a": 1}) != template_hash({"a": 1}, 1)


# ------------------------------------------------------------------ rolling update, step by step


def test_rolling_update_with_one_surge_and_one_unavailable():
    cluster = running(4, strategy=rolling(1, 1))
    cluster.apply(deployment(replicas=4, image="web:2", strategy=rolling(1, 1)))
    cluster.reconcile()
    old, new = cluster.sets()
    assert new["metadata"]["annotations"][REVISION] == "2"
    # at most 5 Pods, at least 3 available: one new Pod, one old Pod gone
    assert cluster.sizes() == [(3, 3), (1, 1)]
    assert available(cluster) == 3
    cluster.tick()
    cluster.reconcile()  # 4 Pods of at most 5: the new set grows again
    assert cluster.sizes() == [(3, 3), (2, 2)]
    for _ in range(3):  # without readiness nothing more moves: 5 Pods, 3 available
        cluster.tick()
        cluster.reconcile()
    assert cluster.sizes() == [(3, 3), (2, 2)]
    steps = []
    for _ in range(12):
        cluster.tick()
        cluster.make_ready()
        cluster.reconcile()
        steps.append(cluster.sizes())
        assert sum(n for _, n in steps[-1]) <= 5 and available(cluster) >= 3
    assert steps[-1] == [(0, 0), (4, 4)]
    d = cluster.get("Deployment", "web")
    assert d["status"]["updatedReplicas"] == 4 and condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_percentages_round_surge_up_and_unavailability_down():
    cluster = running(10, strategy=rolling("25%", "25%"))
    cluster.apply(deployment(replicas=10, image="web:2", strategy=rolling("25%", "25%")))
    cluster.reconcile()
    # maxSurge ceil(2.5)=3: 13 Pods in all; maxUnavailable floor(2.5)=2: 8 must stay available
    assert cluster.sizes() == [(8, 8), (3, 3)]
    assert cluster.sets()[1]["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "13"


def test_zero_unavailable_and_one_surge_never_drops_below_replicas():
    cluster = running(3, strategy=rolling(1, 0))
    cluster.apply(deployment(replicas=3, image="web:2", strategy=rolling(1, 0)))
    cluster.reconcile()
    assert cluster.sizes() == [(3, 3), (1, 1)]  # surge first, nothing removed
    cluster.tick()
    cluster.reconcile()
    assert cluster.sizes() == [(3, 3), (1, 1)]
    history = []
    for _ in range(10):
        cluster.tick()
        cluster.make_ready()
        cluster.reconcile()
        history.append(cluster.sizes())
        assert available(cluster) >= 3 and len(live_pods(cluster)) <= 4
    assert [(3, 3), (1, 1)] not in history[1:] and history[-1] == [(0, 0), (3, 3)]


def test_min_ready_seconds_holds_the_rollout_until_pods_are_ready_long_enough():
    cluster = Cluster()
    cluster.apply(deployment(replicas=2, strategy=rolling(1, 0), minReadySeconds=5))
    cluster.reconcile()
    cluster.make_ready()
    ready_at = cluster.now
    for _ in range(5):
        cluster.tick()
        cluster.reconcile()
        assert cluster.get("ReplicaSet", cluster.sets()[0]["metadata"]["name"]).get("status", {}).get(
            "availableReplicas", 0) == 0
    cluster.tick()
    cluster.reconcile()
    assert cluster.now - ready_at == 6  # available once Ready for more than 5 s
    assert cluster.sets()[0]["status"]["availableReplicas"] == 2
    assert cluster.sets()[0]["spec"].get("minReadySeconds") == 5
    cluster.apply(deployment(replicas=2, image="web:2", strategy=rolling(1, 0), minReadySeconds=5))
    cluster.reconcile()
    cluster.make_ready()
    for _ in range(5):
        cluster.tick()
        cluster.reconcile()
        assert cluster.sizes() == [(2, 2), (1, 1)]  # the new Pod is Ready but not yet available
    cluster.tick()
    cluster.reconcile()
    assert cluster.sizes()[0][0] == 1


def test_unhealthy_old_pods_are_cleaned_up_first():
    cluster = running(4, strategy=rolling(0, 1))
    old_rs = cluster.sets()[0]
    sick = cluster.pods_of(old_rs)[0]
    cluster.report(sick, ready=False)
    cluster.apply(deployment(replicas=4, image="web:2", strategy=rolling(0, 1)))
    cluster.reconcile()
    names = [p["metadata"]["name"] for p in cluster.pods_of(cluster.sets()[0])]
    assert sick["metadata"]["name"] not in names and len(names) == 3
    assert available(cluster) == 3


# ------------------------------------------------------------------ recreate


def test_recreate_removes_every_old_pod_before_the_new_set_grows():
    cluster = running(3, strategy={"type": "Recreate"})
    cluster.apply(deployment(replicas=3, image="web:2", strategy={"type": "Recreate"}))
    cluster.reconcile()
    assert cluster.sizes() == [(0, 0)] and live_pods(cluster) == []
    cluster.tick()
    cluster.reconcile()
    assert cluster.sizes() == [(0, 0), (3, 3)]
    cluster.settle()
    assert cluster.get("Deployment", "web")["status"]["updatedReplicas"] == 3


# ------------------------------------------------------------------ scaling


def test_scale_up_and_down():
    cluster = running(2)
    cluster.apply(deployment(replicas=5))
    cluster.reconcile()
    assert cluster.sizes() == [(5, 5)]
    cluster.settle()
    for p in cluster.pods_of(cluster.sets()[0])[:2]:
        cluster.report(p, ready=False)
    ready_names = {p["metadata"]["name"] for p in cluster.pods_of(cluster.sets()[0])[2:]}
    cluster.apply(deployment(replicas=3))
    cluster.reconcile()
    assert cluster.sizes() == [(3, 3)]
    assert {p["metadata"]["name"] for p in cluster.pods_of(cluster.sets()[0])} == ready_names  # not-Ready went first
    assert cluster.sets()[0]["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "3"
    cluster.apply(deployment(replicas=0))
    cluster.reconcile()
    assert cluster.sizes() == [(0, 0)]


def test_scaling_mid_rollout_is_shared_proportionally():
    cluster = running(10, strategy=rolling(3, 2))
    cluster.apply(deployment(replicas=10, image="web:2", strategy=rolling(3, 2)))
    cluster.reconcile()
    assert cluster.sizes() == [(8, 8), (3, 3)]  # 11 of max 13
    cluster.apply(deployment(replicas=20, image="web:2", strategy=rolling(3, 2)))
    cluster.reconcile()
    sizes = cluster.sizes()
    # max-replicas 13 -> 23: 8*23/13 = 14.2 -> 14, 3*23/13 = 5.3 -> 5, leftover 4 to the largest
    assert sizes == [(18, 18), (5, 5)] and sum(s for s, _ in sizes) == 23


def test_deletion_ranking():
    def mk(name, node=None, phase="Pending", ready=False, created="2026-01-01T00:00:00Z"):
        doc = pod(name, node=node)
        doc["metadata"]["creationTimestamp"] = created
        doc["status"] = {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": created}]}
        return doc
    unassigned = mk("unassigned")
    pending = mk("pending", node="n1")
    running_not_ready = mk("running", node="n2", phase="Running")
    old_ready = mk("old", node="n3", phase="Running", ready=True, created="2026-01-01T00:00:00Z")
    new_ready = mk("new", node="n4", phase="Running", ready=True, created="2026-01-01T00:00:00Z")
    new_ready["metadata"]["creationTimestamp"] = "2026-01-02T00:00:00Z"
    ordered = deletion_order([old_ready, new_ready, running_not_ready, pending, unassigned], 0, 1_800_000_000)
    assert [p["metadata"]["name"] for p in ordered] == ["unassigned", "pending", "running", "new", "old"]


# ------------------------------------------------------------------ rollback, restart, pause, history


def test_rollback_reuses_the_old_set_with_the_next_revision():
    cluster = running(2, annotations={"kubernetes.io/change-cause": "v1"})
    first = cluster.sets()[0]
    cluster.apply(deployment(replicas=2, image="web:2", annotations={"kubernetes.io/change-cause": "v2"}))
    cluster.settle()
    assert [rs["metadata"]["annotations"][REVISION] for rs in cluster.sets()] == ["1", "2"]
    cluster.apply(deployment(replicas=2, image="web:1", annotations={"kubernetes.io/change-cause": "v1"}))
    cluster.reconcile()
    sets = cluster.sets()
    assert len(sets) == 2  # no third set: the first is reused
    assert sets[-1]["metadata"]["uid"] == first["metadata"]["uid"]
    assert sets[-1]["metadata"]["annotations"][REVISION] == "3"
    cluster.settle()
    assert cluster.sizes() == [(0, 0), (2, 2)]
    assert cluster.sets()[-1]["metadata"]["annotations"]["kubernetes.io/change-cause"] == "v1"


def test_restart_is_a_template_annotation_and_rolls_every_pod():
    cluster = running(3)
    before = {p["metadata"]["name"] for p in live_pods(cluster)}
    stamp = {"kubectl.kubernetes.io/restartedAt": "2026-09-21T15:00:00Z"}
    cluster.apply(deployment(replicas=3, template_annotations=stamp))
    cluster.settle()
    after = live_pods(cluster)
    assert len(after) == 3 and not before & {p["metadata"]["name"] for p in after}
    assert all(p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == stamp[
        "kubectl.kubernetes.io/restartedAt"] for p in after)
    assert [rs["spec"]["replicas"] for rs in cluster.sets()] == [0, 3]


def test_pause_stops_the_rollout_but_not_scaling_and_resume_continues():
    cluster = running(3)
    cluster.apply(deployment(replicas=3, image="web:2", paused=True))
    cluster.reconcile()
    assert len(cluster.sets()) == 1  # no new set while paused
    cond = condition(cluster.get("Deployment", "web"), "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == ("Unknown", "DeploymentPaused", "Deployment is paused")
    cluster.apply(deployment(replicas=5, image="web:2", paused=True))
    cluster.settle()
    assert cluster.sizes() == [(5, 5)]
    cluster.apply(deployment(replicas=5, image="web:2"))
    cluster.reconcile()
    assert condition(cluster.get("Deployment", "web"), "Progressing")["reason"] in ("DeploymentResumed",
                                                                                    "NewReplicaSetCreated")
    cluster.settle()
    assert cluster.sizes() == [(0, 0), (5, 5)]
    assert condition(cluster.get("Deployment", "web"), "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_old_sets_beyond_the_history_limit_are_deleted_oldest_first():
    cluster = running(1, revisionHistoryLimit=2)
    for image in ("web:2", "web:3", "web:4", "web:5"):
        cluster.apply(deployment(replicas=1, image=image, revisionHistoryLimit=2))
        cluster.settle()
    revisions = [rs["metadata"]["annotations"][REVISION] for rs in cluster.sets()]
    assert revisions == ["3", "4", "5"]  # two old sets kept besides the current one
    images = [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in cluster.sets()]
    assert images == ["web:3", "web:4", "web:5"]


# ------------------------------------------------------------------ the ReplicaSet controller


def test_replica_set_adopts_orphans_and_releases_pods_that_stop_matching():
    cluster = Cluster()
    cluster.apply(pod("stray", labels={"app": "front"}))
    cluster.apply(replica_set("front", replicas=2))
    cluster.reconcile()  # adoption first
    stray = cluster.get("Pod", "stray")
    assert stray["metadata"]["ownerReferences"][0]["name"] == "front"
    assert len(cluster.machine.list("Pod")) == 1
    cluster.reconcile()
    rs = cluster.get("ReplicaSet", "front")
    assert len(cluster.pods_of(rs)) == 2  # the adopted Pod counts: one more created
    relabelled = pod("stray", labels={"app": "elsewhere"})
    relabelled["metadata"]["ownerReferences"] = stray["metadata"]["ownerReferences"]
    cluster.apply(relabelled)
    cluster.reconcile()
    assert "ownerReferences" not in cluster.get("Pod", "stray")["metadata"]
    cluster.reconcile()
    assert len(cluster.pods_of(rs)) == 2


def test_finished_pods_are_deleted_and_replaced():
    cluster = Cluster()
    cluster.apply(replica_set("front", replicas=2))
    cluster.settle()
    rs = cluster.get("ReplicaSet", "front")
    victim = cluster.pods_of(rs)[0]
    cluster.report(victim, phase="Failed", ready=False)
    cluster.reconcile()
    names = [p["metadata"]["name"] for p in cluster.pods_of(rs, live=False)]
    assert victim["metadata"]["name"] not in names and len(names) == 2


def test_big_scale_ups_are_split_into_bounded_commands():
    cluster = Cluster(nodes=("n1",), cpu=100_000)
    cluster.apply(replica_set("front", replicas=150))
    commands = cluster.reconcile(place=False)
    creations = [x for x in commands if c.decode(x).op == "apply"]
    assert [len(c.decode(x)["docs"]) for x in creations] == [64, 64, 22]
    assert len(cluster.machine.list("Pod")) == 150


def test_garbage_whose_owner_is_gone_is_collected():
    cluster = Cluster()
    orphan = pod("orphan", labels={"app": "x"})
    orphan["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone",
                                              "uid": "never-was", "controller": True}]
    foreign = pod("foreign")
    foreign["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j1"}]
    cluster.apply(orphan)
    cluster.apply(foreign)
    cluster.reconcile()
    assert [p["metadata"]["name"] for p in cluster.machine.list("Pod")] == ["foreign"]


# ------------------------------------------------------------------ progress and faults


def test_progress_deadline_exceeded_when_new_pods_never_become_ready():
    cluster = running(2, progressDeadlineSeconds=30)
    cluster.apply(deployment(replicas=2, image="web:broken", progressDeadlineSeconds=30))
    cluster.reconcile()
    for _ in range(31):
        cluster.tick()
        cluster.reconcile()
    cond = condition(cluster.get("Deployment", "web"), "Progressing")
    assert cond["status"] == "True"
    cluster.tick()
    cluster.reconcile()
    cond = condition(cluster.get("Deployment", "web"), "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"].endswith("has timed out progressing.")
    cluster.tick(60)
    assert not [x for x in cluster.reconcile() if c.decode(x).op == "workload_status"]  # says it once
    cluster.apply(deployment(replicas=2, image="web:2", progressDeadlineSeconds=30))
    cluster.settle()
    assert condition(cluster.get("Deployment", "web"), "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_available_condition_follows_min_availability():
    cluster = running(4, strategy=rolling(1, 1))
    for p in live_pods(cluster)[:2]:
        cluster.report(p, ready=False)
    cluster.tick()
    cluster.reconcile()
    d = cluster.get("Deployment", "web")
    cond = condition(d, "Available")
    assert (cond["status"], cond["reason"]) == ("False", "MinimumReplicasUnavailable")
    assert d["status"]["unavailableReplicas"] == 2
    assert cond["lastTransitionTime"] == format_time(cluster.now)


def test_a_node_dying_mid_rollout_loses_nothing_for_good():
    cluster = running(4, strategy=rolling(1, 1))
    cluster.apply(deployment(replicas=4, image="web:2", strategy=rolling(1, 1)))
    cluster.reconcile()
    cluster.tick()
    cluster.make_ready()
    cluster.reconcile()
    victim = "n1"
    members = {n: MemberView(n, "dead" if n == victim else "alive", facts()) for n in ("n1", "n2", "n3")}
    for data in reconcile_nodes(cluster.machine, members, now=cluster.now, settled=True, new_uid=cluster.uid):
        cluster.run(data)
    assert not list(cluster.machine.store.pods_on(victim))
    for _ in range(20):
        cluster.tick()
        cluster.make_ready()
        cluster.reconcile()
        assert len(live_pods(cluster)) <= 5
        assert all(pods.node_name_of(p) != victim for p in live_pods(cluster))
    assert cluster.sizes() == [(0, 0), (4, 4)]
    d = cluster.get("Deployment", "web")
    assert d["status"]["availableReplicas"] == 4 and d["status"]["updatedReplicas"] == 4


def test_deleting_the_deployment_removes_everything_and_no_pass_recreates_it():
    cluster = running(3)
    cluster.run(c.delete_object("Deployment", "default", "web", cluster.now))
    assert cluster.machine.list("ReplicaSet") == [] and cluster.machine.list("Pod") == []
    assert cluster.reconcile() == []


@pytest.mark.parametrize("replicas", [0, 1, 7])
def test_every_command_a_pass_writes_is_accepted(replicas):
    cluster = Cluster()
    cluster.apply(deployment(replicas=replicas))
    cluster.settle()  # Cluster.reconcile asserts each command applied without refusal
    assert len(live_pods(cluster)) == replicas
    assert all(meta_of(p)["ownerReferences"][0]["controller"] for p in live_pods(cluster))


def test_a_taken_name_bumps_the_collision_count_and_the_hash():
    cluster = Cluster()
    d = cluster.apply(deployment(replicas=1))
    squatter = replica_set(f"web-{template_hash(d['spec']['template'])}", replicas=0, labels={"app": "other"})
    cluster.apply(squatter)
    cluster.reconcile()
    assert cluster.get("Deployment", "web")["status"]["collisionCount"] == 1
    cluster.reconcile()
    [rs] = cluster.sets()
    assert rs["metadata"]["name"] == f"web-{template_hash(d['spec']['template'], 1)}"
    cluster.settle()
    assert cluster.get("Deployment", "web")["status"]["collisionCount"] == 1
    assert cluster.get("Deployment", "web")["status"]["availableReplicas"] == 1


def test_big_scale_downs_are_split_into_bounded_commands():
    cluster = Cluster(nodes=("n1",), cpu=100_000)
    cluster.apply(replica_set("front", replicas=300))
    cluster.reconcile(place=False)
    cluster.apply(replica_set("front", replicas=0))
    deletions = [x for x in cluster.reconcile(place=False) if c.decode(x).op == "delete_many"]
    assert [len(c.decode(x)["rows"]) for x in deletions] == [256, 44]
    assert cluster.machine.list("Pod") == []
