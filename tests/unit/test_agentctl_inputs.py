"""What agentctl reads and prints without a server: -f inputs checked with file and line,
node rows and status words, describe texts."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.cli import render
from agent.cli.inputs import manifest_paths, read_documents
from agent.state.pod import ManifestError

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  containers: [{name: c, image: busybox:local}]\n"


def test_a_directory_means_its_manifest_files_sorted(tmp_path):
    for name in ("b.yaml", "a.yml", "c.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "sub.yaml").mkdir()
    assert [p.rsplit("/", 1)[1] for p in manifest_paths(str(tmp_path))] == ["a.yml", "b.yaml", "c.json"]
    assert manifest_paths("-") == ["-"]


def test_documents_come_with_their_location(tmp_path):
    path = tmp_path / "pods.yaml"
    path.write_text(POD % "one" + "---\n" + POD % "two")
    docs = read_documents([str(path)])
    assert [(d["metadata"]["name"], where) for d, where in docs] == [
        ("one", f"{path}:1 (document 1)"), ("two", f"{path}:7 (document 2)")]


def test_every_problem_of_every_file_is_reported_and_nothing_returned(tmp_path):
    (tmp_path / "a.yaml").write_text(POD % "Bad_Name")
    (tmp_path / "b.yaml").write_text("kind: [unclosed\n")
    (tmp_path / "c.yaml").write_text("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\n")
    with pytest.raises(ManifestError) as caught:
        read_documents([str(tmp_path), str(tmp_path / "missing.yaml")])
    text = [str(e) for e in caught.value.errors]
    assert text[0].startswith(f"{tmp_path / 'a.yaml'}:3 (document 1): metadata.name:")  # the line of the field
    assert text[1].startswith(f"{tmp_path / 'b.yaml'}:")
    assert text[2] == (f"{tmp_path / 'c.yaml'}:1 (document 1): apiVersion apps/v1, kind StatefulSet is not "
                       "supported (supported: v1 Pod, v1 Node, apps/v1 Deployment, apps/v1 ReplicaSet, v1 ConfigMap, v1 Secret)")
    assert text[3].startswith(f"{tmp_path / 'missing.yaml'}: cannot read")
    assert len(text) == 4


NODE = {
    "metadata": {"name": "n1", "labels": {"agentd.io/role": "voter"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {},
    "status": {"conditions": [{"type": "Ready", "status": "True"}],
               "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "10"},
               "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
               "nodeInfo": {"agentdVersion": "0.1.0", "operatingSystem": "linux", "architecture": "amd64"}},
}
NOW = dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.timezone.utc)


def test_node_rows_as_kubectl_prints_them():
    assert render.node_row(NODE, NOW, wide=False) == ["n1", "Ready", "voter", "5m", "0.1.0"]
    assert render.node_row(NODE, NOW, wide=True)[5:] == ["10.0.0.1", "linux", "amd64", "2", "2Gi", "10"]
    cordoned_and_lost = {**NODE, "spec": {"unschedulable": True},
                         "status": {**NODE["status"], "conditions": [{"type": "Ready", "status": "False"}]}}
    assert render.node_status_word(cordoned_and_lost) == "NotReady,SchedulingDisabled"
    assert render.node_status_word({"metadata": {"name": "x"}}) == "Unknown"


def test_describe_node_sums_the_requests_of_its_running_pods():
    pod = {"metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}},
                                   {"resources": {"requests": {"cpu": "250m"}}}]},
           "status": {"phase": "Running"}}
    done = {**pod, "metadata": {"name": "done"}, "status": {"phase": "Succeeded"}}
    text = render.describe_node(NODE, [pod, done])
    assert "Non-terminated Pods:  (1 in total)" in text
    assert "cpu        500m (25%)" in text and "memory     512Mi (25%)" in text and "pods       1 (10%)" in text
