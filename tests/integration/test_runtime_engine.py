"""The engine and the network the runtime is told to use (real Docker): a node's own dockerd
at any socket (RuntimeConfig.docker_url), and a user-defined network (docker_network), as on
a node whose dockerd runs with --bridge=none."""

from __future__ import annotations

import ipaddress
import os
import uuid

import pytest

from agent.runtime import containers as plans
from agent.runtime.status import Running, Terminated
from agent.state.pod import ContainerPort, ExecAction, HTTPGetAction, Probe
from tests.integration.conftest import Harness, cleanup_node, container_state, in_thread, make_pod, sh, wait_until

pytestmark = pytest.mark.docker


def running(s, name: str = "main") -> bool:
    return isinstance(container_state(s, name), Running)


async def collect(lines) -> list[str]:
    return [line async for line in lines]


async def test_every_engine_call_goes_to_the_configured_docker_url(nursery, node_name: str, docker_client,
                                                                   tmp_path, monkeypatch) -> None:
    # The engine answers only at a path of our own; the environment's default leads nowhere,
    # so any call that did not use docker_url would fail.
    (tmp_path / "run" / "x").mkdir(parents=True)
    socket_path = tmp_path / "run" / "x" / "docker.sock"
    os.symlink("/var/run/docker.sock", socket_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing-listens-here.sock")
    harness = Harness(nursery, node_name, docker_url=f"unix://{socket_path}")
    runtime = await harness.start()
    pod = make_pod("elsewhere", sh("main", "echo hello-from-elsewhere; sleep 1000",
                                   readiness_probe=Probe(exec=ExecAction(command=("true",)), period_seconds=1)))
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, lambda s: running(s) and s.ready, what="Running and Ready")  # create, start, exec
    assert await wait_until(lambda: collect(runtime.logs(pod.metadata.uid, "main")), what="logs") == [
        "hello-from-elsewhere"]
    victim = s.container("main").container_id
    await in_thread(lambda: docker_client.api.kill(victim))  # its death comes through the events stream
    await harness.wait_for(pod, lambda s: running(s) and s.container("main").restart_count == 1,
                           what="restarted after a die event")
    assert runtime.docker_message is None


async def test_pods_run_on_a_user_defined_network(nursery, docker_client) -> None:
    node = f"test-{uuid.uuid4().hex[:10]}"
    network = await in_thread(lambda: docker_client.networks.create(f"agentd-test-{node}", driver="bridge"))
    harness = Harness(nursery, node, docker_network=network.name)
    try:
        runtime = await harness.start()
        web = sh("web", "mkdir -p /www && echo ok > /www/ready && httpd -f -p 8080 -h /www",
                 ports=(ContainerPort(container_port=8080, name="http"),),
                 readiness_probe=Probe(http_get=HTTPGetAction(port="http", path="/ready"), period_seconds=1))
        client = sh("client", "for i in $(seq 100); do wget -q -O - http://127.0.0.1:8080/ready && exit 0;"
                              " sleep 0.1; done; exit 1")
        pod = make_pod("netted", web, client, restart_policy="Never")
        harness.source.set_pods([pod])
        # Ready: the agent reached the Pod's IP on that network (httpGet), and its containers share localhost.
        s = await harness.wait_for(pod, lambda s: s.container("web").ready, what="web Ready")
        s = await harness.wait_for(pod, lambda s: isinstance(container_state(s, "client"), Terminated),
                                   what="client done")
        assert container_state(s, "client").exit_code == 0
        await in_thread(network.reload)
        (subnet,) = [ipaddress.ip_network(c["Subnet"]) for c in network.attrs["IPAM"]["Config"]]
        assert ipaddress.ip_address(s.pod_ip) in subnet
        infra = (await in_thread(lambda: docker_client.containers.list(
            filters={"label": [f"{plans.LABEL_NODE}={node}", "agentd.role=infra"]})))[0]
        assert list(infra.attrs["NetworkSettings"]["Networks"]) == [network.name]
        harness.source.set_pods([])
        await wait_until(lambda: not runtime.statuses(), what="the Pod removed")
    finally:
        if harness.runtime is not None:
            await harness.stop()  # nothing recreates what the cleanup removes
        await in_thread(cleanup_node, docker_client, node)
        await in_thread(network.remove)


async def test_a_network_that_gives_no_address_is_reported_not_run(nursery, node_name: str) -> None:
    """As a dockerd started with --bridge=none does for "bridge": the sandbox starts with no network."""
    harness = Harness(nursery, node_name, docker_network="none")
    await harness.start()
    pod = make_pod("unreachable", sh("main", "sleep 1000"))
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, lambda s: "no IP address" in (getattr(container_state(s, "main"), "message", "")
                                                                   or ""), what="the sandbox's missing address")
    assert s.phase == "Pending" and container_state(s, "main").reason == "CreateContainerError"
    assert "'none'" in container_state(s, "main").message
    await harness.holds(pod, lambda s: not running(s), for_s=2 * harness.config.image_backoff_base_s,
                        what="no app container started without a network")
