"""Each node's agentd: its command line, starting it in its node, stopping it, waiting for it.

Rules:
- `agentd_argv` is the one place that knows agentd's flags.
- agentd runs in the node's network namespace and cgroups (so a node's kill, freeze and
  process list include it), in the host's mount namespace, logging to <node dir>/agentd.log.
- The first `servers` nodes are started with --bootstrap-expect <servers>; the others
  join as workers. Every agent is given the gossip address of every server but itself.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path
from typing import Sequence

from . import cgroups
from .errors import ClusterError
from .layout import AGENT_API_PORT, AGENT_GOSSIP_PORT, ClusterLayout, NodeLayout
from .log_digest import digest
from .system import alive, in_netns, log_tail, read_pid, signal_pid, spawn_detached, wait_gone

# How long agents may take to listen after they start (Python start-up on 2 shared cores).
AGENT_READY_TIMEOUT_S = 60.0
# How long a graceful stop may take: agentd leaves the gossip and closes its services.
AGENT_STOP_TIMEOUT_S = 20.0


def agentd_binary(repo: Path) -> Path:
    """<repo>/.venv/bin/agentd, or the agentd installed next to the running Python."""
    for candidate in (repo / ".venv" / "bin" / "agentd", Path(sys.executable).parent / "agentd"):
        if candidate.exists():
            return candidate
    raise ClusterError(f"agentd not found in {repo / '.venv/bin'} nor next to {sys.executable}; "
                       "run scripts/setup.sh, or use --no-agent")


def agentd_argv(binary: Path, layout: ClusterLayout, node: NodeLayout, servers: int) -> list[str]:
    """The command line of `node`'s agentd (inside its namespace)."""
    server_nodes = layout.nodes[:servers]
    argv = [str(binary), "--name", node.name, "--data-dir", str(node.agent_dir), "--bind", node.ip,
            "--api-port", str(AGENT_API_PORT), "--gossip-port", str(AGENT_GOSSIP_PORT)]
    for seed in server_nodes:
        if seed.name != node.name:
            argv += ["--join", seed.gossip_address]
    if node in server_nodes:
        argv += ["--bootstrap-expect", str(servers)]
    argv += ["--docker-url", node.docker_url, "--log-level", "info"]
    return in_netns(node.netns_path, argv)


def _pidfile(node: NodeLayout) -> Path:
    return node.dir / "agentd.pid"


def pid(node: NodeLayout) -> int | None:
    """agentd's pid if it runs, in the node's cgroup."""
    p = read_pid(_pidfile(node))
    if p is None or not alive(p) or p not in cgroups.pids(node.cgroup):
        return None
    return p


def start(binary: Path, layout: ClusterLayout, node: NodeLayout, servers: int) -> int:
    node.agent_dir.mkdir(parents=True, exist_ok=True)
    return spawn_detached(agentd_argv(binary, layout, node, servers), cgroup_dirs=cgroups.placed_dirs(node.cgroup),
                          pidfile=_pidfile(node), log=node.dir / "agentd.log")


def stop(node: NodeLayout) -> bool:
    """SIGTERM agentd (SIGCONT too, if it was stopped) and wait. False if it did not exit in time."""
    p = pid(node)
    if p is None:
        return True
    signal_pid(p, signal.SIGTERM)
    signal_pid(p, signal.SIGCONT)
    return not wait_gone([p], AGENT_STOP_TIMEOUT_S)


def wait_ready(nodes: Sequence[NodeLayout], timeout_s: float = AGENT_READY_TIMEOUT_S) -> None:
    """Wait until every agent's API port accepts connections at its node's address."""
    waiting = list(nodes)
    deadline = time.monotonic() + timeout_s
    while waiting:
        for node in list(waiting):
            if pid(node) is None:
                raise ClusterError(f"agentd of {node.name} exited:\n{log_tail(node.dir / 'agentd.log')}")
            try:
                with socket.create_connection((node.ip, AGENT_API_PORT), timeout=0.5):
                    waiting.remove(node)
            except OSError:
                pass
        if waiting and time.monotonic() > deadline:
            raise ClusterError(f"agents not ready after {timeout_s:.0f}s: {', '.join(n.name for n in waiting)}\n"
                               f"{log_tail(waiting[0].dir / 'agentd.log')}")
        if waiting:
            time.sleep(0.1)


def wait_cluster_ready(nodes: Sequence[NodeLayout], timeout_s: float = AGENT_READY_TIMEOUT_S) -> None:
    """Wait until the cluster has a leader and every one of `nodes` is a Ready Node in its
    state (asked through the nodes' own APIs, with linearizable reads)."""
    import json

    import grpc

    from agent.rpc import cluster_pb2, cluster_pb2_grpc

    wanted = {n.name for n in nodes}
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    channels = [grpc.insecure_channel(n.api_address) for n in nodes]
    try:
        while True:
            for node, channel in zip(nodes, channels):
                try:
                    reply = cluster_pb2_grpc.ClusterServiceStub(channel).List(
                        cluster_pb2.ListRequest(kind="Node"), timeout=2)
                except grpc.RpcError as exc:
                    last = f"{node.name}: {exc.code().name} {exc.details()}"
                    continue
                ready = set()
                for item in reply.items:
                    doc = json.loads(item)
                    for cond in (doc.get("status") or {}).get("conditions") or ():
                        if cond.get("type") == "Ready" and cond.get("status") == "True":
                            ready.add(doc["metadata"]["name"])
                if wanted <= ready:
                    return
                last = f"Ready: {', '.join(sorted(ready)) or 'none'}; waiting for {', '.join(sorted(wanted - ready))}"
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"the cluster did not become ready in {timeout_s:.0f}s ({last})\n"
                                   f"{digest(nodes[0].dir.parent)}")
            time.sleep(0.2)
    finally:
        for channel in channels:
            channel.close()
