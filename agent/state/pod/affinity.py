"""spec.affinity of a Pod: node affinity and pod (anti-)affinity, read, held and written.

Owns: the Affinity dataclasses (a camelCase-faithful mirror of Kubernetes' core/v1
Affinity), `read_affinity` (a decoded spec.affinity -> Affinity, errors recorded on the
Pod parser with their field paths) and `affinity_to_dict` (the way back).

Rules:
- nodeAffinity: requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms (at
  least one term; each term's matchExpressions use In, NotIn, Exists, DoesNotExist, Gt,
  Lt; matchFields only on metadata.name with In or NotIn, as the API server allows) and
  preferredDuringSchedulingIgnoredDuringExecution (weight 1..100, a preference term).
- podAffinity, podAntiAffinity: required terms (labelSelector, namespaces, topologyKey)
  and weighted preferred ones. The scheduler places by node, so topologyKey must be
  kubernetes.io/hostname (each node its own domain): another key is refused here, not
  silently read as the hostname.
- Values are checked as the API server checks them: In/NotIn need values,
  Exists/DoesNotExist take none, Gt/Lt take exactly one integer.
- Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.state.pod.model import EMPTY_MAP, _coerce
from agent.state.pod.syntax import dns_label_problem, label_value_problem, qualified_name_problem, quote

HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"
TOPOLOGY_KEYS = (HOSTNAME_TOPOLOGY,)
NODE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
FIELD_OPERATORS = ("In", "NotIn")
LABEL_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
NODE_NAME_FIELD = "metadata.name"

_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


@dataclass(frozen=True, slots=True)
class SelectorRequirement:
    """One matchExpressions (or matchFields) entry: key, operator, values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, tuples=("values",))


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    match_expressions: tuple[SelectorRequirement, ...] = ()
    match_fields: tuple[SelectorRequirement, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, tuples=("match_expressions", "match_fields"))


@dataclass(frozen=True, slots=True)
class PreferredSchedulingTerm:
    weight: int
    preference: NodeSelectorTerm


@dataclass(frozen=True, slots=True)
class NodeAffinity:
    """`required` None: no required terms; else the nodeSelectorTerms, ORed."""

    required: tuple[NodeSelectorTerm, ...] | None = None
    preferred: tuple[PreferredSchedulingTerm, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, tuples=("required", "preferred"))  # required None stays None


@dataclass(frozen=True, slots=True)
class LabelSelector:
    match_labels: Mapping[str, str] = EMPTY_MAP
    match_expressions: tuple[SelectorRequirement, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, maps=("match_labels",), tuples=("match_expressions",))


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """`label_selector` None matches no Pod; `namespaces` empty means the Pod's own."""

    topology_key: str
    label_selector: LabelSelector | None = None
    namespaces: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, tuples=("namespaces",))


@dataclass(frozen=True, slots=True)
class WeightedPodAffinityTerm:
    weight: int
    term: PodAffinityTerm


@dataclass(frozen=True, slots=True)
class PodAffinity:
    """podAffinity or podAntiAffinity: required terms (ANDed) and preferred weighted ones."""

    required: tuple[PodAffinityTerm, ...] = ()
    preferred: tuple[WeightedPodAffinityTerm, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, tuples=("required", "preferred"))


@dataclass(frozen=True, slots=True)
class Affinity:
    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAffinity | None = None


# ---------------------------------------------------------------- reading


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def read_affinity(p: Any, raw: Any, path: str) -> Affinity | None:
    """spec.affinity through the Pod parser `p` (its generic readers record each error)."""
    if raw is None:
        return None
    m = p.obj(raw, path, ("nodeAffinity", "podAffinity", "podAntiAffinity"), kind="Affinity")
    return Affinity(
        node_affinity=_node_affinity(p, m.get("nodeAffinity"), _child(path, "nodeAffinity")),
        pod_affinity=_pod_affinity(p, m.get("podAffinity"), _child(path, "podAffinity")),
        pod_anti_affinity=_pod_affinity(p, m.get("podAntiAffinity"), _child(path, "podAntiAffinity")),
    )


def _node_affinity(p: Any, raw: Any, path: str) -> NodeAffinity | None:
    if raw is None:
        return None
    m = p.obj(raw, path, (_REQUIRED, _PREFERRED), kind="NodeAffinity")
    required = None
    if m.get(_REQUIRED) is not None:
        req_path = _child(path, _REQUIRED)
        r = p.obj(m[_REQUIRED], req_path, ("nodeSelectorTerms",), kind="NodeSelector")
        required = tuple(_node_term(p, item, item_path)
                         for item, item_path in p.items(r, "nodeSelectorTerms", req_path, required=True))
    preferred = []
    for item, item_path in p.items(m, _PREFERRED, path):
        w = p.obj(item, item_path, ("weight", "preference"), kind="PreferredSchedulingTerm")
        weight = p.integer(w, "weight", item_path, default=1, required=True, minimum=1, maximum=100)
        p.get(w, "preference", item_path, required=True)
        preference = _node_term(p, w.get("preference"), _child(item_path, "preference"))
        preferred.append(PreferredSchedulingTerm(weight=weight, preference=preference))
    return NodeAffinity(required=required, preferred=tuple(preferred))


def _node_term(p: Any, raw: Any, path: str) -> NodeSelectorTerm:
    m = p.obj(raw, path, ("matchExpressions", "matchFields"), kind="NodeSelectorTerm")
    exprs = tuple(_requirement(p, item, item_path, NODE_OPERATORS)
                  for item, item_path in p.items(m, "matchExpressions", path))
    fields = []
    for item, item_path in p.items(m, "matchFields", path):
        req = _requirement(p, item, item_path, FIELD_OPERATORS, field=True)
        fields.append(req)
    return NodeSelectorTerm(match_expressions=exprs, match_fields=tuple(fields))


def _requirement(p: Any, raw: Any, path: str, operators: tuple[str, ...], *, field: bool = False,
                 ) -> SelectorRequirement:
    m = p.obj(raw, path, ("key", "operator", "values"), kind="NodeSelectorRequirement")
    if field:
        key = p.string(m, "key", path, required=True, default="", choices=(NODE_NAME_FIELD,))
    else:
        key = p.string(m, "key", path, required=True, default="", check=qualified_name_problem)
    operator = p.string(m, "operator", path, required=True, default="", choices=operators)
    values = p.strings(m, "values", path)
    values_path = _child(path, "values")
    if operator in ("In", "NotIn") and not values:
        p.fail(values_path, f"must be specified when `operator` is {quote(operator)}")
    elif operator in ("Exists", "DoesNotExist") and values:
        p.fail(values_path, f"may not be specified when `operator` is {quote(operator)}")
    elif operator in ("Gt", "Lt"):
        if len(values) != 1:
            p.fail(values_path, f"must be specified single value when `operator` is {quote(operator)}")
        elif not _is_int64(values[0]):
            p.fail(f"{values_path}[0]", f"{quote(values[0])} must be an integer")
    if field and operator in ("In", "NotIn") and len(values) > 1:
        p.fail(values_path, f"must have one element for matchFields key {quote(NODE_NAME_FIELD)}")
    if not field and operator in ("In", "NotIn"):
        for i, v in enumerate(values):
            problem = label_value_problem(v)
            if problem:
                p.fail(f"{values_path}[{i}]", problem)
    return SelectorRequirement(key=key, operator=operator, values=values)


def _is_int64(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    return body.isascii() and body.isdigit() and -(2**63) <= int(text) <= 2**63 - 1


def _pod_affinity(p: Any, raw: Any, path: str) -> PodAffinity | None:
    if raw is None:
        return None
    m = p.obj(raw, path, (_REQUIRED, _PREFERRED), kind="PodAffinity")
    required = tuple(_pod_term(p, item, item_path) for item, item_path in p.items(m, _REQUIRED, path))
    preferred = []
    for item, item_path in p.items(m, _PREFERRED, path):
        w = p.obj(item, item_path, ("weight", "podAffinityTerm"), kind="WeightedPodAffinityTerm")
        weight = p.integer(w, "weight", item_path, default=1, required=True, minimum=1, maximum=100)
        p.get(w, "podAffinityTerm", item_path, required=True)
        term = _pod_term(p, w.get("podAffinityTerm"), _child(item_path, "podAffinityTerm"))
        preferred.append(WeightedPodAffinityTerm(weight=weight, term=term))
    return PodAffinity(required=required, preferred=tuple(preferred))


def _pod_term(p: Any, raw: Any, path: str) -> PodAffinityTerm:
    m = p.obj(raw, path, ("labelSelector", "namespaces", "topologyKey"), kind="PodAffinityTerm")
    topology = p.string(m, "topologyKey", path, required=True, default=HOSTNAME_TOPOLOGY)
    if topology not in TOPOLOGY_KEYS and m.get("topologyKey") is not None:
        p.fail(_child(path, "topologyKey"),
               f"{quote(topology)} is not supported by agentd: the scheduler places by node, "
               f"use {quote(HOSTNAME_TOPOLOGY)}")
        topology = HOSTNAME_TOPOLOGY
    namespaces = tuple(p.string_value(v, vp, check=dns_label_problem) for v, vp in p.items(m, "namespaces", path))
    selector = None
    if m.get("labelSelector") is not None:
        sel_path = _child(path, "labelSelector")
        s = p.obj(m["labelSelector"], sel_path, ("matchLabels", "matchExpressions"), kind="LabelSelector")
        labels = p.string_map(s, "matchLabels", sel_path, key_check=qualified_name_problem,
                              value_check=label_value_problem)
        exprs = tuple(_requirement(p, item, item_path, LABEL_OPERATORS)
                      for item, item_path in p.items(s, "matchExpressions", sel_path))
        selector = LabelSelector(match_labels=labels, match_expressions=exprs)
    return PodAffinityTerm(topology_key=topology, label_selector=selector, namespaces=namespaces)


# ---------------------------------------------------------------- writing


def affinity_to_dict(a: Affinity) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if a.node_affinity is not None:
        n: dict[str, Any] = {}
        if a.node_affinity.required is not None:
            n[_REQUIRED] = {"nodeSelectorTerms": [_node_term_to_dict(t) for t in a.node_affinity.required]}
        if a.node_affinity.preferred:
            n[_PREFERRED] = [{"weight": w.weight, "preference": _node_term_to_dict(w.preference)}
                             for w in a.node_affinity.preferred]
        out["nodeAffinity"] = n
    for key, pa in (("podAffinity", a.pod_affinity), ("podAntiAffinity", a.pod_anti_affinity)):
        if pa is None:
            continue
        d: dict[str, Any] = {}
        if pa.required:
            d[_REQUIRED] = [_pod_term_to_dict(t) for t in pa.required]
        if pa.preferred:
            d[_PREFERRED] = [{"weight": w.weight, "podAffinityTerm": _pod_term_to_dict(w.term)} for w in pa.preferred]
        out[key] = d
    return out


def _requirement_to_dict(r: SelectorRequirement) -> dict[str, Any]:
    d: dict[str, Any] = {"key": r.key, "operator": r.operator}
    if r.values:
        d["values"] = list(r.values)
    return d


def _node_term_to_dict(t: NodeSelectorTerm) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if t.match_expressions:
        d["matchExpressions"] = [_requirement_to_dict(r) for r in t.match_expressions]
    if t.match_fields:
        d["matchFields"] = [_requirement_to_dict(r) for r in t.match_fields]
    return d


def _pod_term_to_dict(t: PodAffinityTerm) -> dict[str, Any]:
    d: dict[str, Any] = {"topologyKey": t.topology_key}
    if t.label_selector is not None:
        s: dict[str, Any] = {}
        if t.label_selector.match_labels:
            s["matchLabels"] = dict(t.label_selector.match_labels)
        if t.label_selector.match_expressions:
            s["matchExpressions"] = [_requirement_to_dict(r) for r in t.label_selector.match_expressions]
        d["labelSelector"] = s
    if t.namespaces:
        d["namespaces"] = list(t.namespaces)
    return d
