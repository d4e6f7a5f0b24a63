"""`agentctl drain NODE`: cordon a node, then evict its Pods within their budgets.

Owns: the drain as kubectl runs it: cordon (`node/n2 cordoned`); sort the node's Pods
(`sort_pods`, pure): mirror Pods are skipped with a warning, finished Pods go as they
are, a Pod with no controller stops the drain unless `--force`; then each remaining Pod
is evicted (`evicting pod default/web-x`, `pod/web-x evicted`), an eviction the cluster
refuses for a Deployment's budget (RESOURCE_EXHAUSTED) being tried again every
`RETRY_S` until it passes or `--timeout` ends; `node/n2 drained` at the end. A refused
Pod is marked leaving (`agentd.io/eviction-requested`), so that its ReplicaSet starts a
replacement beside it within maxSurge: a Deployment whose maxUnavailable comes to 0
(the default 25 % of 3 replicas or fewer) is drained too, never below its replicas.

Rules it keeps:
- The budget is checked by the cluster, atomically with the deletion (the `evict_pod`
  op): the drain never counts Pods itself, so two drains at once cannot both take the
  last Pod a Deployment may lose.
- The Raft leader is moved by the cluster, not by the drain: a leader whose own Node is
  cordoned hands leadership to another voter (agent/control/handoff.py), so the drain
  waits, after cordoning, until `cluster status` names another leader before it evicts
  anything (evictions would otherwise race an election).
- Uncordon is not done on failure: a half-drained node stays cordoned, as with kubectl.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import trio

from agent.client import ClusterClient
from agent.grpcbridge.errors import NotFound, RpcError
from agent.state import pod_lifecycle as pods
from agent.state.objects import controller_of, format_time, meta_of
from agent.state.pod_lifecycle import EVICTION_REQUESTED_ANNOTATION, LEAVING_FOR_S

__all__ = ["DrainPlan", "cmd_drain", "sort_pods"]

RETRY_S = 1.0  # kubectl waits 5 s between refused evictions; a budget frees up in about a Pod's start


@dataclass(slots=True)
class DrainPlan:
    evict: list[tuple[str, str]] = field(default_factory=list)  # (namespace, name)
    mirrors: list[str] = field(default_factory=list)  # namespace/name
    bare: list[str] = field(default_factory=list)  # namespace/name, no controller


def sort_pods(docs: Sequence[dict[str, Any]], *, force: bool) -> DrainPlan:
    """Which of the node's Pods the drain evicts, skips (mirrors) or is stopped by (bare
    Pods without --force; with it they are evicted too)."""
    plan = DrainPlan()
    for doc in sorted(docs, key=lambda d: (meta_of(d).get("namespace", ""), meta_of(d)["name"])):
        meta = meta_of(doc)
        ident = (meta.get("namespace", "default"), meta["name"])
        if pods.is_mirror(doc):
            plan.mirrors.append("/".join(ident))
            continue
        if controller_of(doc) is None and not pods.is_finished(doc):
            plan.bare.append("/".join(ident))
            if not force:
                continue
        plan.evict.append(ident)
    return plan


async def _mark_leaving(client: ClusterClient, namespace: str, name: str) -> None:
    """Ask the Pod's ReplicaSet for a replacement beside it, so that the eviction passes
    once that one is available (agent/control/replicasets.py)."""
    stamp = format_time(time.time())
    try:
        await client.patch("Pod", name, {"metadata": {"annotations": {EVICTION_REQUESTED_ANNOTATION: stamp}}},
                           namespace=namespace)
    except NotFound:
        pass


async def _leader(client: ClusterClient) -> str:
    try:
        return (await client.status()).leader
    except RpcError:
        return ""


async def cmd_drain(client: ClusterClient, args: argparse.Namespace) -> int:
    node = args.node
    await client.get("Node", node)  # NotFound: nothing is changed
    leading = await _leader(client) == node  # asked before the cordon, which makes it hand off
    await client.patch("Node", node, {"spec": {"unschedulable": True}})
    print(f"node/{node} cordoned", flush=True)
    deadline = trio.current_time() + args.drain_timeout
    listed, _ = await client.list("Pod", fields=f"spec.nodeName={node}")
    plan = sort_pods(listed, force=args.force)
    if plan.bare and not args.force:
        print(f'error: unable to drain node "{node}" due to error: cannot delete Pods that declare no controller '
              f"(use --force to override): {', '.join(plan.bare)}", file=sys.stderr)
        return 1
    if plan.mirrors:
        print(f"Warning: ignoring mirror Pods (static Pods of the node): {', '.join(plan.mirrors)}", flush=True)
    if plan.bare:
        print(f"Warning: deleting Pods that declare no controller: {', '.join(plan.bare)}", flush=True)
    if leading or await _leader(client) == node:
        print(f"node/{node} runs the Raft leader; waiting for leadership to move to another server", flush=True)
        while await _leader(client) in (node, ""):
            if trio.current_time() > deadline:
                print(f'error: unable to drain node "{node}": leadership did not move within the timeout',
                      file=sys.stderr)
                return 1
            await trio.sleep(0.2)
        print(f"leadership moved to {await _leader(client)}", flush=True)
    waiting = list(plan.evict)
    marked: dict[tuple[str, str], float] = {}  # when each refused Pod was last marked leaving
    for namespace, name in waiting:
        print(f"evicting pod {namespace}/{name}", flush=True)
    while waiting:
        left = []
        for namespace, name in waiting:
            try:
                await client.evict(name, namespace=namespace, force=args.force)
            except NotFound:
                pass  # gone already: deleted by its controller or a person
            except RpcError as exc:
                if exc.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                print(f'error when evicting pods/"{name}" -n "{namespace}" (will retry after {RETRY_S:g}s): '
                      f"{exc.details}", file=sys.stderr, flush=True)
                left.append((namespace, name))
                if trio.current_time() - marked.get((namespace, name), -LEAVING_FOR_S) > LEAVING_FOR_S / 2:
                    await _mark_leaving(client, namespace, name)
                    marked[(namespace, name)] = trio.current_time()
                continue
            print(f"pod/{name} evicted", flush=True)
        waiting = left
        if waiting:
            if trio.current_time() + RETRY_S > deadline:
                print(f'error: unable to drain node "{node}" due to error: timed out waiting for the evictions of '
                      f"{', '.join(f'{ns}/{n}' for ns, n in waiting)}", file=sys.stderr)
                return 1
            await trio.sleep(RETRY_S)
    print(f"node/{node} drained", flush=True)
    return 0
