"""The grpc probe against a real Pod: a grpc.health.v1 server in the Pod's own network.

busybox has no gRPC server, so the test's health server (tests/grpc_health_server.py)
runs on the host inside the Pod's network namespace (nsenter --net of the container's
process): it listens on the Pod's IP, where the probe goes, as a server in the container
would. Its answer comes from a file, so the test turns it from SERVING to NOT_SERVING.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.runtime.containers import LABEL_POD_UID
from agent.state.pod import Probe
from agent.state.pod.model import GRPCAction
from tests.integration.conftest import Harness, in_thread, make_pod, sh

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
PORT = 50051


def start_server_in(pid: int, status_file: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-m",
                             "tests.grpc_health_server", str(PORT), str(status_file), "probe.Svc"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


async def test_grpc_readiness_probe_follows_the_health_service(harness: Harness, docker_client, tmp_path) -> None:
    await harness.start()
    status = tmp_path / "status"
    status.write_text("1")
    c = sh("main", "sleep 1000",
           readiness_probe=Probe(grpc=GRPCAction(port=PORT, service="probe.Svc"), period_seconds=1,
                                 failure_threshold=1))
    pod = make_pod("grpc", c)
    harness.source.set_pods([pod])
    s = await harness.wait_for(pod, lambda s: s.pod_ip is not None and s.container("main").state is not None,
                               what="running with an IP")
    assert not s.ready  # nothing answers yet
    # The Pod's containers (its sandbox and "main") share one network namespace: any of them will do.
    containers = docker_client.containers.list(filters={"label": f"{LABEL_POD_UID}={pod.metadata.uid}"})
    pid = containers[0].attrs["State"]["Pid"]
    server = await in_thread(start_server_in, pid, status)
    try:
        await harness.wait_for(pod, lambda s: s.ready, timeout_s=10, what="Ready once SERVING")
        status.write_text("2")
        await harness.wait_for(pod, lambda s: not s.ready, timeout_s=10, what="not Ready when NOT_SERVING")
        status.write_text("1")
        await harness.wait_for(pod, lambda s: s.ready, timeout_s=10, what="Ready again")
    finally:
        server.kill()
        server.wait()
