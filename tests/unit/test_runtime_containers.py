"""Pure translation of a Pod into Docker create arguments, static Pod uids, node resources."""

from __future__ import annotations

import pytest

from agent.runtime import containers as plans
from agent.runtime.config import RuntimeConfig
from agent.runtime.node_resources import allocatable_of
from agent.runtime.worker_state import parse_docker_time, pod_started_at
from agent.runtime.source import InMemorySource, static_pod_uid
from agent.state.pod import (
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HostPathVolumeSource, ObjectMeta, Pod, PodSpec,
    ResourceRequirements, Volume, VolumeMount,
)
from agent.state.quantity import parse_quantity

CFG = RuntimeConfig()


def pod() -> Pod:
    web = Container(
        name="web", image="busybox:local", command=("httpd",), args=("-f", "-p", "80"),
        env=(EnvVar("A", "1"),),
        ports=(ContainerPort(container_port=80, host_port=8080), ContainerPort(container_port=53, host_port=5353,
                                                                               protocol="UDP"),
               ContainerPort(container_port=9000)),
        resources=ResourceRequirements(requests={"cpu": parse_quantity("100m")},
                                       limits={"cpu": parse_quantity("1500m"), "memory": parse_quantity("128Mi")}),
        volume_mounts=(VolumeMount("cache", "/cache"), VolumeMount("etc", "/host-etc", read_only=True)),
    )
    return Pod(
        metadata=ObjectMeta(name="web-1", namespace="prod", uid="0123456789abcdef"),
        spec=PodSpec(containers=(web,), restart_policy="Always", termination_grace_period_seconds=7,
                     volumes=(Volume("cache", empty_dir=EmptyDirVolumeSource(medium="Memory",
                                                                             size_limit=parse_quantity("16Mi"))),
                              Volume("etc", host_path=HostPathVolumeSource("/etc")))),
    )


def test_infra_container_holds_network_and_publishes_host_ports() -> None:
    plan = plans.infra_plan(pod(), "node-a", "hash1", CFG, started_at=1700000000.25)
    assert plan.create_kwargs["image"] == CFG.infra_image
    assert list(plan.create_kwargs["command"]) == list(CFG.infra_command)
    assert plan.host_config_kwargs["network_mode"] == "bridge"
    assert plan.host_config_kwargs["port_bindings"] == {80: 8080, "53/udp": 5353}
    assert plan.create_kwargs["ports"] == [80, (53, "udp")]
    assert plan.labels[plans.LABEL_ROLE] == "infra"
    assert plan.labels[plans.LABEL_NODE] == "node-a"
    assert plan.labels[plans.LABEL_GRACE_S] == "7"
    assert plan.labels[plans.LABEL_POD_STARTED] == "1700000000.250"


def test_app_container_joins_infra_with_limits_volumes_and_labels() -> None:
    p = pod()
    plan = plans.app_plan(p, p.spec.containers[0], "node-a", "hash1", "infra123", CFG, restart_count=4,
                          crash_streak=2, started_at=1700000000.25)
    host = plan.host_config_kwargs
    assert host["network_mode"] == "container:infra123"
    assert host["nano_cpus"] == 1_500_000_000
    assert host["cpu_shares"] == 102
    assert host["mem_limit"] == 128 * 1024 * 1024 == host["memswap_limit"]
    assert host["binds"] == [f"{plans.volume_name(p, 'cache')}:/cache:rw", "/etc:/host-etc:ro"]
    assert plan.create_kwargs["entrypoint"] == ["httpd"]
    assert plan.create_kwargs["command"] == ["-f", "-p", "80"]
    assert plan.create_kwargs["environment"] == {"A": "1"}
    labels = plan.labels
    assert labels[plans.LABEL_POD_UID] == "0123456789abcdef"
    assert labels[plans.LABEL_POD_NAME] == "web-1" and labels[plans.LABEL_POD_NAMESPACE] == "prod"
    assert labels[plans.LABEL_CONTAINER] == "web" and labels[plans.LABEL_RESTART_COUNT] == "4"
    assert labels[plans.LABEL_SPEC_HASH] == "hash1" and labels[plans.LABEL_CRASH_STREAK] == "2"
    assert labels[plans.LABEL_POD_STARTED] == "1700000000.250"
    assert plan.name.endswith("_4") and "node-a" in plan.name
    assert plan.name != plans.app_plan(p, p.spec.containers[0], "node-a", "hash1", "i", CFG,
                                       restart_count=5, crash_streak=0, started_at=0.0).name


def test_every_container_logs_with_rotation_as_configured() -> None:
    """kubelet's containerLogMaxSize / containerLogMaxFiles, as json-file's max-size / max-file."""
    config = RuntimeConfig(container_log_max_size_bytes=123_456, container_log_max_files=3)
    p = pod()
    expected = {"type": "json-file", "config": {"max-size": "123456", "max-file": "3"}}
    assert plans.infra_plan(p, "n", "h", config, started_at=0.0).host_config_kwargs["log_config"] == expected
    app = plans.app_plan(p, p.spec.containers[0], "n", "h", "i", config, restart_count=0, crash_streak=0,
                         started_at=0.0)
    assert app.host_config_kwargs["log_config"] == expected
    assert CFG.container_log_max_size_bytes == 10 * 1024 * 1024 and CFG.container_log_max_files == 5


def test_the_pod_pids_budget_is_split_between_its_containers() -> None:
    """kubelet's podPidsLimit, enforced per container: together they never exceed the budget."""
    three = Pod(metadata=ObjectMeta(name="p", uid="u"),
                spec=PodSpec(containers=tuple(Container(f"c{i}", "i") for i in range(3))))
    config = RuntimeConfig(pod_pids_limit=100)
    infra, per_app = plans.pids_limits(three, config)
    assert infra == plans.INFRA_PIDS_LIMIT
    assert infra + 3 * per_app <= 100 < infra + 3 * (per_app + 1)
    assert plans.infra_plan(three, "n", "h", config, started_at=0.0).host_config_kwargs["pids_limit"] == infra
    for c in three.spec.containers:
        plan = plans.app_plan(three, c, "n", "h", "i", config, restart_count=0, crash_streak=0, started_at=0.0)
        assert plan.host_config_kwargs["pids_limit"] == per_app
    assert plans.pids_limits(three, RuntimeConfig(pod_pids_limit=None)) == (None, None)
    with pytest.raises(plans.SpecError, match="leaves no process"):
        plans.pids_limits(three, RuntimeConfig(pod_pids_limit=plans.INFRA_PIDS_LIMIT + 2))


def test_runtime_config_refuses_limits_that_cannot_work() -> None:
    for bad in ({"container_log_max_files": 0}, {"container_log_max_size_bytes": 0}, {"pod_pids_limit": 0}):
        with pytest.raises(ValueError):
            RuntimeConfig(**bad)


def test_empty_dir_volume_plan_uses_tmpfs_for_memory_medium() -> None:
    (vol,) = plans.volume_plans(pod(), "node-a", "hash1")
    assert vol.driver_opts == {"type": "tmpfs", "device": "tmpfs", "o": f"size={16 * 1024 * 1024}"}
    assert vol.labels[plans.LABEL_POD_UID] == "0123456789abcdef"


def test_mount_of_an_undeclared_volume_is_a_spec_error() -> None:
    p = pod()
    bad = Container(name="x", image="busybox:local", volume_mounts=(VolumeMount("nope", "/x"),))
    with pytest.raises(plans.SpecError):
        plans.app_plan(p, bad, "n", "h", "i", CFG, restart_count=0, crash_streak=0, started_at=0.0)


def test_names_are_docker_safe() -> None:
    p = Pod(metadata=ObjectMeta(name="a", uid="u/1:2"), spec=PodSpec(containers=(Container("c", "i"),)))
    name = plans.container_name(p, "node with space", "c", 0)
    assert " " not in name and "/" not in name and ":" not in name


def test_static_pod_uid_is_stable_and_depends_on_spec() -> None:
    a = static_pod_uid("/etc/pods/a.yaml", "default", "a", "h1")
    assert a == static_pod_uid("/etc/pods/a.yaml", "default", "a", "h1")
    assert a != static_pod_uid("/etc/pods/a.yaml", "default", "a", "h2")
    assert a != static_pod_uid("/etc/pods/b.yaml", "default", "a", "h1")


def test_in_memory_source_requires_uids() -> None:
    with pytest.raises(ValueError):
        InMemorySource([Pod(metadata=ObjectMeta(name="a"), spec=PodSpec(containers=(Container("c", "i"),)))])


def test_allocatable_subtracts_reserve_never_below_zero() -> None:
    r = allocatable_of(2000, 8 << 30, reserved_cpu_millicores=100, reserved_memory_bytes=1 << 30)
    assert (r.allocatable_cpu_millicores, r.allocatable_memory_bytes) == (1900, 7 << 30)
    assert allocatable_of(50, 10, reserved_cpu_millicores=100, reserved_memory_bytes=20).allocatable_cpu_millicores == 0
    assert r.to_dict()["capacity"]["cpu"] == "2000m"


def test_a_found_pod_started_at_its_earliest_recorded_start_else_its_earliest_creation() -> None:
    labelled = [{"Labels": {plans.LABEL_POD_STARTED: "200.5"}, "Created": 300},
                {"Labels": {plans.LABEL_POD_STARTED: "100.25"}, "Created": 400}]
    assert pod_started_at(labelled, default=999.0) == 100.25
    unlabelled = [{"Labels": {}, "Created": 300}, {"Labels": {plans.LABEL_POD_STARTED: "garbage"}, "Created": 250}]
    assert pod_started_at(unlabelled, default=999.0) == 250.0
    assert pod_started_at([], default=999.0) == 999.0


def test_parse_docker_time() -> None:
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("1970-01-01T00:00:10.5Z") == pytest.approx(10.5)
    assert parse_docker_time("1970-01-01T00:00:10.123456789Z") == pytest.approx(10.123456789)


def test_host_path_types_are_checked_or_created(tmp_path) -> None:
    """Kubernetes docs, "Volumes: hostPath types"."""
    from agent.runtime.host_paths import host_path_problems, prepare_host_path

    (tmp_path / "f").write_text("x")
    assert prepare_host_path(str(tmp_path), "Directory") is None
    assert prepare_host_path(str(tmp_path / "f"), "File") is None
    assert "not a Directory" in prepare_host_path(str(tmp_path / "f"), "Directory")
    assert "No such file" in prepare_host_path(str(tmp_path / "missing"), "File")
    assert prepare_host_path(str(tmp_path / "new" / "dir"), "DirectoryOrCreate") is None
    assert (tmp_path / "new" / "dir").is_dir()
    assert prepare_host_path(str(tmp_path / "new" / "file"), "FileOrCreate") is None
    assert (tmp_path / "new" / "file").is_file()
    assert "not a file" in prepare_host_path(str(tmp_path / "new" / "dir"), "FileOrCreate")
    assert prepare_host_path(str(tmp_path / "anything"), "") is None
    pod = Pod(metadata=ObjectMeta(name="p", uid="u"),
              spec=PodSpec(containers=(Container("c", "i"),),
                           volumes=(Volume("h", host_path=HostPathVolumeSource(str(tmp_path / "nope"), "Directory")),)))
    (problem,) = host_path_problems(pod)
    assert problem.startswith("spec.volumes[h].hostPath:")
