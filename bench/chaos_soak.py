"""A randomized chaos run: faults drawn at random, the chaos suite's checks after each, one JSON line.

On a namespace cluster of 5 nodes (3 servers) running the 6 workload Pods, for `--minutes`:
draw a fault from the chaos matrix (tests/chaos/nemesis.py; not the whole-cluster stop,
which tests availability of nothing) with random lengths, run it as a scenario (the
register workload and the monitor the whole time, heal, health again) and check the
invariants of tests/chaos/scenario.py. As Jepsen's nemesis, seeded: the seed is printed
first and `--seed` replays the same sequence of faults and operations.

Prints one JSON line:
  faults_injected              faults run (each healed before the next)
  ops_acknowledged             client operations whose outcome the cluster acknowledged
  ops_lost                     keys whose history is not linearizable (an acknowledged write
                               lost, or a stale read): must be 0
  duplicate_pods_past_window   stretches in which one Pod uid ran on two nodes longer than
                               the fencing window allows: must be 0
  longest_below_replicas_s     the longest time fewer than 6 workload Pods ran on Ready nodes
  seed
plus what broke (`violations`), and the wall time. A fault the cluster does not cope with
within the bounds ends the run (the cluster is then not known to be healthy); the line is
printed all the same, and the exit status is 1 if any invariant broke.

    .venv/bin/python bench/chaos_soak.py --minutes 10 [--seed S] [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cluster import Cluster, down  # noqa: E402
from tests.chaos import nemesis  # noqa: E402
from tests.chaos.scenario import DUPLICATE_BOUND_S, Chaos  # noqa: E402

# Whole-cluster stop is left out: it measures a restart, and is in the test matrix.
SOAK_FAULTS = [t for t in nemesis.MATRIX if nemesis.MATRIX[t] is not nemesis.stop_all_start_all]


def draw_timing(rng: random.Random, quick: bool) -> nemesis.Timing:
    scale = 0.5 if quick else 1.0
    return nemesis.Timing(loss_p=rng.choice((0.1, 0.2, 0.3)), loss_s=rng.uniform(10, 30) * scale,
                          pause_s=rng.uniform(2, 8), partition_s=nemesis.Timing().partition_s * rng.uniform(0.8, 1.4))


async def soak(chaos: Chaos, minutes: float, rng: random.Random, quick: bool) -> dict:
    figures = {"faults_injected": 0, "ops_acknowledged": 0, "ops_lost": 0, "duplicate_pods_past_window": 0,
               "longest_below_replicas_s": 0.0, "violations": []}
    ends = time.monotonic() + minutes * 60
    while time.monotonic() < ends:
        title = rng.choice(SOAK_FAULTS)
        timing = draw_timing(rng, quick)
        print(f"=== fault {figures['faults_injected'] + 1}: {title} ({timing})", flush=True)
        scenario = None
        try:
            async with chaos.scenario(title, strict=False) as s:
                scenario = s
                await nemesis.MATRIX[title](chaos, s, timing)
        except Exception as exc:  # noqa: BLE001 - a fault the cluster did not cope with: counted, then stop
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            figures["violations"].append(first if first.startswith(title) else f"{title}: {first}")
            if scenario is not None:
                _add(figures, scenario)
            figures["faults_injected"] += 1
            break
        _add(figures, scenario)
        figures["faults_injected"] += 1
    return figures


def _add(figures: dict, s: object) -> None:
    found = s.findings  # type: ignore[attr-defined]
    figures["ops_acknowledged"] += found["ops_acknowledged"]
    figures["ops_lost"] += found["keys_not_linearizable"]
    figures["duplicate_pods_past_window"] += found["duplicates_past_window"]
    figures["longest_below_replicas_s"] = max(figures["longest_below_replicas_s"], found["longest_below_replicas_s"])
    figures["violations"] += [f"{s.title}: {p}" for p in s.problems]  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="shorter faults (for a run of a minute or two)")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up at the end")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    print(f"chaos soak: seed {seed} (--seed {seed} replays it)", flush=True)
    rng = random.Random(seed)
    name = f"chaos-soak{uuid.uuid4().hex[:4]}"
    began = time.monotonic()
    try:
        cluster = Cluster.up(name, nodes=5, servers=3)
        chaos = Chaos(cluster, seed)
        trio.run(chaos.deploy_work)
        figures = trio.run(soak, chaos, args.minutes, rng, args.quick)
    finally:
        if not args.keep:
            if Cluster(name).run_dir.exists():
                print(f"agentd logs kept in {Chaos(Cluster(name), seed).keep_logs()}", flush=True)
            down(name)
    figures.update(seed=seed, duplicate_bound_s=DUPLICATE_BOUND_S, wall_s=round(time.monotonic() - began, 1),
                   longest_below_replicas_s=round(figures["longest_below_replicas_s"], 2))
    print(json.dumps(figures, separators=(",", ":")))
    return 1 if figures["violations"] or figures["ops_lost"] or figures["duplicate_pods_past_window"] else 0


if __name__ == "__main__":
    sys.exit(main())
