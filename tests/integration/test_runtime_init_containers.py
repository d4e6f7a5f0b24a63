"""Init containers and native sidecars on the real Docker engine: order, failures, statuses."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
import trio

from agent.runtime.status import Running, Terminated, Waiting
from agent.state.manifest import load_manifests
from agent.state.pod import EmptyDirVolumeSource, Probe, TCPSocketAction, Volume, VolumeMount
from tests.integration.conftest import Harness, container_state, make_pod, sh

pytestmark = pytest.mark.docker


def with_init(pod, *init_containers):
    return replace(pod, spec=replace(pod.spec, init_containers=init_containers, termination_grace_period_seconds=1))


def from_yaml(text: str):
    (pod,) = load_manifests(text)
    return pod.with_uid(uuid.uuid4().hex)


# From the Kubernetes documentation ("Init Containers", the myapp-pod example), images
# replaced: the init containers wait for Services this node cannot resolve, so the Pod
# stays initializing and the app container must never start.
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
    command: ['sh', '-c', "until nslookup -timeout=1 myservice.default.svc.cluster.local; do echo waiting for myservice; sleep 0.2; done"]
  - name: init-mydb
    image: busybox:local
    command: ['sh', '-c', "until nslookup -timeout=1 mydb.default.svc.cluster.local; do echo waiting for mydb; sleep 0.2; done"]
"""

# From the Kubernetes documentation ("Sidecar Containers", the Deployment's Pod template),
# images replaced.
SIDECAR_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: myapp
  labels:
    app: myapp
spec:
  containers:
    - name: myapp
      image: busybox:local
      command: ['sh', '-c', 'while true; do echo "logging" >> /opt/logs.txt; sleep 1; done']
      volumeMounts:
        - name: data
          mountPath: /opt
  initContainers:
    - name: logshipper
      image: busybox:local
      restartPolicy: Always
      command: ['sh', '-c', 'tail -F /opt/logs.txt']
      volumeMounts:
        - name: data
          mountPath: /opt
  volumes:
    - name: data
      emptyDir: {}
"""


async def test_documented_init_example_blocks_the_app(harness: Harness) -> None:
    await harness.start()
    pod = from_yaml(MYAPP_POD)
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: isinstance(container_state(s, "init-myservice"), Running),
                                    what="first init container running")
    status = await harness.holds(pod, lambda s: s.reason == "Init:0/2" and s.phase == "Pending", for_s=1.5,
                                 what="Init:0/2")
    assert isinstance(container_state(status, "init-mydb"), Waiting)
    assert container_state(status, "myapp-container") == Waiting("PodInitializing")
    d = status.to_dict()
    assert [c["name"] for c in d["initContainerStatuses"]] == ["init-myservice", "init-mydb"]
    assert {c["type"]: c["status"] for c in d["conditions"]}["Initialized"] == "False"


async def test_init_containers_run_in_order_before_the_app(harness: Harness) -> None:
    await harness.start()
    mount = (VolumeMount(name="work", mount_path="/work"),)
    first = sh("first", "sleep 0.5; echo one >> /work/order", volume_mounts=mount)
    second = sh("second", "test \"$(cat /work/order)\" = one && echo two >> /work/order", volume_mounts=mount)
    app = sh("app", "test \"$(cat /work/order | tr '\\n' ' ')\" = 'one two ' || exit 3; sleep 1000",
             volume_mounts=mount)
    pod = make_pod("ordered", app, volumes=(Volume(name="work", empty_dir=EmptyDirVolumeSource()),))
    pod = with_init(pod, first, second)
    harness.source.set_pods([pod])
    seen = set()

    def check(s):
        seen.add(s.reason)
        return s.phase == "Running" and s.ready

    status = await harness.wait_for(pod, check, what="running after init")
    assert "Init:0/2" in seen
    assert status.reason is None
    for name in ("first", "second"):
        state = container_state(status, name)
        assert isinstance(state, Terminated) and state.exit_code == 0 and state.reason == "Completed", state
    assert status.container("app").restart_count == 0
    assert {c.type: c.status for c in status.conditions}["Initialized"] is True


async def test_failing_init_container_is_retried_with_backoff(harness: Harness) -> None:
    await harness.start()
    pod = make_pod("initfail", sh("app", "sleep 1000"), restart_policy="Always")
    pod = with_init(pod, sh("boom", "exit 2"))
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: s.container("boom").restart_count >= 2
                                    and s.reason == "Init:CrashLoopBackOff", what="Init:CrashLoopBackOff")
    assert status.phase == "Pending"
    assert status.container("boom").last_state.exit_code == 2
    assert container_state(status, "app") == Waiting("PodInitializing")


async def test_failing_init_container_fails_a_never_pod(harness: Harness) -> None:
    await harness.start()
    pod = make_pod("initnever", sh("app", "sleep 1000"), restart_policy="Never")
    pod = with_init(pod, sh("boom", "exit 2"))
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: s.phase == "Failed", what="Failed")
    assert status.reason == "Init:Error"
    state = container_state(status, "boom")
    assert isinstance(state, Terminated) and state.exit_code == 2
    status = await harness.holds(pod, lambda s: s.container("boom").restart_count == 0
                                 and s.container("app").container_id is None, for_s=1.0, what="no retry, no app")


async def test_sidecar_serves_the_app_over_localhost_before_it_starts(harness: Harness) -> None:
    await harness.start()
    sidecar = sh("proxy", "mkdir -p /www && echo from-sidecar > /www/index.html && sleep 0.5 && httpd -f -p 8080 -h /www",
                 restart_policy="Always",
                 startup_probe=Probe(tcp_socket=TCPSocketAction(port=8080), period_seconds=1, failure_threshold=30))
    # One try, no retry: the sidecar must already serve when the app starts.
    app = sh("app", "wget -q -O - http://127.0.0.1:8080/index.html | grep -q from-sidecar || exit 4; sleep 1000")
    pod = make_pod("sidecar", app, grace_s=1)
    pod = with_init(pod, sidecar)
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: s.phase == "Running" and s.ready, what="Ready")
    assert isinstance(container_state(status, "proxy"), Running)
    assert status.container("proxy").started
    assert status.container("app").restart_count == 0
    assert status.reason is None


async def test_documented_sidecar_runs_beside_the_app_and_restarts(harness: Harness, docker_client) -> None:
    await harness.start()
    pod = from_yaml(SIDECAR_POD)
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: s.phase == "Running" and s.ready, what="Ready")
    shipper = status.container("logshipper")
    assert isinstance(shipper.state, Running)
    # It ships what the app writes: the app's lines show in the sidecar's output.
    with trio.fail_after(10):
        while b"logging" not in docker_client.containers.get(shipper.container_id).logs():
            await trio.sleep(0.1)
    # The sidecar exits: it is restarted, whatever the Pod's policy says of app containers.
    docker_client.containers.get(shipper.container_id).kill()
    status = await harness.wait_for(pod, lambda s: s.container("logshipper").restart_count >= 1
                                    and isinstance(container_state(s, "logshipper"), Running), what="restarted")
    assert status.container("myapp").restart_count == 0


async def test_sidecar_is_stopped_when_the_app_completes(harness: Harness) -> None:
    await harness.start()
    sidecar = sh("helper", "trap 'exit 0' TERM; while :; do sleep 0.1; done", restart_policy="Always")
    pod = make_pod("job", sh("work", "sleep 0.5; exit 0"), restart_policy="Never")
    pod = with_init(pod, sidecar)
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: s.phase == "Succeeded"
                                    and isinstance(container_state(s, "helper"), Terminated), what="Succeeded")
    assert status.container("helper").restart_count == 0


async def test_sidecar_is_stopped_after_the_app_when_the_pod_stops(harness: Harness, tmp_path) -> None:
    from agent.state.pod import HostPathVolumeSource

    tmp_path.chmod(0o777)
    await harness.start()
    mount = (VolumeMount(name="out", mount_path="/out"),)
    sidecar = sh("helper", "trap 'echo sidecar >> /out/log; exit 0' TERM; while :; do sleep 0.1; done",
                 restart_policy="Always", volume_mounts=mount)
    app = sh("app", "trap 'sleep 0.5; echo app >> /out/log; exit 0' TERM; while :; do sleep 0.1; done",
             volume_mounts=mount)
    pod = make_pod("stoporder", app, volumes=(Volume(name="out", host_path=HostPathVolumeSource(path=str(tmp_path))),))
    pod = with_init(pod, sidecar)
    harness.source.set_pods([pod])
    await harness.wait_for(pod, lambda s: s.phase == "Running" and s.ready, what="Ready")
    harness.source.set_pods([])
    log = tmp_path / "log"
    with trio.fail_after(15):
        while "sidecar" not in (log.read_text() if log.exists() else ""):
            await trio.sleep(0.05)
    assert log.read_text().split() == ["app", "sidecar"]


async def test_restarted_runtime_adopts_an_initialized_pod_without_rerunning_init(harness: Harness) -> None:
    await harness.start()
    mount = (VolumeMount(name="work", mount_path="/work"),)
    setup = sh("setup", "echo ran >> /work/setups", volume_mounts=mount)
    helper = sh("helper", "exec sleep 1000", restart_policy="Always")
    app = sh("app", "exec sleep 1000", volume_mounts=mount)
    pod = with_init(make_pod("adopt-init", app, volumes=(Volume(name="work", empty_dir=EmptyDirVolumeSource()),)),
                    setup, helper)
    harness.source.set_pods([pod])
    before = await harness.wait_for(pod, lambda s: s.phase == "Running" and s.ready, what="Ready")
    await harness.stop()
    harness2 = Harness(harness.nursery, harness.node_name)
    harness2.source = harness.source
    await harness2.start()
    await harness2.wait_for(pod, lambda s: s.phase == "Running" and s.ready, what="adopted and Ready")
    after = await harness2.holds(pod, lambda s: s.ready and s.reason is None, for_s=1.0, what="stays Ready")
    for name in ("app", "helper"):
        assert after.container(name).container_id == before.container(name).container_id, name
        assert after.container(name).restart_count == 0
    setup_state = container_state(after, "setup")
    assert isinstance(setup_state, Terminated) and setup_state.exit_code == 0
    assert setup_state.container_id == container_state(before, "setup").container_id
    assert {c.type: c.status for c in after.conditions}["Initialized"] is True
