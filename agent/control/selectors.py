"""Kubernetes' matching rules for placement: taints and tolerations, node selector terms
(node affinity), label selectors (pod affinity).

Owns: the frozen dataclasses that carry these rules and the predicates that apply them,
with Kubernetes' semantics exactly:
- A toleration tolerates a taint when its effect is empty or equal, its key is empty
  (every key) or equal, and its operator is Exists, or Equal with an equal value
  (k8s.io/api core/v1 Toleration.ToleratesTaint).
- A node selector term ANDs its requirements; the terms of a required node affinity are
  ORed; an empty term matches nothing. In/NotIn/Exists/DoesNotExist read the label;
  Gt/Lt parse both the node's label value and the requirement's one value as a base-10
  int64 (Go's strconv.ParseInt: optional sign, ASCII digits, nothing else). A label value
  that does not parse makes the requirement false; a requirement value that does not
  parse makes its whole term match nothing (the API server lets it through, the
  scheduler skips the term: nodeaffinity.NewLazyErrorNodeSelector).
- A label selector ANDs matchLabels and matchExpressions; the empty selector matches
  every Pod. A pod affinity term without a selector matches no Pod (None here).
Construction refuses what the API server refuses (unknown operators, wrong value counts,
a toleration with an empty key and operator Equal, weights outside 1..100): those are
broken inputs, never data to schedule with.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.state.pod import FrozenMap

NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"
TAINT_EFFECTS = (NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE)

EQUAL = "Equal"
EXISTS = "Exists"

IN, NOT_IN, DOES_NOT_EXIST, GT, LT = "In", "NotIn", "DoesNotExist", "Gt", "Lt"
NODE_SELECTOR_OPERATORS = (IN, NOT_IN, EXISTS, DOES_NOT_EXIST, GT, LT)
LABEL_SELECTOR_OPERATORS = (IN, NOT_IN, EXISTS, DOES_NOT_EXIST)

_INT64 = re.compile(r"[+-]?[0-9]+\Z")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EMPTY: FrozenMap = FrozenMap()


def parse_int64(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64): the integer, or None when it does not parse."""
    if not _INT64.match(text):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


# ---------------------------------------------------------------- taints and tolerations


@dataclass(frozen=True, slots=True)
class Taint:
    """A node's taint: Pods that do not tolerate it stay off (NoSchedule, NoExecute) or
    avoid the node when they can (PreferNoSchedule)."""

    key: str
    value: str = ""
    effect: str = NO_SCHEDULE

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("a taint needs a key")
        if self.effect not in TAINT_EFFECTS:
            raise ValueError(f"taint effect {self.effect!r} is not one of {TAINT_EFFECTS}")


@dataclass(frozen=True, slots=True)
class Toleration:
    """A Pod's toleration. Empty key = every key (operator must be Exists); empty effect =
    every effect; Exists ignores the value (which must be empty)."""

    key: str = ""
    operator: str = EQUAL
    value: str = ""
    effect: str = ""

    def __post_init__(self) -> None:
        if self.operator not in (EQUAL, EXISTS):
            raise ValueError(f"toleration operator {self.operator!r} is not Equal or Exists")
        if self.effect and self.effect not in TAINT_EFFECTS:
            raise ValueError(f"toleration effect {self.effect!r} is not one of {TAINT_EFFECTS}")
        if not self.key and self.operator != EXISTS:
            raise ValueError("a toleration with an empty key must use operator Exists")
        if self.operator == EXISTS and self.value:
            raise ValueError("a toleration with operator Exists must have no value")

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        return self.operator == EXISTS or self.value == taint.value


def tolerated(tolerations: tuple[Toleration, ...], taint: Taint) -> bool:
    """Whether any of the tolerations tolerates the taint."""
    return any(t.tolerates(taint) for t in tolerations)


# ---------------------------------------------------------------- node selectors


@dataclass(frozen=True, slots=True)
class NodeSelectorRequirement:
    """One matchExpressions entry of a node selector term."""

    key: str
    operator: str
    values: tuple[str, ...] = ()
    bound: int | None = field(init=False, repr=False, compare=False, default=None)
    """Gt/Lt: the parsed value, None when it is not an int64 (the term then matches nothing)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if self.operator not in NODE_SELECTOR_OPERATORS:
            raise ValueError(f"node selector operator {self.operator!r} is not one of {NODE_SELECTOR_OPERATORS}")
        if self.operator in (IN, NOT_IN) and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in (EXISTS, DOES_NOT_EXIST) and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        if self.operator in (GT, LT):
            if len(self.values) != 1:
                raise ValueError(f"operator {self.operator} takes exactly one value")
            object.__setattr__(self, "bound", parse_int64(self.values[0]))

    @property
    def valid(self) -> bool:
        return self.operator not in (GT, LT) or self.bound is not None

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == IN:
            return self.key in labels and labels[self.key] in self.values
        if op == NOT_IN:
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if self.bound is None or self.key not in labels:
            return False
        value = parse_int64(labels[self.key])
        if value is None:
            return False
        return value > self.bound if op == GT else value < self.bound


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """Requirements ANDed together. Empty, or holding an invalid requirement: matches nothing."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "match_expressions", tuple(self.match_expressions))

    def matches(self, labels: Mapping[str, str]) -> bool:
        exprs = self.match_expressions
        if not exprs or not all(r.valid for r in exprs):
            return False
        return all(r.matches(labels) for r in exprs)


def check_weight(weight: int) -> None:
    if not 1 <= weight <= 100:
        raise ValueError(f"weight {weight} is not in 1..100")


@dataclass(frozen=True, slots=True)
class PreferredSchedulingTerm:
    """A preferred node affinity term: nodes it matches gain `weight` (1..100)."""

    weight: int
    preference: NodeSelectorTerm

    def __post_init__(self) -> None:
        check_weight(self.weight)


@dataclass(frozen=True, slots=True)
class NodeAffinity:
    """spec.affinity.nodeAffinity. `required` None = no requirement, else its terms are
    ORed (requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms)."""

    required: tuple[NodeSelectorTerm, ...] | None = None
    preferred: tuple[PreferredSchedulingTerm, ...] = ()

    def __post_init__(self) -> None:
        if self.required is not None:
            object.__setattr__(self, "required", tuple(self.required))
            if not self.required:
                raise ValueError("a required node affinity needs at least one node selector term")
        object.__setattr__(self, "preferred", tuple(self.preferred))

    def required_match(self, labels: Mapping[str, str]) -> bool:
        return self.required is None or any(t.matches(labels) for t in self.required)

    def preferred_weight(self, labels: Mapping[str, str]) -> int:
        """Sum of the weights of the preferred terms that match (kube-scheduler NodeAffinity Score)."""
        return sum(p.weight for p in self.preferred if p.preference.matches(labels))


# ---------------------------------------------------------------- label selectors


@dataclass(frozen=True, slots=True)
class LabelSelectorRequirement:
    """One matchExpressions entry of a label selector (In, NotIn, Exists, DoesNotExist)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if self.operator not in LABEL_SELECTOR_OPERATORS:
            raise ValueError(f"label selector operator {self.operator!r} is not one of {LABEL_SELECTOR_OPERATORS}")
        if self.operator in (IN, NOT_IN) and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in (EXISTS, DOES_NOT_EXIST) and self.values:
            raise ValueError(f"operator {self.operator} takes no values")

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == IN:
            return self.key in labels and labels[self.key] in self.values
        if op == NOT_IN:
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """matchLabels and matchExpressions, ANDed; the empty selector matches everything."""

    match_labels: Mapping[str, str] = _EMPTY
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.match_labels, FrozenMap):
            object.__setattr__(self, "match_labels", FrozenMap(self.match_labels))
        object.__setattr__(self, "match_expressions", tuple(self.match_expressions))

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        return all(r.matches(labels) for r in self.match_expressions)
