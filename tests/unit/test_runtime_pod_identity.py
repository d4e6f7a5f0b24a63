"""One Pod per namespace/name: the pure rules of pod_identity.py."""

from __future__ import annotations

from agent.runtime.pod_identity import Definition, choose_by_key, claim_static_pods


def d(path: str, key: str, uid: str | None = None) -> Definition:
    return Definition(path, key, uid or f"{path}:{key}")


def test_the_first_file_by_name_runs_a_new_pod_and_the_other_is_a_conflict_naming_both() -> None:
    claims = claim_static_pods([d("a.yaml", "ns/web"), d("b.yaml", "ns/web")], {})
    assert claims.owners == {"ns/web": "a.yaml"}
    assert [x.path for x in claims.runs] == ["a.yaml"]
    (problem,) = claims.conflicts["b.yaml"]
    assert "ns/web" in problem and "a.yaml" in problem


def test_the_file_that_runs_a_pod_keeps_it_when_an_earlier_file_defines_it_too() -> None:
    claims = claim_static_pods([d("0.yaml", "ns/web"), d("b.yaml", "ns/web")], {"ns/web": "b.yaml"})
    assert [x.path for x in claims.runs] == ["b.yaml"]
    assert "b.yaml" in claims.conflicts["0.yaml"][0]


def test_an_owner_that_no_longer_defines_the_pod_hands_it_to_the_first_remaining_file() -> None:
    claims = claim_static_pods([d("b.yaml", "ns/web"), d("c.yaml", "ns/web")], {"ns/web": "a.yaml"})
    assert claims.owners == {"ns/web": "b.yaml"}


def test_a_pod_defined_twice_in_one_file_runs_its_first_definition() -> None:
    first, second = d("a.yaml", "ns/web", "u1"), d("a.yaml", "ns/web", "u2")
    claims = claim_static_pods([first, second], {})
    assert claims.runs == (first,)
    assert "defined twice in this file" in claims.conflicts["a.yaml"][0]


def test_a_uid_given_to_two_pods_runs_once() -> None:
    claims = claim_static_pods([d("a.yaml", "ns/one", "same"), d("b.yaml", "ns/two", "same")], {})
    assert [x.key for x in claims.runs] == ["ns/one"]
    assert "uid same" in claims.conflicts["b.yaml"][0] and "a.yaml" in claims.conflicts["b.yaml"][0]


def test_distinct_pods_have_no_conflicts() -> None:
    claims = claim_static_pods([d("a.yaml", "ns/one"), d("a.yaml", "ns/two"), d("b.yaml", "other/one")], {})
    assert len(claims.runs) == 3 and claims.conflicts == {}


def test_a_desired_set_keeps_the_running_uid_of_a_key_else_the_smallest() -> None:
    keep, rejected = choose_by_key({"u2": "ns/web", "u1": "ns/web", "u3": "ns/db"}, running=set())
    assert keep == {"u1", "u3"} and set(rejected) == {"u2"} and "u1" in rejected["u2"]
    keep, rejected = choose_by_key({"u2": "ns/web", "u1": "ns/web"}, running={"u2"})
    assert keep == {"u2"} and set(rejected) == {"u1"}
