"""The workload kinds: apps/v1 Deployment and ReplicaSet, as Kubernetes writes them.

Owns: validating the person-written part of a Deployment or a ReplicaSet (metadata, the
spec with its Pod template) into the canonical stored form, Kubernetes' defaults filled
in; the rollout arithmetic both controllers and the simulator share (maxSurge and
maxUnavailable resolved against a replica count); and the small accessors of those
documents.

Rules it keeps:
- Field names, defaults and refusals are Kubernetes' (apps/v1 validation): `replicas` 1,
  `revisionHistoryLimit` 10, `progressDeadlineSeconds` 600 (and greater than
  `minReadySeconds`), strategy RollingUpdate with maxSurge and maxUnavailable 25 %, both
  0 refused, Recreate with no rollingUpdate; the selector is required, not empty, and
  must select the template's labels; the template's restartPolicy must be Always.
  minReadySeconds 0 and paused false are left out of the stored form, as Kubernetes
  omits them.
- The template's Pod spec is read by the Pod parser, so its problems carry full paths
  (`spec.template.spec.containers[0].image`); an unknown field anywhere is refused.
- `status` is the controllers' and never part of what a person writes.
- Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agent.state.pod import ManifestError, ObjectMeta, Pod, pod_to_dict
from agent.state.pod.parser import ManifestReader
from agent.state.pod.syntax import label_value_problem, qualified_name_problem, quote, type_name
from agent.state.selectors import OPERATORS, LabelSelector, SelectorError, selector_from_object

__all__ = [
    "API_VERSION",
    "DEPLOYMENT",
    "REPLICA_SET",
    "admit_deployment",
    "admit_replica_set",
    "max_surge",
    "max_unavailable",
    "resolve_fenceposts",
    "scaled_value",
    "selector_of",
]

API_VERSION = "apps/v1"
DEPLOYMENT = "Deployment"
REPLICA_SET = "ReplicaSet"
ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"
DEFAULT_SURGE = "25%"
DEFAULT_UNAVAILABLE = "25%"
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_S = 600
_PERCENT = re.compile(r"(\d+)%")


class _WorkloadReader(ManifestReader):
    """The Pod parser's field-path reader, taught the workload kinds' fields."""

    def workload(self, doc: Any, kind: str) -> dict[str, Any]:
        if not isinstance(doc, Mapping):
            self.fail("", f"must be an object, got {type_name(doc)}")
            return {}
        top, meta = self.document_top(doc, kind, API_VERSION, ("spec",))
        spec: dict[str, Any] = {}
        if top.get("spec") is None:
            self.fail("spec", "required field is missing")
        elif kind == DEPLOYMENT:
            spec = self.deployment_spec(top["spec"], "spec")
        else:
            spec = self.replica_set_spec(top["spec"], "spec")
        return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": spec}

    def deployment_spec(self, raw: Any, path: str) -> dict[str, Any]:
        m = self.obj(raw, path, ("replicas", "selector", "template", "strategy", "minReadySeconds",
                                 "revisionHistoryLimit", "progressDeadlineSeconds", "paused"))
        out = self.replicated(m, path)
        out["strategy"] = self.strategy(m, path)
        min_ready = out.pop("minReadySeconds", 0)
        if min_ready:
            out["minReadySeconds"] = min_ready
        out["revisionHistoryLimit"] = self.integer(m, "revisionHistoryLimit", path,
                                                   default=DEFAULT_REVISION_HISTORY_LIMIT, minimum=0)
        deadline = self.integer(m, "progressDeadlineSeconds", path, default=DEFAULT_PROGRESS_DEADLINE_S, minimum=1)
        if isinstance(deadline, int) and isinstance(min_ready, int) and deadline <= min_ready:
            self.fail(f"{path}.progressDeadlineSeconds", f"{deadline} must be greater than minReadySeconds")
        out["progressDeadlineSeconds"] = deadline
        if self.boolean(m, "paused", path, default=False):
            out["paused"] = True
        return out

    def replica_set_spec(self, raw: Any, path: str) -> dict[str, Any]:
        m = self.obj(raw, path, ("replicas", "selector", "template", "minReadySeconds"))
        out = self.replicated(m, path)
        min_ready = out.pop("minReadySeconds", 0)
        if min_ready:
            out["minReadySeconds"] = min_ready
        return out

    def replicated(self, m: Mapping[str, Any], path: str) -> dict[str, Any]:
        """replicas, selector, template and minReadySeconds: what both kinds share."""
        replicas = self.integer(m, "replicas", path, default=1, minimum=0)
        min_ready = self.integer(m, "minReadySeconds", path, default=0, minimum=0)
        selector_doc, selector = self.selector(m, path)
        template = self.template(m, path)
        labels = (template.get("metadata") or {}).get("labels") or {}
        if selector is not None and not selector.empty and not selector.matches(labels):
            self.fail(f"{path}.template.metadata.labels", "`selector` does not match template `labels`")
        return {"replicas": replicas, "selector": selector_doc, "template": template, "minReadySeconds": min_ready}

    def selector(self, m: Mapping[str, Any], path: str) -> tuple[dict[str, Any], LabelSelector | None]:
        where = f"{path}.selector"
        raw = m.get("selector")
        if raw is None:
            self.fail(where, "required field is missing")
            return {}, None
        s = self.obj(raw, where, ("matchLabels", "matchExpressions"))
        match_labels = self.string_map(s, "matchLabels", where, key_check=qualified_name_problem,
                                       value_check=label_value_problem)
        expressions = []
        for item, item_path in self.items(s, "matchExpressions", where):
            e = self.obj(item, item_path, ("key", "operator", "values"))
            key = self.string(e, "key", item_path, required=True, default="", check=qualified_name_problem)
            operator = self.string(e, "operator", item_path, required=True, default="", choices=OPERATORS)
            values = list(self.strings(e, "values", item_path))
            for i, value in enumerate(values):
                problem = label_value_problem(value) if isinstance(value, str) else None
                if problem:
                    self.fail(f"{item_path}.values[{i}]", problem)
            if operator in ("In", "NotIn") and not values:
                self.fail(f"{item_path}.values", f"must be specified when `operator` is {quote(operator)}")
            if operator in ("Exists", "DoesNotExist") and values:
                self.fail(f"{item_path}.values", f"may not be specified when `operator` is {quote(operator)}")
            expression: dict[str, Any] = {"key": key, "operator": operator}
            if values:
                expression["values"] = values
            expressions.append(expression)
        doc: dict[str, Any] = {}
        if match_labels:
            doc["matchLabels"] = dict(sorted(match_labels.items()))
        if expressions:
            doc["matchExpressions"] = expressions
        if not doc:
            self.fail(where, "empty selector is invalid for deployment")
            return doc, None
        try:
            return doc, selector_from_object(doc, where)
        except SelectorError as exc:
            self.fail(where, str(exc))
            return doc, None

    def template(self, m: Mapping[str, Any], path: str) -> dict[str, Any]:
        where = f"{path}.template"
        raw = m.get("template")
        if raw is None:
            self.fail(where, "required field is missing")
            return {}
        t = self.obj(raw, where, ("metadata", "spec"))
        meta_path = f"{where}.metadata"
        tm = self.obj(t.get("metadata"), meta_path, ("labels", "annotations", "creationTimestamp"))
        meta: dict[str, Any] = {}
        labels = self.string_map(tm, "labels", meta_path, key_check=qualified_name_problem,
                                 value_check=label_value_problem)
        annotations = self.string_map(tm, "annotations", meta_path, key_check=qualified_name_problem)
        if labels:
            meta["labels"] = dict(sorted(labels.items()))
        if annotations:
            meta["annotations"] = dict(sorted(annotations.items()))
        spec_path = f"{where}.spec"
        if t.get("spec") is None:
            self.fail(spec_path, "required field is missing")
            return {"metadata": meta, "spec": {}}
        pod_spec = self.pod_spec(t["spec"], spec_path)
        if pod_spec.restart_policy != "Always":
            self.fail(f"{spec_path}.restartPolicy",
                      f'Unsupported value: {quote(pod_spec.restart_policy)}: supported values: "Always"')
        spec = pod_to_dict(Pod(metadata=ObjectMeta(name=""), spec=pod_spec))["spec"]
        return {"metadata": meta, "spec": spec}

    def strategy(self, m: Mapping[str, Any], path: str) -> dict[str, Any]:
        where = f"{path}.strategy"
        s = self.obj(m.get("strategy"), where, ("type", "rollingUpdate"))
        kind = self.string(s, "type", where, default=ROLLING_UPDATE, choices=(ROLLING_UPDATE, RECREATE))
        if kind == RECREATE:
            if s.get("rollingUpdate") is not None:
                self.fail(f"{where}.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
            return {"type": RECREATE}
        ru_path = f"{where}.rollingUpdate"
        ru = self.obj(s.get("rollingUpdate"), ru_path, ("maxSurge", "maxUnavailable"))
        surge = self.int_or_percent(ru, "maxSurge", ru_path, DEFAULT_SURGE)
        unavailable = self.int_or_percent(ru, "maxUnavailable", ru_path, DEFAULT_UNAVAILABLE)
        if isinstance(unavailable, str) and _percent(unavailable) > 100:
            self.fail(f"{ru_path}.maxUnavailable", f"{quote(unavailable)} must not be greater than 100%")
        if _raw_amount(surge) == 0 and _raw_amount(unavailable) == 0:
            self.fail(f"{ru_path}.maxUnavailable", "may not be 0 when `maxSurge` is 0")
        return {"type": ROLLING_UPDATE, "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}

    def int_or_percent(self, m: Mapping[str, Any], key: str, path: str, default: str) -> int | str:
        value = m.get(key)
        where = f"{path}.{key}"
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                self.fail(where, f"{value} must be greater than or equal to 0")
            return value
        if isinstance(value, str) and _PERCENT.fullmatch(value):
            return value
        self.fail(where, f"{quote(value)} must be an integer or percentage (e.g '5%')")
        return default


def _percent(text: str) -> int:
    match = _PERCENT.fullmatch(text)
    return int(match.group(1)) if match else 0


def _raw_amount(value: int | str) -> int:
    return value if isinstance(value, int) else _percent(value)


def _admit(doc: Mapping[str, Any], kind: str) -> dict[str, Any]:
    reader = _WorkloadReader()
    out = reader.workload(doc, kind)
    if reader.errors:
        raise ManifestError(reader.errors)
    return out


def admit_deployment(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A Deployment's person-written part in canonical form. Raises ManifestError."""
    return _admit(doc, DEPLOYMENT)


def admit_replica_set(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A ReplicaSet's person-written part in canonical form. Raises ManifestError."""
    return _admit(doc, REPLICA_SET)


# --------------------------------------------------------------------------- rollout arithmetic


def scaled_value(value: int | str, total: int, *, round_up: bool) -> int:
    """An int-or-percent against `total`, as Kubernetes' GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    amount = _percent(value) * total
    return -(-amount // 100) if round_up else amount // 100


def resolve_fenceposts(surge: int | str, unavailable: int | str, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for `desired` replicas: surge rounds up, unavailability
    down; if both come to 0, one Pod may be unavailable (or the rollout could not move)."""
    s = scaled_value(surge, desired, round_up=True)
    u = scaled_value(unavailable, desired, round_up=False)
    if s == 0 and u == 0:
        u = 1
    return s, u


def _rolling(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    strategy = (doc.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", ROLLING_UPDATE) != ROLLING_UPDATE:
        return None
    return strategy.get("rollingUpdate") or {"maxSurge": DEFAULT_SURGE, "maxUnavailable": DEFAULT_UNAVAILABLE}


def replicas_of(doc: Mapping[str, Any]) -> int:
    value = (doc.get("spec") or {}).get("replicas", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def max_surge(doc: Mapping[str, Any]) -> int:
    """A Deployment's maxSurge in Pods (0 for Recreate)."""
    ru = _rolling(doc)
    if ru is None:
        return 0
    return resolve_fenceposts(ru.get("maxSurge", DEFAULT_SURGE), ru.get("maxUnavailable", DEFAULT_UNAVAILABLE),
                              replicas_of(doc))[0]


def max_unavailable(doc: Mapping[str, Any]) -> int:
    """A Deployment's maxUnavailable in Pods (0 for Recreate or no replicas), at most its replicas."""
    ru = _rolling(doc)
    replicas = replicas_of(doc)
    if ru is None or replicas == 0:
        return 0
    u = resolve_fenceposts(ru.get("maxSurge", DEFAULT_SURGE), ru.get("maxUnavailable", DEFAULT_UNAVAILABLE),
                           replicas)[1]
    return min(u, replicas)


def selector_of(doc: Mapping[str, Any]) -> LabelSelector | None:
    """The spec.selector of a stored workload, or None if it has none (a damaged document
    selects nothing rather than everything)."""
    raw = (doc.get("spec") or {}).get("selector")
    if not raw:
        return None
    try:
        return selector_from_object(raw)
    except SelectorError:
        return None
