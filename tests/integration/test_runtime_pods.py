"""Pods on the real Docker engine: start, networking, volumes, limits, ports, removal."""

from __future__ import annotations

import pytest
import trio

from agent.runtime.containers import LABEL_NODE
from agent.runtime.status import Running, Terminated
from tests.integration.conftest import Harness, container_state, in_thread, make_pod, sh, wait_until

pytestmark = pytest.mark.docker


def running(name: str):
    return lambda s: isinstance(container_state(s, name), Running)


async def test_pod_starts_and_reports_running_with_ip(harness: Harness, docker_client) -> None:
    import psutil

    runtime = await harness.start()
    resources = runtime.node_resources()
    assert resources.capacity_cpu_millicores == psutil.cpu_count() * 1000
    assert resources.capacity_memory_bytes == psutil.virtual_memory().total
    assert resources.allocatable_memory_bytes == resources.capacity_memory_bytes - harness.config.reserved_memory_bytes
    pod = make_pod("web", sh("main", "sleep 1000"))
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: s.phase == "Running" and s.ready, what="Running and Ready")
    assert status.pod_ip and status.pod_ip.count(".") == 3
    assert status.host_ip
    assert status.container("main").restart_count == 0
    d = status.to_dict()
    assert d["phase"] == "Running" and d["podIP"] == status.pod_ip
    assert "running" in d["containerStatuses"][0]["state"]
    assert {c["type"]: c["status"] for c in d["conditions"]}["Ready"] == "True"
    labels = {c.labels.get("agentd.role") for c in docker_client.containers.list(
        filters={"label": f"{LABEL_NODE}={harness.node_name}"})}
    assert labels == {"infra", "app"}


async def test_containers_of_a_pod_talk_over_localhost(harness: Harness) -> None:
    await harness.start()
    server = sh("server", "mkdir -p /www && echo hello-from-server > /www/index.html && httpd -f -p 8080 -h /www")
    client = sh("client", "for i in $(seq 100); do wget -q -O - http://127.0.0.1:8080/index.html"
                          " | grep -q hello-from-server && exit 0; sleep 0.1; done; exit 1")
    pod = make_pod("pair", server, client, restart_policy="Never")
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: isinstance(container_state(s, "client"), Terminated),
                                    what="client done")
    state = container_state(status, "client")
    assert state.exit_code == 0, state
    assert isinstance(container_state(status, "server"), Running)
    assert status.phase == "Running"


async def test_empty_dir_is_shared_between_containers(harness: Harness) -> None:
    from agent.state.pod import EmptyDirVolumeSource, Volume, VolumeMount

    await harness.start()
    mount = (VolumeMount(name="scratch", mount_path="/data"),)
    writer = sh("writer", "echo shared-bytes > /data/f && sleep 1000", volume_mounts=mount)
    reader = sh("reader", "for i in $(seq 100); do grep -q shared-bytes /data/f 2>/dev/null && exit 0; sleep 0.1;"
                          " done; exit 1", volume_mounts=mount)
    pod = make_pod("shared", writer, reader, restart_policy="Never",
                   volumes=(Volume(name="scratch", empty_dir=EmptyDirVolumeSource()),))
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: isinstance(container_state(s, "reader"), Terminated),
                                    what="reader done")
    assert container_state(status, "reader").exit_code == 0


async def test_host_path_is_visible_and_limits_are_applied(harness: Harness, docker_client, tmp_path) -> None:
    from agent.state.pod import HostPathVolumeSource, ResourceRequirements, Volume, VolumeMount
    from agent.state.quantity import parse_quantity

    (tmp_path / "greeting").write_text("hello-host\n")
    await harness.start()
    c = sh("main", "grep -q hello-host /host/greeting && echo written-by-pod > /host/out && sleep 1000",
           volume_mounts=(VolumeMount(name="h", mount_path="/host"),),
           resources=ResourceRequirements(requests={"cpu": parse_quantity("250m")},
                                          limits={"cpu": parse_quantity("500m"), "memory": parse_quantity("64Mi")}))
    pod = make_pod("hostpath", c, volumes=(Volume(name="h", host_path=HostPathVolumeSource(path=str(tmp_path))),))
    harness.source.set_pods([pod])
    await harness.wait_for(pod, running("main"), what="running")
    with trio.fail_after(10):
        while not (tmp_path / "out").exists():
            await trio.sleep(0.05)
    assert (tmp_path / "out").read_text() == "written-by-pod\n"
    app = (await in_thread(lambda: docker_client.containers.list(
        filters={"label": [f"{LABEL_NODE}={harness.node_name}", "agentd.role=app"]})))[0]
    host = app.attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["CpuShares"] == 256
    assert host["NetworkMode"].startswith("container:")


async def test_host_port_is_published(harness: Harness, docker_client) -> None:
    import socket

    from agent.state.pod import ContainerPort

    with socket.socket() as s:  # a free port on this host
        s.bind(("0.0.0.0", 0))
        host_port = s.getsockname()[1]
    await harness.start()
    c = sh("web", "mkdir -p /www && echo published > /www/index.html && httpd -f -p 8080 -h /www",
           ports=(ContainerPort(container_port=8080, host_port=host_port),))
    pod = make_pod("ports", c)
    harness.source.set_pods([pod])
    await harness.wait_for(pod, running("web"), what="running")
    body = b""
    with trio.fail_after(10):
        while b"published" not in body:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", host_port)
                async with stream:
                    await stream.send_all(b"GET /index.html HTTP/1.0\r\n\r\n")
                    body = b""
                    while chunk := await stream.receive_some(4096):
                        body += chunk
            except (OSError, trio.BrokenResourceError):  # docker-proxy may accept before httpd listens
                pass
            if b"published" not in body:
                await trio.sleep(0.1)
    infra = (await in_thread(lambda: docker_client.containers.list(
        filters={"label": [f"{LABEL_NODE}={harness.node_name}", "agentd.role=infra"]})))[0]
    assert infra.attrs["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] == str(host_port)


def _our_containers(docker_client, node: str) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"})


async def test_removed_pod_gets_sigterm_then_sigkill_after_grace(harness: Harness, docker_client, tmp_path) -> None:
    from agent.state.pod import EmptyDirVolumeSource, HostPathVolumeSource, Volume, VolumeMount

    await harness.start()
    mount = (VolumeMount(name="h", mount_path="/host"),)
    vol = (Volume(name="h", host_path=HostPathVolumeSource(path=str(tmp_path))),)
    polite = make_pod("polite", sh("main", "trap 'echo got-term > /host/polite; exit 0' TERM;"
                                           " touch /host/polite-trapped; while :; do sleep 0.1; done",
                                   volume_mounts=(*mount, VolumeMount(name="scratch", mount_path="/scratch"))),
                      volumes=(*vol, Volume(name="scratch", empty_dir=EmptyDirVolumeSource())), grace_s=10)
    stubborn = make_pod("stubborn", sh("main", "trap '' TERM; echo up > /host/stubborn; while :; do sleep 0.1; done",
                                       volume_mounts=mount), volumes=vol, grace_s=2)
    harness.source.set_pods([polite, stubborn])
    for pod in (polite, stubborn):
        await harness.wait_for(pod, running("main"), what="running")
    await wait_until(lambda: (tmp_path / "stubborn").exists() and (tmp_path / "polite-trapped").exists(),
                     what="both shells' traps installed")
    label = f"{LABEL_NODE}={harness.node_name}"
    assert len(await in_thread(lambda: docker_client.volumes.list(filters={"label": label}))) == 1  # the emptyDir
    t0 = trio.current_time()
    harness.source.set_pods([])
    assert harness.runtime is not None
    gone = {}
    with trio.fail_after(15):
        while len(gone) < 2:
            for pod in (polite, stubborn):
                if pod.metadata.uid not in gone and harness.status(pod) is None:
                    gone[pod.metadata.uid] = trio.current_time() - t0
            await trio.sleep(0.02)
    assert (tmp_path / "polite").read_text() == "got-term\n"
    assert gone[polite.metadata.uid] < 2.0, gone  # exited on SIGTERM, long before its 10 s grace
    assert gone[stubborn.metadata.uid] >= 2.0, gone  # ignored SIGTERM: killed after its 2 s grace
    assert await in_thread(_our_containers, docker_client, harness.node_name) == []
    volumes = await in_thread(lambda: docker_client.volumes.list(filters={"label": f"{LABEL_NODE}={harness.node_name}"}))
    assert volumes == []


async def test_orphan_containers_of_our_node_are_removed(harness: Harness, docker_client) -> None:
    from agent.runtime import containers as plans

    labels = {plans.LABEL_NODE: harness.node_name, plans.LABEL_POD_UID: "orphan-uid", plans.LABEL_ROLE: "app",
              plans.LABEL_CONTAINER: "x", plans.LABEL_GRACE_S: "1", plans.LABEL_POD_NAME: "gone",
              plans.LABEL_POD_NAMESPACE: "default"}
    orphan = await in_thread(lambda: docker_client.containers.run(
        "busybox:local", ["sleep", "1000"], labels=labels, detach=True))
    other_node = await in_thread(lambda: docker_client.containers.run(
        "busybox:local", ["sleep", "1000"], labels={**labels, plans.LABEL_NODE: harness.node_name + "-other"},
        detach=True))
    try:
        await harness.start()
        keep = make_pod("keep", sh("main", "sleep 1000"))
        harness.source.set_pods([keep])
        await harness.wait_for(keep, running("main"), what="running")
        with trio.fail_after(10):
            while any(c.id == orphan.id for c in await in_thread(_our_containers, docker_client, harness.node_name)):
                await trio.sleep(0.1)
        # A container of another node is never ours to remove.
        other_node.reload()
        assert other_node.status == "running"
    finally:
        await in_thread(lambda: other_node.remove(force=True))


async def test_restarted_runtime_adopts_pods_without_restarting_them(harness: Harness, docker_client) -> None:
    from agent.state.pod import EmptyDirVolumeSource, Volume, VolumeMount

    await harness.start()
    once = sh("main", "if [ ! -f /data/once ]; then touch /data/once; exit 1; fi; sleep 1000",
              volume_mounts=(VolumeMount(name="d", mount_path="/data"),))
    pod = make_pod("adoptee", once, volumes=(Volume(name="d", empty_dir=EmptyDirVolumeSource()),))
    harness.source.set_pods([pod])
    before = await harness.wait_for(pod, lambda s: running("main")(s) and s.container("main").restart_count == 1,
                                    what="running after one restart")
    containers_before = {c.id: c.attrs["State"]["StartedAt"]
                         for c in await in_thread(_our_containers, docker_client, harness.node_name)
                         if c.status == "running"}
    await harness.stop()
    harness2 = Harness(harness.nursery, harness.node_name)
    harness2.source = harness.source
    await harness2.start()
    after = await harness2.wait_for(pod, lambda s: running("main")(s) and s.ready, what="adopted and running")
    # Adopted, not restarted: the same instance keeps running while the new runtime settles.
    after = await harness2.holds(pod, lambda s: running("main")(s) and s.container("main").restart_count == 1,
                                 for_s=1.0, what="the adopted container keeps running")
    assert after.start_time == pytest.approx(before.start_time, abs=0.001)  # the Pod's own age, not the agent's
    assert after.pod_ip == before.pod_ip
    assert after.container("main").last_state is not None and after.container("main").last_state.exit_code == 1
    containers_after = {c.id: c.attrs["State"]["StartedAt"]
                        for c in await in_thread(_our_containers, docker_client, harness.node_name)
                        if c.status == "running"}
    assert containers_after == containers_before


async def test_host_path_of_the_wrong_type_waits_until_it_is_right(harness: Harness, tmp_path) -> None:
    from agent.state.pod import HostPathVolumeSource, Volume, VolumeMount

    await harness.start()
    target = tmp_path / "later"
    c = sh("main", "sleep 1000", volume_mounts=(VolumeMount(name="h", mount_path="/h"),))
    pod = make_pod("typed", c, volumes=(Volume(name="h", host_path=HostPathVolumeSource(str(target), "Directory")),))
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, lambda s: "hostPath" in (getattr(container_state(s, "main"), "message", "") or ""),
                               what="a hostPath problem in the status")
    assert container_state(s, "main").reason == "ContainerCreating" and s.phase == "Pending"
    target.mkdir()
    await harness.wait_for(pod, running("main"), timeout_s=15, what="running once the directory exists")


async def test_one_pod_per_namespace_and_name(harness: Harness, docker_client) -> None:
    """Two desired uids with one namespace/name: one runs, the other is rejected; a re-created Pod
    (a new uid) starts only once its predecessor's containers are gone."""
    runtime = await harness.start()
    first = make_pod("web", sh("main", "trap '' TERM; while :; do sleep 0.1; done"), uid="uid-a", grace_s=2)
    twin = make_pod("web", sh("main", "sleep 1000"), uid="uid-b")
    harness.source.set_pods([first, twin])
    await harness.wait_for(first, running("main"), what="the smallest uid runs")
    assert harness.status(twin) is None
    assert "uid-a" in runtime.rejected["uid-b"]

    successor = make_pod("web", sh("main", "sleep 1000"), uid="uid-c")
    harness.source.set_pods([successor])  # deleted and re-created under the same name
    await harness.wait_for(successor, running("main"), timeout_s=20, what="the successor runs")
    uids = {c.labels["agentd.pod.uid"]
            for c in await in_thread(_our_containers, docker_client, harness.node_name)}
    assert uids == {"uid-c"}  # the predecessor ignored SIGTERM for its 2 s grace, and was gone first
    assert runtime.rejected == {}
    found, _ = runtime.find("default", "web")
    assert found.metadata.uid == "uid-c"


async def test_a_pod_whose_host_port_is_held_by_a_terminating_pod_starts_once_that_one_is_gone(
        harness: Harness, docker_client) -> None:
    """The cluster forgets a deleted Pod at once, so the Pod that replaces it may come to
    this node while it still stops (here: SIGTERM ignored, 2 s grace) holding its hostPort.
    The new one waits for it instead of failing to bind the port."""
    import socket

    from agent.state.pod import ContainerPort

    with socket.socket() as s:  # a free port on this host
        s.bind(("0.0.0.0", 0))
        host_port = s.getsockname()[1]
    runtime = await harness.start()
    port = (ContainerPort(container_port=8080, host_port=host_port),)
    old = make_pod("old", sh("main", "trap '' TERM; while :; do sleep 0.1; done", ports=port), grace_s=2)
    harness.source.set_pods([old])
    await harness.wait_for(old, running("main"), what="the first Pod runs")
    new = make_pod("new", sh("main", "sleep 1000", ports=port))
    harness.source.set_pods([new])
    messages = []
    with trio.fail_after(20):
        while True:
            status = harness.status(new)
            state = container_state(status, "main") if status is not None else None
            if getattr(state, "message", None):
                messages.append(state.message)
            if status is not None and running("main")(status):
                break
            await trio.sleep(0.02)
    assert not [m for m in messages if "allocated" in m or "sandbox" in m], messages
    uids = {c.labels["agentd.pod.uid"] for c in await in_thread(_our_containers, docker_client, harness.node_name)}
    assert uids == {new.metadata.uid}
    assert runtime.statuses()[new.metadata.uid].container_statuses[0].restart_count == 0


async def test_a_slow_subscriber_reads_the_last_state_of_every_pod(harness: Harness) -> None:
    """A subscriber that reads nothing while Pods start, finish and go still gets each Pod's last state."""
    runtime = await harness.start()
    slow = runtime.subscribe()
    pods = [make_pod(f"steady-{i}", sh("main", "sleep 1000")) for i in range(3)]
    done = make_pod("done", sh("main", "exit 0"), restart_policy="Never")
    harness.source.set_pods([*pods, done])
    for pod in pods:
        await harness.wait_for(pod, running("main"), what="running")
    await harness.wait_for(done, lambda s: s.phase == "Succeeded", what="Succeeded")
    harness.source.set_pods(pods)
    await wait_until(lambda: done.metadata.uid not in runtime.statuses(), what="the finished Pod removed")
    latest = {s.uid: s for s in await slow.receive_batch()}
    assert latest[done.metadata.uid].deleted and latest[done.metadata.uid].phase == "Succeeded"
    assert {uid: s for uid, s in latest.items() if not s.deleted} == runtime.statuses()
