"""Restart policies, CrashLoopBackOff, OOM kills, absent images and an absent engine (real Docker)."""

from __future__ import annotations

import os
import uuid

import pytest
import trio

from agent.runtime import DockerApi
from agent.runtime.status import Running, Terminated, Waiting
from agent.state.pod import Container, ResourceRequirements
from agent.state.quantity import parse_quantity
from tests.integration.conftest import Harness, container_state, in_thread, make_pod, sh

pytestmark = pytest.mark.docker


async def test_oom_killed_container_is_reported(harness: Harness) -> None:
    await harness.start()
    hog = sh("hog", "x=a; while :; do x=$x$x; done",
             resources=ResourceRequirements(limits={"memory": parse_quantity("8Mi")}))
    pod = make_pod("oom", hog, restart_policy="Never")
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: s.phase == "Failed", timeout_s=30, what="Failed")
    state = container_state(status, "hog")
    assert isinstance(state, Terminated)
    assert state.reason == "OOMKilled"
    assert state.exit_code == 137
    assert status.to_dict()["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"


async def test_crash_loop_restart_gaps_grow(harness: Harness) -> None:
    await harness.start()
    pod = make_pod("crasher", sh("main", "exit 1"))
    harness.source.set_pods([pod])
    assert harness.runtime is not None
    updates = harness.runtime.subscribe()
    seen_counts: dict[int, float] = {}
    saw_backoff = False
    t0 = trio.current_time()
    with trio.fail_after(25):
        async for status in updates:
            if status.uid != pod.metadata.uid:
                continue
            cs = status.container("main")
            seen_counts.setdefault(cs.restart_count, trio.current_time() - t0)
            if isinstance(cs.state, Waiting) and cs.state.reason == "CrashLoopBackOff":
                saw_backoff = True
                assert status.phase == "Running"  # kubelet: a crash-looping Pod is Running
                assert cs.last_state is not None and cs.last_state.exit_code == 1
            if cs.restart_count >= 4:
                break
    assert saw_backoff
    times = [seen_counts[n] for n in range(5) if n in seen_counts]
    assert len(times) == 5, seen_counts
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Backoff base 0.5 s doubling: ~0, 0.5, 1, 2 s (+ the run time of each attempt).
    assert gaps[1] < gaps[2] < gaps[3], gaps
    assert gaps[3] >= 1.5, gaps


async def test_restart_policies_give_kubernetes_phases(harness: Harness) -> None:
    await harness.start()
    never_ok = make_pod("never-ok", sh("main", "exit 0"), restart_policy="Never")
    never_fail = make_pod("never-fail", sh("main", "exit 3"), restart_policy="Never")
    onfailure_ok = make_pod("onfailure-ok", sh("main", "exit 0"), restart_policy="OnFailure")
    onfailure_fail = make_pod("onfailure-fail", sh("main", "sleep 0.2; exit 3"), restart_policy="OnFailure")
    always_ok = make_pod("always-ok", sh("main", "sleep 0.2; exit 0"), restart_policy="Always")
    harness.source.set_pods([never_ok, never_fail, onfailure_ok, onfailure_fail, always_ok])
    s = await harness.wait_for(never_ok, lambda s: s.phase == "Succeeded", what="Succeeded")
    assert container_state(s, "main").reason == "Completed"
    s = await harness.wait_for(never_fail, lambda s: s.phase == "Failed", what="Failed")
    assert container_state(s, "main").reason == "Error" and container_state(s, "main").exit_code == 3
    assert s.container("main").restart_count == 0
    s = await harness.wait_for(onfailure_ok, lambda s: s.phase == "Succeeded", what="Succeeded")
    assert s.container("main").restart_count == 0
    s = await harness.wait_for(onfailure_fail, lambda s: s.container("main").restart_count >= 1, what="restarted")
    assert s.phase in ("Running", "Pending") and s.phase != "Failed"
    s = await harness.wait_for(always_ok, lambda s: s.container("main").restart_count >= 1, what="restarted")
    assert s.phase == "Running"


async def test_absent_image_is_reported_and_retried_until_it_appears(harness: Harness, docker_client) -> None:
    await harness.start()
    late_image = f"agentd-test-late:{uuid.uuid4().hex[:8]}"
    never = make_pod("never", Container(name="main", image=late_image, image_pull_policy="Never",
                                        command=("sleep", "1000")))
    pull = make_pod("pull", Container(name="main", image="agentd-test-nosuch:1", image_pull_policy="IfNotPresent",
                                      command=("sleep", "1000")))
    fine = make_pod("fine", sh("main", "sleep 1000"))
    assert harness.runtime is not None
    # A reader that keeps up sees every state (one that falls behind would see only the latest of each Pod).
    updates = harness.runtime.subscribe()
    reasons: list[str] = []
    backing_off = trio.Event()

    async def follow_pull_reasons() -> None:
        async for s in updates:
            state = container_state(s, "main")
            if s.uid == pull.metadata.uid and isinstance(state, Waiting) and state.reason not in reasons:
                reasons.append(state.reason)
            if "ImagePullBackOff" in reasons:
                backing_off.set()
                return

    harness.nursery.start_soon(follow_pull_reasons)
    harness.source.set_pods([never, pull, fine])
    s = await harness.wait_for(never, lambda s: isinstance(container_state(s, "main"), Waiting)
                               and container_state(s, "main").reason == "ErrImageNeverPull", what="ErrImageNeverPull")
    assert s.phase == "Pending"
    with trio.fail_after(20):
        await backing_off.wait()
    assert reasons[-2:] == ["ErrImagePull", "ImagePullBackOff"], reasons
    await harness.wait_for(fine, lambda s: s.phase == "Running", what="the healthy pod runs regardless")
    # The image appears: the next retry starts the Pod.
    image = await in_thread(docker_client.images.get, "busybox:local")
    repo, tag = late_image.split(":")
    await in_thread(lambda: image.tag(repo, tag))
    try:
        await harness.wait_for(never, lambda s: s.phase == "Running", timeout_s=10, what="Running once present")
    finally:
        await in_thread(lambda: docker_client.images.remove(late_image))


async def test_unreachable_engine_is_reported_then_recovered(harness: Harness, tmp_path) -> None:
    sock = tmp_path / "docker.sock"  # nothing listens here yet
    docker = DockerApi(f"unix://{sock}", threads=4, call_timeout_s=10)
    runtime = await harness.start(docker=docker)
    pod = make_pod("patient", sh("main", "sleep 1000"))
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, lambda s: bool(s.message) and "docker" in s.message.lower(),
                               what="docker unavailable in the status")
    assert s.phase == "Pending"
    assert isinstance(container_state(s, "main"), Waiting)
    # Several failed retries (docker_retry_cap_s apart at most): the runtime lives on, the Pod Pending.
    await harness.holds(pod, lambda s: s.phase == "Pending", for_s=2 * harness.config.docker_retry_cap_s,
                        what="Pending while the engine is unreachable")
    assert runtime.docker_message is not None
    os.symlink("/var/run/docker.sock", sock)  # the engine "comes back"
    await harness.wait_for(pod, lambda s: isinstance(container_state(s, "main"), Running) and not s.message,
                           timeout_s=15, what="running after the engine came back")
