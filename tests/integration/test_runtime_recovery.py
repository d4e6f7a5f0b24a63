"""Recovery on the real engine: killed containers, a dead sandbox, a lost events stream, spec changes."""

from __future__ import annotations

import socket

import pytest
import trio

from agent.runtime import DockerApi
from agent.runtime.containers import LABEL_NODE
from agent.runtime.status import Running, Waiting
from tests.integration.conftest import Harness, container_state, in_thread, make_pod, sh, wait_until

pytestmark = pytest.mark.docker


def running(s, name="main"):
    return isinstance(container_state(s, name), Running)


def _ours(docker_client, node: str, role: str) -> list:
    return docker_client.containers.list(filters={"label": [f"{LABEL_NODE}={node}", f"agentd.role={role}"]})


async def test_killed_container_is_restarted_from_the_die_event(harness: Harness, docker_client) -> None:
    await harness.start()
    pod = make_pod("victim", sh("main", "sleep 1000"))
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, running, what="running")
    victim = s.container("main").container_id
    await in_thread(lambda: docker_client.api.kill(victim))
    s = await harness.wait_for(pod, lambda s: running(s) and s.container("main").restart_count == 1,
                               timeout_s=5, what="restarted")
    last = s.container("main").last_state
    assert last.exit_code == 137 and last.reason == "Error" and last.container_id == victim
    assert s.container("main").container_id != victim


async def test_dead_sandbox_is_recreated_and_the_app_restarted(harness: Harness, docker_client) -> None:
    await harness.start()
    pod = make_pod("sandboxed", sh("main", "sleep 1000"))
    harness.source.set_pods([pod])
    await harness.wait_for(pod, running, what="running")
    (infra,) = await in_thread(_ours, docker_client, harness.node_name, "infra")
    await in_thread(lambda: infra.kill())
    s = await harness.wait_for(pod, lambda s: running(s) and s.container("main").restart_count == 1,
                               timeout_s=10, what="running again in a new sandbox")
    (new_infra,) = await in_thread(_ours, docker_client, harness.node_name, "infra")
    assert new_infra.id != infra.id
    (app,) = await in_thread(_ours, docker_client, harness.node_name, "app")
    assert app.attrs["HostConfig"]["NetworkMode"] == f"container:{new_infra.id}"
    assert s.pod_ip


async def test_changed_spec_under_the_same_uid_replaces_the_pod(harness: Harness) -> None:
    await harness.start()
    pod = make_pod("evolving", sh("main", "sleep 1000"))
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, running, what="running")
    first = s.container("main").container_id
    from dataclasses import replace

    new_spec = replace(pod.spec, containers=(sh("main", "sleep 2000"),))
    harness.source.set_pods([replace(pod, spec=new_spec)])
    s = await harness.wait_for(pod, lambda s: running(s) and s.container("main").container_id != first,
                               timeout_s=10, what="replaced")
    assert s.container("main").restart_count == 0


async def test_absent_infra_image_is_reported_not_fatal(nursery, node_name: str) -> None:
    harness = Harness(nursery, node_name, infra_image="agentd-no-such-infra:1")
    await harness.start()
    pod = make_pod("nosandbox", sh("main", "sleep 1000"))
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, lambda s: isinstance(container_state(s, "main"), Waiting)
                               and "sandbox" in (container_state(s, "main").message or ""), what="sandbox error")
    assert s.phase == "Pending"
    assert container_state(s, "main").reason == "ErrImageNeverPull"
    # Retries (every image_backoff_base_s) keep failing, quietly: the Pod stays Pending, the runtime up.
    await harness.holds(pod, lambda s: s.phase == "Pending", for_s=2 * harness.config.image_backoff_base_s,
                        what="Pending while the sandbox image is absent")


class DockerProxy:
    """A unix-socket proxy to the engine whose connections the test can cut."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.enabled = True
        self._scopes: set[trio.CancelScope] = set()

    async def serve(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(self.path)
        sock.listen(64)
        await trio.serve_listeners(self._handle, [trio.SocketListener(sock)], task_status=task_status)

    async def _handle(self, client: trio.abc.Stream) -> None:
        if not self.enabled:
            await client.aclose()
            return
        upstream = await trio.open_unix_socket("/var/run/docker.sock")
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pipe, client, upstream, nursery)
                nursery.start_soon(self._pipe, upstream, client, nursery)
        self._scopes.discard(scope)
        await client.aclose()
        await upstream.aclose()

    @staticmethod
    async def _pipe(src: trio.abc.Stream, dst: trio.abc.Stream, nursery: trio.Nursery) -> None:
        try:
            while data := await src.receive_some(65536):
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        nursery.cancel_scope.cancel()

    def cut_all(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()


async def test_death_missed_while_the_events_stream_was_down_is_found_by_resync(
        nursery, node_name: str, docker_client, tmp_path) -> None:
    proxy = DockerProxy(str(tmp_path / "docker.sock"))
    await nursery.start(proxy.serve)
    harness = Harness(nursery, node_name, resync_interval_s=60.0)  # only the reconnect resync can save us
    runtime = await harness.start(docker=DockerApi(f"unix://{proxy.path}", threads=4, call_timeout_s=10))
    pod = make_pod("resynced", sh("main", "sleep 1000"))
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, running, what="running")
    victim = s.container("main").container_id
    proxy.enabled = False
    proxy.cut_all()  # the engine "restarts": the events stream breaks, new connections fail
    await wait_until(lambda: runtime.docker_message is not None, what="the runtime sees the engine gone")
    await in_thread(lambda: docker_client.api.kill(victim))  # its die event goes nowhere
    s = await harness.wait_for(pod, lambda s: s.phase == "Unknown", timeout_s=5, what="Unknown while unreachable")
    assert "docker" in (s.message or "")
    assert s.container("main").restart_count == 0
    proxy.enabled = True
    s = await harness.wait_for(pod, lambda s: running(s) and s.container("main").restart_count == 1,
                               timeout_s=10, what="restarted after the resync")
    assert s.container("main").last_state.container_id == victim
