"""Label and field selectors (agent/state/selectors.py), with Kubernetes' semantics."""

from __future__ import annotations

import pytest

from agent.state.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
    selector_from_object,
)


@pytest.mark.parametrize(
    ("text", "labels", "matches"),
    [
        ("", {}, True),
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "web"}, True),
        ("app=web", {"app": "db"}, False),
        ("app!=web", {}, True),  # != also matches objects without the label, as Kubernetes does
        ("app!=web", {"app": "web"}, False),
        ("env in (prod, staging)", {"env": "staging"}, True),
        ("env in (prod,staging)", {"env": "dev"}, False),
        ("env notin (prod)", {}, True),
        ("env notin (prod)", {"env": "prod"}, False),
        ("legacy", {"legacy": ""}, True),
        ("!legacy", {"legacy": "x"}, False),
        ("!legacy", {}, True),
        ("app=web,env in (a,b),!old", {"app": "web", "env": "b"}, True),
        ("app=web,env in (a,b),!old", {"app": "web", "env": "b", "old": "1"}, False),
        ("example.com/tier=front", {"example.com/tier": "front"}, True),
    ],
)
def test_label_selector_semantics(text, labels, matches):
    assert parse_label_selector(text).matches(labels) is matches


def test_an_empty_value_selects_the_label_with_an_empty_value():
    assert parse_label_selector("app=").matches({"app": ""})
    assert not parse_label_selector("app=").matches({"app": "web"})


@pytest.mark.parametrize("text", ["=web", "app=we b", "env in (a", "a,,b", "in (a)", "x=" + "v" * 64, "-a=b"])
def test_malformed_label_selectors_are_errors(text):
    with pytest.raises(SelectorError):
        parse_label_selector(text)


def test_selector_objects_and_their_field_path_errors():
    sel = selector_from_object({"matchLabels": {"app": "web"},
                                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]})
    assert sel.matches({"app": "web", "tier": "front"})
    assert not sel.matches({"app": "web", "tier": "db"})
    assert selector_from_object({}).matches({"anything": "x"})
    with pytest.raises(SelectorError, match=r"selector.matchExpressions\[0\].values: must be non-empty"):
        selector_from_object({"matchExpressions": [{"key": "a", "operator": "In"}]})
    with pytest.raises(SelectorError, match=r"selector.matchExpressions\[0\].operator"):
        selector_from_object({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
    with pytest.raises(SelectorError, match="selector.matchLabelz: unknown field"):
        selector_from_object({"matchLabelz": {}})


def test_field_selectors():
    doc = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"nodeName": "n2"},
           "status": {"phase": "Running"}}
    assert parse_field_selector("spec.nodeName=n2,status.phase!=Failed").matches(doc)
    assert not parse_field_selector("metadata.name==db").matches(doc)
    assert parse_field_selector("spec.nodeName=").matches({"spec": {}})
    assert parse_field_selector("spec.nodeName=n2").value_of("spec.nodeName") == "n2"
    with pytest.raises(SelectorError, match="field selector 'spec.containers' is not supported"):
        parse_field_selector("spec.containers=x")
    with pytest.raises(SelectorError, match="expected FIELD=VALUE"):
        parse_field_selector("spec.nodeName")
