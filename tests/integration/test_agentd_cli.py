"""agentd as a real process, driven by agentctl as a user would: static Pods from a
manifest directory, status, logs, waiting, restart-and-adopt, bad manifests, bad requests."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import cleanup_node

from agent.runtime.containers import LABEL_NODE

pytestmark = pytest.mark.docker

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


POD_WEB = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Pod
    metadata:
      name: hello
      labels: {app: hello}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: busybox:local
          imagePullPolicy: Never
          command: ["sh", "-c", "i=0; while :; do i=$((i+1)); echo line=$i; sleep 0.2; done"]
          readinessProbe:
            exec: {command: ["true"]}
            periodSeconds: 1
    """
)


class Agent:
    """One agentd process with its own manifest directory and API port."""

    def __init__(self, tmp: Path, node: str) -> None:
        self.manifests = tmp / "manifests"
        self.manifests.mkdir(exist_ok=True)
        self.node = node
        self.port = free_port()
        self.log_path = tmp / "agentd.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "agent.daemon", "--node-name", self.node, "--manifest-dir", str(self.manifests),
             "--api-addr", f"127.0.0.1:{self.port}", "--backoff-base-s", "0.2", "--manifest-poll-s", "0.2"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.ctl("get", "node").returncode == 0:
                return
            assert self.proc.poll() is None, f"agentd exited early:\n{self.log_path.read_text()}"
            time.sleep(0.2)
        raise AssertionError(f"agentd did not answer:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "-m", "agent.cli.main", "--server", f"127.0.0.1:{self.port}", *args],
            capture_output=True, text=True, timeout=timeout,
        )

    def pods(self) -> dict[str, dict]:
        out = self.ctl("get", "pods", "-A", "-o", "json")
        assert out.returncode == 0, out.stderr
        return {p["metadata"]["name"]: p for p in json.loads(out.stdout)["items"]}


@pytest.fixture
def agent(tmp_path: Path, docker_client) -> Agent:
    a = Agent(tmp_path, f"test-agentd-{uuid.uuid4().hex[:8]}")
    a.start()
    yield a
    a.stop()
    cleanup_node(docker_client, a.node)


def our_containers(docker_client, node: str) -> dict[str, str]:
    """container name -> id, for every container agentd made for this node."""
    return {c.name: c.id for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"})}


def test_static_pod_runs_reports_status_and_logs(agent: Agent, docker_client) -> None:
    (agent.manifests / "hello.yaml").write_text(POD_WEB)
    waited = agent.ctl("wait", "pod/hello", "--for", "condition=Ready", "--timeout", "30")
    assert waited.returncode == 0, waited.stderr + agent.log_path.read_text()

    pod = agent.pods()["hello"]
    assert pod["status"]["phase"] == "Running"
    (cs,) = pod["status"]["containerStatuses"]
    assert cs["ready"] is True and "running" in cs["state"]
    assert pod["status"]["podIP"]

    table = agent.ctl("get", "pods", "-o", "wide")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert table.stdout.splitlines()[1].split()[:4] == ["hello", "1/1", "Running", "0"]

    time.sleep(1.0)
    logs = agent.ctl("logs", "hello", "--tail", "2")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("line=") for line in lines)

    described = agent.ctl("describe", "pod", "hello")
    assert described.returncode == 0 and "Restart Count:  0" in described.stdout


def test_restarted_agent_adopts_running_pods(agent: Agent, docker_client) -> None:
    (agent.manifests / "hello.yaml").write_text(POD_WEB)
    assert agent.ctl("wait", "pod/hello", "--for", "condition=Ready", "--timeout", "30").returncode == 0
    before = our_containers(docker_client, agent.node)
    assert len(before) == 2  # the infra container and "main"

    agent.stop()
    # Stopping the agent leaves its Pods running.
    assert all(docker_client.containers.get(cid).status == "running" for cid in before.values())
    agent.start()
    assert agent.ctl("wait", "pod/hello", "--for", "condition=Ready", "--timeout", "30").returncode == 0
    assert our_containers(docker_client, agent.node) == before
    (cs,) = agent.pods()["hello"]["status"]["containerStatuses"]
    assert cs["restartCount"] == 0


def test_removed_manifest_removes_pod_and_its_containers(agent: Agent, docker_client) -> None:
    (agent.manifests / "hello.yaml").write_text(POD_WEB)
    assert agent.ctl("wait", "pod/hello", "--for", "condition=Ready", "--timeout", "30").returncode == 0
    (agent.manifests / "hello.yaml").unlink()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (agent.pods() or our_containers(docker_client, agent.node)):
        time.sleep(0.2)
    assert agent.pods() == {}
    assert our_containers(docker_client, agent.node) == {}


def test_invalid_manifest_starts_nothing_and_agent_keeps_serving(agent: Agent, docker_client) -> None:
    bad = POD_WEB.replace("imagePullPolicy: Never", "imagePullPolicy: Never\n      imagee: typo")
    (agent.manifests / "bad.yaml").write_text(bad)
    time.sleep(1.5)
    assert agent.pods() == {}
    assert our_containers(docker_client, agent.node) == {}
    assert "imagee" in agent.log_path.read_text()
    assert agent.ctl("get", "node").returncode == 0


def test_unknown_pod_is_a_clear_not_found(agent: Agent) -> None:
    out = agent.ctl("get", "pod", "nope")
    assert out.returncode == 1
    assert out.stderr.strip() == 'Error from server (NotFound): pod "nope" not found in namespace "default"'
    out = agent.ctl("logs", "nope")
    assert out.returncode == 1 and "NotFound" in out.stderr


def test_unreachable_agent_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    out = subprocess.run([PYTHON, "-m", "agent.cli.main", "--server", f"127.0.0.1:{port}", "--request-timeout", "2",
                          "get", "pods"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"cannot reach agentd at 127.0.0.1:{port}" in out.stderr
