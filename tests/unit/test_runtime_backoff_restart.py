"""Pure restart/backoff policy (Kubernetes docs, "Pod Lifecycle: Container restart policy")."""

from __future__ import annotations

import pytest

from agent.runtime.backoff import BackoffPolicy, CrashHistory, delay_for_streak, next_restart_at, record_exit
from agent.runtime.reconciler import plan_reconcile
from agent.runtime.restart_policy import decide, should_restart

K8S = BackoffPolicy(base_s=10, cap_s=300, reset_after_s=600)


def test_backoff_doubles_from_base_and_caps_k8s_restart_policy() -> None:
    """Pod Lifecycle, restart policy: delays 10s, 20s, 40s, ... capped at 300s; first restart immediate."""
    delays = [delay_for_streak(K8S, n) for n in range(1, 10)]
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300, 300]
    assert delay_for_streak(K8S, 10_000) == 300  # no overflow for huge streaks


def test_backoff_resets_after_a_long_enough_run_k8s_restart_policy() -> None:
    """Pod Lifecycle, restart policy: a container that ran 10 minutes has its backoff timer reset."""
    h = CrashHistory()
    for t in range(5):  # five quick crashes
        h = record_exit(K8S, h, started_at_s=t * 100.0, finished_at_s=t * 100.0 + 1)
    assert h.streak == 5
    assert next_restart_at(K8S, h, finished_at_s=1000.0) == 1000.0 + 80
    h = record_exit(K8S, h, started_at_s=2000.0, finished_at_s=2000.0 + 600)
    assert h.streak == 1
    assert next_restart_at(K8S, h, finished_at_s=2600.0) == 2600.0
    # Never started (e.g. a start error) counts as a crash.
    assert record_exit(K8S, h, started_at_s=None, finished_at_s=3000.0).streak == 2


def test_backoff_rejects_negative_durations() -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(base_s=-1, cap_s=1, reset_after_s=1)


@pytest.mark.parametrize(
    "policy, exit_code, failed, expected",
    [
        ("Always", 0, False, True), ("Always", 1, False, True),
        ("OnFailure", 0, False, False), ("OnFailure", 2, False, True), ("OnFailure", 0, True, True),
        ("Never", 0, False, False), ("Never", 1, False, False), ("Never", 137, True, False),
    ],
)
def test_restart_policy_table_k8s_restart_policy(policy: str, exit_code: int, failed: bool, expected: bool) -> None:
    """Pod Lifecycle, restartPolicy: Always / OnFailure (non-zero or probe kill) / Never."""
    assert should_restart(policy, exit_code, failed=failed) is expected


def test_unknown_restart_policy_is_an_invariant_violation() -> None:
    with pytest.raises(ValueError):
        should_restart("Sometimes", 0)


def test_decide_restarts_later_and_later_k8s_crash_loop_back_off() -> None:
    """Pod Lifecycle, CrashLoopBackOff: each quick crash doubles the wait before the next start."""
    policy = BackoffPolicy(base_s=1, cap_s=8, reset_after_s=60)
    h = CrashHistory()
    waits = []
    now = 0.0
    for _ in range(6):
        d = decide("Always", exit_code=1, failed=False, started_at_s=now, finished_at_s=now + 0.1,
                   history=h, backoff=policy)
        assert d.restart
        waits.append(round(d.at_s - (now + 0.1), 6))
        h = d.history
        now = d.at_s
    assert waits == [0, 1, 2, 4, 8, 8]


def test_decide_stays_terminated_and_keeps_history_k8s_restart_policy() -> None:
    d = decide("Never", exit_code=3, failed=False, started_at_s=0, finished_at_s=5, history=CrashHistory(2),
               backoff=K8S)
    assert not d.restart and d.history.streak == 3


def test_reconcile_plan_start_stop_replace() -> None:
    plan = plan_reconcile(desired={"a": "h1", "b": "h2", "c": "h3"}, current={"b": "h2", "c": "old", "d": "h4"})
    assert plan.start == ("a",)
    assert plan.stop == ("d",)
    assert plan.replace == ("c",)


def test_unrunnable_pods_are_named_not_raised() -> None:
    from agent.runtime.reconciler import runnable_problem
    from agent.state.pod import Container, ObjectMeta, Pod, PodSpec

    def pod(uid="u", policy="Always", containers=(Container("c", "i"),)):
        return Pod(metadata=ObjectMeta(name="p", uid=uid), spec=PodSpec(containers=containers, restart_policy=policy))

    assert runnable_problem(pod()) is None
    assert "uid" in runnable_problem(pod(uid=None))
    assert "restartPolicy" in runnable_problem(pod(policy="Sometimes"))
    assert "containers" in runnable_problem(pod(containers=()))
    assert "duplicate" in runnable_problem(pod(containers=(Container("c", "i"), Container("c", "j"))))
