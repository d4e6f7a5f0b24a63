"""Pure probe state machine and Pod phase rules (Kubernetes docs, "Pod Lifecycle: Container probes / Pod phase")."""

from __future__ import annotations

from agent.runtime import probes as p
from agent.runtime.status import (
    ContainerStatus, PodCondition, PodStatus, Running, Terminated, Waiting, containers_ready, pod_phase,
)

T = p.ProbeTiming(initial_delay_s=5, period_s=2, timeout_s=1, failure_threshold=3, success_threshold=2)


def run(kind: str, outcomes: list[bool], timing: p.ProbeTiming = T) -> list[bool | None]:
    state = p.initial_state(kind, timing, started_at_s=100.0)
    verdicts = []
    for ok in outcomes:
        state = p.observe(kind, timing, state, success=ok, now_s=state.next_at_s)
        verdicts.append(state.verdict)
    return verdicts


def test_first_probe_waits_initial_delay_then_period_k8s_probes() -> None:
    """Container probes: initialDelaySeconds before the first, periodSeconds between."""
    state = p.initial_state(p.LIVENESS, T, started_at_s=100.0)
    assert state.next_at_s == 105.0
    state = p.observe(p.LIVENESS, T, state, success=True, now_s=105.0)
    assert state.next_at_s == 107.0


def test_liveness_fails_after_failure_threshold_consecutive_failures_k8s_probes() -> None:
    """Container probes, livenessProbe: starts Success; failureThreshold failures in a row kill."""
    assert run(p.LIVENESS, [False, False, True, False, False, False]) == [True, True, True, True, True, False]
    state = p.initial_state(p.LIVENESS, T, started_at_s=0)
    for _ in range(3):
        state = p.observe(p.LIVENESS, T, state, success=False, now_s=0)
    assert p.is_terminal_failure(p.LIVENESS, state)


def test_readiness_needs_success_threshold_and_can_flip_back_k8s_probes() -> None:
    """Container probes, readinessProbe: starts Failure; successThreshold successes -> ready; failures unready."""
    assert run(p.READINESS, [True, True, False, False, False, True, True]) == [
        False, True, True, True, False, False, True]
    state = p.initial_state(p.READINESS, T, started_at_s=0)
    state = p.observe(p.READINESS, T, state, success=False, now_s=0)
    assert not p.is_terminal_failure(p.READINESS, p.ProbeState(verdict=False))


def test_startup_is_unknown_until_first_success_or_threshold_failures_k8s_probes() -> None:
    """Container probes, startupProbe: holds the others until one success; failureThreshold failures kill."""
    assert run(p.STARTUP, [False, True]) == [None, True]
    verdicts = run(p.STARTUP, [False, False, False])
    assert verdicts == [None, None, False]


def test_probe_timing_from_pod_model_defaults() -> None:
    from agent.state.pod import ExecAction, Probe

    timing = p.ProbeTiming.of(Probe(exec=ExecAction(command=("true",))))
    assert timing == p.ProbeTiming(0, 10, 1, 3, 1)


def cs(state, last=None, ready=False) -> ContainerStatus:
    return ContainerStatus(name="c", image="i", state=state, last_state=last, ready=ready)


def test_pod_phase_rules_k8s_pod_phase() -> None:
    """Pod phase: Pending / Running / Succeeded / Failed from the containers and restartPolicy."""
    ok = Terminated(0, "Completed", 1, 2)
    bad = Terminated(1, "Error", 1, 2)
    assert pod_phase("Always", [cs(Waiting("ContainerCreating"))]) == "Pending"
    assert pod_phase("Always", [cs(Running(1)), cs(Waiting("ContainerCreating"))]) == "Pending"
    assert pod_phase("Always", [cs(Waiting("CrashLoopBackOff"), last=bad)]) == "Running"
    assert pod_phase("Never", [cs(ok), cs(Running(1))]) == "Running"
    assert pod_phase("Never", [cs(ok), cs(ok)]) == "Succeeded"
    assert pod_phase("Never", [cs(ok), cs(bad)]) == "Failed"
    assert pod_phase("OnFailure", [cs(ok)]) == "Succeeded"
    assert pod_phase("OnFailure", [cs(Waiting("CrashLoopBackOff"), last=bad)]) == "Running"
    assert pod_phase("Always", []) == "Pending"


def test_pod_status_to_dict_is_kubernetes_camel_case() -> None:
    status = PodStatus(
        uid="u", namespace="ns", name="n", phase="Running",
        conditions=(PodCondition("Ready", True, 0.0),),
        container_statuses=(ContainerStatus(name="c", image="busybox:local", state=Running(0.0),
                                            last_state=Terminated(137, "OOMKilled", 0.0, 1.5, "abc"),
                                            ready=True, restart_count=2, container_id="def"),),
        pod_ip="172.17.0.2", host_ip="10.0.0.1", start_time=0.0,
    )
    d = status.to_dict()
    assert d["phase"] == "Running" and d["podIP"] == "172.17.0.2" and d["hostIP"] == "10.0.0.1"
    assert d["podIPs"] == [{"ip": "172.17.0.2"}]
    assert d["conditions"] == [{"type": "Ready", "status": "True", "lastTransitionTime": "1970-01-01T00:00:00Z"}]
    c = d["containerStatuses"][0]
    assert c["state"] == {"running": {"startedAt": "1970-01-01T00:00:00Z"}}
    assert c["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert c["lastState"]["terminated"]["exitCode"] == 137
    assert c["restartCount"] == 2 and c["ready"] is True and c["containerID"] == "docker://def"
    assert containers_ready(status.container_statuses)
    assert not containers_ready(())
