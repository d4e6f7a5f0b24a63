"""The node's side of ConfigMaps and Secrets: env resolution and the files of config
volumes (pure functions), the atomic directory writer, and the Docker binds they give."""

from __future__ import annotations

import os

import pytest

from agent.runtime import containers as plans
from agent.runtime import projected_dir
from agent.runtime.config import RuntimeConfig
from agent.runtime.config_objects import ConfigObjects
from agent.runtime.config_volumes import FileSpec, VolumeFilesError, volume_files
from agent.runtime.env import MissingConfig, container_env
from agent.state.config_kinds import admit_config_map, admit_secret
from agent.state.pod import parse_pod

SECRET_VALUE = "1f2d1e2e67df"

OBJECTS = ConfigObjects([
    admit_config_map({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "special-config"},
                      "data": {"SPECIAL_LEVEL": "very", "SPECIAL_TYPE": "charm", "1starts-digit": "x"}}),
    admit_secret({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mysecret"},
                  "stringData": {"username": "admin", "password": SECRET_VALUE}}),
])


def pod_with(container: dict, volumes: list | None = None):
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "u1"},
           "spec": {"containers": [dict({"name": "c", "image": "busybox:local"}, **container)],
                    "volumes": volumes or []}}
    return parse_pod(doc)


def env_of(pod) -> dict[str, str]:
    return container_env(pod, pod.spec.containers[0], pod_ip=None, host_ip=None, node_cpu_millicores=1000,
                         node_memory_bytes=1 << 30, lookup=OBJECTS.lookup)


def test_env_from_and_value_from():
    pod = pod_with({
        "envFrom": [{"configMapRef": {"name": "special-config"}}, {"secretRef": {"name": "mysecret"}, "prefix": "S_"}],
        "env": [{"name": "SPECIAL_LEVEL_KEY", "valueFrom": {"configMapKeyRef": {"name": "special-config",
                                                                               "key": "SPECIAL_LEVEL"}}},
                {"name": "SPECIAL_TYPE", "value": "overridden $(SPECIAL_LEVEL)"},
                {"name": "SECRET_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "mysecret", "key": "password"}}}],
    })
    env = env_of(pod)
    assert env == {"SPECIAL_LEVEL": "very", "SPECIAL_TYPE": "overridden very", "S_username": "admin",
                   "S_password": SECRET_VALUE, "SPECIAL_LEVEL_KEY": "very", "SECRET_PASSWORD": SECRET_VALUE}
    assert "1starts-digit" not in env  # not a variable name: skipped, as kubelet does


def test_missing_objects_and_keys_name_them_never_values():
    cases = [
        ({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]},
         'configmap "nope" not found'),
        ({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "mysecret", "key": "token"}}}]},
         "couldn't find key token in Secret default/mysecret"),
        ({"envFrom": [{"secretRef": {"name": "gone"}}]}, 'secret "gone" not found'),
    ]
    for container, message in cases:
        with pytest.raises(MissingConfig) as info:
            env_of(pod_with(container))
        assert str(info.value) == message
        assert SECRET_VALUE not in str(info.value)


def test_optional_references_leave_variables_unset():
    pod = pod_with({
        "envFrom": [{"configMapRef": {"name": "nope", "optional": True}}],
        "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "mysecret", "key": "k", "optional": True}}}]})
    assert env_of(pod) == {}


def test_missing_config_is_a_create_container_config_error():
    pod = pod_with({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]})
    with pytest.raises(plans.ConfigError, match='configmap "nope" not found'):
        plans.app_plan(pod, pod.spec.containers[0], "n1", "h", "infra", RuntimeConfig(), restart_count=0,
                       crash_streak=0, started_at=0.0, lookup=OBJECTS.lookup)


def test_volume_files_all_keys_items_and_modes():
    pod = pod_with({}, [
        {"name": "all", "configMap": {"name": "special-config"}},
        {"name": "some", "secret": {"secretName": "mysecret", "defaultMode": 0o400,
                                    "items": [{"key": "username", "path": "my-group/my-username", "mode": 0o777},
                                              {"key": "password", "path": "pw"}]}},
        {"name": "missing", "configMap": {"name": "nope"}},
        {"name": "optional", "configMap": {"name": "nope", "optional": True}},
        {"name": "badkey", "secret": {"secretName": "mysecret", "items": [{"key": "token", "path": "t"}]}},
    ])
    vols = {v.name: v for v in pod.spec.volumes}
    assert volume_files(vols["all"], "default", OBJECTS.lookup) == (
        FileSpec("1starts-digit", b"x", 0o644), FileSpec("SPECIAL_LEVEL", b"very", 0o644),
        FileSpec("SPECIAL_TYPE", b"charm", 0o644))
    assert volume_files(vols["some"], "default", OBJECTS.lookup) == (
        FileSpec("my-group/my-username", b"admin", 0o777), FileSpec("pw", SECRET_VALUE.encode(), 0o400))
    assert volume_files(vols["optional"], "default", OBJECTS.lookup) == ()
    with pytest.raises(VolumeFilesError, match='volume "missing": configmap "nope" not found'):
        volume_files(vols["missing"], "default", OBJECTS.lookup)
    with pytest.raises(VolumeFilesError) as info:
        volume_files(vols["badkey"], "default", OBJECTS.lookup)
    assert "'token' not found in Secret default/mysecret" in str(info.value)
    assert SECRET_VALUE not in str(info.value)


def test_binds_of_config_volumes_and_sub_paths():
    pod = pod_with({"volumeMounts": [{"name": "cfg", "mountPath": "/etc/config"},
                                     {"name": "cfg", "mountPath": "/etc/level", "subPath": "SPECIAL_LEVEL"}]},
                   [{"name": "cfg", "configMap": {"name": "special-config"}}])
    plan = plans.app_plan(pod, pod.spec.containers[0], "n1", "h", "infra", RuntimeConfig(config_volume_dir="/shm/v"),
                          restart_count=0, crash_streak=0, started_at=0.0, lookup=OBJECTS.lookup)
    assert plan.host_config_kwargs["binds"] == ["/shm/v/n1/u1/cfg:/etc/config:ro",
                                                "/shm/v/n1/u1/cfg/SPECIAL_LEVEL:/etc/level:ro"]


def test_atomic_writer_swaps_versions(tmp_path):
    target = str(tmp_path / "vol")
    first = (FileSpec("a", b"1", 0o644), FileSpec("dir/b", b"2", 0o400))
    assert projected_dir.write_files(target, first) is True
    assert projected_dir.write_files(target, first) is False  # unchanged: nothing rewritten
    version_one = os.readlink(os.path.join(target, "..data"))
    with open(os.path.join(target, "a"), "rb") as f:
        assert f.read() == b"1"
    assert oct(os.stat(os.path.join(target, "dir", "b")).st_mode & 0o777) == oct(0o400)
    second = (FileSpec("a", b"one", 0o644), FileSpec("c", b"3", 0o600))
    assert projected_dir.write_files(target, second) is True
    assert projected_dir.current_files(target) == second
    version_two = os.readlink(os.path.join(target, "..data"))
    assert version_two != version_one
    assert os.path.exists(os.path.join(target, version_one))  # kept for readers until the next update
    projected_dir.write_files(target, first)
    assert not os.path.exists(os.path.join(target, version_one))  # then gone
    assert os.path.exists(os.path.join(target, version_two))
    projected_dir.write_files(target, second)
    assert sorted(n for n in os.listdir(target) if not n.startswith("..")) == ["a", "c"]  # dir/ left with its key
    with open(os.path.join(target, "a"), "rb") as f:
        assert f.read() == b"one"


def test_config_objects_notify_on_change():
    objects = ConfigObjects()
    doc = admit_config_map({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}})
    objects.put(doc)
    assert objects.version == 1 and objects.lookup("ConfigMap", "default", "x") == {"k": b"v"}
    objects.put(doc)
    assert objects.version == 1  # the same document: no change
    objects.remove("ConfigMap", "default", "x")
    assert objects.version == 2 and objects.lookup("ConfigMap", "default", "x") is None


def test_fs_group_owns_and_reads_the_files(tmp_path):
    pod = pod_with({}, [{"name": "s", "secret": {"secretName": "mysecret", "defaultMode": 0o400}}])
    files = volume_files(pod.spec.volumes[0], "default", OBJECTS.lookup, fs_group=2000)
    assert {(f.path, f.mode, f.gid) for f in files} == {("password", 0o440, 2000), ("username", 0o440, 2000)}
    target = str(tmp_path / "vol")
    assert projected_dir.write_files(target, files) is True
    assert os.stat(os.path.join(target, "password")).st_gid == 2000
    assert projected_dir.write_files(target, files) is False


def test_a_reader_never_sees_a_partial_or_missing_file(tmp_path):
    import threading
    import time

    target = str(tmp_path / "vol")
    versions = [(FileSpec("a", b"1" * 65536, 0o644),), (FileSpec("a", b"2" * 65536, 0o644),)]
    projected_dir.write_files(target, versions[0])
    stop = threading.Event()
    seen: set[bytes] = set()
    problems: list[str] = []

    def read() -> None:
        while not stop.is_set():
            try:
                with open(os.path.join(target, "a"), "rb") as f:
                    data = f.read()
            except OSError as exc:
                problems.append(repr(exc))
                continue
            if data not in (versions[0][0].data, versions[1][0].data):
                problems.append(f"partial: {len(data)} bytes")
            seen.add(data[:1])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(100):  # updates come seconds apart in life; 10 ms apart here
            projected_dir.write_files(target, versions[(i + 1) % 2])
            time.sleep(0.01)
    finally:
        stop.set()
        reader.join()
    assert problems == []
    assert seen == {b"1", b"2"}
