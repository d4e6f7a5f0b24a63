"""Properties of SWIM + Lifeguard over 500 simulated seeds (see swim_sim.py for the scenarios).

Each seed picks a cluster size (3..24, and 200 for 4 of the seeds), a loss rate (0..10 %,
some crash seeds 20..30 %) and one scenario: crashes, slow and stalling members, a
partition that heals, a metadata change, a crash-and-restart. Checked: every crashed
member is declared dead by every live member within config.detection_bound_s; with loss
<= 10 % and slow or stalling members no live member is ever declared dead; after a
partition heals every live member agrees on membership; a metadata change reaches
everyone within its bound. A failing seed prints the command that replays it.
"""

from __future__ import annotations

import pytest

from swim_sim import _pct, make_scenario, replay_hint, run_scenario

SEEDS = 500
CHUNK = 50


@pytest.mark.parametrize("first", range(0, SEEDS, CHUNK))
def test_swim_properties_hold_for_seeds(first):
    failures = []
    for seed in range(first, first + CHUNK):
        r = run_scenario(seed)
        if not r.ok:
            sc = r.scenario
            failures.append(f"seed {seed} ({sc.kind}, n={sc.n}, loss={sc.loss}): {r.failures[0]}\n    {replay_hint(seed)}")
    assert not failures, "\n".join(failures)


def test_simulation_is_deterministic():
    a, b = run_scenario(7), run_scenario(7)
    assert (a.packets, a.detect_times_s, a.failures) == (b.packets, b.detect_times_s, b.failures)


def test_detection_latency_meets_lan_targets():
    """The LAN profile's target: a crash is declared by every survivor within p50 <= 2 s, p99 <= 3 s."""
    times: list[float] = []
    for seed in range(SEEDS):
        sc = make_scenario(seed)
        if sc.kind == "crash" and sc.loss <= 0.1 and sc.n <= 50:
            times.extend(run_scenario(seed).detect_all_s)
        if len(times) >= 100:
            break
    assert len(times) >= 100
    assert _pct(times, 50) <= 2.0 and _pct(times, 99) <= 3.0, (_pct(times, 50), _pct(times, 99))
