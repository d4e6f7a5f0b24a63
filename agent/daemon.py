"""agentd: the node agent. Wires every part of one agent together in one Trio nursery.

Every agent is a gossip (SWIM) member, runs the Pods the cluster places on it, and serves
the cluster's API; a few are servers (Raft voters and standbys) holding the state; the
leader also runs the controllers. See agent/agentd/ for the parts and README.md for how
a cluster is formed (`--bootstrap-expect`, `--join`).

    agentd --name n1 --data-dir /var/lib/agentd --bind 10.0.0.1 --bootstrap-expect 3 \\
           --join 10.0.0.1:7946 --join 10.0.0.2:7946

Stopping agentd (SIGTERM) leaves its Pods running and its gossip peers told (a graceful
leave); a restarted agentd rejoins as itself and adopts its running Pods.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import fcntl
import gc
import json
import logging
import os
import platform
import signal
import socket
import sys
from dataclasses import replace

import trio

from agent import __version__
from agent.affinity import parse_cpu, pin_to_cpu
from agent.agentd import metadata
from agent.agentd.assignments import ClusterAssignments
from agent.agentd.config import DEFAULT_FENCE_AFTER_S, DEFAULT_REPLACE_DEAD_SERVER_AFTER_S, AgentConfig
from agent.agentd.controllers import ControlLoop
from agent.agentd.gossip_view import GossipView
from agent.agentd.lifecycle import AgentLifecycle
from agent.agentd.notify import Changes
from agent.agentd.peers import Peers
from agent.agentd.raft_host import RaftHost
from agent.agentd.sources import MergedSource, MirrorPods, StaticPods
from agent.agentd.status_reporter import StatusReporter
from agent.api.cluster_service import ClusterServicer
from agent.api.node_service import NodeServicer
from agent.gossip.config import LAN
from agent.gossip.driver import GossipNode
from agent.grpcbridge import TrioGrpcServer
from agent.logsetup import configure_logging
from agent.raft.errors import NodeStopped
from agent.rpc import cluster_pb2_grpc, node_pb2_grpc, raft_pb2_grpc
from agent.runtime import ManifestDirSource, PodRuntime, RuntimeConfig
from agent.runtime.node_resources import allocatable_of
from agent.state.machine import ClusterState
from agent.state.quantity import QuantityError, cpu_millicores, memory_bytes, parse_quantity
from agent.task_dump import dump_tasks_on_signal

log = logging.getLogger("agent.daemon")

# glibc keeps memory that Python freed in its heap until told to give it back; agentd is a
# long-lived process whose footprint matters on small nodes, so it trims now and then.
MEMORY_TRIM_INTERVAL_S = 60.0


def _malloc_trim() -> None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    trim = getattr(libc, "malloc_trim", None)  # absent outside glibc
    if trim is not None:
        trim(0)


async def trim_memory_periodically(*, first_after_s: float = 5.0) -> None:
    await trio.sleep(first_after_s)
    while True:
        _malloc_trim()
        await trio.sleep(MEMORY_TRIM_INTERVAL_S)


# --------------------------------------------------------------------------- command line


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"label {text!r}: expected KEY=VALUE")
    return key, value


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    return host, int(port)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0 seconds")
    return value


def _cpu_quantity(text: str) -> int:
    try:
        return cpu_millicores(parse_quantity(text))
    except QuantityError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _memory_quantity(text: str) -> int:
    try:
        return memory_bytes(parse_quantity(text))
    except QuantityError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentd", description="The node agent: a member of an agentd cluster.")
    p.add_argument("--name", "--node-name", dest="name", default=None,
                   help="this node's name (default: the one its data dir remembers, else the host name)")
    p.add_argument("--data-dir", required=True, help="where this agent keeps its identity and Raft data")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on and advertise (default 127.0.0.1)")
    p.add_argument("--api-port", type=int, default=7070, help="gRPC port: cluster, node and Raft services")
    p.add_argument("--gossip-port", type=int, default=7946, help="SWIM gossip port (UDP and TCP)")
    p.add_argument("--join", action="append", type=_host_port, default=[], metavar="HOST:PORT",
                   help="gossip address of a member to join through (repeatable)")
    p.add_argument("--bootstrap-expect", type=int, default=0, metavar="N",
                   help="form the first Raft configuration once N server candidates see each other")
    p.add_argument("--voters", type=int, default=3, choices=(1, 3, 5, 7), help="target number of Raft voters")
    p.add_argument("--standbys", type=int, default=2, help="target number of standby servers (Raft learners)")
    p.add_argument("--replace-dead-server-after", dest="replace_dead_server_after_s", type=_positive_seconds,
                   default=DEFAULT_REPLACE_DEAD_SERVER_AFTER_S, metavar="SECONDS",
                   help="the leader replaces a voter or standby that has been dead this long (default 30)")
    p.add_argument("--no-server", action="store_true", help="never make this agent a voter or a standby")
    p.add_argument("--label", action="append", type=_label, default=[], metavar="KEY=VALUE",
                   help="a node label (repeatable)")
    p.add_argument("--capacity-cpu", type=_cpu_quantity, default=None, help="CPU capacity to advertise (e.g. 4)")
    p.add_argument("--capacity-memory", type=_memory_quantity, default=None, help="memory capacity (e.g. 8Gi)")
    p.add_argument("--max-pods", type=int, default=110, help="Pods this node accepts (kubelet's maxPods)")
    p.add_argument("--fence-after-s", type=float, default=DEFAULT_FENCE_AFTER_S,
                   help="stop the cluster's Pods after this long without a leader in sight")
    p.add_argument("--manifest-dir", default=None, help="also run the static Pods of this directory")
    p.add_argument("--docker-url", default=None, help="Docker engine URL (default: DOCKER_HOST or the local socket)")
    p.add_argument("--docker-network", default=None, help="Docker network for Pods (default bridge)")
    p.add_argument("--backoff-base-s", type=float, default=None, help="CrashLoopBackOff base delay (default 10)")
    p.add_argument("--backoff-cap-s", type=float, default=None, help="CrashLoopBackOff maximum delay (default 300)")
    p.add_argument("--manifest-poll-s", type=float, default=None, help="how often the manifest directory is read")
    p.add_argument("--cpu", type=parse_cpu, default=None,
                   help="run every thread of agentd on this one CPU (see agent/affinity.py)")
    p.add_argument("--scheduler-scoring", default="LeastAllocated", choices=("LeastAllocated", "MostAllocated"),
                   help="how the leader ranks nodes that fit: spread load (default) or pack nodes full; "
                        "a cluster setting: give every server the same value")
    p.add_argument("--rebalance", action="store_true",
                   help="the leader moves Deployment Pods, one at a time within maxUnavailable, onto nodes that "
                        "hold fewer (a node that joined or came back); a cluster setting: give every server the "
                        "same value")
    p.add_argument("--container-log-max-size", type=_memory_quantity, default=None,
                   help="rotate a container's log at this size (kubelet's containerLogMaxSize, default 10Mi)")
    p.add_argument("--container-log-max-files", type=int, default=None,
                   help="log files kept per container (kubelet's containerLogMaxFiles, default 5)")
    p.add_argument("--pod-pids-limit", type=int, default=None,
                   help="processes a Pod may run (kubelet's podPidsLimit, default 1024; 0 for no limit)")
    p.add_argument("--hollow", action="store_true",
                   help="benchmarks and tests only: pretend to run Pods (agent/runtime/hollow.py), no Docker")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"agentd {__version__}")
    return p


def runtime_config(args: argparse.Namespace) -> RuntimeConfig:
    overrides: dict[str, object] = {}
    for flag, field in (("docker_url", "docker_url"), ("docker_network", "docker_network"),
                        ("backoff_base_s", "crash_backoff_base_s"), ("backoff_cap_s", "crash_backoff_cap_s"),
                        ("manifest_poll_s", "manifest_poll_interval_s"),
                        ("container_log_max_size", "container_log_max_size_bytes"),
                        ("container_log_max_files", "container_log_max_files")):
        value = getattr(args, flag)
        if value is not None:
            overrides[field] = value
    if args.pod_pids_limit is not None:
        overrides["pod_pids_limit"] = args.pod_pids_limit or None
    return replace(RuntimeConfig(), **overrides)


# --------------------------------------------------------------------------- identity


class DataDirError(Exception):
    pass


def claim_data_dir(data_dir: str, wanted_name: str | None) -> tuple[str, int]:
    """Lock the data dir for this process and settle the agent's name: the one the dir
    remembers (a data dir belongs to one agent), else `wanted_name` or the host name.
    Returns (name, lock fd)."""
    os.makedirs(data_dir, exist_ok=True)
    lock_fd = os.open(os.path.join(data_dir, "agentd.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise DataDirError(f"data dir {data_dir} is in use by another agentd") from None
    path = os.path.join(data_dir, "identity.json")
    try:
        with open(path) as f:
            remembered = json.load(f).get("name")
    except FileNotFoundError:
        remembered = None
    except (OSError, ValueError) as exc:
        raise DataDirError(f"{path}: unreadable ({exc})") from None
    if remembered and wanted_name and remembered != wanted_name:
        raise DataDirError(f"data dir {data_dir} belongs to agent {remembered!r}, not {wanted_name!r}")
    name = remembered or wanted_name or socket.gethostname()
    if not remembered:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"name": name}, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    return name, lock_fd


# --------------------------------------------------------------------------- serving


def own_metadata(config: AgentConfig, runtime: PodRuntime) -> metadata.AgentMeta:
    resources = runtime.node_resources()
    cpu = config.capacity_cpu_millicores or resources.capacity_cpu_millicores
    memory = config.capacity_memory_bytes or resources.capacity_memory_bytes
    if config.capacity_cpu_millicores or config.capacity_memory_bytes:
        resources = allocatable_of(cpu, memory, reserved_cpu_millicores=runtime.config.reserved_cpu_millicores,
                                   reserved_memory_bytes=runtime.config.reserved_memory_bytes)
    return metadata.AgentMeta(
        api_address=config.api_address, bootstrap_expect=config.bootstrap_expect,
        server_eligible=config.server_eligible, cpu_millicores=resources.capacity_cpu_millicores,
        memory_bytes=resources.capacity_memory_bytes, alloc_cpu_millicores=resources.allocatable_cpu_millicores,
        alloc_memory_bytes=resources.allocatable_memory_bytes, max_pods=config.max_pods,
        labels=dict(config.labels), version=__version__, os=platform.system().lower(),
        arch={"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
    )


async def serve(config: AgentConfig, args: argparse.Namespace) -> None:
    rt_config = runtime_config(args)
    engine = None
    if args.hollow:  # a bench/test facility: Pods that cost nothing (agent/runtime/hollow.py)
        from agent.runtime.hollow import HollowEngine
        engine = HollowEngine()
    runtime = PodRuntime(node_name=config.name, config=rt_config, docker=engine, host_ip=config.bind_address)
    state = ClusterState()
    state_changes = Changes()
    own = own_metadata(config, runtime)
    gossip_node = GossipNode(LAN, config.name, (config.bind_address, config.gossip_port),
                             seeds=[s for s in config.join if s != (config.bind_address, config.gossip_port)],
                             meta=metadata.encode(own, max_bytes=LAN.max_meta_bytes))
    gossip = GossipView(gossip_node, own, settle_s=config.gossip_settle_s)
    peers = Peers()
    raft = RaftHost(config, state, gossip, peers)
    api = ClusterServicer(config, raft, gossip, peers)

    def on_state_change(index: int) -> None:
        api.notify_state_change(index)
        state_changes.notify()

    state.on_change = on_state_change
    assignments = ClusterAssignments(config, raft, gossip, peers, state_changes, runtime.objects)
    static = mirrors = None
    if args.manifest_dir:
        static = StaticPods(ManifestDirSource(args.manifest_dir, node_name=config.name,
                                              poll_interval_s=rt_config.manifest_poll_interval_s))
        mirrors = MirrorPods(config, static, assignments, api)
    source = MergedSource(assignments, static)
    reporter = StatusReporter(config, runtime, assignments, api)
    control = ControlLoop(config, raft, gossip, state_changes)
    lifecycle = AgentLifecycle(config, raft, gossip, assignments)

    server = TrioGrpcServer(node_id=config.name)
    server.add_service(node_pb2_grpc.add_NodeServiceServicer_to_server,
                       NodeServicer(runtime, node_labels=dict(config.labels)))
    server.add_service(cluster_pb2_grpc.add_ClusterServiceServicer_to_server, api)
    server.add_service(raft_pb2_grpc.add_RaftServiceServicer_to_server, raft.servicer)
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.run, config.api_address)
                await nursery.start(gossip_node.run)
                await nursery.start(gossip.run)
                await nursery.start(raft.run)
                await nursery.start(assignments.run)
                if static is not None and mirrors is not None:
                    nursery.start_soon(static.run)
                    nursery.start_soon(mirrors.run)
                await nursery.start(runtime.run, source)
                nursery.start_soon(lifecycle.run)
                nursery.start_soon(reporter.run)
                nursery.start_soon(control.run)
                nursery.start_soon(trim_memory_periodically)
                nursery.start_soon(dump_tasks_on_signal)
                # Everything made so far lives as long as the process: keep it out of the
                # cyclic collector's generations, so full collections stay short.
                gc.freeze()
                log.info("event=ready api=%s gossip=%s:%d data_dir=%s bootstrap_expect=%d version=%s",
                         config.api_address, config.bind_address, config.gossip_port, config.data_dir,
                         config.bootstrap_expect, __version__)
                async for signum in signals:
                    log.info("event=stopping signal=%s pods=left-running", signal.Signals(signum).name)
                    with trio.move_on_after(2.0):
                        await gossip_node.leave()
                    nursery.cancel_scope.cancel()
                    break
    finally:
        peers.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cpu is not None:
        pin_to_cpu(args.cpu)
    try:
        name, _lock_fd = claim_data_dir(args.data_dir, args.name)
    except DataDirError as exc:
        print(f"agentd: {exc}", file=sys.stderr)
        return 2
    configure_logging(name, args.log_level)
    config = AgentConfig(
        name=name, data_dir=os.path.abspath(args.data_dir), bind_address=args.bind, api_port=args.api_port,
        gossip_port=args.gossip_port, join=tuple(args.join), bootstrap_expect=args.bootstrap_expect,
        server_eligible=not args.no_server, voters=args.voters, standbys=args.standbys, labels=dict(args.label),
        replace_dead_server_after_s=args.replace_dead_server_after_s,
        capacity_cpu_millicores=args.capacity_cpu, capacity_memory_bytes=args.capacity_memory,
        max_pods=args.max_pods, fence_after_s=args.fence_after_s, scheduler_scoring=args.scheduler_scoring,
        rebalance=args.rebalance,
    )
    try:
        runtime_config(args)
    except ValueError as exc:
        print(f"agentd: {exc}", file=sys.stderr)
        return 2
    try:
        trio.run(serve, config, args)
    except KeyboardInterrupt:
        pass
    except BaseException as exc:  # noqa: BLE001 - one clear line for a failure we know, else the traceback
        stopped = _first(exc, NodeStopped)
        if stopped is None:
            raise
        log.error("event=fatal reason=raft_stopped error=%r", str(stopped))
        print(f"agentd: Raft stopped, so this agent stops: {stopped}", file=sys.stderr)
        return 4
    return 0


def _first(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of `kind` in exc, looking inside exception groups."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first(inner, kind)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
