"""The cluster as a whole: up, down, a node's life (kill, start, stop, restart), and faults.

Rules:
- Every command that changes a cluster holds its lock from the first look at the state
  to the last write, and re-reads the state from disk: a `Cluster` object is a handle
  (a name), never a cache, so several processes can drive one cluster.
- `up` writes the state file as soon as the cluster's subnet is claimed and marks it
  complete only at the end; if it fails it takes down what it made. A cluster whose
  state is missing or incomplete is leftovers: `down` removes it, `up` removes it first.
- `down` finds everything from the name alone (namespaces "ac-<name>-*", the cgroup
  tree /agentcluster/<name>, the host link whose alias names the cluster), kills by
  cgroup, and refuses to touch a cluster that another checkout owns.
- A node is a machine: `kill` unplugs it and SIGKILLs its whole cgroup tree at once;
  `stop` shuts agentd then dockerd down gracefully, then unplugs it; `start` plugs it in
  and boots dockerd, then agentd, on the same disk.
- `up --agents K` starts agentd on the first K nodes only; the others get their namespace
  and dockerd, waiting for an agentd started by hand (`exec`, as vagrant/provision.sh is
  tested). If a server is among them, `up` waits for the agents to listen, not for the
  cluster to form: it cannot before every server runs an agent. The tool never starts nor
  stops an agentd started by hand, but a node's kill and `down` end it with the rest of
  the node: `exec` runs a command as a process of the node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from . import agents, cgroups, engines, faults, network, state
from .errors import ClusterError
from .layout import (CGROUP_ROOT, MAX_NODES, UNIX_PATH_MAX, ClusterLayout, NodeLayout, check_name, choose_octet,
                     host_link_alias)
from .state import ClusterState
from .system import (in_cgroups, in_netns, require_root, require_tools, run, signal_pid, spawn_detached, stopped,
                     unmount_under)

REPO = Path(__file__).resolve().parents[1]
RUN_ROOT = REPO / "run" / "cluster"
# Images `up` copies into every node: the ones the examples use.
DEFAULT_IMAGES = ("busybox:local",)
# How many times `up` looks for another octet when a concurrent `up` took the one it chose.
_OCTET_ATTEMPTS = 5

# What each command needs on the host (status and env need nothing but the state file).
UP_TOOLS = ("ip", "iptables-restore", "nsenter", "unshare", "setsid", "dockerd")
DOWN_TOOLS = ("ip", "umount")

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def run_dir_of(name: str) -> Path:
    return RUN_ROOT / check_name(name)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    ip: str
    role: str  # "server" or "worker"
    power: str  # "on", "off" (killed or stopped), "frozen"
    plugged: bool  # the node's link to the hub is up
    dockerd: bool  # the engine process runs
    agentd: str  # "running", "stopped" (SIGSTOP), "down", or "-" without agents
    tasks: int | None  # threads in the node's cgroups (pids.current)
    rss_mib: float | None  # anonymous memory of the node's cgroups
    faults: str


class Cluster:
    """A handle on the cluster named `name`; every method reads the state afresh."""

    def __init__(self, name: str = "default") -> None:
        self.name = check_name(name)
        self.run_dir = run_dir_of(name)

    # ----- reading

    def state(self) -> ClusterState:
        st = state.load(self.run_dir)
        if st is None:
            raise ClusterError(f"no cluster named {self.name!r} is up (python -m cluster up --name {self.name})")
        if not st.complete:
            raise ClusterError(f"cluster {self.name!r} is not up: it is starting, or what an interrupted `up` left "
                               f"(python -m cluster down --name {self.name} removes it)")
        return st

    @property
    def layout(self) -> ClusterLayout:
        return self.state().layout

    @property
    def nodes(self) -> tuple[NodeLayout, ...]:
        return self.layout.nodes

    def node(self, name: str) -> NodeLayout:
        return self.layout.node(name)

    def env(self) -> str:
        """What to paste so that agentctl talks to the cluster: every server's address, so
        that agentctl fails over to another when one is down."""
        servers = self.state().layout.nodes[:self.state().servers]
        return f"export AGENTCTL_SERVER={','.join(n.api_address for n in servers)}"

    def journal(self) -> list[dict[str, Any]]:
        return state.journal(self.run_dir)

    def in_node(self, node: str, argv: Sequence[str]) -> list[str]:
        """`argv` to run inside `node`'s network namespace."""
        return in_netns(self.node(node).netns_path, argv)

    def exec_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        """`argv` to run as a process of `node`: in its network namespace and its cgroups, so
        that what it starts (a daemon, detached or not) is the node's, and a kill or `down`
        of the node ends it."""
        n = self.node(node)
        if node in self.state().off:
            raise ClusterError(f"{node} is down (python -m cluster start --name {self.name} {node})")
        return in_netns(n.netns_path, in_cgroups(cgroups.placed_dirs(n.cgroup), argv))

    def status(self) -> list[NodeStatus]:
        st = self.state()
        rows = []
        for node in st.layout.nodes:
            is_frozen = cgroups.frozen(node.cgroup)
            agent_pid = agents.pid(node) if st.runs_agent(node) else None
            if not st.runs_agent(node):
                agentd = "-"
            elif agent_pid is None:
                agentd = "down"
            else:
                agentd = "stopped" if stopped(agent_pid) else "running"
            rss = cgroups.rss_bytes(node.cgroup)
            rows.append(NodeStatus(
                name=node.name, ip=node.ip, role="server" if node in st.layout.nodes[:st.servers] else "worker",
                power="off" if node.name in st.off else ("frozen" if is_frozen else "on"),
                plugged=network.node_link_up(st.layout, node),
                dockerd=engines.pid(node) is not None, agentd=agentd,
                tasks=cgroups.task_count(node.cgroup), rss_mib=None if rss is None else rss / 2**20,
                faults=faults.describe(st.faults, node.name)))
        return rows

    # ----- creating and removing

    @classmethod
    def up(cls, name: str = "default", *, nodes: int = 3, servers: int | None = None, agent: bool = True,
           agent_nodes: int | None = None, images: Sequence[str] = DEFAULT_IMAGES,
           log: Log = _quiet) -> "Cluster":
        """Create the cluster and wait until every engine answers (and every agent is ready).
        `agent_nodes`: start agentd on the first `agent_nodes` nodes only (default: all; none without `agent`)."""
        require_root()
        require_tools(UP_TOOLS + (("docker",) if images else ()))
        cgroups.check_hierarchies()
        servers, agent_count = check_roles(nodes, servers, agent, agent_nodes)
        binary = agents.agentd_binary(REPO) if agent_count else None
        for image in images:
            if run(["docker", "image", "inspect", image], check=False).returncode != 0:
                raise ClusterError(f"image {image} is not in the host's engine (scripts/build_images.sh makes it)")
        cluster = cls(name)
        layout = ClusterLayout(name, 0, nodes, cluster.run_dir)  # the octet is chosen when it is claimed
        socket_path = str(layout.nodes[-1].containerd_socket) + ".ttrpc"
        if len(socket_path.encode()) > UNIX_PATH_MAX:
            raise ClusterError(f"the repository path is too long for unix sockets ({socket_path}); move it higher")
        link = network.host_link_of(name)
        if link is not None and link[1] != host_link_alias(name, cluster.run_dir):
            raise ClusterError(f"cluster name {name!r} is taken on this host by another checkout (host link "
                               f"{link[0]}: {link[1]!r}); choose another --name")
        with state.locked(cluster.run_dir, create=True):
            found = state.load(cluster.run_dir)
            if found is not None and found.complete:
                raise ClusterError(f"cluster {name!r} is already up; `python -m cluster down --name {name}` first")
            if found is not None or _leftovers(name):
                log(f"removing the leftovers of an earlier cluster {name!r}")
                _teardown(name, cluster.run_dir, found, keep_run_dir=True)
            started = time.monotonic()
            if not network.claim_name(layout):
                raise ClusterError(f"cluster name {name!r} is in use on this host (namespace {layout.hub_netns} "
                                   "exists); choose another --name")
            try:
                cluster._create(layout, servers, agent_count, binary, images, log)
            except BaseException:
                _teardown(name, cluster.run_dir, state.load(cluster.run_dir), keep_run_dir=False)
                log(f"up failed: cluster {name!r} removed")
                raise
            log(f"cluster {name!r} up in {time.monotonic() - started:.1f}s")
        return cluster

    def _create(self, layout: ClusterLayout, servers: int, agent_count: int, binary: Path | None,
                images: Sequence[str], log: Log) -> None:
        """Everything of a cluster whose name is claimed (its hub namespace made); on failure the caller removes it."""
        network.create_hub(layout)
        for _ in range(_OCTET_ATTEMPTS):
            octet = choose_octet(network.host_networks(), network.taken_octets())
            if octet is None:
                raise ClusterError("no free subnet 10.X.0.0/16 (X in 200..254) on this host")
            layout = replace(layout, octet=octet)
            if network.claim_host_link(layout):
                break
        else:
            raise ClusterError(f"could not claim a subnet in {_OCTET_ATTEMPTS} attempts (other clusters starting?)")
        st = ClusterState(layout, servers, agent_count)
        state.save(st)
        for node in layout.nodes:
            cgroups.create(node.cgroup)
            network.create_node(layout, node)
        log(f"network {layout.subnet}: {layout.node_count} nodes, host at {layout.host_ip}")
        for node in layout.nodes:
            engines.start(node)
        engines.wait_answering(layout.nodes)
        log("every engine answers")
        for image in images:
            engines.load_image(image, layout.nodes, self.run_dir)
            log(f"loaded {image} into every node")
        if binary is not None:
            with_agent = layout.nodes[:agent_count]
            for node in with_agent:
                agents.start(binary, layout, node, servers)
            agents.wait_ready(with_agent)
            if agent_count >= servers:
                agents.wait_cluster_ready(with_agent)
                log("every agent is ready" if agent_count == layout.node_count else
                    f"the agents of {', '.join(n.name for n in with_agent)} are ready")
            else:  # the cluster forms when every server has an agent: those started by hand too
                log(f"the agents of {', '.join(n.name for n in with_agent)} listen; the cluster forms once "
                    f"{', '.join(n.name for n in layout.nodes[agent_count:servers])} run agentd too")
        state.save(replace(st, complete=True))
        state.record(self.run_dir, "up", nodes=layout.node_count, servers=servers, agent=binary is not None,
                     agents=agent_count)

    def down(self, log: Log = _quiet) -> bool:
        return down(self.name, log)

    # ----- a node's life

    @contextlib.contextmanager
    def _locked(self) -> Iterator[ClusterState]:
        require_root()
        require_tools(UP_TOOLS)
        with state.locked(self.run_dir) as present:
            if not present:
                raise ClusterError(f"no cluster named {self.name!r} is up (python -m cluster up --name {self.name})")
            yield self.state()

    def kill(self, node: str) -> None:
        """The machine dies at once: unplugged, then every process of it SIGKILLed."""
        with self._locked() as st:
            n = st.layout.node(node)
            if node in st.off:
                raise ClusterError(f"{node} is already down")
            began = time.monotonic()
            st = self._kill(st, n)
            state.save(st)
            state.record(self.run_dir, "kill", node=node, took_s=round(time.monotonic() - began, 3))

    def _kill(self, st: ClusterState, n: NodeLayout) -> ClusterState:
        network.set_node_link(st.layout, n, up=False)
        st = self._end_pause(st, n.name)
        cgroups.kill_all(n.cgroup)
        engines.remove_shim_sockets(n.dir)
        return st.with_off(n.name, True)

    def stop(self, node: str) -> None:
        """A graceful shutdown: agentd (SIGTERM), then dockerd (stops its containers), then unplugged."""
        with self._locked() as st:
            n = st.layout.node(node)
            if node in st.off:
                raise ClusterError(f"{node} is already down")
            began = time.monotonic()
            st = self._end_pause(st, node)
            agent_ok = agents.stop(n)
            engine_ok = engines.stop(n)
            left = cgroups.pids(n.cgroup)
            cgroups.kill_all(n.cgroup)
            engines.remove_shim_sockets(n.dir)
            network.set_node_link(st.layout, n, up=False)
            state.save(st.with_off(node, True))
            state.record(self.run_dir, "stop", node=node, graceful=agent_ok and engine_ok and not left,
                         killed_after_stop=len(left), took_s=round(time.monotonic() - began, 3))

    def start(self, node: str) -> None:
        """Boot a node again from its disk: plugged in, dockerd, then agentd."""
        with self._locked() as st:
            n = st.layout.node(node)
            began = time.monotonic()
            self._start(st, n)
            state.record(self.run_dir, "start", node=node, took_s=round(time.monotonic() - began, 3))

    def _start(self, st: ClusterState, n: NodeLayout) -> None:
        if engines.pid(n) is not None:
            raise ClusterError(f"{n.name} is already running")
        cgroups.kill_all(n.cgroup)  # whatever a crashed engine left behind
        network.set_node_link(st.layout, n, up=True)
        engines.start(n)
        engines.wait_answering([n])
        if st.runs_agent(n):
            agents.start(agents.agentd_binary(REPO), st.layout, n, st.servers)
            agents.wait_ready([n])
        state.save(st.with_off(n.name, False))

    def restart(self, node: str) -> None:
        """Kill, then start."""
        with self._locked() as st:
            n = st.layout.node(node)
            began = time.monotonic()
            if node not in st.off:
                st = self._kill(st, n)
                state.save(st)
                state.record(self.run_dir, "kill", node=node, took_s=round(time.monotonic() - began, 3))
            began = time.monotonic()
            self._start(st, n)
            state.record(self.run_dir, "start", node=node, took_s=round(time.monotonic() - began, 3))

    # ----- faults

    def pause(self, node: str, *, whole: bool = False, for_s: float | None = None) -> None:
        """Stop the node's agentd (SIGSTOP), or freeze the whole node; for `for_s` seconds if given."""
        with self._locked() as st:
            n = st.layout.node(node)
            if node in st.off:
                raise ClusterError(f"{node} is down")
            if st.faults.pause_of(node) is not None:
                raise ClusterError(f"{node} is already paused (resume it first)")
            if for_s is not None and not for_s > 0:
                raise ClusterError(f"a pause lasts more than 0 seconds, not {for_s}")
            if whole:
                cgroups.freeze(n.cgroup)
            else:
                pid = agents.pid(n)
                if pid is None:
                    raise ClusterError(f"{node} has no agentd running (cluster started with --no-agent?); "
                                       "use --all to freeze the whole node")
                signal_pid(pid, signal.SIGSTOP)
            timer = self._spawn_timer(st.layout, node, for_s) if for_s is not None else None
            st = replace(st, faults=faults.with_pause(st.faults, faults.Pause(node, whole, timer)))
            state.save(st)
            state.record(self.run_dir, "pause", node=node, whole=whole, for_s=for_s)

    def _spawn_timer(self, layout: ClusterLayout, node: str, for_s: float) -> int:
        argv = [sys.executable, "-m", "cluster", "resume", node, "--name", self.name, "--timer-after", str(for_s)]
        return spawn_detached(argv, cgroup_dirs=cgroups.create(layout.timers_cgroup),
                              pidfile=self.run_dir / f"timer-{node}.pid", log=self.run_dir / "timers.log", cwd=REPO)

    def resume(self, node: str, *, after_s: float = 0.0, timer_pid: int | None = None) -> None:
        """End the node's pause. With `timer_pid` (a timed pause's helper), only the pause that helper ends."""
        if after_s > 0:
            time.sleep(after_s)
        with self._locked() as st:
            pause = st.faults.pause_of(node)
            if timer_pid is not None and (pause is None or pause.timer_pid != timer_pid):
                return  # resumed or healed already; a later pause is not this helper's
            st.layout.node(node)
            if pause is None:
                raise ClusterError(f"{node} is not paused")
            st = self._end_pause(st, node)
            state.save(st)
            state.record(self.run_dir, "resume", node=node, by="timer" if timer_pid is not None else "command")

    def _end_pause(self, st: ClusterState, node: str) -> ClusterState:
        pause = st.faults.pause_of(node)
        if pause is None:
            return st
        n = st.layout.node(node)
        if pause.whole:
            cgroups.thaw(n.cgroup)
        else:
            pid = agents.pid(n)
            if pid is not None:
                signal_pid(pid, signal.SIGCONT)
        if pause.timer_pid is not None and pause.timer_pid != os.getpid() \
                and pause.timer_pid in cgroups.pids(st.layout.timers_cgroup):
            signal_pid(pause.timer_pid, signal.SIGKILL)
        return replace(st, faults=faults.without_pause(st.faults, node))

    def partition(self, groups: Sequence[Sequence[str]], *, oneway: bool = False) -> None:
        """Cut the network between `groups` (one-way: the first group stops hearing the second)."""
        with self._locked() as st:
            faults.check_groups(groups, [n.name for n in st.layout.nodes])
            st = replace(st, faults=faults.partition(st.faults, groups, oneway=oneway))
            self._apply_rules(st, st.layout.nodes)
            state.save(st)
            state.record(self.run_dir, "partition", groups=[list(g) for g in groups], oneway=oneway)

    def loss(self, node: str, probability: float) -> None:
        """Drop each packet in and out of `node` with `probability` (0 ends it)."""
        with self._locked() as st:
            n = st.layout.node(node)
            st = replace(st, faults=faults.with_loss(st.faults, node, probability))
            self._apply_rules(st, [n])
            state.save(st)
            state.record(self.run_dir, "loss", node=node, probability=probability)

    def heal(self) -> None:
        """Undo every fault: every node's rules, every pause."""
        with self._locked() as st:
            for pause in st.faults.pauses:
                st = self._end_pause(st, pause.node)
            st = replace(st, faults=faults.FaultState())
            self._apply_rules(st, st.layout.nodes)
            state.save(st)
            state.record(self.run_dir, "heal")

    @staticmethod
    def _apply_rules(st: ClusterState, nodes: Sequence[NodeLayout]) -> None:
        for n in nodes:
            network.set_fault_rules(n, faults.rules_for(st.faults, n, st.layout.nodes))

    # ----- images

    def load_image(self, image: str) -> list[str]:
        """Copy `image` from the host's engine into every running, unfrozen node's engine; returns those nodes."""
        require_root()
        require_tools(("docker",))
        st = self.state()
        running = [n for n in st.layout.nodes
                   if n.name not in st.off and engines.pid(n) is not None and not cgroups.frozen(n.cgroup)]
        if not running:
            raise ClusterError(f"no node of cluster {self.name!r} is running")
        engines.load_image(image, running, self.run_dir)
        return [n.name for n in running]


def check_roles(nodes: int, servers: int | None, agent: bool, agents: int | None) -> tuple[int, int]:
    """(servers, nodes with an agent) for `up`'s arguments, or a ClusterError saying what is wrong."""
    if not 1 <= nodes <= MAX_NODES:
        raise ClusterError(f"--nodes must be between 1 and {MAX_NODES}, not {nodes}")
    servers = min(3, nodes) if servers is None else servers
    if not 1 <= servers <= nodes:
        raise ClusterError(f"--servers must be between 1 and the number of nodes ({nodes}), not {servers}")
    if agents is None:
        return servers, nodes if agent else 0
    if not agent:
        raise ClusterError("--agents with --no-agent: choose one")
    if not 1 <= agents <= nodes:
        raise ClusterError(f"--agents must be between 1 and the number of nodes ({nodes}), not {agents}")
    return servers, agents


def _leftovers(name: str) -> bool:
    return bool(network.namespaces_of(name) or network.host_link_of(name)
                or cgroups.exists_anywhere(f"/{CGROUP_ROOT}/{name}"))


def down(name: str, log: Log = _quiet) -> bool:
    """Remove the cluster `name` and everything of it, whatever state it is in; False if nothing was there."""
    require_root()
    require_tools(DOWN_TOOLS)
    run_dir = run_dir_of(name)
    with state.locked(run_dir) as present:
        found = state.load(run_dir) if present else None
        if not present and not _leftovers(name):
            return False
        _teardown(name, run_dir, found, keep_run_dir=False)
    log(f"cluster {name!r} removed")
    return True


def _teardown(name: str, run_dir: Path, found: ClusterState | None, *, keep_run_dir: bool) -> None:
    link = network.host_link_of(name)
    if link is not None and link[1] != host_link_alias(name, run_dir):
        raise ClusterError(f"cluster {name!r} on this host belongs to another checkout (host link {link[0]}: "
                           f"{link[1]!r}); take it down from there, or choose another --name")
    cluster_cgroup = f"/{CGROUP_ROOT}/{name}"
    cgroups.kill_all(cluster_cgroup)
    node_dirs = [d for d in run_dir.iterdir() if d.is_dir()] if run_dir.is_dir() else []
    for d in node_dirs:
        engines.remove_shim_sockets(d)
    unmount_under(run_dir)
    network.destroy(name, link[0] if link else (found.layout.host_link if found else None))
    left = cgroups.remove_tree(cluster_cgroup)
    cgroups.remove_if_empty(f"/{CGROUP_ROOT}")
    if left:
        raise ClusterError(f"cgroups left (still busy): {', '.join(map(str, left))}")
    if keep_run_dir:
        for entry in run_dir.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
