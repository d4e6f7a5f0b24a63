"""Fixtures and probes for the tests of the local cluster tool (cluster/).

A cluster made here always goes down after its tests, whatever happened (down() works
from the name alone, even on a cluster that is half there). The probes look at a node
from the outside: an HTTP GET from the host or from inside another node's namespace,
and UDP datagrams counted by a receiver inside a node.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Callable, Iterator

import docker
import pytest

from cluster import Cluster, down

# A connection that has not succeeded in this long is counted as cut.
PROBE_TIMEOUT_S = 1.0
# How long a healed path may take to carry traffic again (TCP retries are not involved: each probe is new).
HEAL_WAIT_S = 10.0
WEB_PORT = 8080
WEB_BODY = "served by n1"
UDP_PORT = 9999

_FETCH = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode(), end="")
except OSError as exc:
    print(f"ERROR {exc}", end="")
"""

_UDP_RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(float(sys.argv[3]))
print("ready", flush=True)
count = 0
try:
    while True:
        s.recv(64)
        count += 1
except socket.timeout:
    pass
print(count, flush=True)
"""

_UDP_SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.002)
"""


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def fetch(cluster: Cluster, url: str, from_node: str | None = None) -> str:
    """GET `url` from the host, or from inside `from_node`; the body, or "ERROR ..." if it failed."""
    argv = [sys.executable, "-c", _FETCH, url, str(PROBE_TIMEOUT_S)]
    if from_node is not None:
        argv = cluster.in_node(from_node, argv)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout


def web_url(cluster: Cluster, node: str = "n1") -> str:
    return f"http://{cluster.node(node).ip}:{WEB_PORT}/index.html"


def udp_count(cluster: Cluster, sender: str, receiver: str, datagrams: int, idle_s: float = 1.0) -> int:
    """How many of `datagrams` sent from `sender` to `receiver`'s address reach a socket there."""
    target = cluster.node(receiver).ip
    rx = subprocess.Popen(cluster.in_node(receiver, [sys.executable, "-c", _UDP_RECEIVER, target, str(UDP_PORT),
                                                     str(idle_s)]), stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
        subprocess.run(cluster.in_node(sender, [sys.executable, "-c", _UDP_SENDER, target, str(UDP_PORT),
                                                str(datagrams)]), check=True, timeout=30)
        out, _ = rx.communicate(timeout=30)
        return int(out.strip())
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()


def engine(cluster: Cluster, node: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=cluster.node(node).docker_url, timeout=30)


@pytest.fixture(scope="module")
def cluster3() -> Iterator[Cluster]:
    """Three nodes without agents; n1 runs busybox httpd with host port 8080 published."""
    name = unique_name("t")
    try:
        cluster = Cluster.up(name, nodes=3, agent=False)
        client = engine(cluster, "n1")
        client.containers.run("busybox:local", ["sh", "-c", f"echo -n '{WEB_BODY}' > /tmp/index.html && "
                                                            f"exec httpd -f -p {WEB_PORT} -h /tmp"],
                              name="web", detach=True, ports={f"{WEB_PORT}/tcp": WEB_PORT})
        wait_until(lambda: fetch(cluster, web_url(cluster)) == WEB_BODY, HEAL_WAIT_S, "the web container to serve")
        yield cluster
    finally:
        down(name)


@pytest.fixture
def healthy(cluster3: Cluster) -> Cluster:
    """The module's cluster with no fault in force and every node on, whatever an earlier test left."""
    cluster3.heal()
    for node in cluster3.state().off:
        cluster3.start(node)
    return cluster3
