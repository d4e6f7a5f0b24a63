"""The local cluster tool (cluster/) for real: namespaces, dockerds, cgroups, iptables faults.

Needs root and the host's Docker engine (with busybox:local); never skipped. Every cluster
made here is taken down after its tests, even when they fail. Most tests share one 3-node
cluster without agents (each starts from a healthy cluster); the last builds and breaks
clusters of its own to prove that `down` and `up` clean whatever is left.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from cluster import Cluster, ClusterError, down
from cluster import cgroups, engines, faults, network
from cluster.agents import agentd_argv
from cluster.cluster import check_roles
from cluster.layout import ClusterLayout, choose_octet, is_netns_of
from cluster.state import ClusterState
from cluster.system import alive
from tests.integration.cluster_fixtures import (HEAL_WAIT_S, PROBE_TIMEOUT_S, WEB_BODY, cluster3, engine, fetch,
                                                healthy, udp_count, unique_name, wait_until, web_url)

__all__ = ["cluster3", "healthy"]  # fixtures used by name


def cut(body: str) -> bool:
    return body.startswith("ERROR")


def fault_rules(cluster: Cluster, node: str) -> list[str]:
    """The rules in force in the node's fault chain, as iptables lists them."""
    out = subprocess.run(cluster.in_node(node, ["iptables", "-S", network.FAULT_CHAIN]), capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("-A ")]


# ----- pure parts: layout, the agent's command line, fault rules


def test_octet_choice_skips_host_routes_and_other_clusters():
    host = [ipaddress.IPv4Network("10.200.5.0/24"), ipaddress.IPv4Network("192.0.2.0/24")]
    assert choose_octet(host, taken={201}) == 202
    assert choose_octet([ipaddress.IPv4Network("10.0.0.0/8")], taken=set()) is None


def test_a_cluster_owns_only_its_own_namespaces():
    assert is_netns_of("a", "ac-a-hub") and is_netns_of("a", "ac-a-n12")
    assert not is_netns_of("a", "ac-a-b-hub") and not is_netns_of("a", "ac-a-n1-n1")


def test_agent_command_line_servers_bootstrap_and_workers_join():
    layout = ClusterLayout("c", 210, 5, Path("/r/run/cluster/c"))
    n1, n4 = layout.node("n1"), layout.node("n4")
    server = agentd_argv(Path("/r/.venv/bin/agentd"), layout, n1, servers=3)
    worker = agentd_argv(Path("/r/.venv/bin/agentd"), layout, n4, servers=3)
    assert server[:2] == ["nsenter", "--net=/run/netns/ac-c-n1"]
    assert server[server.index("--bootstrap-expect") + 1] == "3"
    assert [server[i + 1] for i, a in enumerate(server) if a == "--join"] == ["10.210.0.2:7946", "10.210.0.3:7946"]
    assert "--bootstrap-expect" not in worker
    assert [worker[i + 1] for i, a in enumerate(worker) if a == "--join"] == [
        "10.210.0.1:7946", "10.210.0.2:7946", "10.210.0.3:7946"]
    assert worker[worker.index("--docker-url") + 1] == "unix:///r/run/cluster/c/n4/docker.sock"
    assert worker[worker.index("--bind") + 1] == "10.210.0.4"


def test_oneway_partition_drops_only_at_the_listener():
    layout = ClusterLayout("c", 210, 3, Path("/r"))
    state = faults.partition(faults.FaultState(), [["n1"], ["n2", "n3"]], oneway=True)
    n1, n2 = layout.node("n1"), layout.node("n2")
    assert [r.split()[1] for r in faults.rules_for(state, n1, layout.nodes)] == [
        "10.210.0.2/32", "10.210.2.0/24", "10.210.0.3/32", "10.210.3.0/24"]
    assert faults.rules_for(state, n2, layout.nodes) == []
    both = faults.partition(faults.FaultState(), [["n1"], ["n2"]], oneway=False)
    assert faults.rules_for(both, n2, layout.nodes)[0].startswith("-s 10.210.0.1/32")
    with pytest.raises(ClusterError, match="exactly two groups"):
        faults.partition(faults.FaultState(), [["n1"], ["n2"], ["n3"]], oneway=True)
    with pytest.raises(ClusterError, match="two or more groups"):
        faults.check_groups(faults.parse_groups("n1,n2"), ["n1", "n2"])
    with pytest.raises(ClusterError, match="in two groups"):
        faults.check_groups(faults.parse_groups("n1,n2 / n2"), ["n1", "n2"])


def test_agents_on_the_first_nodes_only():
    assert check_roles(3, None, True, None) == (3, 3)
    assert check_roles(4, None, False, None) == (3, 0)
    assert check_roles(3, 3, True, 2) == (3, 2)  # n3, a server, waits for an agentd started by hand
    with pytest.raises(ClusterError, match="--agents with --no-agent"):
        check_roles(3, None, False, 2)
    with pytest.raises(ClusterError, match="--agents must be between 1 and the number of nodes \\(3\\), not 4"):
        check_roles(3, None, True, 4)
    layout = ClusterLayout("c", 210, 3, Path("/r"))
    st = ClusterState(layout, 3, 2)
    assert [st.runs_agent(n) for n in layout.nodes] == [True, True, False]
    assert ClusterState.from_json(st.to_json(), Path("/r")) == st
    older = {k: v for k, v in st.to_json().items() if k != "agents"}  # a state file from before --agents
    assert ClusterState.from_json(older, Path("/r")).agents == 3
    assert ClusterState.from_json({**older, "agent": False}, Path("/r")).agents == 0


# ----- a real cluster


def test_every_engine_answers_with_the_examples_image(healthy: Cluster):
    layout = healthy.layout
    addresses = {n.ip for n in layout.nodes}
    assert len(addresses) == 3 and all(ipaddress.IPv4Address(a) in ipaddress.IPv4Network(layout.subnet)
                                       for a in addresses)
    for node in layout.nodes:
        assert engines.ping(node), f"{node.name}'s engine does not answer"
        assert engine(healthy, node.name).images.get("busybox:local")
    rows = healthy.status()
    assert [(r.name, r.power, r.dockerd, r.agentd) for r in rows] == [(n, "on", True, "-") for n in ("n1", "n2", "n3")]
    servers = ",".join(f"{layout.node(n).ip}:7070" for n in ("n1", "n2", "n3"))  # all three are servers
    assert healthy.env() == f"export AGENTCTL_SERVER={servers}"


def test_containers_run_in_the_node_cgroup(healthy: Cluster):
    n1 = healthy.node("n1")
    web = engine(healthy, "n1").containers.get("web")
    assert web.attrs["State"]["Pid"] in cgroups.pids(n1.cgroup)
    assert engines.pid(n1) in cgroups.pids(n1.cgroup)
    assert web.attrs["State"]["Pid"] not in cgroups.pids(healthy.node("n2").cgroup)


def test_load_image_copies_a_host_image_into_every_node(healthy: Cluster, docker_client: docker.DockerClient):
    tag = f"agentcluster-test/{unique_name('img')}:copy"
    docker_client.images.get("busybox:local").tag(tag)
    try:
        assert healthy.load_image(tag) == ["n1", "n2", "n3"]
        for node in ("n1", "n2", "n3"):
            assert engine(healthy, node).images.get(tag)
    finally:
        docker_client.images.remove(tag)
        for node in ("n1", "n2", "n3"):
            engine(healthy, node).images.remove(tag)


def test_published_port_is_reachable_from_other_nodes_and_the_host(healthy: Cluster):
    url = web_url(healthy)
    assert fetch(healthy, url) == WEB_BODY
    assert fetch(healthy, url, from_node="n2") == WEB_BODY
    assert fetch(healthy, url, from_node="n3") == WEB_BODY
    # A container's own address is routed too, from the host and from other nodes.
    ip = engine(healthy, "n1").containers.get("web").attrs["NetworkSettings"]["IPAddress"]
    assert ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(healthy.node("n1").pod_cidr)
    assert fetch(healthy, f"http://{ip}:8080/index.html", from_node="n3") == WEB_BODY
    assert fetch(healthy, f"http://{ip}:8080/index.html") == WEB_BODY


def test_partition_cuts_and_heal_restores(healthy: Cluster):
    url = web_url(healthy)
    healthy.partition([["n1"], ["n2"]])
    assert len(fault_rules(healthy, "n1")) == 2 and len(fault_rules(healthy, "n2")) == 2
    assert cut(fetch(healthy, url, from_node="n2"))
    assert fetch(healthy, url, from_node="n3") == WEB_BODY
    assert fetch(healthy, url) == WEB_BODY
    assert {r.name: r.faults for r in healthy.status()}["n2"] == "cut from n1"
    healthy.heal()
    wait_until(lambda: fetch(healthy, url, from_node="n2") == WEB_BODY, HEAL_WAIT_S, "n2 to reach n1 after heal")
    assert fault_rules(healthy, "n1") == []


def test_oneway_partition_cuts_exactly_one_direction(healthy: Cluster):
    healthy.partition([["n1"], ["n2"]], oneway=True)  # n1 sends to n2 and hears nothing back
    assert udp_count(healthy, sender="n1", receiver="n2", datagrams=20) == 20
    assert udp_count(healthy, sender="n2", receiver="n1", datagrams=20) == 0
    assert udp_count(healthy, sender="n3", receiver="n1", datagrams=20) == 20
    assert cut(fetch(healthy, web_url(healthy), from_node="n2"))  # a TCP connection needs both ways
    healthy.heal()
    assert udp_count(healthy, sender="n2", receiver="n1", datagrams=20) == 20


def test_loss_drops_that_share_of_packets_and_heal_restores(healthy: Cluster):
    sent, p = 400, 0.5
    healthy.loss("n1", p)
    got = udp_count(healthy, sender="n2", receiver="n1", datagrams=sent)
    sigma = math.sqrt(sent * p * (1 - p))
    assert abs(got - sent * (1 - p)) < 5 * sigma, f"{got} of {sent} datagrams arrived with loss {p}"
    healthy.loss("n1", 1.0)
    assert cut(fetch(healthy, web_url(healthy)))
    assert cut(fetch(healthy, web_url(healthy), from_node="n2"))
    healthy.heal()
    wait_until(lambda: fetch(healthy, web_url(healthy)) == WEB_BODY, HEAL_WAIT_S, "n1 to answer after heal")


def test_pause_all_freezes_the_node_and_resume_thaws_it(healthy: Cluster):
    n1 = healthy.node("n1")
    with pytest.raises(ClusterError, match="no agentd"):
        healthy.pause("n1")
    healthy.pause("n1", whole=True)
    assert not engines.ping(n1, timeout_s=PROBE_TIMEOUT_S)
    assert cut(fetch(healthy, web_url(healthy)))  # docker-proxy and httpd are frozen too
    assert {r.name: r.power for r in healthy.status()}["n1"] == "frozen"
    healthy.resume("n1")
    assert engines.ping(n1)
    assert fetch(healthy, web_url(healthy)) == WEB_BODY


def test_timed_pause_resumes_itself(healthy: Cluster):
    n3, for_s = healthy.node("n3"), 2.0
    paused_at = time.monotonic()
    healthy.pause("n3", whole=True, for_s=for_s)
    assert not engines.ping(n3, timeout_s=PROBE_TIMEOUT_S)
    ended = lambda: [e for e in healthy.journal() if e["event"] == "resume" and e["node"] == "n3"]  # noqa: E731
    wait_until(lambda: bool(ended()), for_s + HEAL_WAIT_S, "the timed pause to end")
    assert time.monotonic() - paused_at >= for_s
    assert ended()[-1]["by"] == "timer"
    assert engines.ping(n3)
    assert healthy.state().faults.pause_of("n3") is None


def test_kill_leaves_nothing_running_and_start_boots_from_disk(healthy: Cluster):
    n2 = healthy.node("n2")
    client = engine(healthy, "n2")
    sleeper = client.containers.run("busybox:local", ["sleep", "1000"], name="sleeper", detach=True)
    container_pid = client.containers.get(sleeper.id).attrs["State"]["Pid"]
    engine_pid = engines.pid(n2)
    healthy.kill("n2")
    assert cgroups.pids(n2.cgroup) == []
    assert not alive(container_pid) and not alive(engine_pid)  # dead; a zombie waits for init to reap it
    assert _processes_mentioning(str(n2.dir)) == []
    assert not engines.ping(n2, timeout_s=PROBE_TIMEOUT_S)
    assert not any(p.exists() for p in engines.shim_sockets(n2.dir))
    unplugged = fetch(healthy, f"http://{n2.ip}:1/", from_node="n1")
    assert cut(unplugged) and "refused" not in unplugged  # a machine that is off does not even refuse
    assert {r.name: (r.power, r.plugged, r.dockerd) for r in healthy.status()}["n2"] == ("off", False, False)
    with pytest.raises(ClusterError, match="already down"):
        healthy.kill("n2")
    healthy.start("n2")
    client = engine(healthy, "n2")
    assert {r.name: (r.power, r.plugged, r.dockerd) for r in healthy.status()}["n2"] == ("on", True, True)
    assert client.images.get("busybox:local")
    assert client.containers.get("sleeper").attrs["State"]["Running"] is False
    with pytest.raises(ClusterError, match="already running"):
        healthy.start("n2")
    client.containers.get("sleeper").remove(force=True)


def test_stop_is_graceful_and_restart_kills_then_starts(healthy: Cluster):
    client = engine(healthy, "n3")
    polite = client.containers.run("busybox:local", ["sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"],
                                   name="polite", detach=True)
    healthy.stop("n3")
    assert healthy.journal()[-1]["event"] == "stop" and healthy.journal()[-1]["graceful"] is True
    assert cgroups.pids(healthy.node("n3").cgroup) == []
    healthy.start("n3")
    assert engine(healthy, "n3").containers.get(polite.id).attrs["State"]["ExitCode"] == 7  # it got SIGTERM
    before = engines.pid(healthy.node("n3"))
    healthy.restart("n3")
    assert engines.pid(healthy.node("n3")) not in (None, before)
    assert [e["event"] for e in healthy.journal()[-2:]] == ["kill", "start"]
    engine(healthy, "n3").containers.get("polite").remove(force=True)


def test_clear_errors(healthy: Cluster):
    with pytest.raises(ClusterError, match="unknown node 'n9'"):
        healthy.kill("n9")
    with pytest.raises(ClusterError, match="unknown node 'n7'"):
        healthy.partition([["n1"], ["n7"]])
    with pytest.raises(ClusterError, match="between 0 and 1"):
        healthy.loss("n1", 1.5)
    with pytest.raises(ClusterError, match="not paused"):
        healthy.resume("n2")
    with pytest.raises(ClusterError, match="already up"):
        Cluster.up(healthy.name, nodes=1, agent=False, images=())
    with pytest.raises(ClusterError, match="--servers"):
        Cluster.up(unique_name("e"), nodes=2, servers=3, agent=False)
    with pytest.raises(ClusterError, match="no cluster named"):
        Cluster(unique_name("none")).kill("n1")
    assert healthy.state().faults.empty  # a refused command changes nothing


def test_cli_status_and_faults_timeline(healthy: Cluster):
    repo = Path(__file__).resolve().parents[2]

    def run(*args: str, prefix: tuple[str, ...] = (), env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, sys.executable, "-m", "cluster", *args, "--name", healthy.name],
                              cwd=repo, capture_output=True, text=True, timeout=60, env=env)

    assert run("partition", "n1,n2", "/", "n3").returncode == 0
    status = run("status")
    assert "cut from n3" in status.stdout and "cut from n1,n2" in status.stdout, status.stdout
    bad = run("kill", "n9")
    assert bad.returncode == 1 and "unknown node 'n9'" in bad.stderr
    nobody = run("kill", "n1", prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"))
    assert nobody.returncode == 1 and "must run as root" in nobody.stderr
    no_tools = run("kill", "n1", env={**os.environ, "PATH": "/nonexistent"})
    assert no_tools.returncode == 1 and "missing tools: ip (package iproute2)" in no_tools.stderr
    assert healthy.state().off == frozenset()  # refused: n1 was not killed
    assert run("heal").returncode == 0
    events = [json.loads(line) for line in run("faults").stdout.splitlines()]
    assert [e["event"] for e in events[-2:]] == ["partition", "heal"]
    assert events[-2]["groups"] == [["n1", "n2"], ["n3"]] and events[-2]["t"] <= events[-1]["t"]
    assert run("env").stdout.strip() == healthy.env()


def test_exec_runs_a_command_as_a_process_of_the_node(healthy: Cluster):
    repo = Path(__file__).resolve().parents[2]
    n2 = healthy.node("n2")

    def cli_exec(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cluster", "exec", "--name", healthy.name, *argv], cwd=repo,
                              capture_output=True, text=True, timeout=60)

    # In the node's network namespace and cgroups; its exit status is the command's.
    seen = cli_exec("n2", "--", "sh", "-c", "grep freezer /proc/self/cgroup; ip -4 -o addr show eth0; exit 3")
    assert seen.returncode == 3, seen.stderr
    assert f"freezer:{n2.cgroup}" in seen.stdout and f"inet {n2.ip}/" in seen.stdout, seen.stdout
    # What it leaves running is the node's: listed with it, and killed with it.
    daemon = cli_exec("n2", "sh", "-c", "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!")
    pid = int(daemon.stdout)
    assert pid in cgroups.pids(n2.cgroup)
    healthy.kill("n2")
    assert not alive(pid)
    with pytest.raises(ClusterError, match="n2 is down"):
        healthy.exec_argv("n2", ["true"])
    healthy.start("n2")
    assert cli_exec("n9", "true").returncode == 1 and "unknown node 'n9'" in cli_exec("n9", "true").stderr
    assert "no command given" in cli_exec("n2", "--").stderr


# ----- down, and up over leftovers


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{proc.name}: {cmdline}")
    return found


def _host_traces(name: str, octet: int, run_dir: Path) -> dict[str, list[str]]:
    """Everything of cluster `name` that the host still shows; all lists empty once it is gone."""
    links = json.loads(subprocess.run(["ip", "-j", "-d", "link"], capture_output=True, text=True).stdout)
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    mounts = Path("/proc/self/mountinfo").read_text()
    return {
        "namespaces": network.namespaces_of(name),
        "links": [link["ifname"] for link in links
                  if link["ifname"] == f"acnet{octet}" or name in link.get("ifalias", "")],
        "routes": [r for r in routes.splitlines() if f"10.{octet}." in r],
        "iptables": [r for r in rules.splitlines() if f"10.{octet}." in r or f"acnet{octet}" in r],
        "mounts": [m for m in mounts.splitlines() if str(run_dir) in m],
        "cgroups": [str(p) for p in cgroups.exists_anywhere(f"/agentcluster/{name}")],
        "processes": _processes_mentioning(str(run_dir)) + _processes_mentioning(f"--name {name}"),
        "run_dir": [str(run_dir)] if run_dir.exists() else [],
    }


def test_down_leaves_nothing_even_after_kills_and_a_lost_state_file(cluster3: Cluster):
    name = unique_name("d")
    try:
        first = Cluster.up(name, nodes=2, agent=False)
        layout = first.layout
        assert layout.octet != cluster3.layout.octet  # two clusters at once, each its own subnet
        engine(first, "n1").containers.run("busybox:local", ["sleep", "1000"], name="orphan", detach=True)
        first.kill("n2")
        layout.state_file.unlink()  # the tool "crashed": no record of this cluster any more
        # up over the leftovers removes them first, then makes a fresh cluster.
        again = Cluster.up(name, nodes=2, agent=False)
        assert engine(again, "n1").containers.list(all=True) == []
        engine(again, "n1").containers.run("busybox:local", ["sleep", "1000"], name="orphan", detach=True,
                                           ports={"8080/tcp": 8080})
        engine(again, "n2").containers.run("busybox:local", ["sleep", "1000"], name="frozen", detach=True)
        again.pause("n2", whole=True, for_s=600)
        layout = again.layout
        shims = [p for n in layout.nodes for p in engines.shim_sockets(n.dir)]
        assert shims and all(p.exists() for p in shims)
        # Another crash: n1's dockerd dies alone (its containerd and shims live on) and the record is lost.
        os.kill(engines.pid(layout.node("n1")), signal.SIGKILL)
        layout.state_file.unlink()
        # A cluster of this name owned by another checkout is refused, and left as it is.
        subprocess.run(["ip", "link", "set", layout.host_link, "alias", f"agentcluster {name} /elsewhere"], check=True)
        with pytest.raises(ClusterError, match="another checkout"):
            down(name)
        assert network.namespaces_of(name)
        subprocess.run(["ip", "link", "set", layout.host_link, "alias", layout.host_link_alias], check=True)
        assert down(name) is True
        traces = _host_traces(name, layout.octet, layout.run_dir)
        assert traces == {k: [] for k in traces}, traces
        assert not any(p.exists() for p in shims)
        assert down(name) is False  # nothing left to remove
        assert engines.ping(cluster3.node("n1"))  # the other cluster is untouched
    finally:
        down(name)
