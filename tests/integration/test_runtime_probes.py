"""Liveness, readiness and startup probes against real containers."""

from __future__ import annotations

import pytest
import trio

from agent.runtime.status import Running
from agent.state.pod import ContainerPort, ExecAction, HTTPGetAction, Probe, TCPSocketAction
from tests.integration.conftest import Harness, container_state, make_pod, sh

pytestmark = pytest.mark.docker


def is_running(s, name="main"):
    return isinstance(container_state(s, name), Running)


async def test_failing_liveness_probe_restarts_the_container(harness: Harness) -> None:
    await harness.start()
    c = sh("main", "touch /tmp/alive; sleep 1; rm /tmp/alive; sleep 1000",
           liveness_probe=Probe(exec=ExecAction(command=("test", "-f", "/tmp/alive")), period_seconds=1,
                                failure_threshold=2))
    pod = make_pod("live", c, grace_s=1)
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, lambda s: s.container("main").restart_count >= 1, timeout_s=20,
                               what="restarted by liveness")
    last = s.container("main").last_state
    assert last is not None and last.exit_code != 0 and last.reason == "Error"
    await harness.wait_for(pod, is_running, what="running again")


async def test_readiness_probe_flips_ready_condition(harness: Harness) -> None:
    await harness.start()
    script = ("mkdir -p /www && httpd -p 8080 -h /www && sleep 1.5 && echo ok > /www/ready"
              " && sleep 2.5 && rm /www/ready && sleep 1000")
    c = sh("main", script, ports=(ContainerPort(container_port=8080, name="http"),),
           readiness_probe=Probe(http_get=HTTPGetAction(port="http", path="/ready"), period_seconds=1,
                                 failure_threshold=1))
    pod = make_pod("ready", c)
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, is_running, what="running")
    assert not s.ready and not s.container("main").ready
    s = await harness.wait_for(pod, lambda s: s.ready, timeout_s=10, what="Ready")
    conds = {c["type"]: c["status"] for c in s.to_dict()["conditions"]}
    assert conds["Ready"] == "True" and conds["ContainersReady"] == "True"
    s = await harness.wait_for(pod, lambda s: not s.ready, timeout_s=10, what="not Ready again")
    assert is_running(s) and s.container("main").restart_count == 0
    assert {c["type"]: c["status"] for c in s.to_dict()["conditions"]}["Ready"] == "False"


async def test_startup_probe_holds_back_readiness_then_tcp_liveness(harness: Harness) -> None:
    await harness.start()
    script = "sleep 2; touch /tmp/started; httpd -f -p 9090 -h /tmp"
    c = sh("main", script,
           startup_probe=Probe(exec=ExecAction(command=("test", "-f", "/tmp/started")), period_seconds=1,
                               failure_threshold=10),
           readiness_probe=Probe(exec=ExecAction(command=("true",)), period_seconds=1),
           liveness_probe=Probe(tcp_socket=TCPSocketAction(port=9090), period_seconds=1, failure_threshold=2))
    pod = make_pod("startup", c)
    harness.source.set_pods([pod])
    await harness.wait_for(pod, is_running, what="running")
    t0 = trio.current_time()
    while trio.current_time() - t0 < 1.2:  # the readiness probe always succeeds but must wait for startup
        s = harness.status(pod)
        assert not s.ready and not s.container("main").started
        await trio.sleep(0.05)
    s = await harness.wait_for(pod, lambda s: s.ready, timeout_s=10, what="Ready after startup")
    assert s.container("main").started
    # The tcp liveness probe keeps passing: more than its failure threshold of periods, nothing restarts.
    await harness.holds(pod, lambda s: s.container("main").restart_count == 0 and s.ready, for_s=2.5,
                        what="running and Ready without a restart")


async def test_failing_startup_probe_restarts_the_container(harness: Harness) -> None:
    await harness.start()
    c = sh("main", "sleep 1000",
           startup_probe=Probe(exec=ExecAction(command=("false",)), period_seconds=1, failure_threshold=2))
    pod = make_pod("never-starts", c, grace_s=1)
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, lambda s: s.container("main").restart_count >= 1, timeout_s=20,
                               what="restarted by the startup probe")
    assert not s.ready
