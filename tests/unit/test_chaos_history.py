"""The chaos suite's history recorder and linearizability checker (tests/chaos/history.py).

Histories that must fail: an acknowledged write lost, a stale read after an acknowledged
write, a write seen then unseen, a refusal the state cannot explain. Histories that must
pass: overlapping operations ordered either way, unknown-outcome (info) operations that
took effect or did not. Linearizability as Herlihy & Wing define it (§2, real-time order;
§3, locality: one key at a time).
"""

from __future__ import annotations

import random

import pytest

from tests.chaos.history import (CREATE, DELETE, FAIL, INFO, OK, READ, RESULT_EXISTS, RESULT_NOTFOUND, RESULT_OK,
                                 UPDATE, History, Operation, check, check_key, failing_keys)


def op(process: str, kind: str, value: str | None, start: float, end: float | None, *, status: str = OK,
       result: str | None = RESULT_OK, key: str = "k") -> Operation:
    return Operation(process, key, kind, value, start, end, status, None if kind == READ else result)


def seq(*ops: Operation) -> list[Operation]:
    return list(ops)


# ----- histories that must fail


def test_a_lost_acknowledged_write_fails():
    history = seq(op("a", CREATE, "v1", 0, 1), op("a", UPDATE, "v2", 2, 3), op("b", READ, "v1", 4, 5))
    result = check(history)
    assert not result.ok and result.key == "k"
    assert "read -> 'v1'" in result.reason


def test_a_read_of_nothing_after_an_acknowledged_create_fails():
    assert not check(seq(op("a", CREATE, "v1", 0, 1), op("b", READ, None, 2, 3))).ok


def test_a_stale_read_after_an_acknowledged_write_fails_even_on_another_process():
    history = seq(op("a", CREATE, "v1", 0, 1), op("a", UPDATE, "v2", 2, 3),
                  op("b", READ, "v2", 4, 5), op("c", READ, "v1", 6, 7))
    assert not check(history).ok


def test_a_write_seen_then_unseen_fails():
    # v2's update is still in flight (concurrent with both reads), but once one read saw
    # it, a later read may not see the older value again.
    history = seq(op("a", CREATE, "v1", 0, 1), op("a", UPDATE, "v2", 2, 20),
                  op("b", READ, "v2", 3, 4), op("c", READ, "v1", 5, 6))
    assert not check(history).ok


def test_a_write_seen_then_unseen_fails_when_the_write_outcome_is_unknown():
    history = seq(op("a", CREATE, "v1", 0, 1), op("a", UPDATE, "v2", 2, None, status=INFO),
                  op("b", READ, "v2", 3, 4), op("c", READ, "v1", 5, 6))
    assert not check(history).ok


def test_an_acknowledged_delete_undone_fails():
    history = seq(op("a", CREATE, "v1", 0, 1), op("a", DELETE, None, 2, 3), op("b", READ, "v1", 4, 5))
    assert not check(history).ok


def test_refusals_the_state_cannot_explain_fail():
    # "exists" for a create on a key nobody ever created...
    assert not check(seq(op("a", CREATE, "v1", 0, 1, result=RESULT_EXISTS))).ok
    # ... "notfound" for an update after an acknowledged create...
    assert not check(seq(op("a", CREATE, "v1", 0, 1), op("b", UPDATE, "v2", 2, 3, result=RESULT_NOTFOUND))).ok
    # ... and two acknowledged creates with no delete between them.
    assert not check(seq(op("a", CREATE, "v1", 0, 1), op("b", CREATE, "v2", 2, 3))).ok


def test_a_read_of_a_value_nobody_wrote_fails():
    assert not check(seq(op("a", CREATE, "v1", 0, 1), op("b", READ, "v9", 2, 3))).ok


def test_one_bad_key_fails_the_whole_history_and_is_named():
    good = [op("a", CREATE, "x", 0, 1, key="good"), op("a", READ, "x", 2, 3, key="good")]
    bad = [op("b", CREATE, "y", 0, 1, key="bad"), op("b", READ, None, 2, 3, key="bad")]
    result = check(good + bad)
    assert not result.ok and result.key == "bad"
    also_bad = [op("c", CREATE, "z", 0, 1, key="worse"), op("c", CREATE, "w", 2, 3, key="worse")]
    assert [r.key for r in failing_keys(good + bad + also_bad)] == ["bad", "worse"]
    assert failing_keys(good) == []


# ----- histories that must pass


def test_sequential_create_update_delete_read_pass():
    history = seq(op("a", READ, None, 0, 1), op("a", CREATE, "v1", 2, 3), op("a", READ, "v1", 4, 5),
                  op("a", UPDATE, "v2", 6, 7), op("a", CREATE, "v3", 8, 9, result=RESULT_EXISTS),
                  op("a", DELETE, None, 10, 11), op("a", UPDATE, "v4", 12, 13, result=RESULT_NOTFOUND),
                  op("a", DELETE, None, 14, 15, result=RESULT_NOTFOUND), op("a", READ, None, 16, 17))
    assert check(history).ok


@pytest.mark.parametrize("seen", ["v1", "v2"])
def test_a_read_overlapping_a_write_may_see_either_value(seen):
    history = seq(op("a", CREATE, "v1", 0, 1), op("a", UPDATE, "v2", 2, 6), op("b", READ, seen, 3, 5))
    assert check(history).ok


def test_overlapping_creates_one_wins_the_other_sees_it_exists():
    history = seq(op("a", CREATE, "va", 0, 4), op("b", CREATE, "vb", 1, 3, result=RESULT_EXISTS),
                  op("c", READ, "va", 5, 6))
    assert check(history).ok
    # The later-invoked create can win too, if the operations overlap.
    history = seq(op("a", CREATE, "va", 0, 4, result=RESULT_EXISTS), op("b", CREATE, "vb", 1, 3),
                  op("c", READ, "vb", 5, 6))
    assert check(history).ok


def test_reads_may_be_ordered_against_invocation_when_they_overlap():
    # b's read began first but saw the newer value; c's later-begun read saw the older:
    # legal, because c's read and the write overlap and b's read ended after the write did.
    history = seq(op("a", CREATE, "v1", 0, 1), op("a", UPDATE, "v2", 2, 5),
                  op("c", READ, "v1", 2.5, 3), op("b", READ, "v2", 2.2, 6))
    assert check(history).ok


@pytest.mark.parametrize("later_read", ["v1", "v2"])
def test_an_info_write_may_have_taken_effect_or_not(later_read):
    history = seq(op("a", CREATE, "v1", 0, 1), op("a", UPDATE, "v2", 2, 3, status=INFO),
                  op("b", READ, later_read, 10, 11))
    assert check(history).ok


def test_an_info_write_may_take_effect_long_after_its_caller_gave_up():
    history = seq(op("a", CREATE, "v1", 0, 1), op("a", UPDATE, "v2", 2, 3, status=INFO),
                  op("b", READ, "v1", 10, 11), op("b", READ, "v2", 12, 13))
    assert check(history).ok


def test_an_info_delete_explains_a_later_notfound():
    history = seq(op("a", CREATE, "v1", 0, 1), op("a", DELETE, None, 2, 3, status=INFO),
                  op("b", UPDATE, "v2", 4, 5, result=RESULT_NOTFOUND))
    assert check(history).ok


def test_failed_operations_and_info_reads_are_left_out():
    history = seq(op("a", CREATE, "v1", 0, 1), op("b", UPDATE, "v9", 2, 3, status=FAIL),
                  op("c", READ, "junk", 2, None, status=INFO), op("b", READ, "v1", 4, 5))
    assert check(history).ok


def test_a_randomly_interleaved_correct_register_always_passes():
    """Simulate a real register: each op takes effect at a random instant inside its
    interval; the history must always be found linearizable."""
    rng = random.Random(7)
    for _ in range(30):
        value: str | None = None
        ops: list[tuple[float, Operation]] = []
        clock = {p: 0.0 for p in "abc"}
        for n in range(24):
            process = rng.choice("abc")
            start = clock[process] + rng.random()
            end = start + rng.random() * 3
            point = rng.uniform(start, end)
            kind = rng.choice((CREATE, UPDATE, DELETE, READ))
            clock[process] = end
            ops.append((point, Operation(process, "k", kind, f"{process}{n}" if kind in (CREATE, UPDATE) else None,
                                         start, end, OK)))
        done = []
        for _, o in sorted(ops, key=lambda pair: pair[0]):
            present = value is not None
            if o.kind == READ:
                o = Operation(o.process, o.key, READ, value, o.invoke_s, o.complete_s, OK)
            elif o.kind == CREATE:
                o = Operation(o.process, o.key, CREATE, o.value, o.invoke_s, o.complete_s, OK,
                              RESULT_EXISTS if present else RESULT_OK)
                value = value if present else o.value
            elif o.kind == UPDATE:
                o = Operation(o.process, o.key, UPDATE, o.value, o.invoke_s, o.complete_s, OK,
                              RESULT_OK if present else RESULT_NOTFOUND)
                value = o.value if present else None
            else:
                o = Operation(o.process, o.key, DELETE, None, o.invoke_s, o.complete_s, OK,
                              RESULT_OK if present else RESULT_NOTFOUND)
                value = None
            done.append(o)
        assert check(done).ok, done


# ----- the recorder


def test_the_recorder_pairs_invocations_with_completions():
    h = History()
    w = h.invoke("a", "k", CREATE, "v1", 0.0)
    r = h.invoke("b", "k", READ, None, 0.5)
    h.ok(w, 1.0, result=RESULT_OK)
    h.ok(r, 1.5, value="v1")
    u = h.invoke("a", "k", UPDATE, "v2", 2.0)
    h.info(u, 3.0)
    x = h.invoke("a", "k", DELETE, None, 4.0)
    h.fail(x, 5.0)
    left = h.invoke("b", "k", UPDATE, "v3", 6.0)  # never completed: counts as info
    ops = h.operations()
    assert [(o.kind, o.status) for o in ops] == [(CREATE, OK), (READ, OK), (UPDATE, INFO), (DELETE, FAIL),
                                                 (UPDATE, INFO)]
    assert ops[1].value == "v1" and ops[0].result == RESULT_OK and ops[left].complete_s is None
    assert h.counts() == {OK: 2, FAIL: 1, INFO: 2, "acknowledged_writes": 1}
    assert check(h).ok


def test_the_recorder_refuses_misuse():
    h = History()
    a = h.invoke("a", "k", CREATE, "v1", 1.0)
    with pytest.raises(ValueError, match="outstanding"):
        h.invoke("a", "k", READ, None, 1.5)
    with pytest.raises(ValueError, match="before it was invoked"):
        h.ok(a, 0.5, result=RESULT_OK)
    with pytest.raises(ValueError, match="with a result"):
        h.ok(a, 2.0, result="maybe")
    h.ok(a, 2.0, result=RESULT_OK)
    with pytest.raises(ValueError, match="not outstanding"):
        h.ok(a, 3.0, result=RESULT_OK)
    with pytest.raises(ValueError, match="unknown operation kind"):
        h.invoke("b", "k", "cas", None, 4.0)


def test_a_search_over_budget_is_undecided_never_passed():
    ops = [op(f"p{i}", UPDATE, f"v{i}", 1, None, status=INFO) for i in range(12)]
    ops += [op("a", CREATE, "v0", 0, 0.5), op("r", READ, "zzz", 2, 3)]
    result = check_key(ops, budget=50)
    assert not result.ok and "undecided" in result.reason
