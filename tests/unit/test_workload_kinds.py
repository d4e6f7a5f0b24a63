"""The apps/v1 kinds (agent/state/workloads.py) and metadata.ownerReferences: validation
with field paths, Kubernetes' defaults in the stored form, the immutable selector, and the
state machine's ops for workloads (status, owner references, cascading deletion)."""

from __future__ import annotations

import copy

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.state import commands as c
from agent.state.machine import ClusterState, is_error
from agent.state.objects import admit, kind_for
from agent.state.pod import ManifestError
from agent.state.workloads import max_surge, max_unavailable, resolve_fenceposts, scaled_value
from tests.unit.state_helpers import T0, Log, pod
from tests.unit.workload_helpers import deployment, replica_set, rolling


def problems(doc: dict) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        admit(doc)
    return [f"{e.path}: {e.message}" for e in caught.value.errors]


# ------------------------------------------------------------------ kinds and defaults


def test_short_names_and_plurals_resolve():
    assert kind_for("deploy").name == "Deployment"
    assert kind_for("deployments.apps").name == "Deployment"
    assert kind_for("rs").name == "ReplicaSet"
    assert kind_for("replicasets").name == "ReplicaSet"


def test_deployment_defaults_are_written_as_kubernetes_shows_them():
    doc = admit(deployment(replicas=None)).doc
    spec = doc["spec"]
    assert doc["metadata"] == {"name": "web", "namespace": "default"}
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    assert "minReadySeconds" not in spec and "paused" not in spec
    container = spec["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"  # the Pod parser's defaults
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 30


def test_partial_rolling_update_is_completed_with_defaults_and_explicit_values_kept():
    spec = admit(deployment(strategy={"rollingUpdate": {"maxSurge": 2}}, minReadySeconds=5, paused=True)).doc["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": "25%"}
    assert spec["minReadySeconds"] == 5 and spec["paused"] is True


def test_recreate_has_no_rolling_update():
    assert admit(deployment(strategy={"type": "Recreate"})).doc["spec"]["strategy"] == {"type": "Recreate"}
    assert problems(deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})) == [
        "spec.strategy.rollingUpdate: may not be specified when strategy `type` is 'Recreate'"]


def test_replica_set_defaults():
    doc = admit(replica_set(replicas=2)).doc
    assert doc["kind"] == "ReplicaSet" and doc["apiVersion"] == "apps/v1"
    assert set(doc["spec"]) == {"replicas", "selector", "template"}


# ------------------------------------------------------------------ refusals, by path


def test_bad_fields_are_each_named_by_path():
    bad = deployment(replicas=-1, minReadySeconds="3", revisionHistoryLimit=-2, paused="yes",
                     strategy={"type": "Sideways"})
    bad["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    bad["spec"]["extra"] = 1
    found = problems(bad)
    assert "spec.extra: unknown field" in found
    assert "spec.replicas: -1 must be at least 0" in found
    assert any(p.startswith("spec.minReadySeconds: must be an integer") for p in found)
    assert "spec.revisionHistoryLimit: -2 must be at least 0" in found
    assert any(p.startswith("spec.paused: must be a boolean") for p in found)
    assert any(p.startswith('spec.strategy.type: "Sideways" is not one of') for p in found)
    assert any(p.startswith("spec.template.spec.containers[0].image:") for p in found)


def test_selector_is_required_not_empty_and_must_match_the_template():
    no_selector = deployment()
    del no_selector["spec"]["selector"]
    assert "spec.selector: required field is missing" in problems(no_selector)
    empty = deployment()
    empty["spec"]["selector"] = {}
    assert "spec.selector: empty selector is invalid for deployment" in problems(empty)
    mismatch = deployment()
    mismatch["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert problems(mismatch) == ["spec.template.metadata.labels: `selector` does not match template `labels`"]
    expressions = deployment()
    expressions["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}
    assert admit(expressions).doc["spec"]["selector"]["matchExpressions"][0]["values"] == ["web"]
    bad_expr = deployment()
    bad_expr["spec"]["selector"] = {"matchLabels": {"app": "web"},
                                    "matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]},
                                                         {"key": "tier", "operator": "Near"}]}
    found = problems(bad_expr)
    assert any(p.startswith("spec.selector.matchExpressions[0].values: may not be specified") for p in found)
    assert any(p.startswith("spec.selector.matchExpressions[1].operator:") for p in found)


def test_template_restart_policy_must_be_always():
    doc = deployment()
    doc["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert problems(doc) == ['spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"']


@pytest.mark.parametrize("surge, unavailable, message", [
    (0, 0, "spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when `maxSurge` is 0"),
    ("0%", 0, "spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when `maxSurge` is 0"),
    ("5", 1, "spec.strategy.rollingUpdate.maxSurge: \"5\" must be an integer or percentage (e.g '5%')"),
    (-1, 1, "spec.strategy.rollingUpdate.maxSurge: -1 must be greater than or equal to 0"),
    (1, "120%", 'spec.strategy.rollingUpdate.maxUnavailable: "120%" must not be greater than 100%'),
])
def test_rolling_update_amounts(surge, unavailable, message):
    assert problems(deployment(strategy=rolling(surge, unavailable))) == [message]


def test_progress_deadline_must_exceed_min_ready_seconds():
    assert problems(deployment(minReadySeconds=30, progressDeadlineSeconds=30)) == [
        "spec.progressDeadlineSeconds: 30 must be greater than minReadySeconds"]


# ------------------------------------------------------------------ rollout arithmetic


def test_surge_rounds_up_and_unavailability_down():
    assert scaled_value("25%", 10, round_up=True) == 3
    assert scaled_value("25%", 10, round_up=False) == 2
    assert resolve_fenceposts("25%", "25%", 10) == (3, 2)
    assert resolve_fenceposts("25%", "25%", 1) == (1, 0)
    assert resolve_fenceposts(0, "20%", 3) == (0, 1)  # both 0: one may be unavailable
    assert resolve_fenceposts(2, 1, 5) == (2, 1)
    doc = admit(deployment(replicas=3, strategy=rolling(1, 5))).doc
    assert max_surge(doc) == 1 and max_unavailable(doc) == 3  # never more than replicas
    recreate = admit(deployment(strategy={"type": "Recreate"})).doc
    assert max_surge(recreate) == 0 and max_unavailable(recreate) == 0


# ------------------------------------------------------------------ owner references


def owned_pod(name: str, refs: list) -> dict:
    doc = pod(name, labels={"app": "web"})
    doc["metadata"]["ownerReferences"] = refs
    return doc


REF = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "u-1", "controller": True,
       "blockOwnerDeletion": True}


def test_owner_references_are_accepted_on_pods_and_kept():
    doc = admit(owned_pod("p", [REF])).doc
    assert doc["metadata"]["ownerReferences"] == [REF]
    log = Log()
    log.create(owned_pod("p", [REF]))
    assert log.machine.get("Pod", "default", "p")["metadata"]["ownerReferences"] == [REF]
    # a patch of something else keeps them
    assert not is_error(log.run(c.patch_object("Pod", "default", "p", {"metadata": {"labels": {"x": "y"}}}, T0)))
    assert log.machine.get("Pod", "default", "p")["metadata"]["ownerReferences"] == [REF]


def test_owner_references_are_validated():
    second = dict(REF, uid="u-2", name="other")
    found = problems(owned_pod("p", [REF, second]))
    assert any(p.startswith("metadata.ownerReferences: Only one reference can have Controller set to true") for p in found)
    found = problems(owned_pod("p", [{"kind": "ReplicaSet", "name": "x", "controller": "yes", "color": 1}]))
    assert "metadata.ownerReferences[0].apiVersion: required field is missing" in found
    assert "metadata.ownerReferences[0].uid: required field is missing" in found
    assert "metadata.ownerReferences[0].color: unknown field" in found
    assert any(p.startswith("metadata.ownerReferences[0].controller: must be a boolean") for p in found)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "ownerReferences": [REF]}}
    assert "metadata.ownerReferences: unknown field" in problems(node)  # cluster-wide kinds have none


# ------------------------------------------------------------------ the machine


def test_selector_is_immutable_and_other_spec_changes_bump_generation():
    log = Log()
    assert not is_error(log.create(deployment()))
    moved = deployment(labels={"app": "web", "tier": "front"})
    result = log.run(c.apply_objects([moved], ["x"], T0))
    assert result["error"] == "invalid" and result["fields"][0][:2] == ["spec.selector", "field is immutable"]
    scaled = log.run(c.apply_objects([deployment(replicas=5)], ["x"], T0))["results"][0][4]
    assert scaled["metadata"]["generation"] == 2 and scaled["spec"]["replicas"] == 5


def test_workload_status_is_guarded_by_uid_and_written_only_when_it_changes():
    log = Log()
    log.create(deployment())
    status = {"observedGeneration": 1, "replicas": 0}
    assert log.run(c.set_workload_status("Deployment", "default", "web", "uid-web", status, T0)) == {"changed": True}
    doc = log.machine.get("Deployment", "default", "web")
    assert doc["status"] == status and doc["metadata"]["generation"] == 1
    version = doc["metadata"]["resourceVersion"]
    assert log.run(c.set_workload_status("Deployment", "default", "web", "uid-web", status, T0)) == {"changed": False}
    assert log.machine.get("Deployment", "default", "web")["metadata"]["resourceVersion"] == version
    assert log.run(c.set_workload_status("Deployment", "default", "web", "other", {}, T0))["error"] == "conflict"
    assert log.run(c.set_workload_status("Deployment", "default", "nope", "x", {}, T0))["error"] == "not_found"
    assert log.run(c.set_workload_status("Pod", "default", "web", "x", {}, T0))["error"] == "invalid"
    # a person's apply leaves the status alone
    log.run(c.apply_objects([deployment(replicas=4)], ["x"], T0))
    assert log.machine.get("Deployment", "default", "web")["status"] == status


def test_owner_refs_adopt_and_release_and_never_steal():
    log = Log()
    log.create(pod("p", labels={"app": "web"}))
    adopt = c.set_owner_references([("Pod", "default", "p", "uid-p", [REF])], T0)
    assert log.run(adopt) == {"changed": 1, "skipped": 0}
    assert log.machine.get("Pod", "default", "p")["metadata"]["ownerReferences"] == [REF]
    thief = dict(REF, uid="u-9", name="thief")
    assert log.run(c.set_owner_references([("Pod", "default", "p", "uid-p", [thief])], T0))["skipped"] == 1
    assert log.run(c.set_owner_references([("Pod", "default", "p", "wrong-uid", [])], T0))["skipped"] == 1
    assert log.run(c.set_owner_references([("Pod", "default", "p", "uid-p", [])], T0))["changed"] == 1
    assert "ownerReferences" not in log.machine.get("Pod", "default", "p")["metadata"]


def _owned(doc: dict, owner_kind: str, owner_name: str, owner_uid: str) -> dict:
    doc = copy.deepcopy(doc)
    doc["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1" if owner_kind != "Pod" else "v1",
                                           "kind": owner_kind, "name": owner_name, "uid": owner_uid,
                                           "controller": True}]
    return doc


def cascade_log() -> Log:
    log = Log()
    log.ready_node("n1")
    log.create(deployment())
    log.create(_owned(replica_set("web-1", labels={"app": "web"}), "Deployment", "web", "uid-web"))
    log.create(_owned(pod("web-1-a", labels={"app": "web"}, node="n1"), "ReplicaSet", "web-1", "uid-web-1"))
    log.create(_owned(pod("web-1-b", labels={"app": "web"}), "ReplicaSet", "web-1", "uid-web-1"))
    shared = pod("shared", labels={"app": "web"})
    shared["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "uid-web-1"},
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "keeper", "uid": "uid-keeper"}]
    log.create(deployment("keeper"))
    log.create(shared)
    log.create(pod("bystander", labels={"app": "web"}))
    return log


def test_deleting_a_deployment_deletes_its_sets_and_their_pods_in_one_command():
    log = cascade_log()
    assert [d["metadata"]["name"] for d in log.machine.store.pods_on("n1")] == ["web-1-a"]
    result = log.run(c.delete_object("Deployment", "default", "web", T0))
    assert result["dependents"] == [["ReplicaSet", "default", "web-1"], ["Pod", "default", "web-1-a"],
                                    ["Pod", "default", "web-1-b"]]
    names = [p["metadata"]["name"] for p in log.machine.list("Pod")]
    assert names == ["bystander", "shared"]  # shared still has a live owner
    assert log.machine.list("ReplicaSet") == []
    assert list(log.machine.store.pods_on("n1")) == []  # its node no longer runs it
    assert log.machine.store.usage("n1").pods == 0
    before = log.machine.store.index_fingerprint()
    log.machine.store.rebuild()
    assert log.machine.store.index_fingerprint() == before


def test_delete_many_skips_what_is_gone_and_cascades():
    log = cascade_log()
    result = log.run(c.delete_objects([("ReplicaSet", "default", "web-1", "uid-web-1"),
                                       ("Pod", "default", "web-1-a", "uid-web-1-a"),
                                       ("Pod", "default", "bystander", "not-its-uid"),
                                       ("Gadget", "default", "x", "")], T0))
    assert result == {"deleted": 1, "skipped": 3, "dependents": 2}
    assert log.machine.get("Pod", "default", "bystander") is not None


def test_snapshot_round_trip_keeps_workloads_status_and_owners():
    log = cascade_log()
    log.run(c.set_workload_status("Deployment", "default", "web", "uid-web", {"replicas": 2}, T0))
    data = log.machine.snapshot()
    restored = ClusterState()
    restored.restore(data)
    for kind in ("Deployment", "ReplicaSet", "Pod"):
        assert restored.list(kind) == log.machine.list(kind)
    assert restored.snapshot() == data
    assert restored.store.index_fingerprint() == log.machine.store.index_fingerprint()
    second = Log(restored)  # and it goes on applying

    assert second.run(c.delete_object("Deployment", "default", "web", T0))["dependents"]


def test_garbage_commands_never_raise():
    log = Log()
    for data in ([1, 2], {"rows": "x"}, [["Pod"]]):
        for op in ("owner_refs", "delete_many"):
            assert is_error(log.run(msgpack.packb({"op": op, "rows": data, "ts": T0})))
    assert is_error(log.run(msgpack.packb({"op": "workload_status", "kind": "Deployment", "namespace": "default",
                                           "name": "x", "uid": "u", "status": [], "ts": T0})))
    bad_refs = c.set_owner_references([("Pod", "default", "p", "u", [{"uid": 3}])], T0)
    assert log.run(bad_refs) == {"changed": 0, "skipped": 1}


def test_an_agent_can_still_parse_an_owned_pod_it_is_assigned():
    """agentd's assignments parse `person_part` of a stored Pod with the Pod parser: an
    owned Pod must stay parseable, its owners kept on the parsed Pod's metadata."""
    from agent.state.machine import person_part
    from agent.state.pod import parse_pod

    log = Log()
    log.ready_node("n1")
    log.create(owned_pod("p", [REF]) | {"spec": dict(owned_pod("p", [REF])["spec"], nodeName="n1")})
    parsed = parse_pod(person_part(log.machine.get("Pod", "default", "p")))
    assert parsed.metadata.owner_references[0].uid == "u-1" and parsed.spec.node_name == "n1"


_ANY = st.recursive(st.none() | st.booleans() | st.integers(-3, 700) | st.text(max_size=6) | st.just("25%"),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
_FIELDS = ("replicas", "selector", "template", "strategy", "minReadySeconds", "revisionHistoryLimit",
           "progressDeadlineSeconds", "paused", "bogus")


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(_FIELDS), value=_ANY, kind=st.sampled_from(["Deployment", "ReplicaSet"]))
def test_garbage_in_any_field_is_a_manifest_error_and_apply_never_raises(field, value, kind):
    doc = deployment() if kind == "Deployment" else replica_set()
    doc["spec"][field] = value
    try:
        admitted = admit(doc)
    except ManifestError as exc:
        assert exc.errors and all(e.path for e in exc.errors)
    else:
        assert admit(admitted.doc).doc == admitted.doc  # the stored form reads back as itself
    log = Log()
    result = log.run(c.apply_objects([doc], ["u"], T0))
    assert isinstance(result, dict)
