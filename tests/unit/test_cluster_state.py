"""The cluster state machine (agent/state/machine.py): every command, preconditions, the
watch window, sessions, snapshots, determinism, and garbage that must never raise."""

from __future__ import annotations

import copy

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.state import commands as c
from agent.state.history import Expired
from agent.state.machine import ClusterState, StateConfig, is_error
from agent.state.selectors import parse_field_selector, parse_label_selector
from tests.unit.state_helpers import T0, Log, facts, pod

@pytest.fixture
def log() -> Log:
    return Log()


def check_indexes(machine: ClusterState) -> None:
    before = machine.store.index_fingerprint()
    machine.store.rebuild()
    assert machine.store.index_fingerprint() == before


# ------------------------------------------------------------------ create / update / delete


def test_create_stamps_uid_version_generation_and_time(log):
    result = log.create(pod("web"))
    [[kind, namespace, name, action, doc]] = result["results"]
    assert (kind, namespace, name, action) == ("Pod", "default", "web", "created")
    meta = doc["metadata"]
    assert meta["uid"] == "uid-web" and meta["resourceVersion"] == "1" and meta["generation"] == 1
    assert meta["creationTimestamp"] == "2026-09-21T14:13:20Z"
    assert doc["status"]["phase"] == "Pending"
    assert log.machine.get("Pod", "default", "web") == doc
    assert log.changes == [1]


def test_reapplying_the_same_manifest_is_unchanged_and_changes_nothing(log):
    log.create(pod("web"))
    result = log.create(pod("web"))
    assert result["results"][0][3] == "unchanged"
    assert log.machine.get("Pod", "default", "web")["metadata"]["resourceVersion"] == "1"
    assert log.changes == [1]


def test_update_bumps_generation_only_when_the_spec_changes(log):
    log.create(pod("web"))
    relabelled = log.create(pod("web", labels={"tier": "front"}))["results"][0]
    assert relabelled[3] == "configured" and relabelled[4]["metadata"]["generation"] == 1
    assert relabelled[4]["metadata"]["resourceVersion"] == "2"
    respecced = log.create(pod("web", labels={"tier": "front"}, cpu="200m"))["results"][0]
    assert respecced[4]["metadata"]["generation"] == 2
    assert respecced[4]["metadata"]["uid"] == "uid-web"  # identity survives updates


def test_update_on_a_stale_resource_version_is_refused(log):
    log.create(pod("web"))
    log.create(pod("web", labels={"v": "2"}))  # now at version 2
    stale = pod("web", labels={"v": "3"})
    stale["metadata"]["resourceVersion"] = "1"
    result = log.run(c.apply_objects([stale], ["x"], T0))
    assert result["error"] == "conflict" and "has been modified" in result["message"]
    assert log.machine.get("Pod", "default", "web")["metadata"]["labels"] == {"v": "2"}
    fresh = pod("web", labels={"v": "3"})
    fresh["metadata"]["resourceVersion"] = "2"
    assert log.run(c.apply_objects([fresh], ["x"], T0))["results"][0][3] == "configured"


def test_create_only_refuses_an_existing_object(log):
    log.create(pod("web"))
    result = log.run(c.apply_objects([pod("web")], ["x"], T0, create_only=True))
    assert result["error"] == "already_exists"


def test_an_apply_is_all_or_nothing_with_field_paths(log):
    bad = pod("bad")
    bad["spec"]["containers"][0]["resources"]["requests"]["memory"] = "12Q"
    result = log.run(c.apply_objects([pod("good"), bad], ["u1", "u2"], T0))
    assert result["error"] == "invalid"
    assert ["spec.containers[0].resources.requests.memory", '"12Q" is not a quantity', "document 2"] in \
        result["fields"]
    assert log.machine.get("Pod", "default", "good") is None
    assert log.changes == []


def test_the_same_object_twice_in_one_apply_is_refused(log):
    result = log.run(c.apply_objects([pod("web"), pod("web")], ["u1", "u2"], T0))
    assert result["error"] == "invalid" and "also document 1" in result["message"]


def test_unsupported_kind_names_the_supported_ones(log):
    result = log.run(c.apply_objects([{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x"}}],
                                     ["u"], T0))
    assert result["error"] == "invalid"
    assert "apiVersion apps/v1, kind StatefulSet is not supported (supported: v1 Pod, v1 Node, apps/v1 Deployment, apps/v1 ReplicaSet, v1 ConfigMap, v1 Secret)" in result["message"]


def test_nodes_cannot_be_created_by_people(log):
    result = log.run(c.apply_objects([{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n9"}}], ["u"], T0))
    assert result["error"] == "forbidden"


def test_delete_with_preconditions(log):
    log.create(pod("web"))
    assert log.run(c.delete_object("Pod", "default", "web", T0, resource_version="7"))["error"] == "conflict"
    assert log.run(c.delete_object("Pod", "default", "web", T0, uid="other"))["error"] == "conflict"
    gone = log.run(c.delete_object("Pod", "default", "web", T0, uid="uid-web"))
    assert gone["object"]["metadata"]["resourceVersion"] == str(log.index)
    assert log.machine.get("Pod", "default", "web") is None
    assert log.run(c.delete_object("Pod", "default", "web", T0))["error"] == "not_found"


def test_status_in_a_document_is_ignored_as_kubectl_apply_ignores_it(log):
    doc = pod("web")
    doc["status"] = {"phase": "Running"}
    log.create(doc)
    assert log.machine.get("Pod", "default", "web")["status"]["phase"] == "Pending"


# ------------------------------------------------------------------ nodes and placement


def test_node_registration_labels_and_ready_condition(log):
    log.ready_node("n1")
    node = log.machine.get("Node", "", "n1")
    assert node["metadata"]["labels"] == {
        "agentd.io/role": "worker", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": "n1",
        "kubernetes.io/os": "linux", "zone": "a"}
    assert node["status"]["capacity"] == {"cpu": "2", "memory": "4194304Ki", "pods": "110"}
    [ready] = node["status"]["conditions"]
    assert ready["status"] == "True" and ready["reason"] == "AgentAlive"
    # The same condition again writes nothing.
    before = log.changes[:]
    assert log.run(c.set_node_ready("n1", "True", "AgentAlive", "alive", T0 + 5)) == {"changed": False}
    assert log.changes == before


def test_cordon_by_patch_and_system_labels_are_the_clusters(log):
    log.ready_node("n1")
    result = log.run(c.patch_object("Node", "", "n1", {"spec": {"unschedulable": True}}, T0))
    assert result["object"]["spec"] == {"unschedulable": True}
    refused = log.run(c.patch_object("Node", "", "n1", {"metadata": {"labels": {"agentd.io/role": "voter"}}}, T0))
    assert refused["error"] == "invalid" and "is set by the cluster" in refused["message"]
    assert log.run(c.set_node_role("n1", "voter", T0)) == {"changed": True}
    assert log.machine.get("Node", "", "n1")["metadata"]["labels"]["agentd.io/role"] == "voter"


def test_bind_places_a_pending_pod_and_bumps_its_epoch(log):
    log.ready_node("n1")
    log.create(pod("web"))
    assert log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0)) == {"refused": [""], "bound": 1}
    doc = log.machine.get("Pod", "default", "web")
    assert doc["spec"]["nodeName"] == "n1"
    assert doc["metadata"]["annotations"]["agentd.io/placement-epoch"] == "1"
    assert doc["status"]["conditions"][0]["type"] == "PodScheduled"
    assert log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))["refused"] == ["pod already placed"]
    check_indexes(log.machine)


def test_bind_never_overcommits_whatever_the_scheduler_believed(log):
    log.ready_node("n1", cpu=1000)
    log.create(pod("a", cpu="600m"), pod("b", cpu="600m"))
    result = log.run(c.bind_pods([("default", "a", "uid-a", "n1"), ("default", "b", "uid-b", "n1")], T0))
    assert result["refused"] == ["", "Insufficient cpu"]
    assert log.machine.store.usage("n1").cpu_millicores == 600


def test_bind_refuses_a_taken_host_port_and_a_node_that_is_not_ready(log):
    log.ready_node("n1")
    log.run(c.upsert_node("n2", "uid-n2", facts(), T0))  # registered, not yet Ready
    log.create(pod("a", host_port=8080), pod("b", host_port=8080))
    result = log.run(c.bind_pods([("default", "a", "uid-a", "n1"), ("default", "b", "uid-b", "n1"),
                                  ("default", "b", "uid-b", "n2")], T0))
    assert result["refused"] == ["", "host port taken", "node not ready"]


def test_unschedulable_condition_is_written_once(log):
    log.create(pod("big", cpu="64"))
    message = "0/1 nodes are available: 1 Insufficient cpu."
    log.run(c.mark_unschedulable([("default", "big", "uid-big", message)], T0))
    versions = log.machine.get("Pod", "default", "big")["metadata"]["resourceVersion"]
    log.run(c.mark_unschedulable([("default", "big", "uid-big", message)], T0 + 1))
    doc = log.machine.get("Pod", "default", "big")
    assert doc["metadata"]["resourceVersion"] == versions
    [cond] = doc["status"]["conditions"]
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", message)


def test_evicting_a_lost_nodes_pods_reschedules_or_fails_them(log):
    log.ready_node("n1")
    log.create(pod("web"), pod("job", restart="Never"))
    log.run(c.bind_pods([("default", "web", "uid-web", "n1"), ("default", "job", "uid-job", "n1")], T0))
    result = log.run(c.evict_pods("n1", [("default", "web", "uid-web", "reschedule"),
                                          ("default", "job", "uid-job", "fail")], "NodeLost", "n1 is dead", T0))
    assert result == {"rescheduled": 1, "failed": 1}
    web = log.machine.get("Pod", "default", "web")
    assert "nodeName" not in web["spec"] and web["status"]["phase"] == "Pending"
    assert web["metadata"]["annotations"]["agentd.io/placement-epoch"] == "1"  # the next bind makes it 2
    job = log.machine.get("Pod", "default", "job")
    assert job["spec"]["nodeName"] == "n1" and job["status"]["phase"] == "Failed"
    assert log.machine.store.usage("n1").pods == 0  # a failed Pod no longer counts against its node
    check_indexes(log.machine)


def test_status_reports_only_from_the_node_and_epoch_the_pod_is_placed_under(log):
    log.ready_node("n1")
    log.ready_node("n2")
    log.create(pod("web"))
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))
    running = {"phase": "Running", "podIP": "172.17.0.2",
               "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": []}
    assert log.run(c.report_pod_statuses("n2", [("default", "web", "uid-web", 1, running)], T0))["ignored"] == 1
    assert log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 2, running)], T0))["ignored"] == 1
    assert log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, running)], T0))["accepted"] == 1
    status = log.machine.get("Pod", "default", "web")["status"]
    assert status["phase"] == "Running" and status["podIP"] == "172.17.0.2"
    assert [cond["type"] for cond in status["conditions"]] == ["PodScheduled", "Ready"]
    # The same report again is accepted but writes nothing.
    version = log.machine.get("Pod", "default", "web")["metadata"]["resourceVersion"]
    log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, running)], T0))
    assert log.machine.get("Pod", "default", "web")["metadata"]["resourceVersion"] == version


def test_a_malformed_status_report_is_ignored(log):
    log.ready_node("n1")
    log.create(pod("web"))
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))
    result = log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, {"phase": "Dancing"})], T0))
    assert result == {"accepted": 0, "ignored": 1}


def test_a_pod_created_with_a_node_name_is_placed_by_its_author(log):
    log.ready_node("n1")
    log.create(pod("pinned", node="n1"))
    doc = log.machine.get("Pod", "default", "pinned")
    assert doc["spec"]["nodeName"] == "n1" and doc["metadata"]["annotations"]["agentd.io/placement-epoch"] == "1"
    moved = pod("pinned", node="n2")
    result = log.create(moved)
    assert result["error"] == "invalid" and "may not be changed once the Pod is placed" in result["message"]
    # Re-applying the original manifest (without nodeName) keeps the placement.
    assert log.create(pod("pinned"))["results"][0][3] == "unchanged"


# ------------------------------------------------------------------ reads and watches


def test_list_with_label_and_field_selectors(log):
    log.ready_node("n1")
    log.create(pod("a", labels={"app": "web"}), pod("b", labels={"app": "db"}), pod("c", namespace="other"))
    log.run(c.bind_pods([("default", "a", "uid-a", "n1")], T0))
    names = lambda docs: [d["metadata"]["name"] for d in docs]  # noqa: E731
    assert names(log.machine.list("Pod")) == ["a", "b", "c"]
    assert names(log.machine.list("Pod", namespace="default")) == ["a", "b"]
    assert names(log.machine.list("Pod", labels=parse_label_selector("app in (web,db),app!=db"))) == ["a"]
    assert names(log.machine.list("Pod", fields=parse_field_selector("spec.nodeName=n1"))) == ["a"]
    assert names(log.machine.list("Pod", fields=parse_field_selector("spec.nodeName="))) == ["b", "c"]


def test_watch_from_a_version_gets_every_later_change_in_order(log):
    log.create(pod("a"))
    log.create(pod("b"))
    log.run(c.delete_object("Pod", "default", "a", T0))
    changes = log.machine.changes_since(1)
    assert [(ch.version, ch.type, ch.doc["metadata"]["name"]) for ch in changes] == [
        (2, "ADDED", "b"), (3, "DELETED", "a")]
    assert log.machine.changes_since(3) == []


def test_watch_older_than_the_window_is_expired_and_says_so():
    log = Log(ClusterState(StateConfig(max_watch_changes=3)))
    for i in range(6):
        log.create(pod(f"p{i}"))
    assert [ch.version for ch in log.machine.changes_since(3)] == [4, 5, 6]
    with pytest.raises(Expired, match="too old resource version: 2"):
        log.machine.changes_since(2)


def test_one_entry_with_more_changes_than_the_window_holds_is_kept_whole_and_applies():
    """A leader pass that makes more changes than the window's bound in one entry (a
    Deployment of a thousand replicas) must apply, not spin: the newest version stays whole
    until a newer one comes, then goes whole."""
    log = Log(ClusterState(StateConfig(max_watch_changes=3, max_watch_bytes=10_000)))
    log.ready_node("n1", pods=500)
    docs = [pod(f"p{i}", cpu="1m", memory="1Mi") for i in range(20)]
    result = log.batch([c.apply_objects([d], [f"u{i}"], T0) for i, d in enumerate(docs)])
    assert all(r["results"][0][3] == "created" for r in result)
    entry = log.index
    assert [ch.version for ch in log.machine.changes_since(entry - 1)] == [entry] * 20
    log.run(c.bind_pods([("default", f"p{i}", f"u{i}", "n1") for i in range(20)], T0))  # one command, 20 changes
    assert len(log.machine.changes_since(entry)) >= 20
    with pytest.raises(Expired):
        log.machine.changes_since(entry - 1)  # the big entry went whole when the next came


def test_changes_of_one_batch_entry_share_its_version_and_are_served_whole(log):
    results = log.batch([c.apply_objects([pod("a")], ["ua"], T0), c.apply_objects([pod("b")], ["ub"], T0)])
    assert [r["results"][0][3] for r in results] == ["created", "created"]
    changes = log.machine.changes_since(0)
    assert [(ch.version, ch.doc["metadata"]["name"]) for ch in changes] == [(1, "a"), (1, "b")]
    assert log.changes == [1]  # one notification per entry


# ------------------------------------------------------------------ sessions (thesis §6.3)


def test_a_retried_write_is_applied_once_and_answered_from_the_session(log):
    client = log.run(c.register_session(T0))["client_id"]
    first = log.run(c.apply_objects([pod("web", labels={"v": "1"})], ["u"], T0, session=(client, 1)))
    log.run(c.apply_objects([pod("web", labels={"v": "2"})], ["u"], T0))  # someone else changes it
    retry = log.run(c.apply_objects([pod("web", labels={"v": "1"})], ["u"], T0, session=(client, 1)))
    assert retry == first
    assert log.machine.get("Pod", "default", "web")["metadata"]["labels"] == {"v": "2"}


def test_stale_and_unknown_sessions_are_refused(log):
    client = log.run(c.register_session(T0))["client_id"]
    log.run(c.apply_objects([pod("a")], ["u"], T0, session=(client, 2)))
    assert log.run(c.apply_objects([pod("b")], ["u"], T0, session=(client, 1)))["error"] == "stale_sequence"
    assert log.run(c.apply_objects([pod("b")], ["u"], T0, session=("nobody", 1)))["error"] == "session_expired"
    assert log.machine.get("Pod", "default", "b") is None


def test_sessions_expire_least_recently_used_first_and_deterministically():
    log = Log(ClusterState(StateConfig(max_sessions=2)))
    a = log.run(c.register_session(T0))["client_id"]
    b = log.run(c.register_session(T0))["client_id"]
    log.run(c.apply_objects([pod("x")], ["u"], T0, session=(a, 1)))  # a is now the most recent
    log.run(c.register_session(T0))  # evicts b
    assert log.run(c.apply_objects([pod("y")], ["u"], T0, session=(b, 1)))["error"] == "session_expired"
    assert not is_error(log.run(c.apply_objects([pod("z")], ["u"], T0, session=(a, 2))))


# ------------------------------------------------------------------ snapshots and determinism


def _busy_log() -> Log:
    log = Log()
    log.ready_node("n1")
    log.ready_node("n2", cpu=4000)
    log.create(pod("a", labels={"app": "web"}), pod("b", host_port=80), pod("c", namespace="ns2"))
    log.run(c.bind_pods([("default", "a", "uid-a", "n1"), ("default", "b", "uid-b", "n2")], T0))
    log.run(c.register_session(T0))
    return log


def test_snapshot_round_trip_restores_objects_indexes_and_sessions():
    log = _busy_log()
    data = log.machine.snapshot()
    restored = ClusterState()
    restored.restore(data)
    assert restored.applied_index == log.machine.applied_index
    for kind in ("Pod", "Node"):
        assert restored.list(kind) == log.machine.list(kind)
    assert restored.store.index_fingerprint() == log.machine.store.index_fingerprint()
    assert restored.sessions.to_wire() == log.machine.sessions.to_wire()
    assert restored.snapshot() == data
    # The window starts afresh at the snapshot: older watchers must list again.
    with pytest.raises(Expired):
        restored.changes_since(restored.applied_index - 1)
    assert restored.changes_since(restored.applied_index) == []


def test_snapshot_builder_captures_the_state_at_the_moment_it_was_called():
    log = _busy_log()
    expected = log.machine.snapshot()
    build = log.machine.snapshot_builder()
    log.create(pod("later"))
    log.run(c.delete_object("Pod", "default", "a", T0))
    assert build() == expected


def test_two_machines_fed_the_same_log_end_identical():
    entries = [
        c.upsert_node("n1", "u1", facts(), T0), c.set_node_ready("n1", "True", "r", "m", T0),
        c.apply_objects([pod("a"), pod("b")], ["ua", "ub"], T0),
        c.bind_pods([("default", "a", "ua", "n1")], T0 + 1),
        b"\x93garbage", c.register_session(T0),
        c.report_pod_statuses("n1", [("default", "a", "ua", 1, {"phase": "Running"})], T0 + 2),
    ]
    first, second = Log(), Log()
    for data in entries:
        assert first.run(data) == second.run(data)
    assert first.machine.snapshot() == second.machine.snapshot()


def test_stored_documents_are_never_mutated_in_place(log):
    log.ready_node("n1")
    log.create(pod("web"))
    held = log.machine.get("Pod", "default", "web")
    frozen = copy.deepcopy(held)
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))
    log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, {"phase": "Running"})], T0))
    log.run(c.evict_pods("n1", [("default", "web", "uid-web", "reschedule")], "NodeLost", "gone", T0))
    assert held == frozen


# ------------------------------------------------------------------ garbage


def test_garbage_commands_are_refused_never_raised(log):
    for data in (b"", b"\xc1", b"\x80", msgpack.packb([1, 2]), msgpack.packb({"op": "nope"}),
                 msgpack.packb({"op": "bind", "bindings": [[1, 2, 3]], "ts": 1.0}),
                 msgpack.packb({"op": "apply", "docs": "x", "uids": [], "ts": 1.0, "create_only": False}),
                 msgpack.packb({"op": "delete", "kind": "Pod", "namespace": "d", "name": "x", "ts": float("nan"),
                                "rv": "", "uid": ""})):
        result = log.run(data)
        assert is_error(result), data
    assert log.changes == []


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                     st.text(max_size=20), st.binary(max_size=20))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                       max_leaves=20)
_ops = st.sampled_from(sorted(c.OPS) + ["other"])


@settings(max_examples=400, deadline=None)
@given(op=_ops, fields=st.dictionaries(
    st.sampled_from(["docs", "uids", "ts", "create_only", "kind", "namespace", "name", "patch", "rv", "uid",
                     "bindings", "pods", "node", "facts", "status", "reason", "message", "reports", "role",
                     "session"]), _values, max_size=8))
def test_fuzzed_commands_never_raise_and_keep_the_indexes_true(op, fields):
    log = Log()
    log.ready_node("n1")
    log.create(pod("web"))
    body = dict(fields, op=op)
    try:
        data = msgpack.packb(body, use_bin_type=True)
    except (OverflowError, ValueError):
        return
    log.run(data)
    check_indexes(log.machine)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data):
    log = Log()
    assert is_error(log.run(data))
    log.noop()
    assert log.machine.applied_index == 2


def test_a_filtered_watch_sees_an_object_leave_its_filter_as_deleted(log):
    from agent.state.history import events_for

    log.ready_node("n1")
    log.create(pod("web"))
    start = log.index
    log.run(c.bind_pods([("default", "web", "uid-web", "n1")], T0))
    log.run(c.report_pod_statuses("n1", [("default", "web", "uid-web", 1, {"phase": "Running"})], T0))
    log.run(c.evict_pods("n1", [("default", "web", "uid-web", "reschedule")], "NodeLost", "gone", T0))
    on_n1 = parse_field_selector("spec.nodeName=n1")
    events = events_for(log.machine.changes_since(start), on_n1.matches)
    assert [(kind, doc["metadata"]["resourceVersion"]) for kind, doc in events] == [
        ("ADDED", str(start + 1)), ("MODIFIED", str(start + 2)), ("DELETED", str(start + 3))]


def test_mirror_pods_follow_a_nodes_static_pods_and_stay_on_their_node(log):
    log.ready_node("n1")
    log.create(pod("taken"))
    sync = lambda docs, uids: log.run(c.sync_mirror_pods("n1", docs, uids, T0))  # noqa: E731
    result = sync([pod("static-a"), pod("taken")], ["static-uid-a", "static-uid-t"])
    assert result["created"] == 1 and result["refused"] == [
        'pods "taken" in namespace "default" exists and is not the mirror of a static Pod']
    mirror = log.machine.get("Pod", "default", "static-a")
    assert mirror["metadata"]["uid"] == "static-uid-a" and mirror["spec"]["nodeName"] == "n1"
    assert mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"] == "static-uid-a"
    assert sync([pod("static-a")], ["static-uid-a"])["created"] == 0  # already mirrored: nothing written
    changed = sync([pod("static-a", cpu="200m")], ["static-uid-a2"])  # a new spec is a new static uid
    assert (changed["created"], changed["deleted"]) == (1, 1)
    assert log.machine.get("Pod", "default", "static-a")["metadata"]["uid"] == "static-uid-a2"
    assert sync([], [])["deleted"] == 1
    assert log.machine.get("Pod", "default", "static-a") is None
    assert log.machine.get("Pod", "default", "taken") is not None  # never touches Pods that are not mirrors
    check_indexes(log.machine)


def test_a_pods_demand_counts_init_containers_and_sidecars_as_kubernetes_does():
    from agent.state.pod import parse_pod
    from agent.state.pod_lifecycle import pod_demand

    def container(name, cpu, **extra):
        return {"name": name, "image": "busybox:local", "resources": {"requests": {"cpu": cpu, "memory": "10Mi"}},
                **extra}

    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "initContainers": [container("migrate", "900m"),
                           container("proxy", "100m", restartPolicy="Always",
                                     ports=[{"containerPort": 80, "hostPort": 8080}]),
                           container("warm", "300m")],
        "containers": [container("app", "200m")]}}
    demand = pod_demand(doc)
    spec = parse_pod(doc).spec
    # max(900, 300 + 100, 100 + 200) = 900: the first init container alone is the peak
    assert demand.cpu_millicores == spec.cpu_request_millicores() == 900
    assert demand.memory_bytes == spec.memory_request_bytes() == 20 << 20  # max(10, 10+10, 10+10)
    assert demand.host_ports == (("0.0.0.0", 8080, "TCP"),)
