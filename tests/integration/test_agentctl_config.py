"""ConfigMaps and Secrets through agentctl on a one-node cluster: apply them with a Pod
that uses them, see the Pod read them (and a changed ConfigMap reach its volume while it
runs), and check that a Secret's values show only with -o yaml|json: never in tables,
describe, events, errors or the agent's log."""

from __future__ import annotations

import base64
import json
import shutil
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from agent.runtime.config import RuntimeConfig
from tests.integration.conftest import cleanup_node
from tests.integration.test_agentctl import Agent, ok, wait_until

pytestmark = pytest.mark.docker

SECRET_PASSWORD = "39528$vdg7Jb-never-printed"

CONFIGMAP = textwrap.dedent("""\
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: game-demo
    data:
      player_initial_lives: "LIVES"
      ui_properties_file_name: "user-interface.properties"
      game.properties: |
        enemy.types=aliens,monsters
        player.maximum-lives=MAX
      user-interface.properties: |
        color.good=purple
        color.bad=yellow
        allow.textmode=true
    """)

SECRET = textwrap.dedent(f"""\
    apiVersion: v1
    kind: Secret
    metadata:
      name: test-secret
    data:
      username: bXktYXBw
    stringData:
      password: "{SECRET_PASSWORD}"
    """)

POD = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata:
      name: configmap-demo-pod
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: demo
          image: busybox:local
          command: ["sh", "-c", "echo lives=$PLAYER_INITIAL_LIVES user=$SECRET_USERNAME; while :; do grep maximum /config/game.properties; sleep 0.3; done"]
          env:
            - name: PLAYER_INITIAL_LIVES
              valueFrom:
                configMapKeyRef:
                  name: game-demo
                  key: player_initial_lives
            - name: SECRET_USERNAME
              valueFrom:
                secretKeyRef:
                  name: test-secret
                  key: username
          volumeMounts:
          - name: config
            mountPath: "/config"
            readOnly: true
      volumes:
      - name: config
        configMap:
          name: game-demo
          items:
          - key: "game.properties"
            path: "game.properties"
    """)


@pytest.fixture(scope="module")
def config_agent(tmp_path_factory, docker_client) -> Agent:
    a = Agent(tmp_path_factory.mktemp("cfg"), f"test-config-{uuid.uuid4().hex[:8]}")
    a.start()
    yield a
    a.stop()
    cleanup_node(docker_client, a.node)
    shutil.rmtree(Path(RuntimeConfig().config_volume_dir) / a.node, ignore_errors=True)


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_configmap_and_secret_end_to_end(config_agent: Agent, tmp_path: Path) -> None:
    ctl = config_agent.ctl
    cm = CONFIGMAP.replace("LIVES", "3").replace("MAX", "5")
    out = ok(ctl("apply", "-f", _write(tmp_path / "cm.yaml", cm), "-f", _write(tmp_path / "secret.yaml", SECRET),
                 "-f", _write(tmp_path / "pod.yaml", POD)))
    assert out.splitlines() == ["configmap/game-demo created", "secret/test-secret created",
                                "pod/configmap-demo-pod created"]
    ok(ctl("wait", "pod/configmap-demo-pod", "--for", "condition=Ready", "--timeout", "60s"))
    wait_until(lambda: "player.maximum-lives=5" in ctl("logs", "configmap-demo-pod").stdout, what="the file read")
    assert "lives=3 user=my-app" in ctl("logs", "configmap-demo-pod").stdout

    # The ConfigMap changes: the running container's file follows within seconds, env does not.
    ok(ctl("apply", "-f", _write(tmp_path / "cm.yaml", CONFIGMAP.replace("LIVES", "9").replace("MAX", "7"))))
    started = time.monotonic()
    wait_until(lambda: "player.maximum-lives=7" in ctl("logs", "configmap-demo-pod").stdout, timeout_s=15,
               what="the updated file")
    assert time.monotonic() - started < 15
    pod = json.loads(ok(ctl("get", "pod", "configmap-demo-pod", "-o", "json")))
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0

    cms = ok(ctl("get", "configmaps")).splitlines()
    assert cms[0].split() == ["NAME", "DATA", "AGE"] and cms[1].split()[:2] == ["game-demo", "4"]
    assert ok(ctl("get", "cm", "game-demo", "-o", "name")).strip() == "configmap/game-demo"

    secrets = ok(ctl("get", "secrets"))
    assert secrets.splitlines()[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert secrets.splitlines()[1].split()[:3] == ["test-secret", "Opaque", "2"]
    described = ok(ctl("describe", "secret", "test-secret"))
    assert f"password:  {len(SECRET_PASSWORD)} bytes" in described and "username:  6 bytes" in described
    encoded = base64.b64encode(SECRET_PASSWORD.encode()).decode()
    for text in (secrets, described):
        assert SECRET_PASSWORD not in text and encoded not in text
    shown = json.loads(ok(ctl("get", "secret", "test-secret", "-o", "json")))
    assert base64.b64decode(shown["data"]["password"]).decode() == SECRET_PASSWORD
    assert encoded in ok(ctl("get", "secret", "test-secret", "-o", "yaml"))

    # A refused Secret says what is wrong without the value.
    bad = SECRET.replace("username: bXktYXBw", f"token: {SECRET_PASSWORD}")
    refused = ctl("apply", "-f", _write(tmp_path / "bad.yaml", bad))
    assert refused.returncode != 0 and 'data["token"]: must be base64-encoded' in refused.stderr
    assert SECRET_PASSWORD not in refused.stderr + refused.stdout

    events = ok(ctl("get", "events", "-A", "-o", "json"))
    assert SECRET_PASSWORD not in events and encoded not in events
    ok(ctl("delete", "pod", "configmap-demo-pod"))
    ok(ctl("delete", "secret", "test-secret"))
    ok(ctl("delete", "configmap", "game-demo"))
    assert "No resources found" in ctl("get", "secrets").stderr
    log = config_agent.log_path.read_text()
    assert SECRET_PASSWORD not in log and encoded not in log


class _Agent(Agent):
    """An agentd process with extra flags (a server, or a worker joining it)."""

    def __init__(self, tmp: Path, node: str, extra: list[str]) -> None:
        super().__init__(tmp, node)
        self.extra = extra

    def start(self) -> None:
        import subprocess

        from tests.integration.test_agentctl import PYTHON

        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "agent.daemon", "--name", self.node, "--data-dir", str(self.data_dir),
             "--bind", "127.0.0.1", "--api-port", str(self.port), "--gossip-port", str(self.gossip_port),
             "--backoff-base-s", "0.2", *self.extra],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self.proc.poll() is not None or (
            f"{self.node}   Ready" in self.ctl("get", "nodes").stdout), timeout_s=60, what=f"{self.node} Ready")
        assert self.proc.poll() is None, self.log_path.read_text()


def test_a_worker_gets_the_objects_its_pods_use_through_its_watch(tmp_path: Path, docker_client) -> None:
    """A worker (no Raft log) learns ConfigMaps and Secrets through its watch from the server,
    and a change reaches its Pod's volume in place."""
    suffix = uuid.uuid4().hex[:6]
    (tmp_path / "s").mkdir()
    (tmp_path / "w").mkdir()
    server = _Agent(tmp_path / "s", f"test-cfgsrv-{suffix}", ["--bootstrap-expect", "1", "--voters", "1",
                                                            "--standbys", "0"])
    server.start()
    worker = _Agent(tmp_path / "w", f"test-cfgwrk-{suffix}", ["--no-server", "--join",
                                                             f"127.0.0.1:{server.gossip_port}"])
    try:
        worker.start()
        ctl = server.ctl
        pod = POD.replace("spec:\n", f"spec:\n  nodeName: {worker.node}\n", 1)
        ok(ctl("apply", "-f", _write(tmp_path / "cm.yaml", CONFIGMAP.replace("LIVES", "3").replace("MAX", "5")),
               "-f", _write(tmp_path / "secret.yaml", SECRET), "-f", _write(tmp_path / "pod.yaml", pod)))
        ok(ctl("wait", "pod/configmap-demo-pod", "--for", "condition=Ready", "--timeout", "60s"))
        wait_until(lambda: "player.maximum-lives=5" in ctl("logs", "configmap-demo-pod").stdout, what="the file")
        assert "lives=3 user=my-app" in ctl("logs", "configmap-demo-pod").stdout
        ok(ctl("apply", "-f", _write(tmp_path / "cm.yaml", CONFIGMAP.replace("LIVES", "9").replace("MAX", "7"))))
        wait_until(lambda: "player.maximum-lives=7" in ctl("logs", "configmap-demo-pod").stdout, timeout_s=15,
                   what="the updated file on the worker")
        ok(ctl("delete", "pod", "configmap-demo-pod"))
        volumes = Path(RuntimeConfig().config_volume_dir) / worker.node
        wait_until(lambda: not volumes.exists() or not any(volumes.iterdir()), timeout_s=30,
                   what="the Pod's config volumes removed with it")
        for agent in (server, worker):
            log = agent.log_path.read_text()
            assert SECRET_PASSWORD not in log
    finally:
        worker.stop()
        server.stop()
        cleanup_node(docker_client, worker.node)
        cleanup_node(docker_client, server.node)
        for agent in (server, worker):
            shutil.rmtree(Path(RuntimeConfig().config_volume_dir) / agent.node, ignore_errors=True)
