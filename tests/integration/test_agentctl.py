"""agentd as a real process forming a one-node cluster (on the host's engine), driven by
agentctl as a user would: apply, get, describe, delete, logs, wait, cordon, cluster
status; a Pod that fits nowhere; static Pods from a manifest directory (mirror Pods in
the cluster), restart-and-adopt, bad manifests with their file and line, bad requests,
a FIFO among the manifests, long logs, a stalled server and a closed pipe."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
import trio

from tests.integration.conftest import cleanup_node

from agent.grpcbridge import TrioGrpcServer
from agent.rpc import cluster_pb2, cluster_pb2_grpc
from agent.runtime.containers import LABEL_NODE

pytestmark = pytest.mark.docker

PYTHON = sys.executable


def wait_until(predicate: Callable[[], Any], *, timeout_s: float = 30.0, what: str = "") -> Any:
    """Poll `predicate` until it returns something true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what or predicate}")
        time.sleep(0.1)


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
        self.data_dir = tmp / "data"
        self.gossip_port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "agent.daemon", "--name", self.node, "--data-dir", str(self.data_dir),
             "--bind", "127.0.0.1", "--api-port", str(self.port), "--gossip-port", str(self.gossip_port),
             "--bootstrap-expect", "1", "--voters", "1", "--manifest-dir", str(self.manifests),
             "--backoff-base-s", "0.2", "--manifest-poll-s", "0.2"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            nodes = self.ctl("get", "nodes")
            if nodes.returncode == 0 and f"{self.node}   Ready" in nodes.stdout:
                return
            assert self.proc.poll() is None, f"agentd exited early:\n{self.log_path.read_text()}"
            time.sleep(0.2)
        raise AssertionError(f"agentd did not answer:\n{self.log_path.read_text()}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if agentd has not exited 15 s later; its exit status."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

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

    logs = wait_until(lambda: (out := agent.ctl("logs", "hello", "--tail", "2")).stdout.count("\n") == 2 and out,
                      what="two lines of log")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("line=") for line in lines)

    described = agent.ctl("describe", "pod", "hello")
    assert described.returncode == 0 and re.search(r"Restart Count:\s+0\n", described.stdout), described.stdout
    assert re.search(rf"Node:\s+{agent.node}\n", described.stdout)


def test_an_init_containers_logs_are_read_by_its_name(agent: Agent) -> None:
    (agent.manifests / "prepared.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: prepared}
        spec:
          terminationGracePeriodSeconds: 1
          initContainers:
            - {name: setup, image: busybox:local, command: ["sh", "-c", "echo schema migrated"]}
          containers:
            - {name: app, image: busybox:local, command: ["sh", "-c", "echo serving; sleep 3600"]}
        """))
    waited = agent.ctl("wait", "pod/prepared", "--for", "condition=Ready", "--timeout", "30")
    assert waited.returncode == 0, waited.stderr
    assert wait_until(lambda: agent.ctl("logs", "prepared", "-c", "setup").stdout, what="the init container's log") \
        == "schema migrated\n"
    assert wait_until(lambda: agent.ctl("logs", "prepared").stdout, what="the app's log") == "serving\n"
    wrong = agent.ctl("logs", "prepared", "-c", "nope")
    assert wrong.returncode == 1 and "one of ['app', 'setup']" in wrong.stderr


def test_restarted_agent_adopts_running_pods(agent: Agent, docker_client) -> None:
    (agent.manifests / "hello.yaml").write_text(POD_WEB)
    assert agent.ctl("wait", "pod/hello", "--for", "condition=Ready", "--timeout", "30").returncode == 0
    before = our_containers(docker_client, agent.node)
    assert len(before) == 2  # the infra container and "main"
    started = agent.pods()["hello"]["status"]["startTime"]
    # The restarted agent must not see the Pod as younger than it is: let its start fall a second behind.
    wait_until(lambda: time.time() >= parse_rfc3339(started) + 1.0, what="a second of age")

    assert agent.stop() == 0
    # Stopping the agent leaves its Pods running.
    assert all(docker_client.containers.get(cid).status == "running" for cid in before.values())
    agent.start()
    assert agent.ctl("wait", "pod/hello", "--for", "condition=Ready", "--timeout", "30").returncode == 0
    assert our_containers(docker_client, agent.node) == before
    status = agent.pods()["hello"]["status"]
    (cs,) = status["containerStatuses"]
    assert cs["restartCount"] == 0
    assert status["startTime"] == started  # AGE is the Pod's, not the time since the agent restarted


def parse_rfc3339(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


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
    wait_until(lambda: "imagee" in agent.log_path.read_text(), what="the manifest error in the agent's log")
    assert agent.pods() == {}
    assert our_containers(docker_client, agent.node) == {}
    assert "imagee" in agent.log_path.read_text()
    assert agent.ctl("get", "nodes").returncode == 0


def test_unknown_pod_is_a_clear_not_found(agent: Agent) -> None:
    out = agent.ctl("get", "pod", "nope")
    assert out.returncode == 1
    assert out.stderr.strip() == 'Error from server (NotFound): pods "nope" not found in namespace "default"'
    out = agent.ctl("logs", "nope")
    assert out.returncode == 1 and "NotFound" in out.stderr


def test_unreachable_agent_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    out = subprocess.run([PYTHON, "-m", "agent.cli.main", "--server", f"127.0.0.1:{port}", "--request-timeout", "2",
                          "get", "pods"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"cannot reach the cluster at 127.0.0.1:{port}" in out.stderr


def test_a_fifo_among_the_manifests_blocks_neither_pods_nor_shutdown(agent: Agent) -> None:
    fifo = agent.manifests / "x.yaml"
    os.mkfifo(fifo)
    try:
        (agent.manifests / "hello.yaml").write_text(POD_WEB)
        waited = agent.ctl("wait", "pod/hello", "--for", "condition=Ready", "--timeout", "30")
        assert waited.returncode == 0, waited.stderr + agent.log_path.read_text()
        assert "is a FIFO" in agent.log_path.read_text()
        assert agent.stop() == 0  # SIGTERM ends it (a SIGKILL after 15 s would read -9)
    finally:
        try:  # a reader blocked in open() by a regression is let go, so the test fails instead of hanging
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


POD_LONG_LOG = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Pod
    metadata: {{name: long}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: busybox:local
          imagePullPolicy: Never
          command: ["sh", "-c", "seq 1 {lines}; echo finished; exec sleep 1000"]
    """
)
LONG_LOG_LINES = 20_000
SHORT_TIMEOUT_S = 1.0


def test_a_log_longer_than_the_request_timeout_is_read_to_its_end(agent: Agent) -> None:
    (agent.manifests / "long.yaml").write_text(POD_LONG_LOG.format(lines=LONG_LOG_LINES))
    wait_until(lambda: agent.ctl("logs", "long", "--tail", "1").stdout == "finished\n", what="the whole log written")
    t0 = time.monotonic()
    out = agent.ctl("--request-timeout", str(SHORT_TIMEOUT_S), "logs", "long")
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(i) for i in range(1, LONG_LOG_LINES + 1)] + ["finished"]
    # The stream lasted longer than the timeout, so the timeout did not bound it (else make the log longer).
    assert elapsed > SHORT_TIMEOUT_S, elapsed


class StallingLogs(cluster_pb2_grpc.ClusterServiceServicer):
    """A ClusterService whose log stream sends one line and then nothing, for ever."""

    async def Logs(self, request, context):  # noqa: N802 - the gRPC method's name
        yield cluster_pb2.LogChunk(line="the only line")
        await trio.sleep_forever()


async def test_a_stalled_log_stream_ends_after_the_request_timeout() -> None:
    server = TrioGrpcServer()
    server.add_service(cluster_pb2_grpc.add_ClusterServiceServicer_to_server, StallingLogs())
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run, "127.0.0.1:0")
        t0 = trio.current_time()
        with trio.fail_after(60):
            out = await trio.run_process(
                [PYTHON, "-m", "agent.cli.main", "--server", f"127.0.0.1:{port}", "--request-timeout",
                 str(SHORT_TIMEOUT_S), "logs", "stalled"], capture_stdout=True, capture_stderr=True, check=False)
        elapsed = trio.current_time() - t0
        nursery.cancel_scope.cancel()
    assert out.returncode == 1
    assert out.stdout.decode() == "the only line\n"
    assert f"agentd sent nothing for {SHORT_TIMEOUT_S:g}s" in out.stderr.decode()
    assert elapsed > SHORT_TIMEOUT_S


def test_a_closed_pipe_ends_every_command_quietly(agent: Agent) -> None:
    """`agentctl ... | head`: the reader goes away; agentctl dies of SIGPIPE, as Unix tools do, without a word."""
    (agent.manifests / "hello.yaml").write_text(POD_WEB)
    assert agent.ctl("wait", "pod/hello", "--for", "condition=Ready", "--timeout", "30").returncode == 0
    commands = [("get", "pods"), ("get", "pods", "-o", "yaml"), ("get", "nodes"), ("describe", "pod", "hello"),
                ("describe", "node", agent.node), ("cluster", "status"),
                ("logs", "hello"), ("wait", "pod/hello", "--for", "condition=Ready")]
    for command in commands:
        proc = subprocess.Popen([PYTHON, "-m", "agent.cli.main", "--server", f"127.0.0.1:{agent.port}", *command],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # the reader is gone before agentctl writes a byte
        _, stderr = proc.communicate(timeout=60)
        assert stderr == b"", (command, stderr.decode())
        assert proc.returncode == -signal.SIGPIPE, (command, proc.returncode)


# ---------------------------------------------------------------- the cluster through agentctl

WEB_PODS = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Pod
    metadata: {name: web-a, labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - {name: main, image: busybox:local, command: ["sleep", "3600"], resources: {requests: {cpu: 100m, memory: 16Mi}}}
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: web-b, labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - {name: main, image: busybox:local, command: ["sleep", "3600"], resources: {requests: {cpu: 100m, memory: 16Mi}}}
    """
)
TOO_BIG = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Pod
    metadata: {name: too-big}
    spec:
      containers:
        - {name: main, image: busybox:local, command: ["sleep", "3600"], resources: {requests: {cpu: "500"}}}
    """
)
BAD = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Pod
    metadata: {name: fine}
    spec:
      containers: [{name: main, image: busybox:local}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: broken}
    spec:
      containers: [{name: main, image: busybox:local, resources: {requests: {cpu: lots}}}]
    """
)


WEB_DEPLOYMENT = textwrap.dedent(
    """\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: shop
      annotations: {kubernetes.io/change-cause: "first release"}
    spec:
      replicas: 2
      selector: {matchLabels: {app: shop}}
      strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
      template:
        metadata: {labels: {app: shop}}
        spec:
          terminationGracePeriodSeconds: 1
          containers:
            - name: main
              image: busybox:local
              command: ["sh", "-c", "echo VERSION; sleep 3600"]
              resources: {requests: {cpu: 50m, memory: 16Mi}}
    """
)


@pytest.fixture(scope="module")
def cluster_agent(tmp_path_factory, docker_client) -> Agent:
    a = Agent(tmp_path_factory.mktemp("ctl"), f"test-agentctl-{uuid.uuid4().hex[:8]}")
    a.start()
    yield a
    a.stop()
    cleanup_node(docker_client, a.node)


def ok(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_apply_is_all_or_nothing_and_says_what_it_did(cluster_agent: Agent, tmp_path: Path) -> None:
    manifests = tmp_path / "app"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(WEB_PODS)
    (manifests / "too-big.yml").write_text(TOO_BIG)
    (manifests / "notes.txt").write_text("not a manifest")
    assert ok(cluster_agent.ctl("apply", "-f", str(manifests))).splitlines() == [
        "pod/too-big created", "pod/web-a created", "pod/web-b created"]
    assert ok(cluster_agent.ctl("apply", "-f", str(manifests / "web.yaml"))).splitlines() == [
        "pod/web-a unchanged", "pod/web-b unchanged"]
    ok(cluster_agent.ctl("wait", "pod/web-a", "pod/web-b", "--for", "condition=Ready", "--timeout", "60s"))

    (tmp_path / "bad.yaml").write_text(BAD)
    bad = cluster_agent.ctl("apply", "-f", str(tmp_path / "bad.yaml"))
    assert bad.returncode == 1
    assert bad.stderr.strip() == (f"error: {tmp_path / 'bad.yaml'}:11 (document 2): "
                                  'spec.containers[0].resources.requests.cpu: "lots" is not a quantity')
    assert "NotFound" in cluster_agent.ctl("get", "pod", "fine").stderr  # its good neighbour was not sent either


def test_get_lists_selects_and_formats(cluster_agent: Agent) -> None:
    assert ok(cluster_agent.ctl("get", "pods", "-l", "app=web", "-o", "name")).splitlines() == ["pod/web-a", "pod/web-b"]
    wide = ok(cluster_agent.ctl("get", "pods", "-o", "wide", "--field-selector", "status.phase=Running")).splitlines()
    assert wide[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    rows = {line.split()[0]: line.split()[-1] for line in wide[1:]}
    assert (rows["web-a"], rows["web-b"]) == (cluster_agent.node, cluster_agent.node)
    assert "too-big" not in rows  # Pending: not selected
    listed = json.loads(ok(cluster_agent.ctl("get", "pods", "-o", "json")))
    assert listed["kind"] == "List" and {p["metadata"]["name"] for p in listed["items"]} >= {"web-a", "web-b", "too-big"}
    one = json.loads(ok(cluster_agent.ctl("get", "pod", "web-a", "-o", "json")))
    assert one["kind"] == "Pod" and one["metadata"]["uid"] and one["metadata"]["resourceVersion"]
    nodes = ok(cluster_agent.ctl("get", "nodes")).splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:3] == [cluster_agent.node, "Ready", "voter"]


def test_a_pod_that_fits_nowhere_says_why(cluster_agent: Agent) -> None:
    assert ok(cluster_agent.ctl("get", "pod", "too-big")).splitlines()[1].split()[2] == "Pending"
    described = ok(cluster_agent.ctl("describe", "pod", "too-big"))
    assert "Unschedulable   0/1 nodes are available: 1 Insufficient cpu." in described
    node = ok(cluster_agent.ctl("describe", "node", cluster_agent.node))
    assert "web-a" in node and "too-big" not in node and "Allocated resources:" in node
    assert re.search(r"cpu\s+200m \(\d+%\)", node), node  # web-a and web-b, 100m each


def test_events_tell_what_happened_to_a_pod_and_a_node(cluster_agent: Agent) -> None:
    wait_until(lambda: "Started container" in cluster_agent.ctl("describe", "pod", "web-a").stdout,
               what="web-a's Started event")
    described = ok(cluster_agent.ctl("describe", "pod", "web-a")).split("Events:")[1]
    assert re.search(rf"Normal\s+Scheduled\s+\S+\s+default-scheduler\s+Successfully assigned default/web-a to "
                     rf"{cluster_agent.node}", described), described
    assert re.search(r"Normal\s+Started\s+\S+\s+kubelet\s+Started container main", described), described
    listed = ok(cluster_agent.ctl("get", "events")).splitlines()
    assert listed[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any(line.split()[1:4] == ["Warning", "FailedScheduling", "pod/too-big"] for line in listed[1:]), listed
    assert any(line.split()[1:4] == ["Normal", "LeaderElected", f"node/{cluster_agent.node}"] for line in listed[1:])
    assert "NodeReady" in ok(cluster_agent.ctl("describe", "node", cluster_agent.node)).split("Events:")[1]


def test_cordon_keeps_new_pods_off_until_uncordoned(cluster_agent: Agent, tmp_path: Path) -> None:
    assert ok(cluster_agent.ctl("cordon", cluster_agent.node)).strip() == f"node/{cluster_agent.node} cordoned"
    assert "Ready,SchedulingDisabled" in ok(cluster_agent.ctl("get", "nodes"))
    (tmp_path / "late.yaml").write_text(WEB_PODS.split("---")[0].replace("web-a", "late"))
    ok(cluster_agent.ctl("apply", "-f", str(tmp_path / "late.yaml")))
    wait_until(lambda: "1 node(s) were unschedulable" in cluster_agent.ctl("describe", "pod", "late").stdout,
               what="the Unschedulable message of a cordoned node")
    ok(cluster_agent.ctl("uncordon", cluster_agent.node))
    ok(cluster_agent.ctl("wait", "pod/late", "--for", "condition=Ready", "--timeout", "60"))


def test_delete_and_wait_for_the_deletion(cluster_agent: Agent, docker_client) -> None:
    uid = json.loads(ok(cluster_agent.ctl("get", "pod", "web-b", "-o", "json")))["metadata"]["uid"]
    assert ok(cluster_agent.ctl("delete", "pod", "web-b")).strip() == 'pod "web-b" deleted'
    ok(cluster_agent.ctl("wait", "pod/web-b", "--for", "delete", "--timeout", "30"))
    wait_until(lambda: not docker_client.containers.list(all=True, filters={"label": f"agentd.pod.uid={uid}"}),
               what="web-b's containers removed from the engine")
    missing = cluster_agent.ctl("delete", "pod", "web-b")
    assert missing.returncode == 1 and 'pods "web-b" not found' in missing.stderr
    assert ok(cluster_agent.ctl("delete", "pod", "web-b", "--ignore-not-found")) == ""


def test_cluster_status_names_the_leader_and_the_members(cluster_agent: Agent) -> None:
    status = ok(cluster_agent.ctl("cluster", "status"))
    assert re.search(rf"Leader:\s+{cluster_agent.node}\n", status)
    assert re.search(rf"Voters:\s+{cluster_agent.node}\n", status)
    assert re.search(rf"{cluster_agent.node}\s+voter\s+alive\s+127\.0\.0\.1:{cluster_agent.port}\s+"
                     rf"127\.0\.0\.1:\d+\s+\d+\s", status)


def _shop(cluster_agent: Agent, version: str, cause: str, tmp_path: Path, *, replicas: int = 2,
          paused: bool = False) -> None:
    """Apply the shop Deployment. An apply states the whole spec (as `kubectl replace` does):
    the replica count and `paused` are written in it."""
    path = tmp_path / f"shop-{version}.yaml"
    text = WEB_DEPLOYMENT.replace("VERSION", version).replace("first release", cause)
    text = text.replace("  replicas: 2\n", f"  replicas: {replicas}\n" + ("  paused: true\n" if paused else ""))
    path.write_text(text)
    ok(cluster_agent.ctl("apply", "-f", str(path)))


def _versions(cluster_agent: Agent) -> list[str]:
    """The echo of every live shop Pod's container, sorted."""
    listed = json.loads(ok(cluster_agent.ctl("get", "pods", "-l", "app=shop", "-o", "json")))["items"]
    return sorted(p["spec"]["containers"][0]["command"][2].split(";")[0].split()[1] for p in listed)


def test_a_deployment_rolls_out_scales_rolls_back_and_is_deleted_with_what_it_owns(
        cluster_agent: Agent, tmp_path: Path, docker_client) -> None:
    _shop(cluster_agent, "v1", "first release", tmp_path)
    status = ok(cluster_agent.ctl("rollout", "status", "deployment/shop", "--timeout", "60s"))
    assert status.splitlines()[-1] == 'deployment "shop" successfully rolled out'
    row = ok(cluster_agent.ctl("get", "deploy", "shop")).splitlines()[1].split()
    assert row[:4] == ["shop", "2/2", "2", "2"]
    [rs] = ok(cluster_agent.ctl("get", "rs", "-o", "name")).split()
    assert re.fullmatch(r"replicaset\.apps/shop-[bcdfghjklmnpqrstvwxz2456789]+", rs)
    pods = ok(cluster_agent.ctl("get", "pods", "-l", "app=shop", "-o", "name")).split()
    assert len(pods) == 2 and all(re.fullmatch(rf"pod/{rs.split('/')[1]}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", p)
                                  for p in pods), pods

    _shop(cluster_agent, "v2", "second release", tmp_path)
    ok(cluster_agent.ctl("rollout", "status", "deploy/shop", "--timeout", "60s"))
    wait_until(lambda: _versions(cluster_agent) == ["v2", "v2"], what="only v2 Pods left")
    history = ok(cluster_agent.ctl("rollout", "history", "deployment/shop")).splitlines()
    assert [line.split(None, 1) for line in history[2:]] == [["1", "first release"], ["2", "second release"]]

    assert ok(cluster_agent.ctl("scale", "deployment/shop", "--replicas", "3")).strip() == "deployment.apps/shop scaled"
    ok(cluster_agent.ctl("rollout", "status", "deployment/shop", "--timeout", "60s"))
    assert _versions(cluster_agent) == ["v2", "v2", "v2"]

    assert ok(cluster_agent.ctl("rollout", "undo", "deployment/shop")).strip() == "deployment.apps/shop rolled back"
    ok(cluster_agent.ctl("rollout", "status", "deployment/shop", "--timeout", "60s"))
    wait_until(lambda: _versions(cluster_agent) == ["v1", "v1", "v1"], what="back to three v1 Pods")
    history = ok(cluster_agent.ctl("rollout", "history", "deployment/shop")).splitlines()
    assert [line.split(None, 1)[0] for line in history[2:]] == ["2", "3"]  # revision 1 came back as 3

    ok(cluster_agent.ctl("rollout", "pause", "deployment/shop"))
    _shop(cluster_agent, "v3", "paused release", tmp_path, replicas=3, paused=True)
    time.sleep(2)
    assert _versions(cluster_agent) == ["v1", "v1", "v1"]  # paused: nothing rolls
    assert "is paused" in cluster_agent.ctl("rollout", "restart", "deployment/shop").stderr
    ok(cluster_agent.ctl("rollout", "resume", "deployment/shop"))
    ok(cluster_agent.ctl("rollout", "status", "deployment/shop", "--timeout", "60s"))
    wait_until(lambda: _versions(cluster_agent) == ["v3", "v3", "v3"], what="the v3 rollout after resuming")

    described = ok(cluster_agent.ctl("describe", "deployment", "shop"))
    assert "Replicas:             3 desired | 3 updated | 3 total | 3 available | 0 unavailable" in described
    assert re.search(r"Normal\s+ScalingReplicaSet\s+.*Scaled up replica set shop-\w+ from 2 to 3", described)

    uids = [p["metadata"]["uid"] for p in json.loads(ok(cluster_agent.ctl(
        "get", "pods", "-l", "app=shop", "-o", "json")))["items"]]
    assert ok(cluster_agent.ctl("delete", "deployment", "shop")).strip() == 'deployment.apps "shop" deleted'
    wait_until(lambda: not ok(cluster_agent.ctl("get", "pods", "-l", "app=shop", "-o", "name")).strip(),
               what="the Deployment's Pods deleted with it")
    assert not ok(cluster_agent.ctl("get", "rs", "-o", "name")).strip()
    for uid in uids:
        wait_until(lambda: not docker_client.containers.list(all=True, filters={"label": f"agentd.pod.uid={uid}"}),
                   what="the containers of the Deployment's Pods removed")
