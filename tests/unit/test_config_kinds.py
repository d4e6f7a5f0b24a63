"""ConfigMap and Secret in the cluster state: validation by field path, Kubernetes' folding
of stringData, immutability, and that a value never reaches an error or an event."""

from __future__ import annotations

import base64

import pytest

from agent.state import commands as c
from agent.state.config_kinds import (
    MAX_DATA_BYTES,
    admit_config_map,
    admit_secret,
    config_key_problem,
    decoded_entries,
    entry_sizes,
    pod_references,
)
from agent.state.machine import is_error
from agent.state.objects import admit, kind_for
from agent.state.pod import ManifestError

from tests.unit.state_helpers import T0, Log

SECRET_VALUE = "s3cr3t-VALUE-do-not-print"

# Kubernetes' documentation: "Configure a Pod to Use a ConfigMap", game-demo.
GAME_DEMO = {
    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "game-demo"},
    "data": {"player_initial_lives": "3", "ui_properties_file_name": "user-interface.properties",
             "game.properties": "enemy.types=aliens,monsters\nplayer.maximum-lives=5\n",
             "user-interface.properties": "color.good=purple\ncolor.bad=yellow\nallow.textmode=true\n"},
}


def secret(**extra) -> dict:
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mysecret"}, "type": "Opaque",
           "data": {"username": base64.b64encode(b"admin").decode(),
                    "password": base64.b64encode(SECRET_VALUE.encode()).decode()}}
    doc.update(extra)
    return doc


def problems(fn, doc) -> list[str]:
    with pytest.raises(ManifestError) as info:
        fn(doc)
    return [str(e) for e in info.value.errors]


def test_kinds_are_known_by_kubectl_names():
    assert kind_for("cm").name == "ConfigMap"
    assert kind_for("configmaps").name == "ConfigMap"
    assert kind_for("secret").name == "Secret"
    assert kind_for("secrets").name == "Secret"


def test_config_map_canonical_form():
    out = admit_config_map(GAME_DEMO)
    assert out["metadata"] == {"name": "game-demo", "namespace": "default"}
    assert list(out["data"]) == sorted(GAME_DEMO["data"])
    assert "binaryData" not in out and "immutable" not in out
    assert admit(GAME_DEMO).doc == out


def test_config_map_binary_data_and_duplicates():
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"},
           "data": {"a": "x"}, "binaryData": {"a": "AAE=", "bin": "AAEC"}}
    assert problems(admit_config_map, doc) == ['data["a"]: duplicate of key present in binaryData']
    doc["binaryData"] = {"bin": "AAEC"}
    assert decoded_entries(admit_config_map(doc)) == {"a": b"x", "bin": b"\x00\x01\x02"}


@pytest.mark.parametrize("key,ok", [("game.properties", True), ("a_b-C.1", True), (".hidden", True),
                                    (".", False), ("..", False), ("..x", False), ("a/b", False),
                                    ("sp ace", False), ("x" * 254, False), ("", False)])
def test_config_keys(key, ok):
    assert (config_key_problem(key) is None) is ok


def test_bad_keys_and_values_by_field_path():
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"},
           "data": {"a/b": "x", "n": 5}, "binaryData": {"z": "not base64!"}, "immutable": "yes", "spec": {}}
    got = problems(admit_config_map, doc)
    assert 'data["a/b"]: key a valid config key must consist of alphanumeric characters, \'-\', \'_\' or \'.\'' in got
    assert 'data["n"]: must be a string, got integer' in got
    assert 'binaryData["z"]: must be base64-encoded (illegal base64 data)' in got
    assert "immutable: must be a boolean, got string" in got
    assert any(p.startswith("metadata.name:") for p in got)
    assert any(p.startswith("spec:") for p in got)


def test_size_bound():
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
           "data": {"a": "x" * MAX_DATA_BYTES, "b": "y"}}
    assert problems(admit_config_map, doc) == [f"data: too long: must have at most {MAX_DATA_BYTES} bytes "
                                               f"(has {MAX_DATA_BYTES + 1})"]


def test_secret_string_data_folds_into_data():
    out = admit_secret(secret(stringData={"password": "other", "extra": "e"}))
    assert "stringData" not in out
    assert decoded_entries(out) == {"username": b"admin", "password": b"other", "extra": b"e"}
    assert out["type"] == "Opaque"
    assert admit_secret({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e"}})["type"] == "Opaque"


def test_secret_errors_never_show_values():
    doc = secret(data={"password": SECRET_VALUE + "!"}, stringData={"n": 7})
    got = problems(admit_secret, doc)
    assert got == ['data["password"]: must be base64-encoded (illegal base64 data)',
                   'stringData["n"]: must be a string, got integer']
    assert not any(SECRET_VALUE in p for p in got)


def test_secret_types_need_their_keys():
    tls = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"}, "type": "kubernetes.io/tls",
           "stringData": {"tls.crt": "c"}}
    assert problems(admit_secret, tls) == ['data["tls.key"]: required for type "kubernetes.io/tls"']
    basic = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b"}, "type": "kubernetes.io/basic-auth"}
    assert problems(admit_secret, basic) == [
        'data: must contain at least one of "username", "password" for type "kubernetes.io/basic-auth"']
    assert admit_secret(dict(basic, stringData={"username": "u"}))["type"] == "kubernetes.io/basic-auth"


def test_apply_update_and_immutable():
    log = Log()
    cm = dict(GAME_DEMO, immutable=True)
    result = log.create(cm)
    assert not is_error(result), result
    stored = log.machine.get("ConfigMap", "default", "game-demo")
    assert stored["immutable"] is True and stored["metadata"]["uid"] == "uid-game-demo"
    changed = dict(cm, data={"player_initial_lives": "4"})
    refused = log.create(changed)
    assert refused["error"] == "invalid"
    assert "data: field is immutable when `immutable` is set" in refused["message"]
    assert log.machine.get("ConfigMap", "default", "game-demo") == stored  # nothing changed

    mutable = dict(GAME_DEMO, metadata={"name": "m"})
    log.create(mutable)
    log.create(dict(mutable, data={"k": "v"}))
    assert log.machine.get("ConfigMap", "default", "m")["data"] == {"k": "v"}
    patched = log.run(c.patch_object("ConfigMap", "default", "m", {"data": {"k": None, "j": "w"}}, T0))
    assert patched["object"]["data"] == {"j": "w"}


def test_secret_type_is_immutable_and_refusals_hide_values():
    log = Log()
    assert not is_error(log.create(secret()))
    refused = log.create(secret(type="kubernetes.io/basic-auth"))
    assert refused["error"] == "invalid" and "type: field is immutable" in refused["message"]
    bad = log.create(secret(data={"password": SECRET_VALUE}))
    assert is_error(bad) and SECRET_VALUE not in repr(bad)
    events = log.machine.list("Event")
    assert not any(SECRET_VALUE in repr(e) for e in events)


def test_sizes_not_values():
    assert entry_sizes(admit_secret(secret())) == {"password": len(SECRET_VALUE), "username": 5}


def test_pod_references():
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {
        "containers": [{"name": "a", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "k"}}},
            {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}},
            {"name": "Z", "value": "z"}],
            "envFrom": [{"configMapRef": {"name": "cm2"}}, {"secretRef": {"name": "s2"}}]}],
        "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "cm3"}}]}],
        "volumes": [{"name": "v1", "configMap": {"name": "cm4"}}, {"name": "v2", "secret": {"secretName": "s3"}},
                    {"name": "v3", "emptyDir": {}}]}}
    assert pod_references(pod) == {("ConfigMap", "ns", n) for n in ("cm1", "cm2", "cm3", "cm4")} | {
        ("Secret", "ns", n) for n in ("s1", "s2", "s3")}


def test_agentctl_printing_hides_secret_values():
    import datetime as dt

    from agent.cli import config_render

    log = Log()
    log.create(secret(), GAME_DEMO)
    stored = log.machine.get("Secret", "default", "mysecret")
    now = dt.datetime.fromtimestamp(T0 + 90, tz=dt.timezone.utc)
    assert config_render.secret_row(stored, now) == ["mysecret", "Opaque", "2", "90s"]
    text = config_render.describe_secret(stored)
    assert f"password:  {len(SECRET_VALUE)} bytes" in text and "username:  5 bytes" in text
    assert SECRET_VALUE not in text and stored["data"]["password"] not in text
    cm = log.machine.get("ConfigMap", "default", "game-demo")
    assert config_render.configmap_row(cm, now) == ["game-demo", "4", "90s"]
    assert "player_initial_lives:\n----\n3" in config_render.describe_configmap(cm)
