"""The linearizability checker (Herlihy & Wing; Wing & Gong search) on hand-made histories."""

from __future__ import annotations

from agent.raft.linearizability import INFO, OK, Operation, check_history, check_register


def w(client, value, start, end, status=OK, key="k"):
    return Operation(client, "write", key, value, start, end, status)


def r(client, value, start, end, key="k"):
    return Operation(client, "read", key, value, start, end, OK)


def test_sequential_history_is_linearizable():
    assert check_history([w("a", 1, 0, 1), r("b", 1, 2, 3), w("a", 2, 4, 5), r("b", 2, 6, 7)]).ok


def test_stale_read_after_completed_write_is_not_linearizable():
    result = check_history([w("a", 1, 0, 1), w("a", 2, 2, 3), r("b", 1, 4, 5)])
    assert not result.ok and result.key == "k"


def test_concurrent_write_may_be_seen_or_not():
    assert check_history([w("a", 1, 0, 10), r("b", None, 1, 2), r("c", 1, 3, 4)]).ok
    # but once a read saw it, a later read must too
    assert not check_history([w("a", 1, 0, 10), r("b", 1, 1, 2), r("c", None, 3, 4)]).ok


def test_reads_of_value_never_written_fail():
    assert not check_history([w("a", 1, 0, 1), r("b", 7, 2, 3)]).ok


def test_timed_out_write_may_take_effect_late_or_never():
    late = [w("a", 1, 0, None, INFO), r("b", None, 1, 2), r("b", 1, 50, 51)]
    never = [w("a", 1, 0, None, INFO), r("b", None, 1, 2), r("b", None, 50, 51)]
    assert check_history(late).ok and check_history(never).ok
    # but not before it was invoked
    assert not check_history([r("b", 1, 0, 1), w("a", 1, 2, None, INFO)]).ok


def test_failed_write_never_took_effect():
    ops = [Operation("a", "write", "k", 1, 0, 1, "fail"), r("b", 1, 2, 3)]
    assert not check_history(ops).ok


def test_keys_are_independent():
    ops = [w("a", 1, 0, 1, key="x"), w("a", 2, 2, 3, key="y"), r("b", 1, 4, 5, key="x"), r("b", 2, 4, 5, key="y")]
    assert check_history(ops).ok
    assert not check_history(ops + [r("c", 2, 6, 7, key="x")]).ok


def test_cas_semantics():
    ok = [
        w("a", 1, 0, 1),
        Operation("b", "cas", "k", (1, 2), 2, 3, OK, True),
        Operation("c", "cas", "k", (1, 3), 4, 5, OK, False),
        r("d", 2, 6, 7),
    ]
    assert check_history(ok).ok
    wrong = ok[:2] + [Operation("c", "cas", "k", (1, 3), 4, 5, OK, True)]
    assert not check_history(wrong).ok


def test_memoization_keeps_many_concurrent_ops_cheap():
    # 14 mutually concurrent writes then a read: 14! orders, few distinct states.
    ops = [w(f"c{i}", i, 0, 100 + i) for i in range(14)] + [r("z", 13, 200, 201)]
    result = check_register(ops)
    assert result.ok and result.states_explored < 200_000


def test_many_unobserved_timed_out_writes_stay_cheap():
    ops = []
    for k in range(40):  # 40 writes that timed out, each overlapping everything after it
        ops.append(w(f"lost{k}", f"x{k}", 10 * k, None, INFO))
        ops.append(w("a", k, 10 * k + 1, 10 * k + 2))
        ops.append(r("b", k, 10 * k + 3, 10 * k + 4))
    result = check_register(ops)
    assert result.ok and result.states_explored < 10_000
    # an observed one is kept and placed correctly: never before its invocation...
    assert check_register(ops + [r("c", "x5", 40, 45)]).ok is False
    # ...but possibly long after it, even after later completed writes
    assert check_register(ops + [r("c", "x5", 1000, 1001)]).ok
    assert check_register(ops + [r("c", "x39", 395, 396)]).ok
