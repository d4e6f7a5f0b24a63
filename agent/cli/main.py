"""agentctl: drive the cluster from the command line, in the spirit of kubectl.

It talks to any agent's ClusterService (`--server`, or $AGENTCTL_SERVER: one address or
several separated by commas, tried in turn when one is unreachable). Errors from the
server are printed as kubectl prints them (`Error from server (NotFound): ...`), a bad
manifest as `error: <file>:<line> (document N): <field.path>: <message>` with nothing
sent; the exit status is then 1.

Rules: --request-timeout bounds a unary call whole, but a stream only while it waits
for its next message (a long log is read to its end, a watch runs until interrupted).
A closed stdout (`agentctl ... | head`) ends agentctl as it ends every Unix tool: by
SIGPIPE, silently.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import grpc
import trio

from agent.cli import commands, drain, workloads
from agent.client import ClusterClient
from agent.grpcbridge.errors import RpcError
from agent.state.pod import ManifestError

DEFAULT_SERVER = "127.0.0.1:7070"


def _namespace_flags(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    parser.add_argument("-n", "--namespace", default="default")
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentctl", description="Drive an agentd cluster (kubectl-style).")
    p.add_argument("-s", "--server", default=os.environ.get("AGENTCTL_SERVER", DEFAULT_SERVER),
                   help="agent API address(es), comma-separated (default $AGENTCTL_SERVER or "
                        f"{DEFAULT_SERVER})")
    p.add_argument("--request-timeout", dest="timeout", type=float, default=10.0,
                   help="seconds a request may wait for an answer, or a stream for its next message (default 10)")
    sub = p.add_subparsers(dest="command", required=True)

    a = sub.add_parser("apply", help="create or update objects from manifests (all or nothing)")
    a.add_argument("-f", "--filename", action="append", required=True, metavar="FILE|DIR|-")
    a.add_argument("--dry-run", choices=["none", "server"], default="none")
    _namespace_flags(a)
    a.set_defaults(func=commands.cmd_apply)

    g = sub.add_parser("get", help="list nodes, pods, deployments, replicasets or events")
    g.add_argument("kind", help="pods | po | nodes | no | deployments | deploy | replicasets | rs | events | ev")
    g.add_argument("names", nargs="*")
    g.add_argument("-o", "--output", choices=["wide", "json", "yaml", "name"], default=None)
    g.add_argument("-l", "--selector", default=None, help="label selector, e.g. app=web,tier!=db")
    g.add_argument("--field-selector", default=None, help="e.g. spec.nodeName=n1,status.phase=Running")
    g.add_argument("-w", "--watch", action="store_true", help="after listing, print changes as they come")
    _namespace_flags(g, all_namespaces=True)
    g.set_defaults(func=commands.cmd_get)

    d = sub.add_parser("describe", help="show one object in detail")
    d.add_argument("kind", help="pod | node | deployment | replicaset")
    d.add_argument("name")
    _namespace_flags(d)
    d.set_defaults(func=commands.cmd_describe)

    rm = sub.add_parser("delete", help="delete objects by name or from manifests")
    rm.add_argument("kind", nargs="?")
    rm.add_argument("names", nargs="*")
    rm.add_argument("-f", "--filename", action="append", metavar="FILE|DIR|-")
    rm.add_argument("--ignore-not-found", action="store_true")
    _namespace_flags(rm)
    rm.set_defaults(func=commands.cmd_delete)

    lg = sub.add_parser("logs", help="print a container's logs (from the node that runs the pod)")
    lg.add_argument("pod")
    lg.add_argument("-c", "--container", default=None)
    lg.add_argument("--tail", type=int, default=None, help="lines from the end (default: all)")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("-p", "--previous", action="store_true", help="the previous instance of the container")
    _namespace_flags(lg)
    lg.set_defaults(func=commands.cmd_logs)

    w = sub.add_parser("wait", help="wait until objects meet a condition")
    w.add_argument("names", nargs="+", metavar="pod/NAME")
    w.add_argument("--for", dest="wait_for", required=True, help="condition=Ready | phase=Succeeded | delete")
    w.add_argument("--timeout", dest="wait_timeout", type=_seconds, default=60.0, help="e.g. 30, 30s, 2m")
    _namespace_flags(w)
    w.set_defaults(func=commands.cmd_wait)

    for name, func, text in (("cordon", commands.cmd_cordon, "mark a node unschedulable"),
                             ("uncordon", commands.cmd_uncordon, "mark a node schedulable again")):
        c = sub.add_parser(name, help=text)
        c.add_argument("node")
        c.set_defaults(func=func)

    dr = sub.add_parser("drain", help="cordon a node, then evict its Pods within their Deployments' budgets")
    dr.add_argument("node")
    dr.add_argument("--force", action="store_true", help="evict Pods that declare no controller too")
    dr.add_argument("--timeout", dest="drain_timeout", type=_seconds, default=300.0,
                    help="give up after this long (default 5m), e.g. 90s, 5m")
    dr.set_defaults(func=drain.cmd_drain)

    sc = sub.add_parser("scale", help="set a deployment's (or replicaset's) number of replicas")
    sc.add_argument("target", metavar="deployment/NAME")
    sc.add_argument("name", nargs="?", default="")
    sc.add_argument("--replicas", type=int, required=True)
    _namespace_flags(sc)
    sc.set_defaults(func=workloads.cmd_scale)

    ro = sub.add_parser("rollout", help="manage a deployment's rollout")
    ro_sub = ro.add_subparsers(dest="rollout_command", required=True)
    for name, text in (("status", "follow a rollout until it completes or fails"),
                       ("history", "the deployment's revisions"),
                       ("undo", "go back to the previous (or a given) revision"),
                       ("pause", "stop the rollout where it is"), ("resume", "resume a paused rollout"),
                       ("restart", "replace every Pod, as a new rollout of the same template")):
        r = ro_sub.add_parser(name, help=text)
        r.add_argument("target", metavar="deployment/NAME")
        r.add_argument("name", nargs="?", default="")
        _namespace_flags(r)
        if name == "status":
            r.add_argument("-w", "--watch", type=_flag, default=True, metavar="true|false",
                           help="follow until done (default); --watch=false prints the state once")
            r.add_argument("--timeout", dest="rollout_timeout", type=_seconds, default=600.0)
        if name == "history":
            r.add_argument("--revision", type=int, default=0)
        if name == "undo":
            r.add_argument("--to-revision", type=int, default=0)
        r.set_defaults(func=workloads.cmd_rollout, command="rollout")

    cl = sub.add_parser("cluster", help="the cluster itself")
    cl_sub = cl.add_subparsers(dest="cluster_command", required=True)
    st = cl_sub.add_parser("status", help="leader, term, voters, standbys, workers and every member's gossip state")
    st.set_defaults(func=commands.cmd_cluster_status)
    return p


def _flag(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not true or false: {text!r}")


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30, 30s, 2m)") from None


async def _run(args: argparse.Namespace) -> int:
    addresses = [a.strip() for a in args.server.split(",") if a.strip()]
    async with ClusterClient(addresses, timeout_s=args.timeout) as client:
        return await args.func(client, args)


def _die_of_sigpipe() -> None:
    """Stdout's reader is gone: end as a Unix tool does, killed by SIGPIPE, with nothing printed."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere, without another error
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = trio.run(_run, args)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        _die_of_sigpipe()
        return 141  # the shell's status for a death by SIGPIPE, were the signal ever blocked
    except ManifestError as err:
        for problem in err.errors:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except commands.StreamStalled as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except RpcError as err:
        if err.code == grpc.StatusCode.UNAVAILABLE:
            print(f"error: cannot reach the cluster at {args.server}: {err.details}", file=sys.stderr)
        elif err.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            print(f"error: no answer from the cluster at {args.server} within {args.timeout:g}s "
                  "(--request-timeout)", file=sys.stderr)
        else:
            reason = "".join(w.capitalize() for w in err.code.name.lower().split("_"))
            print(f"Error from server ({reason}): {err.details}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
