"""Kubernetes' matching rules: taints and tolerations, node selector requirements (node
affinity), label selectors (pod affinity). Each test names the Kubernetes rule it checks."""

from __future__ import annotations

import itertools

import pytest

from agent.control.selectors import (
    DOES_NOT_EXIST,
    EQUAL,
    EXISTS,
    GT,
    IN,
    LT,
    NO_EXECUTE,
    NO_SCHEDULE,
    NOT_IN,
    PREFER_NO_SCHEDULE,
    TAINT_EFFECTS,
    LabelSelector,
    LabelSelectorRequirement,
    NodeAffinity,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PreferredSchedulingTerm,
    Taint,
    Toleration,
    parse_int64,
    tolerated,
)

# ---------------------------------------------------------------- tolerations


def expected_tolerates(key: str, operator: str, value: str, effect: str, taint: Taint) -> bool:
    """core/v1 Toleration.ToleratesTaint, written out as a truth table."""
    effect_ok = effect == "" or effect == taint.effect
    key_ok = key == "" or key == taint.key
    value_ok = operator == EXISTS or value == taint.value
    return effect_ok and key_ok and value_ok


@pytest.mark.parametrize("taint_effect", TAINT_EFFECTS)
@pytest.mark.parametrize("effect", ("",) + TAINT_EFFECTS)
@pytest.mark.parametrize(
    "key,operator,value",
    [
        ("dedicated", EQUAL, "gpu"),  # same key, same value
        ("dedicated", EQUAL, "cpu"),  # same key, other value
        ("dedicated", EQUAL, ""),  # same key, empty value against a non-empty one
        ("dedicated", EXISTS, ""),  # same key, any value
        ("other", EQUAL, "gpu"),  # other key
        ("other", EXISTS, ""),
        ("", EXISTS, ""),  # every key
    ],
)
def test_toleration_against_taint_every_operator_and_effect(key, operator, value, effect, taint_effect):
    """Kubernetes Toleration.ToleratesTaint: effect empty = all, key empty = all, Exists ignores the value."""
    taint = Taint("dedicated", "gpu", taint_effect)
    toleration = Toleration(key, operator, value, effect)
    assert toleration.tolerates(taint) is expected_tolerates(key, operator, value, effect, taint)


def test_toleration_examples_from_the_kubernetes_documentation():
    """Taints and Tolerations concept page: `key1=value1:NoSchedule` and the tolerations shown there."""
    taint = Taint("key1", "value1", NO_SCHEDULE)
    assert Toleration("key1", EQUAL, "value1", NO_SCHEDULE).tolerates(taint)
    assert Toleration("key1", EXISTS, "", NO_SCHEDULE).tolerates(taint)
    assert Toleration("", EXISTS).tolerates(taint)  # tolerates everything
    assert not Toleration("key1", EQUAL, "value1", NO_EXECUTE).tolerates(taint)
    assert Toleration("key1", EXISTS).tolerates(Taint("key1", "x", PREFER_NO_SCHEDULE))


def test_an_empty_value_equal_toleration_tolerates_only_an_empty_value_taint():
    assert Toleration("k", EQUAL, "").tolerates(Taint("k", "", NO_SCHEDULE))
    assert not Toleration("k", EQUAL, "").tolerates(Taint("k", "v", NO_SCHEDULE))


def test_tolerated_is_any_of_the_tolerations():
    taint = Taint("a", "1", NO_EXECUTE)
    assert not tolerated((), taint)
    assert not tolerated((Toleration("b", EXISTS),), taint)
    assert tolerated((Toleration("b", EXISTS), Toleration("a", EQUAL, "1")), taint)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key": "", "operator": EQUAL},  # an empty key needs Exists
        {"key": "k", "operator": EXISTS, "value": "v"},  # Exists takes no value
        {"key": "k", "operator": "In"},
        {"key": "k", "effect": "Sometimes"},
    ],
)
def test_tolerations_the_api_server_refuses_are_refused(kwargs):
    with pytest.raises(ValueError):
        Toleration(**kwargs)


def test_taints_the_api_server_refuses_are_refused():
    with pytest.raises(ValueError):
        Taint("", "v", NO_SCHEDULE)
    with pytest.raises(ValueError):
        Taint("k", "v", "")


# ---------------------------------------------------------------- int64 parsing


@pytest.mark.parametrize(
    "text,value",
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("+7", 7),
        ("007", 7),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("9223372036854775808", None),  # out of range
        ("", None),
        ("1.5", None),
        ("1e3", None),
        (" 1", None),
        ("1_000", None),  # Python's int() takes it, Go's ParseInt base 10 does not
        ("٣", None),  # a non-ASCII digit
        ("0x10", None),
        ("-", None),
    ],
)
def test_parse_int64_is_go_strconv_parseint_base_10(text, value):
    assert parse_int64(text) == value


# ---------------------------------------------------------------- node selector requirements


def req(key: str, operator: str, *values: str) -> NodeSelectorRequirement:
    return NodeSelectorRequirement(key, operator, values)


LABELS = {"zone": "a", "cores": "16", "gpu": "", "bad": "sixteen"}


@pytest.mark.parametrize(
    "requirement,matches",
    [
        (req("zone", IN, "a", "b"), True),
        (req("zone", IN, "b"), False),
        (req("absent", IN, "a"), False),
        (req("zone", NOT_IN, "b"), True),
        (req("zone", NOT_IN, "a"), False),
        (req("absent", NOT_IN, "a"), True),  # NotIn matches a node without the label
        (req("gpu", EXISTS), True),  # an empty value still exists
        (req("absent", EXISTS), False),
        (req("absent", DOES_NOT_EXIST), True),
        (req("zone", DOES_NOT_EXIST), False),
        (req("cores", GT, "8"), True),
        (req("cores", GT, "16"), False),
        (req("cores", LT, "17"), True),
        (req("cores", LT, "16"), False),
        (req("cores", GT, "-1"), True),
        (req("absent", GT, "1"), False),  # Gt needs the label
        (req("absent", LT, "1"), False),
        (req("bad", GT, "1"), False),  # a label value that is no integer never matches
        (req("bad", LT, "1"), False),
        (req("gpu", LT, "1"), False),  # nor does an empty one
    ],
)
def test_node_selector_requirement_operators(requirement, matches):
    """Kubernetes labels.Requirement.Matches for In, NotIn, Exists, DoesNotExist, Gt, Lt."""
    assert requirement.matches(LABELS) is matches


def test_a_gt_lt_value_that_is_no_integer_makes_the_whole_term_match_nothing():
    """nodeaffinity.NewLazyErrorNodeSelector: a term that fails to parse is skipped (the API accepts it)."""
    bad = req("cores", GT, "eight")
    assert not bad.valid
    term = NodeSelectorTerm((req("zone", IN, "a"), bad))
    assert not term.matches(LABELS)
    affinity = NodeAffinity(required=(term, NodeSelectorTerm((req("zone", IN, "a"),))))
    assert affinity.required_match(LABELS)  # the other term still counts
    assert not NodeAffinity(required=(term,)).required_match(LABELS)


@pytest.mark.parametrize(
    "operator,values",
    [(IN, ()), (NOT_IN, ()), (EXISTS, ("x",)), (DOES_NOT_EXIST, ("x",)), (GT, ()), (LT, ("1", "2")), ("Like", ("x",))],
)
def test_requirements_the_api_server_refuses_are_refused(operator, values):
    with pytest.raises(ValueError):
        NodeSelectorRequirement("k", operator, values)


def test_terms_are_anded_inside_ored_across_and_an_empty_term_matches_nothing():
    zone_a = NodeSelectorTerm((req("zone", IN, "a"),))
    zone_b = NodeSelectorTerm((req("zone", IN, "b"),))
    both = NodeSelectorTerm((req("zone", IN, "a"), req("cores", GT, "32")))
    assert zone_a.matches(LABELS) and not zone_b.matches(LABELS) and not both.matches(LABELS)
    assert NodeAffinity(required=(zone_b, zone_a)).required_match(LABELS)
    assert not NodeAffinity(required=(zone_b, both)).required_match(LABELS)
    assert not NodeSelectorTerm(()).matches(LABELS)
    assert NodeAffinity().required_match(LABELS)  # no requirement at all
    with pytest.raises(ValueError):
        NodeAffinity(required=())


def test_preferred_weights_add_up_over_matching_terms():
    """kube-scheduler NodeAffinity Score: the sum of the weights of the preferred terms that match."""
    affinity = NodeAffinity(
        preferred=(
            PreferredSchedulingTerm(10, NodeSelectorTerm((req("zone", IN, "a"),))),
            PreferredSchedulingTerm(30, NodeSelectorTerm((req("cores", GT, "4"),))),
            PreferredSchedulingTerm(50, NodeSelectorTerm((req("zone", IN, "b"),))),
            PreferredSchedulingTerm(70, NodeSelectorTerm((req("cores", GT, "x"),))),  # invalid: never counts
        )
    )
    assert affinity.preferred_weight(LABELS) == 40
    for weight in (0, 101):
        with pytest.raises(ValueError):
            PreferredSchedulingTerm(weight, NodeSelectorTerm((req("zone", IN, "a"),)))


# ---------------------------------------------------------------- label selectors


def test_label_selector_match_labels_and_expressions_are_anded():
    pod = {"app": "web", "tier": "front"}
    assert LabelSelector().matches(pod)  # the empty selector matches everything
    assert LabelSelector({"app": "web"}).matches(pod)
    assert not LabelSelector({"app": "web", "tier": "back"}).matches(pod)
    assert not LabelSelector({"absent": ""}).matches(pod)
    expressions = {
        LabelSelectorRequirement("tier", IN, ("front", "mid")): True,
        LabelSelectorRequirement("tier", NOT_IN, ("front",)): False,
        LabelSelectorRequirement("absent", NOT_IN, ("x",)): True,
        LabelSelectorRequirement("app", EXISTS): True,
        LabelSelectorRequirement("app", DOES_NOT_EXIST): False,
    }
    for expression, matches in expressions.items():
        assert LabelSelector(match_expressions=(expression,)).matches(pod) is matches
        assert LabelSelector({"app": "web"}, (expression,)).matches(pod) is matches
        assert not LabelSelector({"app": "db"}, (expression,)).matches(pod)
    for a, b in itertools.combinations(expressions, 2):
        assert LabelSelector(match_expressions=(a, b)).matches(pod) is (expressions[a] and expressions[b])


def test_label_selector_refuses_node_only_operators():
    with pytest.raises(ValueError):
        LabelSelectorRequirement("k", GT, ("1",))
    with pytest.raises(ValueError):
        LabelSelectorRequirement("k", IN, ())
