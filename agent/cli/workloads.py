"""agentctl's workload commands and printing: Deployments and ReplicaSets, as kubectl has them.

Owns: the DEPLOYMENT and REPLICASET table columns, `describe deployment|replicaset`, and
the commands that act on a Deployment through the ordinary API: `scale` and `rollout
status|history|undo|pause|resume|restart`.

Rules it keeps:
- Every command is what kubectl does on the client side, over Get, Patch, Apply and
  Watch: a pause is `spec.paused`, a restart a template annotation, an undo the template
  of an older ReplicaSet written back into the Deployment (with the Deployment's
  resourceVersion as a precondition, so a change made meanwhile is not overwritten).
- The revision of a ReplicaSet is its `deployment.kubernetes.io/revision` annotation and
  the ReplicaSets of a Deployment are those whose controller ownerReference names its uid.
- `rollout status` ends 0 when the rollout is complete, 1 when the Deployment reports
  ProgressDeadlineExceeded or --timeout passes, and prints kubectl's progress lines.
- Rendering functions are pure (documents and `now` in, text out).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from agent.cli import render
from agent.client import ClusterClient
from agent.rpc import cluster_pb2 as pb

Doc = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
TEMPLATE_HASH = "pod-template-hash"

DEPLOYMENT_HEADER = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
DEPLOYMENT_HEADER_WIDE = DEPLOYMENT_HEADER + ["CONTAINERS", "IMAGES", "SELECTOR"]
REPLICASET_HEADER = ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
REPLICASET_HEADER_WIDE = REPLICASET_HEADER + ["CONTAINERS", "IMAGES", "SELECTOR"]


# ---------------------------------------------------------------- printing


def _age(meta: Mapping, now: dt.datetime) -> str:
    created = render.parse_time(meta.get("creationTimestamp"))
    return render.human_duration((now - created).total_seconds()) if created else "<unknown>"


def selector_text(selector: Mapping | None) -> str:
    """A label selector as kubectl writes it: app=web,tier in (a,b),!gone."""
    parts = [f"{k}={v}" for k, v in sorted(((selector or {}).get("matchLabels") or {}).items())]
    for expr in (selector or {}).get("matchExpressions") or ():
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or "<none>"


def _containers(template: Mapping) -> tuple[str, str]:
    containers = ((template.get("spec") or {}).get("containers")) or ()
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def deployment_row(doc: Mapping, now: dt.datetime, *, wide: bool) -> list[str]:
    meta, spec, status = doc.get("metadata") or {}, doc.get("spec") or {}, doc.get("status") or {}
    row = [meta.get("name", ""), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
           str(status.get("updatedReplicas", 0)), str(status.get("availableReplicas", 0)), _age(meta, now)]
    if wide:
        row += [*_containers(spec.get("template") or {}), selector_text(spec.get("selector"))]
    return row


def replicaset_row(doc: Mapping, now: dt.datetime, *, wide: bool) -> list[str]:
    meta, spec, status = doc.get("metadata") or {}, doc.get("spec") or {}, doc.get("status") or {}
    row = [meta.get("name", ""), str(spec.get("replicas", 0)), str(status.get("replicas", 0)),
           str(status.get("readyReplicas", 0)), _age(meta, now)]
    if wide:
        row += [*_containers(spec.get("template") or {}), selector_text(spec.get("selector"))]
    return row


def revision_of(doc: Mapping) -> int:
    try:
        return int(((doc.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def owned_by(uid: str, docs: Sequence[Mapping]) -> list[Mapping]:
    """The objects whose controller ownerReference names `uid`."""
    out = []
    for doc in docs:
        for ref in (doc.get("metadata") or {}).get("ownerReferences") or ():
            if ref.get("uid") == uid and ref.get("controller"):
                out.append(doc)
    return out


def _strategy_text(spec: Mapping) -> list[tuple[str, str]]:
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type", "RollingUpdate")
    out = [("StrategyType", kind), ("MinReadySeconds", str(spec.get("minReadySeconds", 0)))]
    if kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate") or {}
        out.append(("RollingUpdateStrategy", f"{rolling.get('maxUnavailable', '25%')} max unavailable, "
                                             f"{rolling.get('maxSurge', '25%')} max surge"))
    return out


def _template_lines(template: Mapping) -> list[str]:
    lines = ["Pod Template:"]
    meta = template.get("metadata") or {}
    labels = ",".join(f"{k}={v}" for k, v in sorted((meta.get("labels") or {}).items())) or "<none>"
    lines.append(f"  Labels:  {labels}")
    annotations = meta.get("annotations") or {}
    if annotations:
        lines.append("  Annotations:  " + ", ".join(f"{k}: {v}" for k, v in sorted(annotations.items())))
    lines.append("  Containers:")
    for container in (template.get("spec") or {}).get("containers") or ():
        lines.append(f"   {container.get('name')}:")
        lines.append(f"    Image:      {container.get('image', '')}")
        for port in container.get("ports") or ():
            lines.append(f"    Port:       {port.get('containerPort')}/{port.get('protocol', 'TCP')}")
        cpu, memory = render.container_requests(container)
        lines.append(f"    Requests:   cpu={cpu}, memory={memory}")
        if container.get("readinessProbe"):
            lines.append(f"    Readiness:  {_probe_text(container['readinessProbe'])}")
    return lines


def _probe_text(probe: Mapping) -> str:
    if "httpGet" in probe:
        action = f"http-get :{probe['httpGet'].get('port')}{probe['httpGet'].get('path', '/')}"
    elif "tcpSocket" in probe:
        action = f"tcp-socket :{probe['tcpSocket'].get('port')}"
    elif "grpc" in probe:
        action = f"grpc <pod>:{probe['grpc'].get('port')} {probe['grpc'].get('service', '')}".rstrip()
    elif "exec" in probe:
        action = "exec " + json.dumps((probe["exec"] or {}).get("command") or [])
    else:
        action = "<unknown>"
    return (f"{action} delay={probe.get('initialDelaySeconds', 0)}s timeout={probe.get('timeoutSeconds', 1)}s "
            f"period={probe.get('periodSeconds', 10)}s #success={probe.get('successThreshold', 1)} "
            f"#failure={probe.get('failureThreshold', 3)}")


def describe_deployment(doc: Mapping, replica_sets: Sequence[Mapping]) -> str:
    meta, spec, status = doc.get("metadata") or {}, doc.get("spec") or {}, doc.get("status") or {}
    lines: list[str] = []
    render._kv(lines, "Name", meta.get("name", ""))
    render._kv(lines, "Namespace", meta.get("namespace", "default"))
    render._kv(lines, "CreationTimestamp", meta.get("creationTimestamp", ""))
    render._map_lines(lines, "Labels", meta.get("labels"))
    render._map_lines(lines, "Annotations", meta.get("annotations"))
    render._kv(lines, "Selector", selector_text(spec.get("selector")))
    render._kv(lines, "Replicas", f"{spec.get('replicas', 0)} desired | {status.get('updatedReplicas', 0)} updated | "
                                  f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} available"
                                  f" | {status.get('unavailableReplicas', 0)} unavailable")
    for key, value in _strategy_text(spec):
        render._kv(lines, key, value)
    if spec.get("paused"):
        render._kv(lines, "Paused", "true")
    lines += _template_lines(spec.get("template") or {})
    render._conditions(lines, status.get("conditions") or ())
    newest = max(replica_sets, key=revision_of, default=None)
    old = [rs for rs in replica_sets if rs is not newest and (rs.get("spec") or {}).get("replicas", 0)]

    def shown(rs: Mapping | None) -> str:
        if rs is None:
            return "<none>"
        return (f"{rs['metadata']['name']} ({(rs.get('status') or {}).get('replicas', 0)}/"
                f"{(rs.get('spec') or {}).get('replicas', 0)} replicas created)")

    render._kv(lines, "OldReplicaSets", ", ".join(shown(rs) for rs in old) or "<none>")
    render._kv(lines, "NewReplicaSet", shown(newest))
    return "\n".join(lines)


def describe_replicaset(doc: Mapping, pods: Sequence[Mapping]) -> str:
    meta, spec, status = doc.get("metadata") or {}, doc.get("spec") or {}, doc.get("status") or {}
    lines: list[str] = []
    render._kv(lines, "Name", meta.get("name", ""))
    render._kv(lines, "Namespace", meta.get("namespace", "default"))
    render._kv(lines, "Selector", selector_text(spec.get("selector")))
    render._map_lines(lines, "Labels", meta.get("labels"))
    render._map_lines(lines, "Annotations", meta.get("annotations"))
    owner = next((r for r in meta.get("ownerReferences") or () if r.get("controller")), None)
    render._kv(lines, "Controlled By", f"{owner['kind']}/{owner['name']}" if owner else "<none>")
    phases: dict[str, int] = {}
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase", "Pending")
        phases[phase] = phases.get(phase, 0) + 1
    render._kv(lines, "Replicas", f"{status.get('replicas', 0)} current / {spec.get('replicas', 0)} desired")
    render._kv(lines, "Pods Status", " / ".join(f"{phases.get(p, 0)} {p}" for p in
                                                 ("Running", "Pending", "Succeeded", "Failed")))
    lines += _template_lines(spec.get("template") or {})
    return "\n".join(lines)


# ---------------------------------------------------------------- what a rollout looks like


def rollout_progress(doc: Mapping) -> tuple[bool, str]:
    """(done, kubectl's line) for a Deployment, as `kubectl rollout status` judges it.
    Raises ValueError when the Deployment exceeded its progress deadline."""
    name = (doc.get("metadata") or {}).get("name", "")
    meta, spec, status = doc.get("metadata") or {}, doc.get("spec") or {}, doc.get("status") or {}
    if int(status.get("observedGeneration", 0)) < int(meta.get("generation", 1)):
        return False, f'Waiting for deployment spec update to be observed...'
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            raise ValueError(f'deployment "{name}" exceeded its progress deadline')
    wanted = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    total = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    if updated < wanted:
        return False, (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {wanted} new replicas '
                       f"have been updated...")
    if total > updated:
        return False, (f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas are '
                       f"pending termination...")
    if available < updated:
        return False, (f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated '
                       f"replicas are available...")
    return True, f'deployment "{name}" successfully rolled out'


def template_of_revision(replica_sets: Sequence[Mapping], revision: int) -> Mapping:
    """The Pod template a ReplicaSet of `revision` runs (0: the one before the newest), without
    the pod-template-hash label the controller added. Raises ValueError if there is none."""
    ordered = sorted(replica_sets, key=revision_of)
    if revision == 0:
        if len(ordered) < 2:
            raise ValueError("no rollout history found for deployment: no previous revision to roll back to")
        chosen = ordered[-2]
    else:
        found = [rs for rs in ordered if revision_of(rs) == revision]
        if not found:
            raise ValueError(f"unable to find the specified revision {revision}")
        chosen = found[0]
    template = copy.deepcopy((chosen.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(TEMPLATE_HASH, None)
    return template


# ---------------------------------------------------------------- commands


def _target(args: argparse.Namespace) -> tuple[str, str]:
    """(Kind, name) from `deployment/web` or `deployment web`."""
    text = args.target
    name = args.name
    if "/" in text:
        text, name = text.split("/", 1)
    if not name:
        raise ValueError("give a name: deployment/NAME or deployment NAME")
    kind = {"deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
            "deployment.apps": "Deployment", "replicaset": "ReplicaSet", "replicasets": "ReplicaSet",
            "rs": "ReplicaSet", "replicaset.apps": "ReplicaSet"}.get(text.lower())
    if kind is None:
        raise ValueError(f'no {args.command} for "{text}": this works on deployments (and scale on replicasets)')
    return kind, name


async def _replica_sets_of(client: ClusterClient, deployment: Mapping) -> list[Mapping]:
    namespace = deployment["metadata"].get("namespace", "default")
    sets, _ = await client.list("ReplicaSet", namespace=namespace)
    return owned_by(deployment["metadata"]["uid"], sets)


async def cmd_scale(client: ClusterClient, args: argparse.Namespace) -> int:
    kind, name = _target(args)
    if args.replicas < 0:
        raise ValueError("--replicas must be 0 or more")
    await client.patch(kind, name, {"spec": {"replicas": args.replicas}}, namespace=args.namespace)
    print(f"{kind.lower()}.apps/{name} scaled")
    return 0


async def cmd_rollout(client: ClusterClient, args: argparse.Namespace) -> int:
    kind, name = _target(args)
    if kind != "Deployment":
        raise ValueError("rollout works on deployments")
    action = args.rollout_command
    if action == "status":
        return await _rollout_status(client, args, name)
    deployment = await client.get("Deployment", name, namespace=args.namespace)
    spec = deployment.get("spec") or {}
    shown = f"deployment.apps/{name}"
    if action in ("pause", "resume"):
        wanted = action == "pause"
        if bool(spec.get("paused")) == wanted:
            print(f"{shown} {'already paused' if wanted else 'is not paused'}")
            return 0
        await client.patch("Deployment", name, {"spec": {"paused": True if wanted else None}},
                           namespace=args.namespace)
        print(f"{shown} {'paused' if wanted else 'resumed'}")
        return 0
    if action == "restart":
        if spec.get("paused"):
            raise ValueError(f"deployments.apps \"{name}\" is paused: resume it before restarting it")
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        await client.patch("Deployment", name, {"spec": {"template": {"metadata": {"annotations": {
            RESTARTED_AT: stamp}}}}}, namespace=args.namespace)
        print(f"{shown} restarted")
        return 0
    sets = await _replica_sets_of(client, deployment)
    if action == "history":
        if args.revision:
            template = template_of_revision(sets, args.revision)
            print(f"{shown} with revision #{args.revision}")
            print("\n".join(_template_lines(template)))
            return 0
        print(f"{shown}")
        rows = [[str(revision_of(rs)), ((rs["metadata"].get("annotations") or {}).get(CHANGE_CAUSE)) or "<none>"]
                for rs in sorted(sets, key=revision_of)]
        print(render.table(["REVISION", "CHANGE-CAUSE"], rows))
        return 0
    if action == "undo":
        if spec.get("paused"):
            raise ValueError(f"you cannot rollback a paused deployment; resume it first with "
                             f"'agentctl rollout resume deployment/{name}' and try again")
        template = template_of_revision(sets, args.to_revision)
        current = copy.deepcopy(spec.get("template") or {})
        if current == template:
            print(f"{shown} skipped rollback (current template already matches revision "
                  f"{args.to_revision or 'previous'})")
            return 0
        updated = {k: v for k, v in deployment.items() if k != "status"}
        updated["spec"] = dict(spec, template=template)
        await client.apply([updated])  # carries metadata.resourceVersion: refused if changed meanwhile
        print(f"{shown} rolled back")
        return 0
    raise ValueError(f"unknown rollout command {action!r}")


async def _rollout_status(client: ClusterClient, args: argparse.Namespace, name: str) -> int:
    """Print progress lines (each once) until the rollout completes, fails or times out."""
    last_line = ""
    done = False
    with trio.move_on_after(args.rollout_timeout) as waited:
        async for batch in client.watch(["Deployment"], namespace=args.namespace,
                                        fields=f"metadata.name={name}"):
            for event in batch.events:
                if event.type == pb.WatchEvent.DELETED:
                    raise ValueError(f'deployment "{name}" was deleted')
                doc = json.loads(event.object_json)
                done, line = rollout_progress(doc)
                if line != last_line:
                    print(line, flush=True)
                    last_line = line
            if batch.initial and not batch.events:
                await client.get("Deployment", name, namespace=args.namespace)  # NotFound says so
            if done or not args.watch:
                break
    if waited.cancelled_caught:
        print(f"error: timed out waiting for the condition", file=sys.stderr)
        return 1
    return 0
