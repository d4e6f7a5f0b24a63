"""Events: written by the state machine with the change they describe, folded, bounded."""

from __future__ import annotations

import pytest

from agent.state import commands as c
from agent.state.machine import ClusterState, StateConfig, is_error
from agent.state.selectors import parse_field_selector
from tests.unit.state_helpers import T0, Log, pod


@pytest.fixture
def log():
    return Log()


def events(log: Log, uid: str | None = None) -> list[tuple[str, str, str, int]]:
    fields = parse_field_selector(f"involvedObject.uid={uid}") if uid else None
    found = log.machine.list("Event", fields=fields)
    return [(e["type"], e["reason"], e["message"], e["count"])
            for e in sorted(found, key=lambda e: int(e["metadata"]["resourceVersion"]))]


def running(started: str, *, ready: bool = True, restarts: int = 0) -> dict:
    return {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "app", "ready": ready, "restartCount": restarts,
                                   "state": {"running": {"startedAt": started}}}]}


def crash_looping(restarts: int) -> dict:
    return {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "app", "ready": False, "restartCount": restarts,
                                   "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}


def test_scheduling_and_starting_a_pod_tell_its_story(log):
    log.ready_node("n1")
    log.create(pod("web"))
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0 + 1))
    log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, running("2026-12-04T10:00:00Z"))], T0 + 2))
    assert events(log, "uid-web") == [
        ("Normal", "Scheduled", "Successfully assigned default/web to n1", 1),
        ("Normal", "Started", "Started container app", 1),
    ]
    event = log.machine.list("Event", fields=parse_field_selector("involvedObject.uid=uid-web"))[0]
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-web",
                                       "namespace": "default"}
    assert event["source"] == {"component": "default-scheduler"}
    assert event["firstTimestamp"] == event["lastTimestamp"] == event["metadata"]["creationTimestamp"]


def test_a_repeat_is_counted_not_stored_again(log):
    log.ready_node("n1")
    log.create(pod("web"))
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))
    for restarts in (1, 2, 3):
        log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, crash_looping(restarts))],
                                      T0 + 10 * restarts))
    backoffs = [e for e in log.machine.list("Event") if e["reason"] == "BackOff"]
    assert len(backoffs) == 1
    assert backoffs[0]["count"] == 3
    assert backoffs[0]["message"] == "Back-off restarting failed container app"
    assert backoffs[0]["lastTimestamp"] > backoffs[0]["firstTimestamp"]


def test_a_container_turning_unready_is_unhealthy(log):
    log.ready_node("n1")
    log.create(pod("web"))
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))
    log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, running("t1"))], T0))
    log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, running("t1", ready=False))], T0))
    assert [r for _, r, _, _ in events(log, "uid-web")] == ["Scheduled", "Started", "Unhealthy"]


def test_unschedulable_node_readiness_eviction_and_deletion(log):
    log.ready_node("n1")
    log.create(pod("big", cpu="64"))
    log.run(c.mark_unschedulable([("default", "big", "uid-big", "0/1 nodes are available: 1 Insufficient cpu.")],
                                 T0))
    assert events(log, "uid-big") == [("Warning", "FailedScheduling",
                                       "0/1 nodes are available: 1 Insufficient cpu.", 1)]
    log.create(pod("web"))
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))
    log.run(c.set_node_ready("n1", "False", "NodeLost", "gossip declared n1 dead", T0))
    log.run(c.set_node_ready("n1", "False", "NodeLost", "gossip declared n1 dead", T0))  # no change: no event
    assert events(log, "uid-n1")[-1] == ("Warning", "NodeNotReady",
                                         "Node n1 status is now: NodeNotReady (gossip declared n1 dead)", 1)
    log.run(c.evict_pods("n1", [("default", "web", "uid-web", "reschedule")], "NodeLost", "n1 is dead", T0))
    assert events(log, "uid-web")[-1] == ("Warning", "Rescheduled", "n1 is dead (was on n1; placed again)", 1)
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))  # n1 is not Ready: refused, no event
    assert events(log, "uid-web")[-1][1] == "Rescheduled"
    log.run(c.set_node_ready("n1", "True", "AgentAlive", "", T0))
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))
    log.run(c.delete_object("Pod", "default", "web", T0))
    assert events(log, "uid-web")[-1] == ("Normal", "Killing", "Stopping container app", 1)
    assert events(log, "uid-n1")[-1][1] == "NodeReady"


def test_the_number_of_events_is_bounded_oldest_updated_first_out():
    log = Log(ClusterState(StateConfig(max_events=3)))
    log.ready_node("n1")  # NodeReady: event 1
    for i in range(4):
        log.create(pod(f"p{i}"))
        log.run(c.bind_pods([("default", f"p{i}", f"uid-p{i}", "n1")], T0 + i))
    kept = sorted(e["involvedObject"]["name"] for e in log.machine.list("Event"))
    assert kept == ["p1", "p2", "p3"]
    # Deletions of the dropped ones went out to watchers like any other change.
    assert any(ch.type == "DELETED" and ch.doc["kind"] == "Event" for ch in log.machine.changes_since(0))


def test_leader_recorded_events_name_an_existing_object_or_are_dropped(log):
    log.ready_node("n1")
    result = log.run(c.record_events([("Node", "", "n1", "Normal", "LeaderElected", "n1 leads term 3", "agentd"),
                                      ("Node", "", "ghost", "Normal", "LeaderElected", "x", "agentd"),
                                      ("Node", "", "n1", "Fancy", "X", "bad type", "agentd")], T0))
    assert result == {"recorded": 1}
    assert events(log, "uid-n1")[-1] == ("Normal", "LeaderElected", "n1 leads term 3", 1)


def test_events_survive_a_snapshot_and_keep_folding_after_restore(log):
    log.ready_node("n1")
    log.create(pod("web"))
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))
    log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, crash_looping(1))], T0))
    restored = ClusterState()
    restored.restore(log.machine.snapshot())
    again = Log(restored)
    again.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, crash_looping(2))], T0 + 5))
    backoffs = [e for e in restored.list("Event") if e["reason"] == "BackOff"]
    assert [e["count"] for e in backoffs] == [2]


def test_people_cannot_create_or_change_events(log):
    log.ready_node("n1")
    made = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x"}, "reason": "Fake"}
    result = log.create(made)
    assert is_error(result)
    assert log.machine.list("Event", fields=parse_field_selector("reason=Fake")) == []
    name = log.machine.list("Event")[0]["metadata"]["name"]
    result = log.run(c.patch_object("Event", "default", name, {"message": "changed"}, T0))
    assert is_error(result) and "written by the cluster" in result["message"]


def test_events_are_the_same_on_every_replica(log):
    """The same log gives the same events, names and uids included (no clock, no chance)."""
    other = Log()
    for replica in (log, other):
        replica.ready_node("n1")
        replica.create(pod("web"))
        replica.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))
    assert log.machine.list("Event") == other.machine.list("Event")


def test_a_deployment_says_how_it_scaled_and_its_replica_set_what_it_made():
    from tests.unit.workload_helpers import Cluster, deployment

    cluster = Cluster()
    web = cluster.apply(deployment("web", replicas=2))
    cluster.settle()
    rs = cluster.sets("web")[0]
    said = [(e["reason"], e["message"]) for e in cluster.machine.list(
        "Event", fields=parse_field_selector(f"involvedObject.uid={web['metadata']['uid']}"))]
    assert said == [("ScalingReplicaSet", f"Scaled up replica set {rs['metadata']['name']} from 0 to 2")]
    made = sorted(e["message"] for e in cluster.machine.list(
        "Event", fields=parse_field_selector(f"involvedObject.uid={rs['metadata']['uid']}")))
    assert made == sorted(f"Created pod: {p['metadata']['name']}" for p in cluster.pods_of(rs))
    cluster.run(c.delete_object("Deployment", "default", "web", cluster.now))
    assert cluster.machine.list("Pod") == []
    killing = [e for e in cluster.machine.list("Event") if e["reason"] == "Killing"]
    assert len(killing) == 2  # each placed Pod's container stops
