"""Each node's Docker engine: starting it in its node, asking it, stopping it, loading images.

Rules:
- A node's dockerd runs in the node's network namespace (nsenter --net) and in a mount
  namespace of its own (unshare --mount, propagation slave): its overlay, shm and netns
  mounts exist only there and vanish with its last process, so a killed node leaves no
  mount on the host. Its socket, pidfile, data and exec roots are under the node's dir.
- --iptables=false (the host's rules are never touched) with the default bridge: docker0
  gets the node's container subnet (--bip) and published ports are served by docker's
  userland proxy on every address of the node, so `-p 8080:80` answers at <node ip>:8080
  from other nodes and from the host. Containers use the network named "bridge".
- --cgroup-parent is the node's cgroup, so every container is a part of the node.
- --config-file points to an empty file of the node's, so /etc/docker/daemon.json, which
  is the host engine's, changes nothing here.
- A SIGKILLed containerd-shim leaves its socket in /run/containerd/s/, named by a hash of
  (containerd's socket, namespace, container id); those of the node's containers are
  removed after a kill and at `down`, and no other file there is touched.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Sequence

from . import cgroups
from .errors import ClusterError
from .layout import NodeLayout, containerd_socket_of, data_root_of
from .system import alive, in_netns, log_tail, read_pid, run, signal_pid, spawn_detached, wait_gone

# Where containerd-shim-runc-v2 puts its sockets (containerd's default state dir), and docker's namespace.
SHIM_SOCKET_DIR = Path("/run/containerd/s")
DOCKER_CONTAINERD_NAMESPACE = "moby"
# How long every engine of `up` or `start` may take to answer (2 shared cores, several dockerds at once).
ENGINE_START_TIMEOUT_S = 90.0
# How long a graceful stop may take: dockerd's own shutdown timeout for containers (15 s) plus margin.
ENGINE_STOP_TIMEOUT_S = 40.0
# A ping answered within this is an engine that answers.
PING_TIMEOUT_S = 2.0


def dockerd_argv(node: NodeLayout) -> list[str]:
    return in_netns(node.netns_path, [
        "unshare", "--mount", "--propagation", "slave",
        "dockerd",
        "--config-file", str(node.dir / "daemon.json"),
        "--data-root", str(node.data_root),
        "--exec-root", str(node.exec_root),
        "--host", node.docker_url,
        "--pidfile", str(node.exec_root / "dockerd.pid"),
        "--iptables=false", "--ip-masq=false", "--userland-proxy=true",
        "--bip", node.docker_bip,
        "--cgroup-parent", node.cgroup,
    ])


def _pidfile(node: NodeLayout) -> Path:
    return node.dir / "dockerd.pid"


def pid(node: NodeLayout) -> int | None:
    """dockerd's pid if it runs, in the node's cgroup (a recycled pid elsewhere is not it)."""
    p = read_pid(_pidfile(node))
    if p is None or not alive(p) or p not in cgroups.pids(node.cgroup):
        return None
    return p


def start(node: NodeLayout) -> int:
    """Launch the node's dockerd (does not wait for it to answer)."""
    node.dir.mkdir(parents=True, exist_ok=True)
    (node.dir / "daemon.json").write_text("{}\n")
    # Left by a killed engine; a recycled pid in them would make dockerd or containerd refuse to start.
    for stale in (node.exec_root / "dockerd.pid", node.exec_root / "containerd" / "containerd.pid"):
        stale.unlink(missing_ok=True)
    return spawn_detached(dockerd_argv(node), cgroup_dirs=cgroups.placed_dirs(node.cgroup),
                          pidfile=_pidfile(node), log=node.dir / "dockerd.log")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout_s: float) -> None:
        super().__init__("localhost", timeout=timeout_s)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def ping(node: NodeLayout, timeout_s: float = PING_TIMEOUT_S) -> bool:
    """True if the engine answers its API's /_ping within `timeout_s`."""
    conn = _UnixHTTPConnection(node.docker_socket, timeout_s)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_answering(nodes: Sequence[NodeLayout], timeout_s: float = ENGINE_START_TIMEOUT_S) -> None:
    """Wait until every engine answers; fail early, with its log, if one died."""
    waiting = list(nodes)
    deadline = time.monotonic() + timeout_s
    while waiting:
        for node in list(waiting):
            if ping(node, timeout_s=1.0):
                waiting.remove(node)
            elif pid(node) is None:
                raise ClusterError(f"dockerd of {node.name} exited:\n{log_tail(node.dir / 'dockerd.log')}")
        if waiting and time.monotonic() > deadline:
            names = ", ".join(n.name for n in waiting)
            raise ClusterError(f"engines not answering after {timeout_s:.0f}s: {names}\n"
                               f"{log_tail(waiting[0].dir / 'dockerd.log')}")
        if waiting:
            time.sleep(0.05)


def stop(node: NodeLayout) -> bool:
    """SIGTERM dockerd and wait: it stops its containers and its containerd. False if it did not exit in time."""
    p = pid(node)
    if p is None:
        return True
    signal_pid(p, signal.SIGTERM)
    return not wait_gone([p], ENGINE_STOP_TIMEOUT_S)


def container_ids(node_dir: Path) -> list[str]:
    """Every container the node's engine has on disk, running or not (read from its data root)."""
    try:
        return sorted(p.name for p in (data_root_of(node_dir) / "containers").iterdir())
    except FileNotFoundError:
        return []


def shim_sockets(node_dir: Path) -> list[Path]:
    """Where the shims of the node's containers have (or had) their sockets."""
    containerd = containerd_socket_of(node_dir)
    return [SHIM_SOCKET_DIR / hashlib.sha256(os.path.join(str(containerd), DOCKER_CONTAINERD_NAMESPACE, cid)
                                             .encode()).hexdigest()
            for cid in container_ids(node_dir)]


def remove_shim_sockets(node_dir: Path) -> None:
    for path in shim_sockets(node_dir):
        path.unlink(missing_ok=True)


def load_image(image: str, nodes: Sequence[NodeLayout], scratch: Path) -> None:
    """Copy `image` from the host's engine into every engine of `nodes` (docker save, then load in parallel)."""
    tar = scratch / "image-load.tar"
    try:
        run(["docker", "save", "-o", str(tar), image], timeout_s=300)
        loads = [(node, subprocess.Popen(["docker", "-H", node.docker_url, "load", "-q", "-i", str(tar)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                 for node in nodes]
        failed = []
        for node, proc in loads:
            _, err = proc.communicate(timeout=300)
            if proc.returncode != 0:
                failed.append(f"{node.name}: {err.strip()}")
        if failed:
            raise ClusterError(f"loading {image} failed on " + "; ".join(failed))
    finally:
        tar.unlink(missing_ok=True)
