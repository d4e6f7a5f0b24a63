"""Pod manifests: parsing, Kubernetes defaults, strict validation, round trips, YAML loading.

Rules checked are those of the Kubernetes Pod API (core/v1 Pod, its defaulting and
validation); each case names the field path the error must carry.
"""

from __future__ import annotations

import copy
import pathlib
import re
import time
from fractions import Fraction

import pytest

from agent.state.errors import StateError
from agent.state.manifest import load_manifest_file, load_manifests
from agent.state.pod import (
    Container,
    ContainerPort,
    EnvVar,
    ExecAction,
    FieldError,
    FrozenMap,
    ManifestError,
    ObjectMeta,
    Pod,
    PodSpec,
    default_pull_policy,
    parse_pod,
    pod_spec_hash,
    pod_to_dict,
)

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
DELETE = object()


def full_pod() -> dict:
    """A manifest that uses every supported field."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1.example",
            "namespace": "team-a",
            "labels": {"app": "web", "example.com/tier": "front_end.v2", "empty": ""},
            "annotations": {"example.com/note": "anything at all: {}"},
            "uid": "1234-abcd",
        },
        "spec": {
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 7,
            "nodeSelector": {"disk": "ssd"},
            "nodeName": "node-3",
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"},
                {"key": "node.agentd.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
                {"operator": "Exists"},
            ],
            "volumes": [
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "logs", "hostPath": {"path": "/var/log", "type": "Directory"}},
            ],
            "containers": [
                {
                    "name": "web",
                    "image": "busybox:local",
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c"],
                    "args": ["httpd -f -p 8080"],
                    "env": [{"name": "MODE", "value": "demo"}, {"name": "my.var-1"}],
                    "ports": [
                        {"name": "http", "containerPort": 8080, "hostPort": 18080, "protocol": "TCP"},
                        {"containerPort": 9000, "protocol": "UDP"},
                    ],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "64Mi"},
                        "limits": {"cpu": 1, "memory": "128Mi"},
                    },
                    "volumeMounts": [
                        {"name": "scratch", "mountPath": "/scratch"},
                        {"name": "logs", "mountPath": "/logs", "readOnly": True},
                    ],
                    "livenessProbe": {
                        "tcpSocket": {"port": 8080, "host": "127.0.0.1"},
                        "initialDelaySeconds": 5,
                        "periodSeconds": 3,
                        "timeoutSeconds": 2,
                        "failureThreshold": 4,
                        "successThreshold": 1,
                    },
                    "readinessProbe": {
                        "httpGet": {
                            "path": "/healthz",
                            "port": "http",
                            "host": "localhost",
                            "scheme": "HTTPS",
                            "httpHeaders": [{"name": "X-Probe", "value": "1"}],
                        },
                        "successThreshold": 2,
                    },
                    "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "failureThreshold": 30},
                },
                {"name": "sidecar", "image": "busybox:1.36", "command": ["sleep", "3600"]},
            ],
        },
    }


def minimal_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox:local"}]},
    }


def with_change(doc: dict, path: tuple, value) -> dict:
    """A deep copy of doc with the value at path replaced (or deleted when value is DELETE)."""
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


def errors_of(doc) -> list[FieldError]:
    with pytest.raises(ManifestError) as info:
        parse_pod(doc)
    return list(info.value.errors)


def assert_error(doc, path: str, fragment: str) -> None:
    errors = errors_of(doc)
    matching = [e for e in errors if e.path == path and fragment in e.message]
    assert matching, f"no error at {path!r} containing {fragment!r}; got {[str(e) for e in errors]}"


# ---------------------------------------------------------------- parsing and defaults


def test_full_pod_parses_every_field():
    pod = parse_pod(full_pod())
    assert pod.key == "team-a/web-1.example"
    assert pod.metadata.labels["app"] == "web"
    assert dict(pod.metadata.labels) == {"app": "web", "example.com/tier": "front_end.v2", "empty": ""}
    assert pod.metadata.uid == "1234-abcd"
    spec = pod.spec
    assert (spec.restart_policy, spec.termination_grace_period_seconds, spec.node_name) == ("OnFailure", 7, "node-3")
    assert spec.node_selector == {"disk": "ssd"}
    assert [(t.key, t.operator, t.value, t.effect, t.toleration_seconds) for t in spec.tolerations] == [
        ("dedicated", "Equal", "db", "NoSchedule", None),
        ("node.agentd.io/unreachable", "Exists", "", "NoExecute", 30),
        ("", "Exists", "", "", None),
    ]
    scratch, logs = spec.volumes
    assert scratch.empty_dir.medium == "Memory" and scratch.empty_dir.size_limit.value == 64 * 1024**2
    assert logs.host_path.path == "/var/log" and logs.host_path.type == "Directory" and logs.empty_dir is None
    web, sidecar = spec.containers
    assert web.command == ("sh", "-c") and web.args == ("httpd -f -p 8080",)
    assert web.env == (EnvVar("MODE", "demo"), EnvVar("my.var-1", ""))
    assert web.ports == (ContainerPort(8080, 18080, "TCP", "http"), ContainerPort(9000, None, "UDP", None))
    assert web.resources.cpu_request_millicores() == 250
    assert web.resources.cpu_limit_millicores() == 1000
    assert web.resources.memory_request_bytes() == 64 * 1024**2
    assert web.resources.memory_limit_bytes() == 128 * 1024**2
    assert [m.read_only for m in web.volume_mounts] == [False, True]
    live, ready, start = web.liveness_probe, web.readiness_probe, web.startup_probe
    assert (live.tcp_socket.port, live.tcp_socket.host) == (8080, "127.0.0.1")
    assert (live.initial_delay_seconds, live.period_seconds, live.timeout_seconds, live.failure_threshold) == (5, 3, 2, 4)
    assert ready.http_get.port == "http" and web.port_number(ready.http_get.port) == 8080
    assert (ready.http_get.path, ready.http_get.scheme, ready.http_get.host) == ("/healthz", "HTTPS", "localhost")
    assert ready.http_get.http_headers == (("X-Probe", "1"),) and ready.success_threshold == 2
    assert start.exec == ExecAction(("cat", "/tmp/ready")) and start.failure_threshold == 30
    assert sidecar.image_pull_policy == "IfNotPresent" and sidecar.resources.requests == {}


def test_full_pod_round_trips_through_dict():
    """pod_to_dict writes a Kubernetes-shaped dict that parses back to the same Pod."""
    pod = parse_pod(full_pod())
    as_dict = pod_to_dict(pod)
    assert as_dict["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "128Mi"}
    assert as_dict["spec"]["containers"][0]["livenessProbe"]["tcpSocket"] == {"port": 8080, "host": "127.0.0.1"}
    assert parse_pod(as_dict) == pod
    assert pod_to_dict(parse_pod(as_dict)) == as_dict


def test_examples_round_trip():
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        for pod in load_manifest_file(path):
            assert parse_pod(pod_to_dict(pod)) == pod
            assert all(c.image == "busybox:local" for c in pod.spec.containers)
            assert all(c.image_pull_policy in ("IfNotPresent", "Never") for c in pod.spec.containers)


def test_kubernetes_defaults_are_applied():
    """K8s defaulting: namespace, restartPolicy, grace period, probe timings 0/10/1/3/1."""
    doc = with_change(minimal_pod(), ("spec", "containers", 0, "livenessProbe"), {"exec": {"command": ["true"]}})
    pod = parse_pod(doc)
    assert pod.metadata.namespace == "default"
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.node_name is None and pod.spec.volumes == () and pod.spec.node_selector == {}
    probe = pod.spec.containers[0].liveness_probe
    assert (
        probe.initial_delay_seconds,
        probe.period_seconds,
        probe.timeout_seconds,
        probe.failure_threshold,
        probe.success_threshold,
    ) == (0, 10, 1, 3, 1)
    port = parse_pod(
        with_change(minimal_pod(), ("spec", "containers", 0, "ports"), [{"containerPort": 80}])
    ).spec.containers[0].ports[0]
    assert (port.protocol, port.host_port, port.name) == ("TCP", None, None)


def test_requests_default_to_limits():
    """K8s defaulting: a resource with a limit and no request requests its limit."""
    doc = with_change(
        minimal_pod(),
        ("spec", "containers", 0, "resources"),
        {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "32Mi"}},
    )
    resources = parse_pod(doc).spec.containers[0].resources
    assert resources.cpu_request_millicores() == 100
    assert resources.memory_request_bytes() == 32 * 1024**2


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:local", "IfNotPresent"),
        ("registry.local:5000/team/busybox", "Always"),
        ("registry.local:5000/team/busybox:1.36", "IfNotPresent"),
        ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
        ("busybox:latest@sha256:" + "a" * 64, "Always"),
    ],
)
def test_image_pull_policy_default_follows_the_tag(image, policy):
    """K8s defaulting: Always when the tag is latest or absent, else IfNotPresent."""
    assert default_pull_policy(image) == policy
    doc = with_change(minimal_pod(), ("spec", "containers", 0, "image"), image)
    assert parse_pod(doc).spec.containers[0].image_pull_policy == policy


def test_null_means_unset():
    doc = with_change(minimal_pod(), ("spec", "restartPolicy"), None)
    doc["metadata"]["labels"] = None
    pod = parse_pod(doc)
    assert pod.spec.restart_policy == "Always" and pod.metadata.labels == {}


# ---------------------------------------------------------------- rejection


def test_the_bad_quantity_example_exactly():
    doc = full_pod()
    doc["spec"]["containers"][1]["resources"] = {"limits": {"memory": "12Q"}}
    with pytest.raises(ManifestError) as info:
        parse_pod(doc)
    assert str(info.value) == 'spec.containers[1].resources.limits.memory: "12Q" is not a quantity'
    assert info.value.errors == (FieldError("spec.containers[1].resources.limits.memory", '"12Q" is not a quantity'),)


def test_manifest_error_types():
    with pytest.raises(StateError):
        parse_pod({})
    with pytest.raises(ValueError):
        parse_pod({})


UNSUPPORTED = "not supported by agentd"


@pytest.mark.parametrize(
    ("path", "expected_error_path", "message"),
    [
        (("status",), "status", UNSUPPORTED),
        (("metadata", "generateName"), "metadata.generateName", UNSUPPORTED),
        (("spec", "hostNetwork"), "spec.hostNetwork", UNSUPPORTED),
        (("spec", "overhead"), "spec.overhead", UNSUPPORTED),
        (("spec", "hostNetwrk"), "spec.hostNetwrk", 'unknown field, did you mean "hostNetwork"?'),
        (("spec", "containers", 0, "imagee"), "spec.containers[0].imagee", 'unknown field, did you mean "image"?'),
        (("spec", "containers", 0, "ports", 0, "hostIP"), "spec.containers[0].ports[0].hostIP", UNSUPPORTED),
        (("spec", "containers", 0, "env", 0, "valueFromm"), "spec.containers[0].env[0].valueFromm",
         'unknown field, did you mean "valueFrom"?'),
        (("spec", "containers", 0, "resources", "claims"), "spec.containers[0].resources.claims", UNSUPPORTED),
        (("spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"),
         "spec.containers[0].resources.limits.nvidia.com/gpu", "unknown field"),
        (("spec", "containers", 0, "volumeMounts", 0, "subPathExpr"), "spec.containers[0].volumeMounts[0].subPathExpr",
         UNSUPPORTED),
        (("spec", "containers", 0, "livenessProbe", "terminationGracePeriodSeconds"),
         "spec.containers[0].livenessProbe.terminationGracePeriodSeconds", UNSUPPORTED),
        (("spec", "containers", 0, "readinessProbe", "httpGet", "pathh"),
         "spec.containers[0].readinessProbe.httpGet.pathh", 'unknown field, did you mean "path"?'),
        (("spec", "containers", 0, "readinessProbe", "httpGet", "httpHeaders", 0, "x"),
         "spec.containers[0].readinessProbe.httpGet.httpHeaders[0].x", "unknown field"),
        (("spec", "containers", 0, "startupProbe", "exec", "shell"), "spec.containers[0].startupProbe.exec.shell",
         "unknown field"),
        (("spec", "volumes", 0, "emptyDir", "size"), "spec.volumes[0].emptyDir.size",
         'unknown field, did you mean "sizeLimit"?'),
        (("spec", "volumes", 1, "hostPath", "kind"), "spec.volumes[1].hostPath.kind", "unknown field"),
        (("spec", "volumes", 1, "nfs"), "spec.volumes[1].nfs", UNSUPPORTED),
    ],
)
def test_unknown_and_unsupported_fields_are_errors_at_every_depth(path, expected_error_path, message):
    errors = errors_of(with_change(full_pod(), path, "x"))
    assert [str(e) for e in errors if e.path == expected_error_path] == [f"{expected_error_path}: {message}"], errors


C0 = ("spec", "containers", 0)


@pytest.mark.parametrize(
    ("path", "value", "error_path", "fragment"),
    [
        # the object itself
        (("apiVersion",), "v2", "apiVersion", "is not one of"),
        (("apiVersion",), DELETE, "apiVersion", "required"),
        (("kind",), "Deployment", "kind", "is not one of"),
        (("metadata",), DELETE, "metadata", "required"),
        (("spec",), DELETE, "spec", "required"),
        (("spec",), ["x"], "spec", "must be an object"),
        # metadata: names, labels, annotations
        (("metadata", "name"), DELETE, "metadata.name", "required"),
        (("metadata", "name"), "Web", "metadata.name", "DNS-1123 subdomain"),
        (("metadata", "name"), "web_1", "metadata.name", "DNS-1123 subdomain"),
        (("metadata", "name"), "-web", "metadata.name", "DNS-1123 subdomain"),
        (("metadata", "name"), "a" * 254, "metadata.name", "at most 253"),
        (("metadata", "name"), 5, "metadata.name", "must be a string"),
        (("metadata", "namespace"), "a.b", "metadata.namespace", "DNS-1123 label"),
        (("metadata", "labels"), {"app": "a b"}, 'metadata.labels["app"]', "not a valid label value"),
        (("metadata", "labels"), {"app": "x" * 64}, 'metadata.labels["app"]', "at most 63"),
        (("metadata", "labels"), {"app": 1}, 'metadata.labels["app"]', "must be a string"),
        (("metadata", "labels"), {"-app": "x"}, 'metadata.labels["-app"]', "not a valid qualified name"),
        (("metadata", "labels"), {"Bad_Prefix/app": "x"}, 'metadata.labels["Bad_Prefix/app"]', "prefix"),
        (("metadata", "labels"), {"a/b/c": "x"}, 'metadata.labels["a/b/c"]', "prefix"),
        (("metadata", "labels"), {"k" * 64: "x"}, f'metadata.labels["{"k" * 64}"]', "at most 63"),
        (("metadata", "labels"), ["app"], "metadata.labels", "must be an object"),
        (("metadata", "annotations"), {"a": 1}, 'metadata.annotations["a"]', "must be a string"),
        (("metadata", "annotations"), {"big": "x" * 300_000}, "metadata.annotations", "total size"),
        (("metadata", "uid"), 7, "metadata.uid", "must be a string"),
        # spec
        (("spec", "containers"), [], "spec.containers", "must not be empty"),
        (("spec", "containers"), DELETE, "spec.containers", "required"),
        (("spec", "restartPolicy"), "Sometimes", "spec.restartPolicy", "is not one of"),
        (("spec", "terminationGracePeriodSeconds"), -1, "spec.terminationGracePeriodSeconds", "at least 0"),
        (("spec", "terminationGracePeriodSeconds"), "30", "spec.terminationGracePeriodSeconds", "must be an integer"),
        (("spec", "terminationGracePeriodSeconds"), True, "spec.terminationGracePeriodSeconds", "must be an integer"),
        (("spec", "terminationGracePeriodSeconds"), 1.5, "spec.terminationGracePeriodSeconds", "must be an integer"),
        (("spec", "nodeSelector"), {"disk": 1}, 'spec.nodeSelector["disk"]', "must be a string"),
        (("spec", "nodeSelector"), {"disk": "a b"}, 'spec.nodeSelector["disk"]', "label value"),
        (("spec", "nodeName"), "Node_3", "spec.nodeName", "DNS-1123 subdomain"),
        (("spec", "tolerations", 0, "effect"), "Never", "spec.tolerations[0].effect", "is not one of"),
        (("spec", "tolerations", 0, "operator"), "In", "spec.tolerations[0].operator", "is not one of"),
        (("spec", "tolerations", 0, "key"), "-bad", "spec.tolerations[0].key", "qualified name"),
        (("spec", "tolerations", 0, "tolerationSeconds"), 5, "spec.tolerations[0].tolerationSeconds", "NoExecute"),
        (("spec", "tolerations", 1, "value"), "x", "spec.tolerations[1].value", "must be empty"),
        (("spec", "tolerations", 2, "operator"), "Equal", "spec.tolerations[2].operator", "when key is empty"),
        (("spec", "tolerations", 0, "seconds"), 5, "spec.tolerations[0].seconds", "unknown field"),
        # containers
        ((*C0, "name"), "Web", "spec.containers[0].name", "DNS-1123 label"),
        ((*C0, "name"), "a.b", "spec.containers[0].name", "DNS-1123 label"),
        ((*C0, "name"), "a" * 64, "spec.containers[0].name", "at most 63"),
        ((*C0, "name"), "sidecar", "spec.containers[1].name", 'duplicate name "sidecar"'),
        ((*C0, "name"), DELETE, "spec.containers[0].name", "required"),
        ((*C0, "image"), DELETE, "spec.containers[0].image", "required"),
        ((*C0, "image"), " busybox", "spec.containers[0].image", "not a valid image"),
        ((*C0, "imagePullPolicy"), "Sometimes", "spec.containers[0].imagePullPolicy", "is not one of"),
        ((*C0, "command"), "sh -c", "spec.containers[0].command", "must be a list"),
        ((*C0, "args"), ["ok", 3], "spec.containers[0].args[1]", "must be a string"),
        ((*C0, "env", 0, "name"), "1BAD", "spec.containers[0].env[0].name", "environment variable name"),
        ((*C0, "env", 0, "name"), "A B", "spec.containers[0].env[0].name", "environment variable name"),
        ((*C0, "env", 0, "value"), True, "spec.containers[0].env[0].value", "must be a string"),
        ((*C0, "env", 1, "name"), DELETE, "spec.containers[0].env[1].name", "required"),
        # ports
        ((*C0, "ports", 0, "containerPort"), 0, "spec.containers[0].ports[0].containerPort", "at least 1"),
        ((*C0, "ports", 0, "containerPort"), 65536, "spec.containers[0].ports[0].containerPort", "at most 65535"),
        ((*C0, "ports", 0, "containerPort"), "8080", "spec.containers[0].ports[0].containerPort", "must be an integer"),
        ((*C0, "ports", 0, "containerPort"), DELETE, "spec.containers[0].ports[0].containerPort", "hostPort requires containerPort"),
        ((*C0, "ports", 0, "hostPort"), 70000, "spec.containers[0].ports[0].hostPort", "at most 65535"),
        ((*C0, "ports", 0, "protocol"), "HTTP", "spec.containers[0].ports[0].protocol", "is not one of"),
        ((*C0, "ports", 0, "name"), "HTTP", "spec.containers[0].ports[0].name", "not a valid port name"),
        ((*C0, "ports", 0, "name"), "a--b", "spec.containers[0].ports[0].name", "not a valid port name"),
        ((*C0, "ports", 0, "name"), "1234", "spec.containers[0].ports[0].name", "must contain a letter"),
        ((*C0, "ports", 0, "name"), "abcdefghijklmnop", "spec.containers[0].ports[0].name", "at most 15"),
        ((*C0, "ports", 1, "name"), "http", "spec.containers[0].ports[1].name", 'duplicate name "http"'),
        # resources
        ((*C0, "resources", "requests", "cpu"), "2", "spec.containers[0].resources.requests.cpu", "less than or equal to the limit"),
        ((*C0, "resources", "requests", "memory"), "1Gi", "spec.containers[0].resources.requests.memory", "less than or equal to the limit"),
        ((*C0, "resources", "limits", "cpu"), "-1", "spec.containers[0].resources.limits.cpu", "must not be negative"),
        ((*C0, "resources", "limits", "cpu"), "1.5.3", "spec.containers[0].resources.limits.cpu", '"1.5.3" is not a quantity'),
        ((*C0, "resources", "requests", "memory"), "Mi", "spec.containers[0].resources.requests.memory", '"Mi" is not a quantity'),
        ((*C0, "resources", "requests", "memory"), True, "spec.containers[0].resources.requests.memory", "is not a quantity"),
        ((*C0, "resources", "limits"), "lots", "spec.containers[0].resources.limits", "must be an object"),
        # volume mounts
        ((*C0, "volumeMounts", 0, "name"), "nope", "spec.containers[0].volumeMounts[0].name", "not a volume declared"),
        ((*C0, "volumeMounts", 0, "mountPath"), "scratch", "spec.containers[0].volumeMounts[0].mountPath", "absolute path"),
        ((*C0, "volumeMounts", 0, "mountPath"), DELETE, "spec.containers[0].volumeMounts[0].mountPath", "required"),
        ((*C0, "volumeMounts", 1, "mountPath"), "/scratch", "spec.containers[0].volumeMounts[1].mountPath", "duplicate mountPath"),
        ((*C0, "volumeMounts", 1, "readOnly"), "yes", "spec.containers[0].volumeMounts[1].readOnly", "must be a boolean"),
        # probes
        ((*C0, "livenessProbe", "exec"), {"command": ["true"]}, "spec.containers[0].livenessProbe", "exactly one handler"),
        ((*C0, "livenessProbe", "tcpSocket"), DELETE, "spec.containers[0].livenessProbe", "exactly one handler"),
        ((*C0, "livenessProbe", "successThreshold"), 2, "spec.containers[0].livenessProbe.successThreshold", "must be 1"),
        ((*C0, "startupProbe", "successThreshold"), 3, "spec.containers[0].startupProbe.successThreshold", "must be 1"),
        ((*C0, "readinessProbe", "successThreshold"), 0, "spec.containers[0].readinessProbe.successThreshold", "at least 1"),
        ((*C0, "livenessProbe", "initialDelaySeconds"), -1, "spec.containers[0].livenessProbe.initialDelaySeconds", "at least 0"),
        ((*C0, "livenessProbe", "periodSeconds"), 0, "spec.containers[0].livenessProbe.periodSeconds", "at least 1"),
        ((*C0, "livenessProbe", "timeoutSeconds"), 0, "spec.containers[0].livenessProbe.timeoutSeconds", "at least 1"),
        ((*C0, "livenessProbe", "failureThreshold"), 0, "spec.containers[0].livenessProbe.failureThreshold", "at least 1"),
        ((*C0, "livenessProbe", "tcpSocket", "port"), 0, "spec.containers[0].livenessProbe.tcpSocket.port", "at least 1"),
        ((*C0, "livenessProbe", "tcpSocket", "port"), DELETE, "spec.containers[0].livenessProbe.tcpSocket.port", "required"),
        ((*C0, "readinessProbe", "httpGet", "port"), "metrics", "spec.containers[0].readinessProbe.httpGet.port", "not the name of a port"),
        ((*C0, "readinessProbe", "httpGet", "port"), "Bad Name", "spec.containers[0].readinessProbe.httpGet.port", "not a valid port name"),
        ((*C0, "readinessProbe", "httpGet", "port"), 1.5, "spec.containers[0].readinessProbe.httpGet.port", "must be an integer"),
        ((*C0, "readinessProbe", "httpGet", "scheme"), "FTP", "spec.containers[0].readinessProbe.httpGet.scheme", "is not one of"),
        ((*C0, "readinessProbe", "httpGet", "path"), "healthz", "spec.containers[0].readinessProbe.httpGet.path", "absolute path"),
        ((*C0, "readinessProbe", "httpGet", "httpHeaders", 0, "name"), "X Probe", "spec.containers[0].readinessProbe.httpGet.httpHeaders[0].name", "not a valid HTTP header name"),
        ((*C0, "startupProbe", "exec", "command"), [], "spec.containers[0].startupProbe.exec.command", "required"),
        # volumes
        (("spec", "volumes", 1, "name"), "scratch", "spec.volumes[1].name", 'duplicate name "scratch"'),
        (("spec", "volumes", 1, "name"), "Logs", "spec.volumes[1].name", "DNS-1123 label"),
        (("spec", "volumes", 0, "hostPath"), {"path": "/tmp"}, "spec.volumes[0]", "exactly one source"),
        (("spec", "volumes", 1, "hostPath"), DELETE, "spec.volumes[1]", "exactly one source"),
        (("spec", "volumes", 0, "emptyDir", "medium"), "Disk", "spec.volumes[0].emptyDir.medium", "is not one of"),
        (("spec", "volumes", 0, "emptyDir", "sizeLimit"), "12Q", "spec.volumes[0].emptyDir.sizeLimit", '"12Q" is not a quantity'),
        (("spec", "volumes", 1, "hostPath", "path"), "var/log", "spec.volumes[1].hostPath.path", "absolute path"),
        (("spec", "volumes", 1, "hostPath", "type"), "Dir", "spec.volumes[1].hostPath.type", "is not one of"),
    ],
)
def test_each_validation_rule_names_the_field(path, value, error_path, fragment):
    """K8s Pod validation: every rule rejects the manifest and names the exact field path."""
    assert_error(with_change(full_pod(), path, value), error_path, fragment)


def test_duplicate_host_ports_across_containers():
    """K8s: two containers of one pod cannot claim the same hostPort/protocol."""
    doc = full_pod()
    doc["spec"]["containers"][1]["ports"] = [{"containerPort": 80, "hostPort": 18080}]
    assert_error(doc, "spec.containers[1].ports[0].hostPort", "duplicate hostPort 18080/TCP")
    doc["spec"]["containers"][1]["ports"][0]["protocol"] = "UDP"
    assert parse_pod(doc).spec.containers[1].ports[0].host_port == 18080


def test_all_errors_are_reported_together():
    doc = full_pod()
    doc["metadata"]["name"] = "Bad"
    doc["spec"]["containers"][0]["imagee"] = "x"
    doc["spec"]["containers"][1]["resources"] = {"limits": {"memory": "12Q"}}
    doc["spec"]["restartPolicy"] = "Sometimes"
    paths = [e.path for e in errors_of(doc)]
    assert sorted(paths) == sorted(
        [
            "metadata.name",
            "spec.containers[0].imagee",
            "spec.containers[1].resources.limits.memory",
            "spec.restartPolicy",
        ]
    )


@pytest.mark.parametrize("doc", [None, [], "pod", 3])
def test_a_document_that_is_not_an_object_is_rejected(doc):
    assert errors_of(doc)[0].message.startswith("must be an object")


def test_huge_values_are_cut_in_messages():
    doc = with_change(minimal_pod(), ("metadata", "name"), "A" * 10_000)
    message = str(errors_of(doc)[0])
    assert len(message) < 400


# ---------------------------------------------------------------- the objects


def test_pods_are_frozen_hashable_and_comparable():
    a, b = parse_pod(full_pod()), parse_pod(full_pod())
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.metadata.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.metadata.labels["app"] = "x"  # type: ignore[index]
    assert a != parse_pod(with_change(full_pod(), ("metadata", "labels", "app"), "other"))


def test_frozen_map_behaves_like_a_read_only_dict():
    m = FrozenMap({"b": "2", "a": "1"})
    assert m["a"] == "1" and list(m) == ["b", "a"] and len(m) == 2
    assert m == {"a": "1", "b": "2"} and m == FrozenMap({"a": "1", "b": "2"})
    assert dict(m) == {"a": "1", "b": "2"} and m.get("c") is None
    assert hash(m) == hash(FrozenMap({"a": "1", "b": "2"}))
    with pytest.raises(AttributeError):
        m._data = {}  # type: ignore[misc]


def test_constructors_convert_lists_and_dicts_so_objects_stay_hashable():
    container = Container(name="c", image="busybox", command=["sleep", "1"])  # type: ignore[arg-type]
    pod = Pod(ObjectMeta(name="p", labels={"app": "x"}), PodSpec(containers=[container]))  # type: ignore[arg-type]
    assert container.command == ("sleep", "1")
    assert container.image_pull_policy == "Always"  # the default for an untagged image
    assert isinstance(pod.metadata.labels, FrozenMap) and isinstance(pod.spec.containers, tuple)
    hash(pod)
    assert parse_pod(pod_to_dict(pod)) == pod


def test_key_uid_and_node_name_helpers():
    pod = parse_pod(minimal_pod())
    assert pod.key == "default/p"
    assert pod.with_uid("u-1").metadata.uid == "u-1" and pod.metadata.uid is None
    placed = pod.with_node_name("node-2")
    assert placed.spec.node_name == "node-2" and pod.spec.node_name is None
    assert pod_to_dict(placed)["spec"]["nodeName"] == "node-2"


def test_pod_level_resource_sums():
    spec = parse_pod(full_pod()).spec
    assert spec.cpu_request_millicores() == 250  # the sidecar requests nothing
    assert spec.memory_request_bytes() == 64 * 1024**2


def test_spec_hash_is_stable_and_tracks_spec_changes_only():
    pod = parse_pod(full_pod())
    h = pod_spec_hash(pod)
    assert re.fullmatch(r"[0-9a-f]{16}", h), h
    assert pod_spec_hash(parse_pod(full_pod())) == h
    assert pod_spec_hash(pod.with_node_name("elsewhere")) == h  # placement is not a spec change
    assert pod_spec_hash(pod.with_uid("other")) == h
    changed = with_change(full_pod(), ("spec", "containers", 1, "command"), ["sleep", "7200"])
    assert pod_spec_hash(parse_pod(changed)) != h
    # writing a default explicitly is the same spec
    explicit = with_change(minimal_pod(), ("spec", "restartPolicy"), "Always")
    assert pod_spec_hash(parse_pod(explicit)) == pod_spec_hash(parse_pod(minimal_pod()))


def test_quantity_values_are_exact():
    pod = parse_pod(with_change(minimal_pod(), (*C0, "resources"), {"limits": {"cpu": 0.1}}))
    assert pod.spec.containers[0].resources.limits["cpu"].value == Fraction(1, 10)


# ---------------------------------------------------------------- YAML loading

TWO_PODS = """\
apiVersion: v1
kind: Pod
metadata: {name: one}
spec:
  containers: [{name: c, image: busybox:local}]
---
---
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  containers:
    - name: c
      image: busybox:local
      resources: {limits: {cpu: 0.5, memory: 1e3}}
"""


def test_multi_document_yaml_loads_every_pod_in_order():
    pods = load_manifests(TWO_PODS)
    assert [p.metadata.name for p in pods] == ["one", "two"]
    assert pods[1].spec.containers[0].resources.limits["cpu"].value == Fraction(1, 2)
    assert pods[1].spec.containers[0].resources.limits["memory"].value == 1000
    assert load_manifests("") == [] and load_manifests("---\n---\n") == []


def test_one_bad_document_rejects_the_whole_text():
    text = TWO_PODS.replace("image: busybox:local\n      resources", "imagee: busybox:local\n      resources")
    with pytest.raises(ManifestError) as info:
        load_manifests(text, source="pods.yaml")
    messages = [str(e) for e in info.value.errors]
    # each at the line of its field: the key itself, or the object it is missing from
    assert 'pods.yaml:14 (document 3): spec.containers[0].imagee: unknown field, did you mean "image"?' in messages
    assert "pods.yaml:13 (document 3): spec.containers[0].image: required field is missing" in messages


def test_yaml_syntax_error_names_source_and_line():
    text = "apiVersion: v1\nkind: Pod\n  metadata: x\n"
    with pytest.raises(ManifestError) as info:
        load_manifests(text, source="bad.yaml")
    (error,) = info.value.errors
    assert error.location == "bad.yaml:3:11"
    assert str(info.value) == "bad.yaml:3:11: YAML syntax error: mapping values are not allowed here"


def test_other_kinds_are_rejected_by_the_dispatch_table():
    text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
    with pytest.raises(ManifestError) as info:
        load_manifests(text, source="d.yaml")
    assert "unsupported apiVersion/kind apps/v1/Deployment" in str(info.value)
    with pytest.raises(ManifestError, match="must be an object"):
        load_manifests("- 1\n- 2\n")


def test_duplicate_yaml_keys_are_errors():
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\nspec: {containers: [{name: c, image: x}]}\n"
    with pytest.raises(ManifestError) as info:
        load_manifests(text, source="dup.yaml")
    assert str(info.value) == "dup.yaml:5 (document 1): metadata.name: duplicate key (line 5)"


def test_yaml_typing_surprises_are_caught():
    """YAML 1.1 reads `yes` as a boolean and `8080` as an int: both must fail where a string / int is due."""
    text = TWO_PODS.split("---")[0].replace("image: busybox:local}", "image: busybox:local, env: [{name: A, value: yes}]}")
    with pytest.raises(ManifestError, match=r"spec.containers\[0\].env\[0\].value: must be a string, got boolean true"):
        load_manifests(text)


def test_alias_bomb_is_rejected_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 10)]
    text = "\n".join(lines) + "\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x, command: *a9}]}\n"
    started = time.perf_counter()
    with pytest.raises(ManifestError, match="must be a string"):
        load_manifests(text)
    # The document expands to 10**10 strings: a walk that expanded it would take hours, not
    # seconds, so this generous bound cannot flake on a loaded machine and still catches one.
    assert time.perf_counter() - started < 30.0


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(ManifestError):
        load_manifests("[" * 100_000)


def test_load_manifest_file(tmp_path):
    path = tmp_path / "pods.yaml"
    path.write_text(TWO_PODS, encoding="utf-8")
    assert [p.key for p in load_manifest_file(path)] == ["default/one", "default/two"]
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest_file(tmp_path / "missing.yaml")


def test_oversized_text_is_rejected():
    with pytest.raises(ManifestError, match="larger than"):
        load_manifests("#" * (4 * 1024 * 1024))


FIELD_LINES = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app.kubernetes.io/name: "bad value!"
spec:
  containers:
  - name: c
    image: busybox:local
    resources:
      requests:
        memory: 12Q
  - name: d
    image: busybox:local
    ports:
    - containerPort: 99999
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector: {matchLabels: {app: web}}
        topologyKey: topology.kubernetes.io/zone
"""


def test_every_field_error_names_the_line_of_its_field():
    with pytest.raises(ManifestError) as info:
        load_manifests("---\n" + FIELD_LINES, source="f.yaml")
    where = {e.path: e.location for e in info.value.errors}
    assert where == {
        'metadata.labels["app.kubernetes.io/name"]': "f.yaml:7 (document 1)",
        "spec.containers[0].resources.requests.memory": "f.yaml:14 (document 1)",
        "spec.containers[1].ports[0].containerPort": "f.yaml:18 (document 1)",
        "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey":
            "f.yaml:23 (document 1)",
    }
    assert str(info.value).startswith('f.yaml:7 (document 1): metadata.labels["app.kubernetes.io/name"]: ')


def test_field_line_falls_back_to_what_is_there():
    import yaml

    from agent.state.manifest import field_line
    node = yaml.compose(FIELD_LINES)
    assert field_line(node, "") == 1
    assert field_line(node, "spec.containers[1].image") == 15
    assert field_line(node, "spec.containers[1].command") == 14  # absent: the item it is missing from
    assert field_line(node, "spec.containers[7].name") == 8  # no such item: the list's key
    assert field_line(node, "spec.dnsConfig.nameservers") == 7
    assert field_line(node, 'metadata.labels["nope"]') == 5
