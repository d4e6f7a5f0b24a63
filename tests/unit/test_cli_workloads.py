"""agentctl's printing and judging of Deployments and ReplicaSets (pure functions)."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.cli import workloads

NOW = dt.datetime(2026, 12, 4, 12, 0, 0, tzinfo=dt.timezone.utc)


def deployment(*, replicas=3, generation=2, observed=2, updated=3, total=3, ready=3, available=3, conditions=()):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-1", "generation": generation,
                     "creationTimestamp": "2026-12-04T11:55:00Z"},
        "spec": {"replicas": replicas,
                 "selector": {"matchLabels": {"app": "web"},
                              "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
                 "template": {"metadata": {"labels": {"app": "web", "tier": "a"}},
                              "spec": {"containers": [{"name": "app", "image": "busybox:local"}]}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}},
        "status": {"observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                   "readyReplicas": ready, "availableReplicas": available, "conditions": list(conditions)},
    }


def replica_set(name, revision, image, *, owner="d-1", replicas=0, cause=None):
    annotations = {workloads.REVISION: str(revision)}
    if cause:
        annotations[workloads.CHANGE_CAUSE] = cause
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"rs-{revision}", "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                          "uid": owner, "controller": True}],
                     "creationTimestamp": "2026-12-04T11:59:00Z"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", "pod-template-hash": name[-5:]}},
                 "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": name[-5:]}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


def test_deployment_row_as_kubectl_prints_it():
    assert workloads.deployment_row(deployment(ready=2, available=2), NOW, wide=False) == ["web", "2/3", "3", "2",
                                                                                           "5m"]
    wide = workloads.deployment_row(deployment(), NOW, wide=True)
    assert wide[5:] == ["app", "busybox:local", "app=web,tier in (a,b)"]


def test_replicaset_row():
    rs = replica_set("web-7d4b9", 2, "busybox:local", replicas=3)
    assert workloads.replicaset_row(rs, NOW, wide=False) == ["web-7d4b9", "3", "3", "3", "60s"]


@pytest.mark.parametrize(("status", "done", "line"), [
    (dict(observed=1), False, "Waiting for deployment spec update to be observed..."),
    (dict(updated=1, total=4), False,
     'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...'),
    (dict(updated=3, total=4), False,
     'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...'),
    (dict(available=2), False,
     'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...'),
    ({}, True, 'deployment "web" successfully rolled out'),
])
def test_rollout_progress_lines(status, done, line):
    assert workloads.rollout_progress(deployment(**status)) == (done, line)


def test_a_deployment_past_its_progress_deadline_fails_the_rollout():
    stuck = deployment(updated=1, conditions=[{"type": "Progressing", "status": "False",
                                               "reason": "ProgressDeadlineExceeded"}])
    with pytest.raises(ValueError, match='deployment "web" exceeded its progress deadline'):
        workloads.rollout_progress(stuck)


def test_undo_takes_the_previous_revision_without_the_hash_label():
    sets = [replica_set("web-aaaaa", 1, "v1"), replica_set("web-bbbbb", 3, "v3"), replica_set("web-ccccc", 2, "v2")]
    template = workloads.template_of_revision(sets, 0)
    assert template["spec"]["containers"][0]["image"] == "v2"
    assert template["metadata"]["labels"] == {"app": "web"}
    assert workloads.template_of_revision(sets, 1)["spec"]["containers"][0]["image"] == "v1"
    assert sets[0]["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "aaaaa"  # not mutated
    with pytest.raises(ValueError, match="unable to find the specified revision 7"):
        workloads.template_of_revision(sets, 7)
    with pytest.raises(ValueError, match="no previous revision"):
        workloads.template_of_revision(sets[:1], 0)


def test_owned_by_follows_the_controller_reference_only():
    mine = replica_set("web-aaaaa", 1, "v1")
    other = replica_set("api-aaaaa", 1, "v1", owner="d-2")
    not_controller = replica_set("web-zzzzz", 1, "v1")
    not_controller["metadata"]["ownerReferences"][0]["controller"] = False
    assert workloads.owned_by("d-1", [mine, other, not_controller]) == [mine]


def test_describe_deployment_names_new_and_old_replica_sets():
    sets = [replica_set("web-aaaaa", 1, "v1", replicas=1), replica_set("web-bbbbb", 2, "v2", replicas=3)]
    text = workloads.describe_deployment(deployment(), sets)
    assert "Replicas:             3 desired | 3 updated | 3 total | 3 available | 0 unavailable" in text
    assert "RollingUpdateStrategy: 0 max unavailable, 1 max surge" in text
    assert "NewReplicaSet:        web-bbbbb (3/3 replicas created)" in text
    assert "OldReplicaSets:       web-aaaaa (1/1 replicas created)" in text
