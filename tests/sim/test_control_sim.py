"""Properties of the workload controllers over 300 simulated seeds (see control_sim.py).

Each seed: 3..5 nodes, 1..3 Deployments (RollingUpdate with maxSurge/maxUnavailable as
integers or percentages, or Recreate; minReadySeconds 0..3), a minute of rollouts,
rollbacks, restarts, scalings, pauses, node deaths and returns and failed Pods, then
settling. Checked after every step and at the end: see control_sim's banner. A failing
seed prints the step's events and the command that replays it.

Mutation checks prove the invariants have teeth: controllers broken on purpose (patched
in the test, never edited) must fail them within a few seeds the unbroken ones pass.
"""

from __future__ import annotations

import os

import pytest

from agent.control import deployments

try:  # pytest's default (prepend) import mode puts this directory on sys.path
    from control_sim import run_scenario
except ImportError:  # importlib mode, run from the repository root
    from tests.sim.control_sim import run_scenario

SEEDS = 300
CHUNK = 50


@pytest.mark.parametrize("first", range(0, SEEDS, CHUNK))
def test_workload_invariants_hold_for_seeds(first):
    failures = [r.failure for r in map(run_scenario, range(first, first + CHUNK)) if not r.ok]
    assert not failures, "\n".join(failures)


def test_replay():
    """CONTROL_SIM_SEED=N replays one seed (seed 0 when unset)."""
    result = run_scenario(int(os.environ.get("CONTROL_SIM_SEED", "0")))
    assert result.ok, result.failure


def test_simulation_is_deterministic():
    a, b = run_scenario(11), run_scenario(11)
    assert (a.ok, a.steps, a.commands, a.failure) == (b.ok, b.steps, b.commands, b.failure)
    assert a.commands > 0


def _failures(seeds: range) -> list[str]:
    return [r.failure for r in map(run_scenario, seeds) if not r.ok]


def test_mutation_one_more_unavailable_breaks_the_availability_floor(monkeypatch):
    honest = deployments.max_unavailable
    monkeypatch.setattr(deployments, "max_unavailable", lambda d: honest(d) + 1)
    failures = _failures(range(20))
    assert failures and any("fewer than replicas-maxUnavailable" in f for f in failures)


def test_mutation_ignoring_max_surge_breaks_the_pod_ceiling(monkeypatch):
    monkeypatch.setattr(deployments._Pass, "_new_rs_new_replicas", lambda self, every, new: self.replicas)
    failures = _failures(range(20))
    assert failures and any("more than replicas+maxSurge" in f for f in failures)
