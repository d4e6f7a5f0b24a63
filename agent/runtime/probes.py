"""Probe state machine (pure): liveness, readiness and startup verdicts.

Owns: turning a stream of single probe outcomes into a verdict with Kubernetes'
thresholds. Rules: pure; the caller runs the probe (probe_executors.py), passes each
outcome in, and acts on verdict changes:
  - liveness  starts as success; `failure_threshold` consecutive failures -> failure
              (the container is killed and goes through its restart policy);
  - readiness starts as failure; `success_threshold` consecutive successes -> success
              (the Ready condition); `failure_threshold` failures -> failure again;
  - startup   starts unknown; the first success -> success (liveness and readiness
              then begin); `failure_threshold` failures -> failure (kill, as liveness).
A probe is first run `initial_delay_seconds` after the container started, then every
`period_seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

LIVENESS = "liveness"
READINESS = "readiness"
STARTUP = "startup"


@dataclass(frozen=True, slots=True)
class ProbeTiming:
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1

    @classmethod
    def of(cls, probe: object) -> "ProbeTiming":
        """From a Probe of the Pod model (fields in Kubernetes' seconds)."""
        return cls(
            initial_delay_s=float(getattr(probe, "initial_delay_seconds", 0) or 0),
            period_s=float(getattr(probe, "period_seconds", 10) or 10),
            timeout_s=float(getattr(probe, "timeout_seconds", 1) or 1),
            failure_threshold=max(1, int(getattr(probe, "failure_threshold", 3) or 3)),
            success_threshold=max(1, int(getattr(probe, "success_threshold", 1) or 1)),
        )


@dataclass(frozen=True, slots=True)
class ProbeState:
    verdict: bool | None  # None: no verdict yet (startup probe before its first result)
    successes: int = 0  # consecutive
    failures: int = 0  # consecutive
    next_at_s: float = 0.0  # when to run the probe next (caller's clock)


def initial_state(kind: str, timing: ProbeTiming, *, started_at_s: float) -> ProbeState:
    verdict = {LIVENESS: True, READINESS: False, STARTUP: None}[kind]
    return ProbeState(verdict=verdict, next_at_s=started_at_s + timing.initial_delay_s)


def observe(kind: str, timing: ProbeTiming, state: ProbeState, *, success: bool, now_s: float) -> ProbeState:
    """The state after one probe outcome observed at `now_s`."""
    successes = state.successes + 1 if success else 0
    failures = 0 if success else state.failures + 1
    verdict = state.verdict
    # Liveness and startup need only one success to be (or stay) alive (K8s forces successThreshold=1).
    needed = timing.success_threshold if kind == READINESS else 1
    if success and successes >= needed:
        verdict = True
    elif not success and failures >= timing.failure_threshold:
        verdict = False
    return replace(state, verdict=verdict, successes=successes, failures=failures,
                   next_at_s=now_s + timing.period_s)


def is_terminal_failure(kind: str, state: ProbeState) -> bool:
    """Must the container be killed? (liveness or startup verdict became failure)"""
    return kind in (LIVENESS, STARTUP) and state.verdict is False
