"""Eviction (the `evict_pod` op): a Deployment's Pods go only within replicas - maxUnavailable,
bare Pods only with force, mirror Pods never; a refused eviction changes nothing."""

from __future__ import annotations

from agent.state import commands as c
from agent.state import pod_lifecycle as pods
from agent.state.eviction import budget_of
from agent.state.machine import is_error
from agent.state.objects import format_time, meta_of
from tests.unit.state_helpers import pod
from tests.unit.workload_helpers import Cluster, deployment, replica_set, rolling


def _web(cluster: Cluster, replicas: int, strategy: dict | None, **spec) -> list[dict]:
    cluster.apply(deployment("web", replicas=replicas, strategy=strategy, **spec))
    cluster.settle()
    live = [p for p in cluster.machine.list("Pod") if not pods.is_finished(p)]
    assert len(live) == replicas
    return live


def _evict(cluster: Cluster, doc: dict, *, force: bool = False, uid: str = "") -> object:
    meta = meta_of(doc)
    return cluster.run(c.evict_pod(meta["namespace"], meta["name"], uid, cluster.now, force=force))


def test_deployment_above_its_budget_gives_up_one_pod_then_refuses_the_next() -> None:
    cluster = Cluster()
    live = _web(cluster, 3, rolling(1, 1))
    first = _evict(cluster, live[0])
    assert not is_error(first), first
    assert cluster.machine.get("Pod", "default", meta_of(live[0])["name"]) is None
    [evicted] = [e for e in cluster.machine.list("Event") if e["reason"] == "Evicted"]
    assert evicted["involvedObject"]["uid"] == meta_of(live[0])["uid"]
    assert evicted["message"] == f"Evicted from {live[0]['spec']['nodeName']} within its Deployment's budget"
    version = cluster.machine.applied_index
    second = _evict(cluster, live[1])
    assert second["error"] == "too_many_requests"
    assert "deployment.apps/web" in second["message"] and "2 available, 2 must stay" in second["message"]
    assert "once a replacement is available" in second["message"]
    assert cluster.machine.get("Pod", "default", meta_of(live[1])["name"]) is not None
    assert cluster.log.changes[-1] < version + 1  # the refusal changed nothing
    # The ReplicaSet replaces the evicted Pod; once it is available, the next may go.
    cluster.settle()
    assert not is_error(_evict(cluster, live[1]))


def test_deployment_at_its_budget_refuses_and_an_unavailable_pod_may_always_go() -> None:
    cluster = Cluster()
    live = _web(cluster, 2, rolling(1, 0))  # maxUnavailable 0: every available Pod must stay
    refused = _evict(cluster, live[0])
    assert refused["error"] == "too_many_requests" and "maxUnavailable comes to 0" in refused["message"]
    cluster.report(live[1], ready=False)
    assert not is_error(_evict(cluster, live[1]))  # not available: its going costs nothing


def _mark_leaving(cluster: Cluster, doc: dict, at: float) -> None:
    """As `agentctl drain` does after a refusal: the Pod's eviction-requested annotation."""
    meta = meta_of(doc)
    result = cluster.run(c.patch_object("Pod", meta["namespace"], meta["name"], {"metadata": {"annotations": {
        pods.EVICTION_REQUESTED_ANNOTATION: format_time(at)}}}, cluster.now))
    assert not is_error(result), result


def _live(cluster: Cluster) -> list[dict]:
    return [p for p in cluster.machine.list("Pod") if not pods.is_finished(p)]


def test_a_default_deployment_of_three_is_drained_by_a_replacement_started_first() -> None:
    """25 % of 3 rounds maxUnavailable down to 0 (and maxSurge up to 1): a refused Pod
    marked leaving gets a replacement beside it, never more than replicas + maxSurge, and
    goes once that one is available; the set is back to 3 after."""
    cluster = Cluster()
    live = _web(cluster, 3, None)
    leaving = live[0]
    refused = _evict(cluster, leaving)
    assert refused["error"] == "too_many_requests" and "a drain marks it" in refused["message"]
    _mark_leaving(cluster, leaving, cluster.now)
    cluster.reconcile()
    assert len(_live(cluster)) == 4  # the replacement, not yet available
    assert _evict(cluster, leaving)["error"] == "too_many_requests"
    cluster.settle()
    assert len(_live(cluster)) == 4  # the surge holds at replicas + maxSurge while the mark is fresh
    assert not is_error(_evict(cluster, leaving))
    cluster.settle()
    names = {meta_of(p)["name"] for p in _live(cluster)}
    assert len(names) == 3 and meta_of(leaving)["name"] not in names


def test_marks_beyond_max_surge_wait_and_a_stale_mark_counts_again() -> None:
    cluster = Cluster()
    live = _web(cluster, 3, None)
    for doc in live[:2]:
        _mark_leaving(cluster, doc, cluster.now)
    cluster.settle()
    assert len(_live(cluster)) == 4  # one replacement at a time: maxSurge is 1
    cluster.tick(pods.LEAVING_FOR_S + 1)  # the drain gave up: the marks are stale
    cluster.settle()
    remaining = _live(cluster)
    assert len(remaining) == 3


def test_a_mark_is_ignored_during_a_rollout() -> None:
    cluster = Cluster()
    live = _web(cluster, 3, None)
    cluster.apply(deployment("web", replicas=3, image="web:2"))
    cluster.reconcile(place=False)  # the rollout has begun: the old set no longer holds all
    _mark_leaving(cluster, live[0], cluster.now)
    peak = 0
    for _ in range(30):
        cluster.tick()
        cluster.make_ready()
        wrote = cluster.reconcile()
        peak = max(peak, len(_live(cluster)))
        if not wrote:
            break
    assert peak <= 4  # replicas + maxSurge, the mark adding nothing
    assert len(_live(cluster)) == 3 and all(p["spec"]["containers"][0]["image"] == "web:2" for p in _live(cluster))


def test_percentages_round_down_and_recreate_loses_one_at_a_time() -> None:
    assert budget_of(deployment(replicas=10, strategy=rolling("25%", "25%"))) == 8
    assert budget_of(deployment(replicas=3, strategy=rolling("25%", "25%"))) == 3  # 0.75 rounds down to 0
    assert budget_of(deployment(replicas=3, strategy=rolling(0, "0%"))) == 2  # both 0: one may go
    assert budget_of(deployment(replicas=4, strategy={"type": "Recreate"})) == 3
    assert budget_of(deployment(replicas=0)) == 0
    cluster = Cluster()
    live = _web(cluster, 4, rolling("25%", "50%"))
    assert not is_error(_evict(cluster, live[0]))
    assert not is_error(_evict(cluster, live[1]))
    assert _evict(cluster, live[2])["error"] == "too_many_requests"


def test_bare_pod_needs_force_and_replica_set_pods_go_freely() -> None:
    cluster = Cluster()
    bare = cluster.apply(pod("bare", node="n1"))
    refused = _evict(cluster, bare)
    assert refused["error"] == "forbidden" and "no controller" in refused["message"]
    assert cluster.machine.get("Pod", "default", "bare") is not None
    assert not is_error(_evict(cluster, bare, force=True))
    assert cluster.machine.get("Pod", "default", "bare") is None
    cluster.apply(replica_set("front", replicas=1))
    cluster.settle()
    (only,) = [p for p in cluster.machine.list("Pod")]
    assert not is_error(_evict(cluster, only))  # no Deployment, no budget


def test_mirror_pod_is_never_evicted_and_bad_input_is_refused() -> None:
    cluster = Cluster()
    static = pod("etcd-n1")
    result = cluster.run(c.sync_mirror_pods("n1", [static], ["static-uid"], cluster.now))
    assert result["created"] == 1
    mirror = cluster.get("Pod", "etcd-n1")
    refused = _evict(cluster, mirror, force=True)
    assert refused["error"] == "forbidden" and "static Pod" in refused["message"]
    assert cluster.run(c.evict_pod("default", "nope", "", cluster.now))["error"] == "not_found"
    assert _evict(cluster, mirror, uid="other")["error"] == "conflict"


def test_minready_counts_only_pods_ready_long_enough() -> None:
    cluster = Cluster()
    live = _web(cluster, 2, rolling(1, 1), minReadySeconds=30)
    # Ready for a few seconds only: none is available, so each may go (it costs nothing).
    assert not is_error(_evict(cluster, live[0]))
    cluster.tick(60)
    # Now live[1] is available and the only one (its sibling's replacement is not made yet).
    assert _evict(cluster, live[1])["error"] == "too_many_requests"
