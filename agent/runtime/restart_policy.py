"""The restart decision for a container that has exited (Pod restartPolicy).

Owns: whether an exited container restarts, and when. Rules: pure (no clock, no I/O);
the caller passes the exit, the policy and the crash history, and gets back a decision.

Kubernetes semantics:
  Always    - restart after any exit;
  OnFailure - restart after a non-zero exit (a liveness kill is a failure), stay
              terminated after exit code 0;
  Never     - never restart.
Restarts go through the crash backoff (backoff.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from .backoff import BackoffPolicy, CrashHistory, next_restart_at, record_exit

RESTART_POLICIES = ("Always", "OnFailure", "Never")


@dataclass(frozen=True, slots=True)
class RestartDecision:
    restart: bool  # False: the container stays terminated
    at_s: float  # when to restart (== the exit time when the restart is immediate); meaningless if not restart
    history: CrashHistory  # the crash history to keep for the next exit


def should_restart(restart_policy: str, exit_code: int, *, failed: bool = False) -> bool:
    """Does `restart_policy` restart a container that exited with `exit_code`?

    `failed` marks an exit caused by us for a failed liveness/startup probe: a failure
    whatever the exit code.
    """
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return failed or exit_code != 0
    if restart_policy == "Never":
        return False
    raise ValueError(f"unknown restartPolicy {restart_policy!r}")


def decide(
    restart_policy: str,
    *,
    exit_code: int,
    failed: bool,
    started_at_s: float | None,
    finished_at_s: float,
    history: CrashHistory,
    backoff: BackoffPolicy,
) -> RestartDecision:
    """Restart now, restart at a later time, or stay terminated."""
    new_history = record_exit(backoff, history, started_at_s=started_at_s, finished_at_s=finished_at_s)
    if not should_restart(restart_policy, exit_code, failed=failed):
        return RestartDecision(restart=False, at_s=finished_at_s, history=new_history)
    at_s = next_restart_at(backoff, new_history, finished_at_s=finished_at_s)
    return RestartDecision(restart=True, at_s=at_s, history=new_history)
