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
    """Wait until every agent is ready. Today: its API port accepts connections at the node's address.

    This is the hook for a stronger check (the agent's own readiness over its API, the
    cluster formed); `up` and `start` call it after starting agents and nowhere else.
    """
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
