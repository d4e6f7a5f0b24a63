"""agentctl's commands: each one a coroutine over a ClusterClient and the parsed arguments.

Owns: what each command asks of the cluster and prints, as kubectl prints it (tables,
`-o json|yaml|name|wide`, `pod/web created`, `pod "web" deleted`). Returns the exit
status; errors from the server are raised as RpcError and printed by main.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import AsyncIterator
from typing import Any

import trio
import yaml

from agent.cli import config_render, render, workloads
from agent.cli.inputs import read_documents
from agent.client import ClusterClient
from agent.grpcbridge.errors import NotFound
from agent.rpc import cluster_pb2 as pb
from agent.state.objects import kind_for

Doc = dict[str, Any]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _dump(doc: object, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2)
    return yaml.safe_dump(doc, sort_keys=False).rstrip()


def _kind_name(text: str) -> tuple[str, str]:
    """(Kind, lower-case singular) of what a person typed: pods, po, node ... ValueError if unknown."""
    try:
        kind = kind_for(text)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    return kind.name, kind.name.lower()


def resource_name(kind_name: str) -> str:
    """How kubectl names a kind in what it prints: pod, node, deployment.apps, replicaset.apps."""
    kind = kind_for(kind_name)
    group = kind.api_version.rpartition("/")[0]
    return f"{kind.name.lower()}.{group}" if group else kind.name.lower()


def _namespace(args: argparse.Namespace) -> str:
    return "" if getattr(args, "all_namespaces", False) else args.namespace


# ---------------------------------------------------------------- apply / delete


async def cmd_apply(client: ClusterClient, args: argparse.Namespace) -> int:
    documents = read_documents(args.filename)
    docs = []
    for doc, _ in documents:
        meta = doc.setdefault("metadata", {})
        if kind_for(doc["kind"]).namespaced and not meta.get("namespace") and args.namespace != "default":
            meta["namespace"] = args.namespace
        docs.append(doc)
    results = await client.apply(docs, dry_run=args.dry_run == "server")
    suffix = " (server dry run)" if args.dry_run == "server" else ""
    for kind, _, name, action, _ in results:
        print(f"{resource_name(kind)}/{name} {action}{suffix}")
    return 0


async def cmd_delete(client: ClusterClient, args: argparse.Namespace) -> int:
    targets: list[tuple[str, str, str]] = []  # (Kind, namespace, name)
    if args.filename:
        for doc, _ in read_documents(args.filename):
            meta = doc.get("metadata") or {}
            targets.append((doc["kind"], meta.get("namespace") or args.namespace, meta.get("name", "")))
    elif args.kind and args.names:
        kind, _ = _kind_name(args.kind)
        targets = [(kind, args.namespace, name) for name in args.names]
    else:
        raise ValueError("give a kind and names (`delete pod web`) or -f FILE")
    status = 0
    for kind, namespace, name in targets:
        plural = kind_for(kind).plural
        try:
            await client.delete(kind, name, namespace=namespace)
        except NotFound:
            if args.ignore_not_found:
                continue
            print(f'Error from server (NotFound): {plural} "{name}" not found', file=sys.stderr)
            status = 1
            continue
        print(f'{resource_name(kind)} "{name}" deleted')
    return status


async def cmd_patch_node(client: ClusterClient, args: argparse.Namespace, *, unschedulable: bool) -> int:
    await client.patch("Node", args.node, {"spec": {"unschedulable": unschedulable or None}})
    print(f"node/{args.node} {'cordoned' if unschedulable else 'uncordoned'}")
    return 0


async def cmd_cordon(client: ClusterClient, args: argparse.Namespace) -> int:
    return await cmd_patch_node(client, args, unschedulable=True)


async def cmd_uncordon(client: ClusterClient, args: argparse.Namespace) -> int:
    return await cmd_patch_node(client, args, unschedulable=False)


# ---------------------------------------------------------------- get


async def cmd_get(client: ClusterClient, args: argparse.Namespace) -> int:
    kind, singular = _kind_name(args.kind)
    namespace = _namespace(args)
    if args.names:
        docs = [await client.get(kind, name, namespace=args.namespace) for name in args.names]
    else:
        docs, _ = await client.list(kind, namespace=namespace, labels=args.selector or "",
                                    fields=args.field_selector or "")
    if args.watch:
        return await _watch(client, args, kind, singular, docs)
    if args.output in ("json", "yaml"):
        doc: object = docs[0] if len(args.names) == 1 else {"apiVersion": "v1", "kind": "List", "items": docs}
        print(_dump(doc, args.output))
        return 0
    if args.output == "name":
        for d in docs:
            print(f"{resource_name(kind)}/{d['metadata']['name']}")
        return 0
    if not docs:
        where = "any namespace" if args.all_namespaces or singular == "node" else f"{args.namespace} namespace"
        print(f"No resources found in {where}." if singular != "node" else "No resources found",
              file=sys.stderr)
        return 0
    print(_table(singular, docs, args))
    return 0


def _table(singular: str, docs: list[Doc], args: argparse.Namespace, *, header: bool = True) -> str:
    wide = args.output == "wide"
    now = _now()
    if singular == "node":
        head = list(render.NODE_HEADER_WIDE if wide else render.NODE_HEADER)
        rows = [render.node_row(d, now, wide=wide) for d in docs]
    elif singular == "event":
        head = list(render.EVENT_HEADER)
        docs = render.sorted_events(docs)
        rows = [render.event_row(d, now) for d in docs]
        if args.all_namespaces:
            head.insert(0, "NAMESPACE")
            rows = [[d["metadata"].get("namespace", "default"), *r] for d, r in zip(docs, rows)]
    elif singular in ("deployment", "replicaset"):
        if singular == "deployment":
            head = list(workloads.DEPLOYMENT_HEADER_WIDE if wide else workloads.DEPLOYMENT_HEADER)
            rows = [workloads.deployment_row(d, now, wide=wide) for d in docs]
        else:
            head = list(workloads.REPLICASET_HEADER_WIDE if wide else workloads.REPLICASET_HEADER)
            rows = [workloads.replicaset_row(d, now, wide=wide) for d in docs]
        if args.all_namespaces:
            head.insert(0, "NAMESPACE")
            rows = [[d["metadata"].get("namespace", "default"), *r] for d, r in zip(docs, rows)]
    elif singular in ("configmap", "secret"):
        if singular == "configmap":
            head, rows = list(config_render.CONFIGMAP_HEADER), [config_render.configmap_row(d, now) for d in docs]
        else:
            head, rows = list(config_render.SECRET_HEADER), [config_render.secret_row(d, now) for d in docs]
        if args.all_namespaces:
            head.insert(0, "NAMESPACE")
            rows = [[d["metadata"].get("namespace", "default"), *r] for d, r in zip(docs, rows)]
    else:
        head = list(render.POD_HEADER_WIDE if wide else render.POD_HEADER)
        rows = [render.pod_row(d, d.get("status") or {}, now, wide=wide) for d in docs]
        if args.all_namespaces:
            head.insert(0, "NAMESPACE")
            rows = [[d["metadata"].get("namespace", "default"), *r] for d, r in zip(docs, rows)]
    text = render.table(head, rows)
    return text if header else "\n".join(text.splitlines()[1:])


async def _watch(client: ClusterClient, args: argparse.Namespace, kind: str, singular: str, docs: list[Doc]) -> int:
    """Print the current objects, then every change, until interrupted (kubectl get -w)."""
    names = set(args.names)
    if docs:
        print(_table(singular, docs, args), flush=True)
    printed_header = bool(docs)
    async for batch in client.watch([kind], namespace=_namespace(args), labels=args.selector or "",
                                    fields=args.field_selector or ""):
        if batch.initial:
            continue  # already printed from the list
        changed = [json.loads(e.object_json) for e in batch.events if e.type != pb.WatchEvent.DELETED]
        changed = [d for d in changed if not names or d["metadata"]["name"] in names]
        if changed:
            print(_table(singular, changed, args, header=not printed_header), flush=True)
            printed_header = True
    return 0


# ---------------------------------------------------------------- describe


async def cmd_describe(client: ClusterClient, args: argparse.Namespace) -> int:
    kind, singular = _kind_name(args.kind)
    doc = await client.get(kind, args.name, namespace=args.namespace)
    if singular == "node":
        pods, _ = await client.list("Pod", fields=f"spec.nodeName={args.name}")
        print(render.describe_node(doc, pods))
    elif singular == "deployment":
        sets, _ = await client.list("ReplicaSet", namespace=args.namespace)
        print(workloads.describe_deployment(doc, workloads.owned_by(doc["metadata"]["uid"], sets)))
    elif singular == "replicaset":
        pods, _ = await client.list("Pod", namespace=args.namespace)
        print(workloads.describe_replicaset(doc, workloads.owned_by(doc["metadata"]["uid"], pods)))
    elif singular == "event":
        print(_dump(doc, "yaml"))
        return 0
    elif singular == "configmap":
        print(config_render.describe_configmap(doc))
    elif singular == "secret":
        print(config_render.describe_secret(doc))  # sizes, never values
    else:
        print(render.describe_pod(doc))
    events, _ = await client.list("Event", fields=f"involvedObject.uid={doc['metadata']['uid']}")
    print(render.events_section(events, _now()))
    return 0


# ---------------------------------------------------------------- logs


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


async def cmd_logs(client: ClusterClient, args: argparse.Namespace) -> int:
    lines = client.logs(args.pod, namespace=args.namespace, container=args.container or "",
                        tail=max(0, args.tail) if args.tail is not None else 0, follow=args.follow,
                        previous=args.previous)
    # A log of any length is read to its end while it flows; only the wait for the next
    # line is bounded, and not at all when following (a quiet container is not an error).
    async for line in idle_bounded(lines, idle_s=None if args.follow else args.timeout):
        sys.stdout.write(line if line.endswith("\n") else line + "\n")
        if args.follow:
            sys.stdout.flush()
    return 0


# ---------------------------------------------------------------- cluster status


async def cmd_cluster_status(client: ClusterClient, args: argparse.Namespace) -> int:
    status = await client.status()
    print(f"Leader:     {status.leader or '<none: no quorum or an election is running>'}")
    print(f"Term:       {status.term}")
    print(f"Voters:     {', '.join(status.voters) or '<none>'}")
    print(f"Standbys:   {', '.join(status.standbys) or '<none>'}")
    print(f"Workers:    {', '.join(status.workers) or '<none>'}")
    print(f"Committed:  {status.commit_index}   (answered by {status.answered_by})")
    rows = [[m.name, m.role or "-", m.state, m.api_address or "-", m.gossip_address or "-", str(m.incarnation),
             m.version or "-"] for m in sorted(status.members, key=lambda m: m.name)]
    print()
    print(render.table(["MEMBER", "ROLE", "STATE", "API", "GOSSIP", "INCARNATION", "VERSION"], rows))
    return 0


# ---------------------------------------------------------------- wait


def condition_met(doc: Doc | None, wanted: str) -> bool:
    """Whether `doc` meets --for: condition=NAME[=VALUE], phase=PHASE, or delete (doc None)."""
    if wanted == "delete":
        return doc is None
    if doc is None:
        return False
    status = doc.get("status") or {}
    if wanted.lower().startswith("condition="):
        name, _, value = wanted.split("=", 1)[1].partition("=")
        value = value or "True"
        return any(c.get("type", "").lower() == name.lower() and str(c.get("status")) == value
                   for c in status.get("conditions") or ())
    if wanted.lower().startswith("phase="):
        return (status.get("phase") or "").lower() == wanted.split("=", 1)[1].lower()
    raise ValueError(f"--for: expected condition=NAME[=VALUE], phase=PHASE or delete, got {wanted!r}")


async def cmd_wait(client: ClusterClient, args: argparse.Namespace) -> int:
    condition_met({}, args.wait_for)  # refuse a malformed --for before waiting
    targets: dict[str, str] = {}  # name -> Kind
    for text in args.names:
        kind_text, _, name = text.rpartition("/")
        targets[name] = _kind_name(kind_text or "pod")[0]
    pending = set(targets)
    kinds = sorted(set(targets.values()))
    latest: dict[str, Doc | None] = {}
    with trio.move_on_after(args.wait_timeout):
        async for batch in client.watch(kinds, namespace=args.namespace):
            if batch.initial:
                latest = {name: None for name in targets}
            for event in batch.events:
                doc = json.loads(event.object_json)
                name = doc["metadata"]["name"]
                if name in targets and doc.get("kind") == targets[name]:
                    latest[name] = None if event.type == pb.WatchEvent.DELETED else doc
            for name in sorted(pending):
                if name in latest and condition_met(latest[name], args.wait_for):
                    word = "deleted" if args.wait_for == "delete" else "condition met"
                    print(f"{targets[name].lower()}/{name} {word}")
                    pending.discard(name)
            if not pending:
                return 0
    waiting = ", ".join(f"{targets[n].lower()}/{n}" for n in sorted(pending))
    print(f"error: timed out waiting for the condition on {waiting}", file=sys.stderr)
    return 1
