"""vagrant/provision.sh run for real in a machine of a namespace cluster (VMs cannot boot here).

A 3-node cluster whose servers are n1, n2 and n3 (--bootstrap-expect 3, as the first three
VMs of the Vagrant cluster), with agentd started by the cluster tool on n1 and n2 only, so
the cluster cannot form until n3 has an agent. provision.sh then runs inside n3 (in its
network namespace and cgroups, `python -m cluster exec`) with the arguments the
Vagrantfile gives node3, plus:
- --no-systemd: systemd does not run here, so agentd starts as a detached process with the
  unit's command line, read from the same settings file;
- --root: the files go below a temporary directory, not into the host's /etc and /opt;
- --docker-url: n3's own engine, not the host's;
- --wheelhouse: n3 has no route to a package index, so the dependencies come from a
  directory downloaded on the host first. The wheel itself is built from the source tree
  as on a VM.
What is proven: the cluster forms with n3 a voter; a Pod pinned to n3 runs there (its
container in n3's engine); agentctl as installed, with the login shell's settings, lists it;
the running agentd's command line is the unit's; systemd-analyze verifies the unit with
its paths mapped into the temporary root (where they exist), and has nothing to say;
provisioning again (an upgrade) restarts agentd, which adopts the running Pod.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Iterator

import pytest
import trio

from agent.client import ClusterClient, ClusterView
from cluster import Cluster, cgroups, down
from tests.integration.cluster_fixtures import unique_name
from tests.integration.cluster_helpers import node_containers, pod_manifest, ready_nodes, running_on

pytestmark = [pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "vagrant" / "provision.sh"
NODE = "n3"
# Absolute paths of the machine that --root moves below the temporary root.
SYSTEM_PATHS = ("/opt/agentd", "/etc/agentd", "/var/lib/agentd")
FORM_TIMEOUT_S = 60  # three servers seeing each other, then an election, on a loaded CI machine
POD_TIMEOUT_S = 60


class Provisioned:
    def __init__(self, cluster: Cluster, root: Path, argv: list[str]) -> None:
        self.cluster, self.root, self.argv = cluster, root, argv
        self.run = self.provision()

    def provision(self) -> subprocess.CompletedProcess:
        began = time.monotonic()
        run = subprocess.run(self.cluster.exec_argv(NODE, self.argv), capture_output=True, text=True, timeout=600)
        print(f"provision.sh in {NODE}: {time.monotonic() - began:.1f}s, status {run.returncode}\n{run.stderr}")
        return run

    def path(self, system_path: str) -> Path:
        return self.root / system_path.lstrip("/")

    def settings(self) -> dict[str, str]:
        """agentd.env as a shell (and systemd) reads it."""
        values = {}
        for line in self.path("/etc/agentd/agentd.env").read_text().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key] = " ".join(shlex.split(value))
        return values

    def in_node(self, script: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.cluster.exec_argv(NODE, ["bash", "-c", script]), capture_output=True, text=True,
                              timeout=60)


def download_wheelhouse(directory: Path) -> subprocess.Popen:
    """Start downloading the dependencies of pyproject.toml (wheels only, for this Python) into `directory`."""
    with open(REPO / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    return subprocess.Popen([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                             "--only-binary=:all:", "--dest", str(directory), *dependencies],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    work = tmp_path_factory.mktemp("provision")
    fetching = download_wheelhouse(work / "wheelhouse")
    name = unique_name("pv")
    try:
        cluster = Cluster.up(name, nodes=3, servers=3, agent_nodes=2)
        out, _ = fetching.communicate(timeout=300)
        assert fetching.returncode == 0, f"pip download failed:\n{out[-3000:]}"
        servers = cluster.nodes
        node = cluster.node(NODE)
        argv = ["bash", str(PROVISION), "--name", NODE, "--address", node.ip,
                *[a for s in servers if s.name != NODE for a in ("--join", s.gossip_address)],
                "--bootstrap-expect", "3", "--agentctl-server", ",".join(s.api_address for s in servers),
                "--source", str(REPO), "--wheelhouse", str(work / "wheelhouse"),
                "--docker-url", node.docker_url, "--root", str(work / "root"), "--no-systemd"]
        yield Provisioned(cluster, work / "root", argv)
    finally:
        if fetching.poll() is None:
            fetching.kill()
            fetching.wait()
        down(name)


def agentd_pid(p: Provisioned) -> int:
    pid = int(p.path("/run/agentd.pid").read_text())
    assert pid in cgroups.pids(p.cluster.node(NODE).cgroup), "agentd is not a process of the node"
    return pid


def test_provisioning_installs_agentd_and_writes_the_machine_settings(provisioned):
    p = provisioned
    assert p.run.returncode == 0, p.run.stderr
    assert f"agentd {NODE} answers at {p.cluster.node(NODE).ip}:7070" in p.run.stderr
    servers = p.cluster.nodes
    settings = p.settings()
    assert settings["AGENTD_NAME"] == NODE and settings["AGENTD_BIND"] == p.cluster.node(NODE).ip
    assert settings["AGENTD_ARGS"].split() == [
        "--join", servers[0].gossip_address, "--join", servers[1].gossip_address, "--bootstrap-expect", "3",
        "--docker-url", p.cluster.node(NODE).docker_url]
    profile = p.path("/etc/profile.d/agentd.sh").read_text()
    assert f"export AGENTCTL_SERVER={','.join(s.api_address for s in servers)}\n" in profile
    for tool in ("agentd", "agentctl"):
        link = p.path(f"/usr/local/bin/{tool}")
        assert link.resolve() == p.path(f"/opt/agentd/bin/{tool}").resolve()
        version = subprocess.run([str(link), "--help"], capture_output=True, text=True, timeout=60)
        assert version.returncode == 0 and f"usage: {tool}" in version.stdout
    assert p.path("/var/lib/agentd/identity.json").exists()
    assert p.path("/var/lib/agentd").stat().st_mode & 0o777 == 0o700


def test_the_running_agentd_has_the_units_command_line(provisioned):
    p = provisioned
    unit = p.path("/etc/systemd/system/agentd.service").read_text()
    [exec_start] = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    settings = p.settings()
    expected = []
    for word in exec_start.split():
        if word.startswith("${"):
            expected.append(settings[word[2:-1]])  # ${VAR}: one word
        elif word.startswith("$"):
            expected.extend(settings[word[1:]].split())  # $VAR: split at blanks
        else:
            expected.append(str(p.path(word)) if word.startswith(SYSTEM_PATHS) else word)
    cmdline = Path(f"/proc/{agentd_pid(p)}/cmdline").read_bytes().decode().split("\0")[:-1]
    assert cmdline[1:] == expected  # cmdline[0]: the venv's python, from agentd's shebang


def test_systemd_analyze_verifies_the_unit(provisioned, tmp_path):
    p = provisioned
    unit = p.path("/etc/systemd/system/agentd.service").read_text()
    for line in ("Restart=on-failure", "StateDirectory=agentd", "StandardOutput=journal",
                 "EnvironmentFile=/etc/agentd/agentd.env", "WantedBy=multi-user.target"):
        assert f"\n{line}\n" in unit, line
    assert re.search(r"^After=.*\bdocker\.service\b", unit, re.M) and "--data-dir /var/lib/agentd " in unit
    rooted = unit
    for system_path in SYSTEM_PATHS:
        rooted = rooted.replace(system_path + "/", str(p.path(system_path)) + "/")
    assert rooted != unit and p.path("/opt/agentd/bin/agentd").exists()
    copy = tmp_path / "agentd.service"
    copy.write_text(rooted)
    verified = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
    assert verified.returncode == 0 and verified.stdout + verified.stderr == "", verified.stdout + verified.stderr


async def test_the_machine_joins_the_cluster_and_runs_a_pod_pinned_to_it(provisioned):
    p = provisioned
    assert p.run.returncode == 0, p.run.stderr
    manifest = pod_manifest("pinned-here")
    manifest["spec"]["nodeSelector"] = {"kubernetes.io/hostname": NODE}
    async with ClusterClient([n.api_address for n in p.cluster.nodes], timeout_s=5) as client:
        view = ClusterView(client)
        async with trio.open_nursery() as nursery:
            await nursery.start(view.run)
            await view.wait(lambda v: ready_nodes(v) == {"n1", "n2", NODE}, timeout_s=FORM_TIMEOUT_S)
            status = await client.status()
            assert sorted(status.voters) == ["n1", "n2", NODE]
            [(_, _, _, action, doc)] = await client.apply([manifest])
            assert action == "created"
            uid = doc["metadata"]["uid"]
            on = await view.wait(lambda v: running_on(v).get(uid), timeout_s=POD_TIMEOUT_S)
            nursery.cancel_scope.cancel()
    assert on == NODE
    assert node_containers(p.cluster, NODE, uid)
    assert not node_containers(p.cluster, "n1", uid) and not node_containers(p.cluster, "n2", uid)
    # As `vagrant ssh node3 -c 'agentctl get pods -o wide'` would: the login shell's settings, agentctl on PATH.
    listed = p.in_node(f". {p.path('/etc/profile.d/agentd.sh')} && PATH={p.path('/usr/local/bin')}:$PATH "
                       "&& agentctl get pods -o wide")
    assert listed.returncode == 0, listed.stderr
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith("pinned-here "))
    assert row[2] == "Running" and row[-1] == NODE, listed.stdout


async def test_provisioning_again_restarts_agentd_and_its_pod_keeps_running(provisioned):
    p = provisioned
    before_pid = agentd_pid(p)
    async with ClusterClient([n.api_address for n in p.cluster.nodes], timeout_s=5) as client:
        pod = await client.get("Pod", "pinned-here", namespace="default")
        uid = pod["metadata"]["uid"]
        before = node_containers(p.cluster, NODE, uid)  # the Pod's infra container and its app's
        again = await trio.to_thread.run_sync(p.provision)
        assert again.returncode == 0, again.stderr
        assert f"stopping the agentd already running (pid {before_pid})" in again.stderr
        assert agentd_pid(p) != before_pid
        view = ClusterView(client)
        async with trio.open_nursery() as nursery:
            await nursery.start(view.run)
            await view.wait(lambda v: ready_nodes(v) == {"n1", "n2", NODE} and running_on(v).get(uid) == NODE,
                            timeout_s=FORM_TIMEOUT_S)
            nursery.cancel_scope.cancel()
    # Adopted by the new agentd, not started again: the same containers, still running.
    after = node_containers(p.cluster, NODE, uid)
    assert len(before) == 2 and {c["State"] for c in before} == {"running"}
    assert sorted((c["Id"], c["State"]) for c in after) == sorted((c["Id"], c["State"]) for c in before)
