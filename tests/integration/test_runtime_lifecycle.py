"""Lifecycle hooks on the real Docker engine: postStart before Running, a failed
postStart kills the container, preStop runs before SIGTERM."""

from __future__ import annotations

import pytest
import trio

from agent.runtime.status import Running
from agent.state.pod import (
    ExecAction, HostPathVolumeSource, HTTPGetAction, Lifecycle, LifecycleHandler, Volume, VolumeMount,
)
from tests.integration.conftest import Harness, container_state, make_pod, sh

pytestmark = pytest.mark.docker


def hook(*command: str) -> LifecycleHandler:
    return LifecycleHandler(exec=ExecAction(command=command))


async def test_post_start_runs_before_the_container_counts_as_running(harness: Harness) -> None:
    await harness.start()
    c = sh("main", "for i in $(seq 100); do test -f /tmp/hooked && exec sleep 1000; sleep 0.05; done; exit 5",
           lifecycle=Lifecycle(post_start=hook("sh", "-c", "echo yes > /tmp/hooked")))
    pod = make_pod("poststart", c, grace_s=1)
    harness.source.set_pods([pod])
    await harness.wait_for(pod, lambda s: s.ready, what="ready")
    await harness.holds(pod, lambda s: s.container("main").restart_count == 0, for_s=0.5, what="no restart")


async def test_failed_post_start_kills_the_container(harness: Harness) -> None:
    await harness.start()
    c = sh("main", "sleep 1000", lifecycle=Lifecycle(post_start=hook("sh", "-c", "exit 7")))
    pod = make_pod("poststartfail", c, grace_s=1)
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: s.container("main").restart_count >= 1
                                    and s.container("main").last_state is not None, what="restarted")
    last = status.container("main").last_state
    assert last.reason == "Error"
    assert last.message.startswith("FailedPostStartHook: exec ['sh', '-c', 'exit 7'] exited with 7"), last
    assert not status.container("main").ready


async def test_failed_http_post_start_kills_the_container(harness: Harness) -> None:
    await harness.start()
    c = sh("main", "sleep 1000", lifecycle=Lifecycle(post_start=LifecycleHandler(
        http_get=HTTPGetAction(port=9, path="/"))))
    pod = make_pod("poststarthttp", c, grace_s=1)
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: s.container("main").last_state is not None, what="killed")
    assert status.container("main").last_state.message.startswith("FailedPostStartHook: ")


async def test_pre_stop_runs_before_sigterm(harness: Harness, tmp_path) -> None:
    tmp_path.chmod(0o777)
    await harness.start()
    mount = (VolumeMount(name="out", mount_path="/out"),)
    c = sh("main", "trap 'echo TERM >> /out/log; exit 0' TERM; while :; do sleep 0.1; done",
           volume_mounts=mount,
           lifecycle=Lifecycle(pre_stop=hook("sh", "-c", "echo preStop >> /out/log; sleep 0.3; echo done >> /out/log")))
    pod = make_pod("prestop", c, grace_s=5,
                   volumes=(Volume(name="out", host_path=HostPathVolumeSource(path=str(tmp_path))),))
    harness.source.set_pods([pod])
    await harness.wait_for(pod, lambda s: isinstance(container_state(s, "main"), Running), what="running")
    harness.source.set_pods([])
    log = tmp_path / "log"
    with trio.fail_after(15):
        while "TERM" not in (log.read_text() if log.exists() else ""):
            await trio.sleep(0.05)
    assert log.read_text().split() == ["preStop", "done", "TERM"]
