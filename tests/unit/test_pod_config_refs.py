"""Pod spec fields that read ConfigMaps and Secrets: env valueFrom, envFrom, configMap and
secret volumes (items, defaultMode, optional) and subPath, parsed, validated and written
back unchanged (the Kubernetes documentation's own examples)."""

from __future__ import annotations

import pytest

from agent.state.pod import ManifestError, parse_pod, pod_to_dict
from agent.state.pod.serialize import pod_spec_hash

# "ConfigMaps" concept page: configmap-demo-pod (image replaced by busybox:local).
CONFIGMAP_DEMO_POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "configmap-demo-pod"},
    "spec": {
        "containers": [{
            "name": "demo", "image": "busybox:local", "command": ["sleep", "3600"],
            "env": [
                {"name": "PLAYER_INITIAL_LIVES",
                 "valueFrom": {"configMapKeyRef": {"name": "game-demo", "key": "player_initial_lives"}}},
                {"name": "UI_PROPERTIES_FILE_NAME",
                 "valueFrom": {"configMapKeyRef": {"name": "game-demo", "key": "ui_properties_file_name"}}},
            ],
            "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True}],
        }],
        "volumes": [{"name": "config", "configMap": {"name": "game-demo", "items": [
            {"key": "game.properties", "path": "game.properties"},
            {"key": "user-interface.properties", "path": "user-interface.properties"}]}}],
    },
}

# "Distribute Credentials Securely Using Secrets": envars-pod and secret-test-pod.
SECRET_ENV_POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "env-single-secret"},
    "spec": {"containers": [{
        "name": "envars-test-container", "image": "busybox:local",
        "env": [{"name": "SECRET_USERNAME",
                 "valueFrom": {"secretKeyRef": {"name": "backend-user", "key": "backend-username"}}}],
        "envFrom": [{"secretRef": {"name": "test-secret"}}, {"configMapRef": {"name": "special-config",
                                                                                "optional": True}, "prefix": "CFG_"}],
    }]},
}


def errors_of(doc) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_pod(doc)
    return [str(e) for e in info.value.errors]


def test_examples_round_trip():
    for doc in (CONFIGMAP_DEMO_POD, SECRET_ENV_POD):
        pod = parse_pod(doc)
        assert parse_pod(pod_to_dict(pod)) == pod
    pod = parse_pod(CONFIGMAP_DEMO_POD)
    ref = pod.spec.containers[0].env[0].value_from.config_map_key_ref
    assert (ref.name, ref.key, ref.optional) == ("game-demo", "player_initial_lives", None)
    vol = pod.spec.volumes[0].config_map
    assert vol.name == "game-demo" and vol.default_mode == 0o644 and [i.path for i in vol.items] == [
        "game.properties", "user-interface.properties"]
    assert pod_to_dict(pod)["spec"]["volumes"][0]["configMap"]["defaultMode"] == 420
    env_from = parse_pod(SECRET_ENV_POD).spec.containers[0].env_from
    assert env_from[0].secret_ref.name == "test-secret" and env_from[1].prefix == "CFG_"
    assert env_from[1].config_map_ref.optional is True


def test_secret_volume_with_modes_and_sub_path():
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mypod"}, "spec": {
        "containers": [{"name": "mypod", "image": "busybox:local", "volumeMounts": [
            {"name": "foo", "mountPath": "/etc/foo", "readOnly": True},
            {"name": "foo", "mountPath": "/etc/user", "subPath": "my-group/my-username"}]}],
        "volumes": [{"name": "foo", "secret": {"secretName": "mysecret", "defaultMode": 0o400, "items": [
            {"key": "username", "path": "my-group/my-username", "mode": 0o777}]}}]}}
    pod = parse_pod(doc)
    assert pod.spec.volumes[0].secret.default_mode == 0o400
    assert pod.spec.volumes[0].secret.items[0].mode == 0o777
    assert pod.spec.containers[0].volume_mounts[1].sub_path == "my-group/my-username"
    assert parse_pod(pod_to_dict(pod)) == pod


def test_a_pod_without_these_fields_keeps_its_hash():
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "busybox:local",
                                    "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                    "volumes": [{"name": "v", "emptyDir": {}}]}}
    written = pod_to_dict(parse_pod(doc))
    assert "subPath" not in written["spec"]["containers"][0]["volumeMounts"][0]
    assert "envFrom" not in written["spec"]["containers"][0]
    assert pod_spec_hash(parse_pod(doc)) == pod_spec_hash(parse_pod(written))


def test_errors_by_field_path():
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "a", "image": "busybox:local",
                        "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm"}}},
                                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "S", "key": "a/b",
                                                                             "optional": "yes"}}},
                                {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"},
                                                            "secretKeyRef": {"name": "s", "key": "k"}}}],
                        "envFrom": [{"prefix": "1-"}, {"configMapRef": {"name": "x"}, "secretRef": {"name": "y"}}],
                        "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "../etc"}]}],
        "volumes": [{"name": "v", "configMap": {"name": "cm", "defaultMode": 0o1777,
                                                 "items": [{"key": "k", "path": "/abs"}, {"key": "k", "path": "a/../b"},
                                                           {"path": "x", "mode": -1}]}},
                    {"name": "w", "secret": {"name": "wrong"}}]}}
    errors = errors_of(doc)
    p = "spec.containers[0]"
    assert f"{p}.env[0].valueFrom.configMapKeyRef.key: required field is missing" in errors
    assert any(e.startswith(f"{p}.env[1].valueFrom.secretKeyRef.name:") for e in errors)
    assert (f"{p}.env[1].valueFrom.secretKeyRef.key: a valid config key must consist of alphanumeric characters, "
            f"'-', '_' or '.'") in errors
    assert f'{p}.env[1].valueFrom.secretKeyRef.optional: must be a boolean, got string "yes"' in errors
    assert (f"{p}.env[2].valueFrom: must have exactly one source of fieldRef, resourceFieldRef, configMapKeyRef, "
            f"secretKeyRef (found configMapKeyRef, secretKeyRef)") in errors
    assert any(e.startswith(f"{p}.envFrom[0].prefix:") for e in errors)
    assert f"{p}.envFrom[0]: must have exactly one source of configMapRef, secretRef (found none)" in errors
    assert f"{p}.envFrom[1]: must have exactly one source of configMapRef, secretRef (found configMapRef, secretRef)" \
        in errors
    assert f"{p}.volumeMounts[0].subPath: \"../etc\" must not contain '..'" in errors
    v = "spec.volumes[0].configMap"
    assert f"{v}.defaultMode: 1023 must be at most 511" in errors
    assert f'{v}.items[0].path: "/abs" must be a relative path' in errors
    assert f"{v}.items[1].path: \"a/../b\" must not contain '..'" in errors
    assert f"{v}.items[2].key: required field is missing" in errors
    assert f"{v}.items[2].mode: -1 must be at least 0" in errors
    assert 'spec.volumes[1].secret.name: unknown field' in errors
    assert "spec.volumes[1].secret.secretName: required field is missing" in errors
