"""agentd: the node agent. Wires the services together in one Trio nursery.

Today a node runs the Pods of a directory of manifests (as kubelet's static Pods) and
serves NodeService for agentctl. Stopping agentd leaves the Pods running: a restarted
agentd adopts them, with their restart counts.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import signal
import socket
import sys
from dataclasses import replace

import trio

from agent import __version__
from agent.affinity import parse_cpu, pin_to_cpu
from agent.grpcbridge import TrioGrpcServer
from agent.api.node_service import NodeServicer
from agent.logsetup import configure_logging
from agent.rpc import node_pb2_grpc
from agent.runtime import ManifestDirSource, PodRuntime, RuntimeConfig

log = logging.getLogger("agent.daemon")

DEFAULT_API_ADDR = "127.0.0.1:7070"


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


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"label {text!r}: expected KEY=VALUE")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentd", description="The node agent: runs this node's Pods on Docker.")
    p.add_argument("--node-name", default=socket.gethostname(), help="this node's name (default: hostname)")
    p.add_argument("--manifest-dir", required=True, help="directory of Pod manifests (YAML) to run on this node")
    p.add_argument("--api-addr", default=DEFAULT_API_ADDR, help=f"NodeService listen address (default {DEFAULT_API_ADDR})")
    p.add_argument("--label", action="append", type=_label, default=[], metavar="KEY=VALUE", help="a node label (repeatable)")
    p.add_argument("--docker-url", default=None, help="Docker engine URL (default: DOCKER_HOST or the local socket)")
    p.add_argument("--backoff-base-s", type=float, default=None, help="CrashLoopBackOff base delay (default 10)")
    p.add_argument("--backoff-cap-s", type=float, default=None, help="CrashLoopBackOff maximum delay (default 300)")
    p.add_argument("--manifest-poll-s", type=float, default=None, help="how often the manifest directory is read (default 1)")
    p.add_argument("--cpu", type=parse_cpu, default=None,
                   help="run every thread of agentd on this one CPU (see agent/affinity.py)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"agentd {__version__}")
    return p


def runtime_config(args: argparse.Namespace) -> RuntimeConfig:
    config = RuntimeConfig()
    overrides: dict[str, object] = {}
    if args.docker_url:
        overrides["docker_url"] = args.docker_url
    if args.backoff_base_s is not None:
        overrides["crash_backoff_base_s"] = args.backoff_base_s
    if args.backoff_cap_s is not None:
        overrides["crash_backoff_cap_s"] = args.backoff_cap_s
    if args.manifest_poll_s is not None:
        overrides["manifest_poll_interval_s"] = args.manifest_poll_s
    return replace(config, **overrides)


async def serve(args: argparse.Namespace) -> None:
    config = runtime_config(args)
    runtime = PodRuntime(node_name=args.node_name, config=config)
    source = ManifestDirSource(args.manifest_dir, node_name=args.node_name, poll_interval_s=config.manifest_poll_interval_s)
    server = TrioGrpcServer()
    server.add_service(node_pb2_grpc.add_NodeServiceServicer_to_server, NodeServicer(runtime, node_labels=dict(args.label)))
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run, source)
            port = await nursery.start(server.run, args.api_addr)
            nursery.start_soon(trim_memory_periodically)
            host = args.api_addr.rsplit(":", 1)[0]
            log.info("event=ready api=%s:%s manifest_dir=%s version=%s", host, port, args.manifest_dir, __version__)
            async for signum in signals:
                log.info("event=stopping signal=%s pods=left-running", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cpu is not None:
        pin_to_cpu(args.cpu)
    configure_logging(args.node_name, args.log_level)
    try:
        trio.run(serve, args)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
