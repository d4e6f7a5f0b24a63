"""`python -m cluster`: the command line over the Cluster API.

Rules: one sub-command per Cluster method, printing what a person needs and nothing
more; a ClusterError becomes "cluster: error: <message>" and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from . import faults
from .cluster import Cluster, down
from .errors import ClusterError
from .system import require_root


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default="default", help="the cluster's name (several can run at once)")
    p = argparse.ArgumentParser(prog="python -m cluster",
                                description="A cluster of network-namespace nodes on this machine, each with its "
                                            "own dockerd and agentd, and faults to inject into it.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", parents=[common], help="create the cluster and start every node")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--servers", type=int, default=None, help="Raft servers among the nodes (default: 3, or fewer)")
    up.add_argument("--no-agent", action="store_true", help="start dockerd only, no agentd")
    up.add_argument("--agents", type=int, default=None, metavar="K",
                    help="start agentd on the first K nodes only; the others get dockerd, for an agentd started "
                         "by hand (see exec); with a server among them, the cluster forms once it has its agent")
    sub.add_parser("down", parents=[common], help="remove the cluster and everything of it")
    sub.add_parser("env", parents=[common], help="print what to paste so that agentctl talks to the cluster")
    sub.add_parser("status", parents=[common], help="each node, its address, its processes and faults")
    sub.add_parser("faults", parents=[common], help="the timeline of faults and heals, one JSON object a line")
    load = sub.add_parser("load-image", parents=[common], help="copy an image from the host's engine into every node")
    load.add_argument("image")
    for name, text in (("kill", "the machine dies at once (SIGKILL of everything in it)"),
                       ("start", "boot a node again from its disk"),
                       ("stop", "shut a node down gracefully"),
                       ("restart", "kill, then start")):
        sub.add_parser(name, parents=[common], help=text).add_argument("node")
    pause = sub.add_parser("pause", parents=[common], help="SIGSTOP a node's agentd, or freeze the whole node")
    pause.add_argument("node")
    pause.add_argument("--all", action="store_true", help="freeze every process of the node")
    pause.add_argument("--for", dest="for_s", type=float, default=None, metavar="S", help="resume after S seconds")
    resume = sub.add_parser("resume", parents=[common], help="end a node's pause")
    resume.add_argument("node")
    resume.add_argument("--timer-after", type=float, default=None, help=argparse.SUPPRESS)
    part = sub.add_parser("partition", parents=[common], help="cut the network between groups: n1,n2 / n3")
    part.add_argument("groups", nargs="+")
    part.add_argument("--oneway", action="store_true", help="A / B: A sends to B but hears nothing from it")
    loss = sub.add_parser("loss", parents=[common], help="drop packets in and out of a node at random")
    loss.add_argument("node")
    loss.add_argument("probability", type=float)
    sub.add_parser("heal", parents=[common], help="undo every fault (rules and pauses)")
    ex = sub.add_parser("exec", parents=[common],
                        help="run a command as a process of a node (its network namespace and cgroups): "
                             "exec [--name NAME] n2 -- CMD [ARG...]")
    ex.add_argument("node")
    ex.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")
    return p


_COLUMNS = "{:<6}{:<15}{:<8}{:<8}{:<6}{:<9}{:<9}{:>6}{:>9}  {}"


def _print_status(cluster: Cluster) -> None:
    rows = cluster.status()
    print(_COLUMNS.format("NODE", "ADDRESS", "ROLE", "POWER", "LINK", "DOCKERD", "AGENTD", "TASKS", "RSS MiB",
                          "FAULTS"))
    for r in rows:
        print(_COLUMNS.format(r.name, r.ip, r.role, r.power, "up" if r.plugged else "down",
                              "running" if r.dockerd else "down", r.agentd, "-" if r.tasks is None else r.tasks,
                              "-" if r.rss_mib is None else f"{r.rss_mib:.0f}", r.faults))


def _exec(cluster: Cluster, node: str, argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise ClusterError("exec: no command given (exec NODE -- CMD [ARG...])")
    require_root()
    return subprocess.run(cluster.exec_argv(node, argv)).returncode


def _run(args: argparse.Namespace) -> int:
    log = lambda line: print(line, flush=True)  # noqa: E731
    if args.command == "up":
        cluster = Cluster.up(args.name, nodes=args.nodes, servers=args.servers, agent=not args.no_agent,
                             agent_nodes=args.agents, log=log)
        _print_status(cluster)
        print(cluster.env())
        return 0
    if args.command == "down":
        if not down(args.name, log=log):
            print(f"no cluster named {args.name!r}: nothing to remove")
        return 0
    cluster = Cluster(args.name)
    if args.command == "exec":
        return _exec(cluster, args.node, args.argv)
    if args.command == "env":
        print(cluster.env())
    elif args.command == "status":
        _print_status(cluster)
    elif args.command == "faults":
        for entry in cluster.journal():
            print(json.dumps(entry))
    elif args.command == "load-image":
        loaded = cluster.load_image(args.image)
        skipped = [n.name for n in cluster.nodes if n.name not in loaded]
        print(f"loaded {args.image} into {', '.join(loaded)}" + (f" (not into {', '.join(skipped)}: down or frozen)"
                                                                    if skipped else ""))
    elif args.command in ("kill", "start", "stop", "restart"):
        started = time.monotonic()
        getattr(cluster, args.command)(args.node)
        print(f"{args.command} {args.node}: done in {time.monotonic() - started:.1f}s")
    elif args.command == "pause":
        cluster.pause(args.node, whole=args.all, for_s=args.for_s)
    elif args.command == "resume":
        if args.timer_after is not None:
            cluster.resume(args.node, after_s=args.timer_after, timer_pid=os.getpid())
        else:
            cluster.resume(args.node)
    elif args.command == "partition":
        cluster.partition(faults.parse_groups(" ".join(args.groups)), oneway=args.oneway)
    elif args.command == "loss":
        cluster.loss(args.node, args.probability)
    elif args.command == "heal":
        cluster.heal()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ClusterError as exc:
        print(f"cluster: error: {exc}", file=sys.stderr)
        return 1
