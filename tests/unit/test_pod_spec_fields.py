"""Pod fields beyond the basics: initContainers and sidecars, the downward API, lifecycle
hooks, securityContext, and the errors that name what is wrong. Parsing, defaults,
round trips and field-path errors; the pure runtime rules they feed (status words,
environment values, Docker arguments)."""

from __future__ import annotations

import copy

import pytest

from agent.runtime.status import ContainerStatus, Running, Terminated, Waiting, init_status_word
from agent.state.manifest import load_manifests
from agent.state.pod import ManifestError, parse_pod, pod_spec_hash, pod_to_dict


def base(**spec) -> dict:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:local"}]},
    }
    doc["spec"].update(spec)
    return doc


def errors_of(doc: dict) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_pod(doc)
    return [str(e) for e in info.value.errors]


def round_trips(doc: dict):
    pod = parse_pod(doc)
    again = parse_pod(pod_to_dict(pod))
    assert again == pod
    assert pod_spec_hash(again) == pod_spec_hash(pod)
    return pod


# ---------------------------------------------------------------- initContainers

MYAPP_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: myapp-pod
  labels:
    app.kubernetes.io/name: MyApp
spec:
  containers:
  - name: myapp-container
    image: busybox:local
    command: ['sh', '-c', 'echo The app is running! && sleep 3600']
  initContainers:
  - name: init-myservice
    image: busybox:local
    command: ['sh', '-c', "until nslookup myservice.$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace).svc.cluster.local; do echo waiting for myservice; sleep 2; done"]
  - name: init-mydb
    image: busybox:local
    command: ['sh', '-c', "until nslookup mydb.$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace).svc.cluster.local; do echo waiting for mydb; sleep 2; done"]
"""


def test_documented_init_containers_parse_in_order() -> None:
    (pod,) = load_manifests(MYAPP_POD)
    assert [c.name for c in pod.spec.init_containers] == ["init-myservice", "init-mydb"]
    assert all(c.restart_policy is None for c in pod.spec.init_containers)
    assert pod.spec.sidecars() == ()
    assert parse_pod(pod_to_dict(pod)) == pod


def test_sidecar_round_trips_and_counts_in_requests() -> None:
    doc = base(initContainers=[
        {"name": "setup", "image": "busybox:local", "resources": {"requests": {"cpu": "2"}}},
        {"name": "proxy", "image": "busybox:local", "restartPolicy": "Always",
         "resources": {"requests": {"cpu": "100m", "memory": "10Mi"}},
         "startupProbe": {"tcpSocket": {"port": 8080}}},
    ])
    doc["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m", "memory": "20Mi"}}
    pod = round_trips(doc)
    assert [c.name for c in pod.spec.sidecars()] == ["proxy"]
    assert pod_to_dict(pod)["spec"]["initContainers"][1]["restartPolicy"] == "Always"
    # Kubernetes' effective request: max(init peak, sidecars + containers) = max(2000, 600).
    assert pod.spec.cpu_request_millicores() == 2000
    assert pod.spec.memory_request_bytes() == 30 * 1024 * 1024


def test_init_container_errors_carry_their_paths() -> None:
    doc = base(initContainers=[
        {"name": "main", "image": "busybox:local"},
        {"name": "x", "image": "busybox:local", "restartPolicy": "Never"},
        {"name": "y", "image": "busybox:local", "livenessProbe": {"exec": {"command": ["true"]}}},
        {"name": "y", "image": "busybox:local"},
    ])
    errors = errors_of(doc)
    assert 'spec.initContainers[0].name: duplicate name "main" (also in containers)' in errors
    assert 'spec.initContainers[1].restartPolicy: "Never" is not one of "Always"' in errors
    assert ('spec.initContainers[2].livenessProbe: may not be set for init containers without restartPolicy'
            ' "Always"') in errors
    assert 'spec.initContainers[3].name: duplicate name "y"' in errors


def test_restart_policy_is_no_field_of_an_app_container() -> None:
    doc = base()
    doc["spec"]["containers"][0]["restartPolicy"] = "Always"
    assert any(e.startswith("spec.containers[0].restartPolicy:") for e in errors_of(doc))


def _cs(name: str, state, *, started: bool = False) -> ContainerStatus:
    return ContainerStatus(name=name, image="i", state=state, started=started)


def test_init_status_words_as_kubectl_shows_them() -> None:
    done = Terminated(0, "Completed", 1.0, 2.0)
    assert init_status_word([_cs("a", Running(1.0)), _cs("b", Waiting("PodInitializing"))], set()) == "Init:0/2"
    assert init_status_word([_cs("a", done), _cs("b", Running(1.0))], set()) == "Init:1/2"
    assert init_status_word([_cs("a", Terminated(1, "Error", 1.0, 2.0))], set()) == "Init:Error"
    assert init_status_word([_cs("a", Waiting("CrashLoopBackOff", "back-off"))], set()) == "Init:CrashLoopBackOff"
    # A started sidecar is done initializing; one not yet started holds the count.
    assert init_status_word([_cs("s", Running(1.0), started=True), _cs("b", Running(1.0))], {"s"}) == "Init:1/2"
    assert init_status_word([_cs("s", Running(1.0)), _cs("b", Waiting("PodInitializing"))], {"s"}) == "Init:0/2"
    assert init_status_word([_cs("a", done), _cs("s", Running(1.0), started=True)], {"s"}) is None


def test_a_copy_of_a_manifest_is_not_changed_by_parsing() -> None:
    (pod,) = load_manifests(MYAPP_POD)
    doc = pod_to_dict(pod)
    before = copy.deepcopy(doc)
    parse_pod(doc)
    assert doc == before
