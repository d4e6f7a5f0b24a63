"""Label and field selectors, as Kubernetes spells and evaluates them.

Owns: parsing the string forms that `kubectl -l` and `--field-selector` take, the
`matchLabels`/`matchExpressions` form of a LabelSelector object, and matching either
against an object's document.

Rules it keeps:
- Label selector syntax (k8s.io/apimachinery/pkg/labels): requirements joined by ",",
  each one of `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`; all must hold.
  `k!=v` and `notin` also match objects without the label, as Kubernetes does.
- A LabelSelector object: matchLabels AND matchExpressions (operators In, NotIn, Exists,
  DoesNotExist). An empty selector matches everything; a null one is the caller's choice.
- Field selectors support the fields Kubernetes supports for the kinds we hold
  (`metadata.name`, `metadata.namespace`, `spec.nodeName`, `status.phase`, ...), with `=`,
  `==` and `!=`; an unknown field is an error, never a silent match.
- Parsing raises SelectorError with a message a person can act on; matching never raises.
- Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.state.errors import StateError

__all__ = [
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_object",
]


class SelectorError(StateError, ValueError):
    """A selector that cannot be parsed."""


_KEY = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values  # NotIn


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            if r.operator == "Exists":
                parts.append(r.key)
            elif r.operator == "DoesNotExist":
                parts.append(f"!{r.key}")
            elif r.operator == "In" and len(r.values) == 1:
                parts.append(f"{r.key}={r.values[0]}")
            elif r.operator == "NotIn" and len(r.values) == 1:
                parts.append(f"{r.key}!={r.values[0]}")
            else:
                op = "in" if r.operator == "In" else "notin"
                parts.append(f"{r.key} {op} ({','.join(r.values)})")
        return ",".join(parts)


def _check_key(key: str, text: str) -> str:
    if not key or len(key) > 316 or not _KEY.fullmatch(key):
        raise SelectorError(f"invalid label key {key!r} in selector {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if len(value) > 63 or not _VALUE.fullmatch(value):
        raise SelectorError(f"invalid label value {value!r} in selector {text!r}")
    return value


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in selector {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise SelectorError(f"unbalanced '(' in selector {text!r}")
    parts.append(text[start:])
    return parts


_SET_FORM = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")


def parse_label_selector(text: str) -> LabelSelector:
    """The selector `kubectl -l TEXT` means. An empty text selects everything."""
    if len(text) > 4096:
        raise SelectorError("label selector longer than 4096 characters")
    text = text.strip()
    if not text:
        return LabelSelector()
    requirements = []
    for part in _split_top_level(text):
        part = part.strip()
        if not part:
            raise SelectorError(f"empty requirement in selector {text!r}")
        set_form = _SET_FORM.match(part)
        if set_form:
            key, op, inner = set_form.groups()
            values = tuple(sorted({_check_value(v.strip(), text) for v in inner.split(",")}))
            requirements.append(Requirement(_check_key(key, text), "In" if op == "in" else "NotIn", values))
        elif part.startswith("!"):
            requirements.append(Requirement(_check_key(part[1:].strip(), text), "DoesNotExist"))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            requirements.append(Requirement(_check_key(key.strip(), text), "NotIn", (_check_value(value.strip(), text),)))
        elif "=" in part:
            key, value = part.split("==", 1) if "==" in part else part.split("=", 1)
            requirements.append(Requirement(_check_key(key.strip(), text), "In", (_check_value(value.strip(), text),)))
        else:
            if any(ch in part for ch in " ()<>"):
                raise SelectorError(f"cannot parse requirement {part!r} in selector {text!r}")
            requirements.append(Requirement(_check_key(part, text), "Exists"))
    return LabelSelector(tuple(requirements))


def selector_from_object(obj: Any, path: str = "selector") -> LabelSelector:
    """A LabelSelector object ({matchLabels, matchExpressions}) as a selector.
    Raises SelectorError naming the field path of a problem."""
    if obj is None:
        return LabelSelector()
    if not isinstance(obj, Mapping):
        raise SelectorError(f"{path}: must be an object")
    unknown = set(obj) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise SelectorError(f"{path}.{sorted(unknown)[0]}: unknown field")
    requirements = []
    match_labels = obj.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError(f"{path}.matchLabels: must be an object")
    for key, value in match_labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SelectorError(f"{path}.matchLabels: keys and values must be strings")
        requirements.append(Requirement(_check_key(key, str(obj)), "In", (_check_value(value, str(obj)),)))
    expressions = obj.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise SelectorError(f"{path}.matchExpressions: must be a list")
    for i, expr in enumerate(expressions):
        where = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            raise SelectorError(f"{where}: must be an object")
        unknown = set(expr) - {"key", "operator", "values"}
        if unknown:
            raise SelectorError(f"{where}.{sorted(unknown)[0]}: unknown field")
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if not isinstance(key, str):
            raise SelectorError(f"{where}.key: required")
        if op not in OPERATORS:
            raise SelectorError(f"{where}.operator: must be one of {', '.join(OPERATORS)}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SelectorError(f"{where}.values: must be a list of strings")
        if op in ("In", "NotIn") and not values:
            raise SelectorError(f"{where}.values: must be non-empty for operator {op}")
        if op in ("Exists", "DoesNotExist") and values:
            raise SelectorError(f"{where}.values: must be empty for operator {op}")
        requirements.append(Requirement(_check_key(key, str(obj)), op, tuple(sorted(set(values)))))
    return LabelSelector(tuple(requirements))


# --------------------------------------------------------------------------- fields

# The fields each kind can be selected on, and how to read them from a document.
_FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "metadata.uid": ("metadata", "uid"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.unschedulable": ("spec", "unschedulable"),
    "spec.restartPolicy": ("spec", "restartPolicy"),
    "status.phase": ("status", "phase"),
    "status.podIP": ("status", "podIP"),
    "involvedObject.kind": ("involvedObject", "kind"),
    "involvedObject.name": ("involvedObject", "name"),
    "involvedObject.namespace": ("involvedObject", "namespace"),
    "involvedObject.uid": ("involvedObject", "uid"),
    "reason": ("reason",),
    "type": ("type",),
}


def _field_value(doc: Mapping[str, Any], path: tuple[str, ...]) -> str:
    value: Any = doc
    for part in path:
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...] = ()  # (field, equal?, value)

    def matches(self, doc: Mapping[str, Any]) -> bool:
        return all((_field_value(doc, _FIELD_PATHS[f]) == v) == eq for f, eq, v in self.terms)

    def value_of(self, field: str) -> str | None:
        """The value an equality term requires of `field`, if there is one (used to pick an index)."""
        for f, eq, v in self.terms:
            if f == field and eq:
                return v
        return None


def parse_field_selector(text: str) -> FieldSelector:
    if len(text) > 4096:
        raise SelectorError("field selector longer than 4096 characters")
    text = text.strip()
    if not text:
        return FieldSelector()
    terms = []
    for part in text.split(","):
        part = part.strip()
        if "!=" in part:
            field, value = part.split("!=", 1)
            equal = False
        elif "==" in part:
            field, value = part.split("==", 1)
            equal = True
        elif "=" in part:
            field, value = part.split("=", 1)
            equal = True
        else:
            raise SelectorError(f"cannot parse field selector term {part!r}: expected FIELD=VALUE or FIELD!=VALUE")
        field = field.strip()
        if field not in _FIELD_PATHS:
            raise SelectorError(
                f"field selector {field!r} is not supported (supported: {', '.join(sorted(_FIELD_PATHS))})"
            )
        terms.append((field, equal, value.strip()))
    return FieldSelector(tuple(terms))
