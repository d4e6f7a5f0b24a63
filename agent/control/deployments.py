"""The Deployment controller: a Deployment rolls its Pod template out through ReplicaSets.

Owns: for one Deployment, which ReplicaSets it owns (adopting orphans its selector
matches), which of them is the new one (its template is the Deployment's), creating it
(`<deployment>-<pod-template-hash>`), the replicas of each (rolling update, recreate,
proportional scaling, pause), revision history and its cleanup, and the Deployment's
status with its Available and Progressing conditions.

Rules it keeps (Kubernetes' deployment controller: sync.go, rolling.go, recreate.go,
progress.go, deployment/util):
- The pod-template-hash is FNV-32a of the canonical template (plus status.collisionCount),
  written in the safe alphabet; it labels the ReplicaSet, its selector, its template and
  so its Pods. A name taken by a ReplicaSet of another template bumps collisionCount.
- A ReplicaSet's revision (`deployment.kubernetes.io/revision`) is one more than its
  older siblings' greatest; rolling back (the template set to an older one) reuses that
  ReplicaSet and gives it the next revision. The Deployment's annotations (change-cause
  among them) are copied to its new ReplicaSet; desired-replicas and max-replicas are
  written on every ReplicaSet it scales.
- RollingUpdate: maxSurge rounds up, maxUnavailable down (1 if both are 0); the new set
  grows while all sets' replicas stay within replicas+maxSurge; old sets shrink, unhealthy
  Pods first, while the available Pods stay at least replicas-maxUnavailable. A set's
  available Pods are counted from its Pods (Ready for minReadySeconds at `now`) among
  those it keeps, so the arithmetic never leans on a status a pass old.
- Recreate: old sets go to 0; the new set is created and grown only once no old Pod is
  live. A change of spec.replicas during a rollout is shared proportionally
  (the max-replicas annotation); a paused Deployment only scales.
- Old sets at 0 beyond revisionHistoryLimit are deleted, lowest revision first, once the
  rollout is complete (or the Deployment is paused).
- Status is written only when it differs from the stored one; conditions keep their
  lastTransitionTime while their status holds.
- Pure: no I/O, no clock (`now` comes in), uids from the injected `new_uid`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.control.replicasets import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    SAFE_ALPHABET,
    Ownership,
    claim_rows,
    is_available,
    is_live,
    is_ready,
    pods_kept,
)
from agent.state import commands as cmd
from agent.state.objects import annotations_of, format_time, meta_of, parse_time
from agent.state.workloads import (
    API_VERSION,
    DEPLOYMENT,
    RECREATE,
    REPLICA_SET,
    max_surge,
    max_unavailable,
    replicas_of,
)

__all__ = ["DeploymentPlan", "plan_deployment", "template_hash", "RSView"]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
# Annotations of a Deployment not copied to its ReplicaSets (Kubernetes' skip list).
NOT_COPIED = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to",
})
AVAILABLE, PROGRESSING = "Available", "Progressing"
MIN_AVAILABLE, MIN_UNAVAILABLE = "MinimumReplicasAvailable", "MinimumReplicasUnavailable"
NEW_RS_CREATED, FOUND_NEW_RS = "NewReplicaSetCreated", "FoundNewReplicaSet"
RS_UPDATED, NEW_RS_AVAILABLE, TIMED_OUT = "ReplicaSetUpdated", "NewReplicaSetAvailable", "ProgressDeadlineExceeded"
PAUSED, RESUMED = "DeploymentPaused", "DeploymentResumed"


# ---------------------------------------------------------------- the template hash


def template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """Kubernetes' ComputeHash: FNV-32a of the template (here its canonical JSON), then the
    collision count, the decimal digits written in the safe alphabet (SafeEncodeString)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in str(value))


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(template)
    meta = dict(out.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    out["metadata"] = meta
    return out


def same_template(rs: Mapping[str, Any], deployment: Mapping[str, Any]) -> bool:
    """Kubernetes' EqualIgnoreHash: the templates equal but for the pod-template-hash label."""
    a = _without_hash((rs.get("spec") or {}).get("template") or {})
    b = _without_hash((deployment.get("spec") or {}).get("template") or {})
    return a == b


def _revision(rs: Mapping[str, Any]) -> int:
    text = annotations_of(rs).get(REVISION, "")
    return int(text) if text.isdigit() else 0


# ---------------------------------------------------------------- one pass over one Deployment


@dataclass(slots=True)
class RSView:
    """One ReplicaSet as the controller sees it during a pass: its document as this pass
    leaves it (`doc`), and its Pods as the pass found them."""

    doc: dict[str, Any]
    stored: Mapping[str, Any] | None  # None: created by this pass
    live: int = 0
    ready: int = 0
    available: int = 0

    @property
    def uid(self) -> str:
        return meta_of(self.doc)["uid"]

    @property
    def replicas(self) -> int:
        return replicas_of(self.doc)

    @property
    def created_at(self) -> tuple[str, str]:
        meta = meta_of(self.doc)
        return meta.get("creationTimestamp") or "~", meta["name"]


@dataclass(slots=True)
class DeploymentPlan:
    commands: list[bytes] = field(default_factory=list)
    replica_sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> as this pass leaves it
    deleted: set[str] = field(default_factory=set)  # uids of ReplicaSets deleted


def rs_view(rs: Mapping[str, Any], namespace_pods: Ownership, now: float) -> RSView:
    live = [p for p in namespace_pods.owned_by(rs) if is_live(p)]
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    kept = pods_kept(live, replicas_of(rs), min_ready, now)
    return RSView(dict(rs), rs, live=len(live), ready=sum(1 for p in live if is_ready(p)),
                  available=sum(1 for p in kept if is_available(p, min_ready, now)))


class _Pass:
    def __init__(self, d: Mapping[str, Any], views: list[RSView], rs_names: set[str], now: float,
                 new_uid: Callable[[], str]) -> None:
        self.d = d
        self.meta = meta_of(d)
        self.spec = d.get("spec") or {}
        self.views = views
        self.rs_names = rs_names
        self.now = now
        self.stamp = format_time(now)
        self.new_uid = new_uid
        self.replicas = replicas_of(d)
        self.surge = max_surge(d)
        self.base: dict[str, Any] = json.loads(json.dumps(d.get("status") or {}))
        self.plan = DeploymentPlan()
        self.blocked = False  # a name collision: only the status (collisionCount) is written

    # ------------------------------------------------------------ replica sets
    def new_and_old(self, create: bool) -> tuple[RSView | None, list[RSView]]:
        """getAllReplicaSetsAndSyncRevision: the new set (made if `create`) and the others."""
        ordered = sorted(self.views, key=lambda v: v.created_at)
        new = next((v for v in ordered if same_template(v.doc, self.d)), None)
        olds = [v for v in ordered if v is not new]
        revision = max((_revision(v.doc) for v in olds), default=0) + 1
        if new is not None:
            annotations = self._copied_annotations(new.doc)
            if _revision(new.doc) < revision:
                annotations[REVISION] = str(revision)
            spec = dict(new.doc["spec"])
            min_ready = self.spec.get("minReadySeconds")
            if min_ready:
                spec["minReadySeconds"] = min_ready
            else:
                spec.pop("minReadySeconds", None)
            self._update(new, annotations, spec)
            if self._condition(PROGRESSING) is None:
                self._set_condition(PROGRESSING, "True", FOUND_NEW_RS, f'Found new replica set "{new.doc["metadata"]["name"]}"')
            return new, olds
        if not create:
            return None, olds
        collisions = int(self.base.get("collisionCount") or 0)
        template = self.spec.get("template") or {}
        hashed = template_hash(template, collisions)
        name = f"{self.meta['name']}-{hashed}"
        if name in self.rs_names:
            self.base["collisionCount"] = collisions + 1
            self.blocked = True
            return None, olds
        new = self._create(name, hashed, revision, olds)
        self._set_condition(PROGRESSING, "True", NEW_RS_CREATED, f'Created new replica set "{name}"')
        return new, olds

    def _copied_annotations(self, rs: Mapping[str, Any]) -> dict[str, str]:
        annotations = dict(annotations_of(rs))
        for key, value in annotations_of(self.d).items():
            if key not in NOT_COPIED:
                annotations[key] = value
        return annotations

    def _create(self, name: str, hashed: str, revision: int, olds: list[RSView]) -> RSView:
        template = json.loads(json.dumps(self.spec.get("template") or {}))
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = dict(sorted({**(tmeta.get("labels") or {}), HASH_LABEL: hashed}.items()))
        selector = json.loads(json.dumps(self.spec.get("selector") or {}))
        selector["matchLabels"] = dict(sorted({**(selector.get("matchLabels") or {}), HASH_LABEL: hashed}.items()))
        annotations = self._copied_annotations({})
        annotations.update({REVISION: str(revision), DESIRED_REPLICAS: str(self.replicas),
                            MAX_REPLICAS: str(self.replicas + self.surge)})
        uid = self.new_uid()
        spec: dict[str, Any] = {"replicas": 0, "selector": selector, "template": template}
        if self.spec.get("minReadySeconds"):
            spec["minReadySeconds"] = self.spec["minReadySeconds"]
        doc = {
            "apiVersion": API_VERSION, "kind": REPLICA_SET,
            "metadata": {"name": name, "namespace": self.meta.get("namespace", "default"),
                         "labels": dict(tmeta["labels"]), "annotations": dict(sorted(annotations.items())),
                         "ownerReferences": [self._owner_ref()], "uid": uid, "generation": 1,
                         "creationTimestamp": self.stamp},
            "spec": spec,
        }
        view = RSView(doc, None)
        if self.spec.get("strategy", {}).get("type") == RECREATE:
            spec["replicas"] = self.replicas
        else:
            spec["replicas"] = self._new_rs_new_replicas([*olds], view)
        self.views.append(view)
        self.rs_names.add(name)
        return view

    def _owner_ref(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": DEPLOYMENT, "name": self.meta["name"], "uid": self.meta["uid"],
                "controller": True, "blockOwnerDeletion": True}

    def _update(self, view: RSView, annotations: Mapping[str, str], spec: Mapping[str, Any]) -> None:
        meta = dict(view.doc["metadata"])
        meta["annotations"] = dict(sorted(annotations.items()))
        view.doc = {**view.doc, "metadata": meta, "spec": dict(spec)}

    def scale(self, view: RSView, replicas: int) -> bool:
        """Set a set's replicas and its desired/max-replicas annotations; True if its size changed."""
        annotations = dict(annotations_of(view.doc))
        annotations[DESIRED_REPLICAS] = str(self.replicas)
        annotations[MAX_REPLICAS] = str(self.replicas + self.surge)
        changed = view.replicas != replicas
        self._update(view, annotations, {**view.doc["spec"], "replicas": max(0, replicas)})
        return changed

    # ------------------------------------------------------------ strategies
    def run(self) -> None:
        self._check_paused_conditions()
        if self.spec.get("paused") or self._scaling_event():
            self._sync()
        elif (self.spec.get("strategy") or {}).get("type") == RECREATE:
            self._recreate()
        else:
            self._rolling()

    def _scaling_event(self) -> bool:
        new, olds = self.new_and_old(create=False)
        for view in [*olds, *([new] if new else [])]:
            if view.replicas <= 0:
                continue
            desired = annotations_of(view.doc).get(DESIRED_REPLICAS, "")
            if desired.isdigit() and int(desired) != self.replicas:
                return True
        return False

    def _sync(self) -> None:
        new, olds = self.new_and_old(create=False)
        self._scale(new, olds)
        if self.spec.get("paused"):
            self._cleanup(olds)
        self._finish(new, progress=False)

    def _scale(self, new: RSView | None, olds: list[RSView]) -> None:
        active = [v for v in [new, *olds] if v is not None and v.replicas > 0]
        if new is None and not olds:
            return
        if len(active) <= 1:
            target = active[0] if active else (new or sorted(olds, key=lambda v: v.created_at)[-1])
            # Kubernetes returns here when the size is already right, leaving a stale
            # desired-replicas annotation that reads as a scaling event on every pass (the
            # rollout then never proceeds); the annotations are brought up to date as well.
            self.scale(target, self.replicas)
            return
        if new is not None and self._saturated(new):
            for view in olds:
                if view.replicas > 0:
                    self.scale(view, 0)
            return
        if (self.spec.get("strategy") or {}).get("type") == RECREATE:
            return
        total = sum(v.replicas for v in active)
        allowed = self.replicas + self.surge if self.replicas > 0 else 0
        to_add = allowed - total
        if to_add > 0:  # larger first; among equals newer first
            active.sort(key=lambda v: (-v.replicas, _desc(v.created_at)))
        elif to_add < 0:  # larger first; among equals older first
            active.sort(key=lambda v: (-v.replicas, v.created_at))
        added = 0
        sizes = []
        for view in active:
            if to_add != 0:
                proportion = self._proportion(view, to_add, added)
                sizes.append(view.replicas + proportion)
                added += proportion
            else:
                sizes.append(view.replicas)
        for i, view in enumerate(active):
            size = sizes[i]
            if i == 0 and to_add != 0:
                size = max(0, size + to_add - added)
            self.scale(view, size)

    def _proportion(self, view: RSView, to_add: int, added: int) -> int:
        if view.replicas == 0 or to_add == 0 or to_add == added:
            return 0
        if self.replicas == 0:
            fraction = -view.replicas
        else:
            before = annotations_of(view.doc).get(MAX_REPLICAS, "")
            before_n = int(before) if before.isdigit() else 0
            if before_n == 0:
                before_n = int(self.base.get("replicas") or 0) or 1
            fraction = _round_half_away(view.replicas * (self.replicas + self.surge) / before_n) - view.replicas
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    def _saturated(self, new: RSView) -> bool:
        desired = annotations_of(new.doc).get(DESIRED_REPLICAS, "")
        return (new.replicas == self.replicas and desired.isdigit() and int(desired) == self.replicas
                and new.available == self.replicas)

    def _rolling(self) -> None:
        new, olds = self.new_and_old(create=True)
        if new is None:
            self._finish(None, progress=False)
            return
        every = [*olds, new]
        if self._reconcile_new(every, new) or self._reconcile_old(every, olds, new):
            self._finish(new, progress=True)
            return
        if _complete(self.d, self.base):
            self._cleanup(olds)
        self._finish(new, progress=True)

    def _new_rs_new_replicas(self, every: list[RSView], new: RSView) -> int:
        current = sum(v.replicas for v in every if v is not new) + new.replicas
        most = self.replicas + self.surge
        if current >= most:
            return new.replicas
        return new.replicas + min(most - current, self.replicas - new.replicas)

    def _reconcile_new(self, every: list[RSView], new: RSView) -> bool:
        if new.replicas == self.replicas:
            return False
        if new.replicas > self.replicas:
            return self.scale(new, self.replicas)
        return self.scale(new, self._new_rs_new_replicas(every, new))

    def _reconcile_old(self, every: list[RSView], olds: list[RSView], new: RSView) -> bool:
        if sum(v.replicas for v in olds) == 0:
            return False
        all_pods = sum(v.replicas for v in every)
        min_available = self.replicas - max_unavailable(self.d)
        new_unavailable = new.replicas - new.available
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        olds = sorted(olds, key=lambda v: v.created_at)
        cleaned = 0
        for view in olds:  # cleanupUnhealthyReplicas
            if cleaned >= max_scaled_down:
                break
            if view.replicas == 0 or view.replicas <= view.available:
                continue
            count = min(max_scaled_down - cleaned, view.replicas - view.available)
            self.scale(view, view.replicas - count)
            cleaned += count
        available = sum(min(v.available, v.replicas) for v in every)
        scaled = 0
        if available > min_available:  # scaleDownOldReplicaSetsForRollingUpdate
            total = available - min_available
            for view in olds:
                if scaled >= total:
                    break
                if view.replicas == 0:
                    continue
                count = min(view.replicas, total - scaled)
                self.scale(view, view.replicas - count)
                scaled += count
        return cleaned + scaled > 0

    def _recreate(self) -> None:
        new, olds = self.new_and_old(create=False)
        scaled = False
        for view in olds:
            if view.replicas > 0:
                scaled = self.scale(view, 0) or scaled
        if scaled or any(v.live > 0 for v in olds):
            self._finish(new, progress=True)
            return
        if new is None:
            new, olds = self.new_and_old(create=True)
            if new is None:
                self._finish(None, progress=False)
                return
        if new.replicas != self.replicas:
            self.scale(new, self.replicas)
        if _complete(self.d, self.base):
            self._cleanup(olds)
        self._finish(new, progress=True)

    def _cleanup(self, olds: list[RSView]) -> None:
        limit = int(self.spec.get("revisionHistoryLimit", 10))
        excess = len(olds) - limit
        if excess <= 0:
            return
        doomed = []
        for view in sorted(olds, key=lambda v: (_revision(v.doc), v.created_at))[:excess]:
            stored = view.stored or {}
            status = stored.get("status") or {}
            generation = int(meta_of(stored).get("generation") or 0)
            if (view.replicas != 0 or view.live != 0 or int(status.get("replicas") or 0) != 0
                    or generation > int(status.get("observedGeneration") or 0)):
                continue
            doomed.append(view)
        if doomed:
            rows = [(REPLICA_SET, meta_of(v.doc).get("namespace", "default"), meta_of(v.doc)["name"], v.uid)
                    for v in doomed]
            self.plan.commands.append(cmd.delete_objects(rows, self.now))
            self.plan.deleted.update(v.uid for v in doomed)
            self.views = [v for v in self.views if v.uid not in self.plan.deleted]

    # ------------------------------------------------------------ status
    def _condition(self, kind: str, status: Mapping[str, Any] | None = None) -> Mapping[str, Any] | None:
        for cond in (status if status is not None else self.base).get("conditions") or ():
            if cond.get("type") == kind:
                return cond
        return None

    def _set_condition(self, kind: str, value: str, reason: str, message: str,
                       status: dict[str, Any] | None = None) -> None:
        """Kubernetes' SetDeploymentCondition: same status and reason is no change; same
        status keeps lastTransitionTime."""
        target = status if status is not None else self.base
        current = self._condition(kind, target)
        if current is not None and current.get("status") == value and current.get("reason") == reason:
            return
        cond = {"type": kind, "status": value, "lastUpdateTime": self.stamp, "lastTransitionTime": self.stamp,
                "reason": reason, "message": message}
        if current is not None and current.get("status") == value:
            cond["lastTransitionTime"] = current.get("lastTransitionTime", self.stamp)
        target["conditions"] = [c for c in target.get("conditions") or () if c.get("type") != kind] + [cond]

    def _check_paused_conditions(self) -> None:
        cond = self._condition(PROGRESSING)
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return
        paused_now = cond is not None and cond.get("reason") == PAUSED
        if self.spec.get("paused") and not paused_now:
            self._set_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused")
        elif not self.spec.get("paused") and paused_now:
            self._set_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed")

    def _calculate(self, new: RSView | None) -> dict[str, Any]:
        views = self.views
        available = sum(min(v.available, v.replicas) if v.stored is not None else 0 for v in views)
        total = sum(v.replicas for v in views)
        counts = {
            "observedGeneration": int(self.meta.get("generation") or 0),
            "replicas": sum(v.live for v in views),
            "updatedReplicas": new.live if new is not None else 0,
            "readyReplicas": sum(v.ready for v in views),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
        }
        status: dict[str, Any] = {k: v for k, v in counts.items() if v or k == "observedGeneration"}
        status["conditions"] = [dict(c) for c in self.base.get("conditions") or ()]
        if self.base.get("collisionCount"):
            status["collisionCount"] = self.base["collisionCount"]
        if available >= self.replicas - max_unavailable(self.d):
            self._set_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.", status)
        else:
            self._set_condition(AVAILABLE, "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability.",
                                status)
        return status

    def _finish(self, new: RSView | None, *, progress: bool) -> None:
        status = self._calculate(new)
        if progress:
            self._progress(status, new)
        status["conditions"] = sorted(status["conditions"], key=lambda c: 0 if c.get("type") == AVAILABLE else 1)
        if not status["conditions"]:
            del status["conditions"]
        self.final_status = status

    def _progress(self, status: dict[str, Any], new: RSView | None) -> None:
        current = self._condition(PROGRESSING)
        complete_already = (status.get("replicas", 0) == status.get("updatedReplicas", 0) and current is not None
                            and current.get("reason") == NEW_RS_AVAILABLE)
        if complete_already:
            return
        name = meta_of(new.doc)["name"] if new is not None else ""
        if _complete(self.d, status):
            self._set_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                f'ReplicaSet "{name}" has successfully progressed.', status)
        elif _progressing(self.base, status):
            cond = {"type": PROGRESSING, "status": "True", "lastUpdateTime": self.stamp,
                    "lastTransitionTime": self.stamp, "reason": RS_UPDATED,
                    "message": f'ReplicaSet "{name}" is progressing.'}
            if current is not None and current.get("status") == "True":
                cond["lastTransitionTime"] = current.get("lastTransitionTime", self.stamp)
            status["conditions"] = [c for c in status["conditions"] if c.get("type") != PROGRESSING] + [cond]
        elif self._timed_out(status):
            self._set_condition(PROGRESSING, "False", TIMED_OUT, f'ReplicaSet "{name}" has timed out progressing.',
                                status)

    def _timed_out(self, status: Mapping[str, Any]) -> bool:
        cond = self._condition(PROGRESSING, status)
        if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
            return False
        if cond.get("reason") == TIMED_OUT:
            return True
        since = parse_time(cond.get("lastUpdateTime"))
        deadline = int(self.spec.get("progressDeadlineSeconds") or 600)
        return since is not None and since + deadline < self.now

    # ------------------------------------------------------------ output
    def commands(self) -> None:
        if not self.blocked:
            for view in self.views:
                if view.stored is None:
                    self.plan.commands.insert(0, cmd.apply_objects([_person_part(view.doc)], [view.uid], self.now,
                                                                   create_only=True))
                    self.plan.replica_sets[view.uid] = view.doc
                elif view.doc != view.stored:
                    self.plan.commands.append(cmd.apply_objects([_person_part(view.doc, with_uid=True)], [view.uid],
                                                                self.now))
                    doc = dict(view.doc)
                    if (view.doc.get("spec") or {}) != (view.stored.get("spec") or {}):
                        generation = int(meta_of(view.stored).get("generation") or 1) + 1
                        doc["metadata"] = {**doc["metadata"], "generation": generation}
                    self.plan.replica_sets[view.uid] = doc
        status = self.final_status if not self.blocked else {**(self.d.get("status") or {}),
                                                               "collisionCount": self.base["collisionCount"]}
        if status != (self.d.get("status") or {}):
            self.plan.commands.append(cmd.set_workload_status(DEPLOYMENT, self.meta.get("namespace", "default"),
                                                              self.meta["name"], self.meta["uid"], status, self.now))


def _person_part(doc: Mapping[str, Any], *, with_uid: bool = False) -> dict[str, Any]:
    meta = meta_of(doc)
    out_meta = {k: meta[k] for k in ("name", "namespace", "labels", "annotations", "ownerReferences") if meta.get(k)}
    if with_uid:
        out_meta["uid"] = meta["uid"]
    return {"apiVersion": API_VERSION, "kind": REPLICA_SET, "metadata": out_meta, "spec": doc["spec"]}


def _complete(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    replicas = replicas_of(d)
    return (status.get("updatedReplicas", 0) == replicas and status.get("replicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int(meta_of(d).get("generation") or 0))


def _progressing(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    old_olds = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_olds = new.get("replicas", 0) - new.get("updatedReplicas", 0)
    return (new.get("updatedReplicas", 0) > old.get("updatedReplicas", 0) or new_olds < old_olds
            or new.get("readyReplicas", 0) > old.get("readyReplicas", 0)
            or new.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def _round_half_away(x: float) -> int:
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def _desc(key: tuple[str, str]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(-ord(ch) for ch in part) + (1,) for part in key)


def plan_deployment(d: Mapping[str, Any], namespace_rs: Ownership, namespace_pods: Ownership, rs_names: set[str], *,
                    now: float, new_uid: Callable[[], str]) -> DeploymentPlan:
    """One Deployment's pass. `namespace_rs` and `namespace_pods` index its namespace's
    ReplicaSets and Pods; `rs_names` (ReplicaSet names of the namespace) gains the name of
    a set it creates."""
    claims = claim_rows(d, {"apiVersion": API_VERSION, "kind": DEPLOYMENT, "name": meta_of(d)["name"],
                            "uid": meta_of(d)["uid"], "controller": True, "blockOwnerDeletion": True},
                        REPLICA_SET, namespace_rs)
    if claims:
        return DeploymentPlan(commands=[cmd.set_owner_references(claims, now)])
    views = [rs_view(rs, namespace_pods, now) for rs in namespace_rs.owned_by(d)]
    run = _Pass(d, views, rs_names, now, new_uid)
    run.run()
    run.commands()
    return run.plan
