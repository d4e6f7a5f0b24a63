"""Exponential backoff for crashing containers and absent images (CrashLoopBackOff).

Owns: the delay before the next restart of a container, as a pure function of its crash
history. Rules: no clock, no I/O: times come in as numbers (seconds on any monotonic or
wall clock, used consistently by the caller).

Shape, as Kubernetes' kubelet: the first crash of a streak restarts at once; the next ones
wait base, 2*base, 4*base, ... capped at `cap_s`. A container that ran for at least
`reset_after_s` before it exited starts a new streak (its past crashes are forgotten).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    base_s: float
    cap_s: float
    reset_after_s: float

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < 0 or self.reset_after_s < 0:
            raise ValueError(f"backoff durations must be >= 0: {self}")


@dataclass(frozen=True, slots=True)
class CrashHistory:
    """What the backoff remembers of one container: the length of its current crash streak."""

    streak: int = 0  # exits since the last reset; 0 means "never crashed (or forgiven)"


def delay_for_streak(policy: BackoffPolicy, streak: int) -> float:
    """Delay before restarting after the `streak`-th consecutive exit (streak >= 1)."""
    if streak <= 1:
        return 0.0
    # base * 2**(streak-2), computed without overflowing for huge streaks.
    delay = policy.base_s
    for _ in range(streak - 2):
        delay *= 2
        if delay >= policy.cap_s:
            return policy.cap_s
    return min(delay, policy.cap_s)


def record_exit(
    policy: BackoffPolicy, history: CrashHistory, *, started_at_s: float | None, finished_at_s: float
) -> CrashHistory:
    """The history after one more exit of a container that started at `started_at_s`."""
    ran_for_s = 0.0 if started_at_s is None else max(0.0, finished_at_s - started_at_s)
    if ran_for_s >= policy.reset_after_s:
        return CrashHistory(streak=1)
    return CrashHistory(streak=history.streak + 1)


def next_restart_at(
    policy: BackoffPolicy, history: CrashHistory, *, finished_at_s: float
) -> float:
    """When the container whose streak is `history` (after its last exit) may start again."""
    return finished_at_s + delay_for_streak(policy, history.streak)
