"""agentctl: drive agentd from the command line, in the spirit of kubectl.

Today it talks to one node's NodeService: list and inspect Pods, read their logs, wait
for a condition. Errors from the server are printed as kubectl prints them
(`Error from server (NotFound): ...`) with exit status 1.

Rules: --request-timeout bounds a unary call whole, but a stream only while it waits:
for its first reply and between two replies, never a stream that keeps making progress
(a long log is read to its end). A closed stdout (`agentctl ... | head`) ends agentctl
as it ends every Unix tool: by SIGPIPE, silently.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import trio
import yaml

from agent import grpcbridge as bridge
from agent.grpcbridge.errors import RpcError
from agent.cli import render
from agent.rpc import node_pb2, node_pb2_grpc

DEFAULT_SERVER = os.environ.get("AGENTCTL_SERVER", "127.0.0.1:7070")


def _docs(view: node_pb2.PodView) -> dict:
    pod = json.loads(view.pod_json or b"{}")
    pod["status"] = json.loads(view.status_json or b"{}")
    return pod


def _dump(doc: object, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, sort_keys=False)
    return yaml.safe_dump(doc, sort_keys=False).rstrip()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def cmd_get(stub: node_pb2_grpc.NodeServiceStub, args: argparse.Namespace) -> int:
    kind = args.kind.lower()
    if kind in ("node", "nodes", "no"):
        info = await bridge.unary(stub.GetNode, node_pb2.GetNodeRequest(), timeout=args.timeout)
        if args.output in ("json", "yaml"):
            print(_dump(_node_doc(info), args.output))
            return 0
        header = ["NAME", "STATUS", "CPU", "MEMORY", "ALLOC-CPU", "ALLOC-MEMORY", "VERSION"]
        row = [
            info.name,
            "Ready" if info.docker_available else "NotReady",
            f"{info.capacity_cpu_millicores}m",
            f"{info.capacity_memory_bytes // (1 << 20)}Mi",
            f"{info.allocatable_cpu_millicores}m",
            f"{info.allocatable_memory_bytes // (1 << 20)}Mi",
            info.version,
        ]
        print(render.table(header, [row]))
        return 0
    if kind not in ("pod", "pods", "po"):
        print(f'error: the server doesn\'t have a resource type "{args.kind}"', file=sys.stderr)
        return 1
    namespace = "" if args.all_namespaces else args.namespace
    if args.name:
        view = await bridge.unary(
            stub.GetPod, node_pb2.GetPodRequest(namespace=namespace or "default", name=args.name), timeout=args.timeout
        )
        views = [view]
    else:
        resp = await bridge.unary(stub.ListPods, node_pb2.ListPodsRequest(namespace=namespace), timeout=args.timeout)
        views = list(resp.pods)
    docs = [_docs(v) for v in views]
    if args.output in ("json", "yaml"):
        doc = docs[0] if args.name else {"apiVersion": "v1", "kind": "List", "items": docs}
        print(_dump(doc, args.output))
        return 0
    if args.output == "name":
        for d in docs:
            print(f"pod/{d['metadata']['name']}")
        return 0
    if not docs:
        where = "any namespace" if args.all_namespaces else f"{namespace} namespace"
        print(f"No resources found in {where}.", file=sys.stderr)
        return 0
    wide = args.output == "wide"
    header = list(render.POD_HEADER_WIDE if wide else render.POD_HEADER)
    rows = [render.pod_row(d, d["status"], _now(), wide=wide) for d in docs]
    if args.all_namespaces:
        header.insert(0, "NAMESPACE")
        rows = [[d["metadata"].get("namespace", "default"), *r] for d, r in zip(docs, rows)]
    print(render.table(header, rows))
    return 0


def _node_doc(info: node_pb2.NodeInfo) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": info.name, "labels": dict(info.labels)},
        "status": {
            "capacity": {"cpu": f"{info.capacity_cpu_millicores}m", "memory": str(info.capacity_memory_bytes)},
            "allocatable": {"cpu": f"{info.allocatable_cpu_millicores}m", "memory": str(info.allocatable_memory_bytes)},
            "nodeInfo": {"agentVersion": info.version},
            "conditions": [
                {"type": "Ready", "status": "True" if info.docker_available else "False", "message": info.docker_error}
            ],
        },
    }


async def cmd_describe(stub: node_pb2_grpc.NodeServiceStub, args: argparse.Namespace) -> int:
    view = await bridge.unary(
        stub.GetPod, node_pb2.GetPodRequest(namespace=args.namespace, name=args.name), timeout=args.timeout
    )
    doc = _docs(view)
    status = doc["status"]
    print(f"Name:         {doc['metadata']['name']}")
    print(f"Namespace:    {doc['metadata'].get('namespace', 'default')}")
    print(f"Node:         {doc['spec'].get('nodeName') or '<none>'}")
    print(f"Status:       {render.pod_status_word(status)}")
    print(f"IP:           {status.get('podIP') or '<none>'}")
    print("Conditions:")
    for cond in status.get("conditions") or ():
        print(f"  {cond.get('type'):<16} {cond.get('status')}")
    print("Containers:")
    for cs in status.get("containerStatuses") or ():
        print(f"  {cs.get('name')}:")
        print(f"    Image:          {cs.get('image')}")
        print(f"    Ready:          {cs.get('ready')}")
        print(f"    Restart Count:  {cs.get('restartCount', 0)}")
        for label, key in (("State", "state"), ("Last State", "lastState")):
            state = cs.get(key) or {}
            for word, detail in state.items():
                extras = ", ".join(f"{k}={v}" for k, v in (detail or {}).items())
                print(f"    {label + ':':<16}{word.capitalize()} {extras}".rstrip())
    return 0


class StreamStalled(Exception):
    """A stream sent nothing for longer than its idle timeout."""


async def idle_bounded(replies: AsyncIterator[Any], *, idle_s: float | None) -> AsyncIterator[Any]:
    """The replies of a stream, failing with StreamStalled when the first one, or the next one,
    takes longer than idle_s (None: wait as long as it takes)."""
    iterator = replies.__aiter__()
    while True:
        with trio.move_on_after(math.inf if idle_s is None else idle_s) as waited:
            try:
                reply = await iterator.__anext__()
            except StopAsyncIteration:
                return
        if waited.cancelled_caught:
            raise StreamStalled(f"agentd sent nothing for {idle_s:g}s (--request-timeout)")
        yield reply


async def cmd_logs(stub: node_pb2_grpc.NodeServiceStub, args: argparse.Namespace) -> int:
    request = node_pb2.PodLogsRequest(
        namespace=args.namespace, name=args.pod, container=args.container or "",
        tail_lines=max(0, args.tail) if args.tail is not None else 0, follow=args.follow,
    )
    # No deadline on the call: a log of any length is read to its end while it flows. A
    # followed log may be quiet for as long as its container is, so only a plain read is
    # bounded, by the time to its first line and between two lines.
    async with bridge.server_stream(stub.PodLogs, request, timeout=None) as lines:
        async for line in idle_bounded(lines, idle_s=None if args.follow else args.timeout):
            sys.stdout.write(line.line if line.line.endswith("\n") else line.line + "\n")
            if args.follow:
                sys.stdout.flush()
    return 0


def _condition_met(doc: dict, wanted: str) -> bool:
    status = doc.get("status") or {}
    if wanted.lower().startswith("condition="):
        name, _, value = wanted.split("=", 1)[1].partition("=")
        value = value or "True"
        return any(
            c.get("type", "").lower() == name.lower() and str(c.get("status")) == value
            for c in status.get("conditions") or ()
        )
    if wanted.lower().startswith("phase="):
        return (status.get("phase") or "").lower() == wanted.split("=", 1)[1].lower()
    raise ValueError(f"--for: expected condition=NAME[=VALUE] or phase=PHASE, got {wanted!r}")


async def cmd_wait(stub: node_pb2_grpc.NodeServiceStub, args: argparse.Namespace) -> int:
    names = {n.split("/", 1)[-1] for n in args.names}
    _condition_met({}, args.wait_for)  # validate before waiting
    pending = set(names)
    with trio.move_on_after(args.wait_timeout):
        request = node_pb2.WatchPodsRequest(namespace=args.namespace)
        async with bridge.server_stream(stub.WatchPods, request, timeout=None) as events:
            async for event in events:
                if event.pod.name in pending and event.kind != node_pb2.PodEvent.DELETED:
                    if _condition_met(_docs(event.pod), args.wait_for):
                        print(f"pod/{event.pod.name} condition met")
                        pending.discard(event.pod.name)
                if not pending:
                    return 0
    print(f"error: timed out waiting for the condition on {', '.join(f'pod/{n}' for n in sorted(pending))}", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentctl", description="Drive agentd (kubectl-style).")
    p.add_argument("-s", "--server", default=DEFAULT_SERVER, help=f"agentd API address (default {DEFAULT_SERVER}, or $AGENTCTL_SERVER)")
    p.add_argument("--request-timeout", dest="timeout", type=float, default=10.0,
                   help="seconds a request may wait for the server, for an answer or a stream's next message"
                        " (default 10)")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("get", help="list pods or show the node")
    g.add_argument("kind", help="pods | pod | nodes | node")
    g.add_argument("name", nargs="?")
    g.add_argument("-n", "--namespace", default="default")
    g.add_argument("-A", "--all-namespaces", action="store_true")
    g.add_argument("-o", "--output", choices=["wide", "json", "yaml", "name"], default=None)
    g.set_defaults(func=cmd_get)

    d = sub.add_parser("describe", help="show one pod in detail")
    d.add_argument("kind", choices=["pod", "pods", "po"])
    d.add_argument("name")
    d.add_argument("-n", "--namespace", default="default")
    d.set_defaults(func=cmd_describe)

    lg = sub.add_parser("logs", help="print a container's logs")
    lg.add_argument("pod")
    lg.add_argument("-c", "--container", default=None)
    lg.add_argument("-n", "--namespace", default="default")
    lg.add_argument("--tail", type=int, default=None, help="lines from the end (default: all)")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.set_defaults(func=cmd_logs)

    w = sub.add_parser("wait", help="wait until pods meet a condition")
    w.add_argument("names", nargs="+", metavar="pod/NAME")
    w.add_argument("--for", dest="wait_for", required=True, help="condition=Ready | phase=Succeeded ...")
    w.add_argument("--timeout", dest="wait_timeout", type=float, default=60.0, help="seconds (default 60)")
    w.add_argument("-n", "--namespace", default="default")
    w.set_defaults(func=cmd_wait)
    return p


async def _run(args: argparse.Namespace) -> int:
    async with bridge.Channel(args.server) as channel:
        return await args.func(channel.stub(node_pb2_grpc.NodeServiceStub), args)


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
    except StreamStalled as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except RpcError as err:
        if err.code == grpc.StatusCode.UNAVAILABLE:
            print(f"error: cannot reach agentd at {args.server}: {err.details}", file=sys.stderr)
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
