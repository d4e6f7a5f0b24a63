"""The chaos matrix on a real 5-node namespace cluster (3 servers, 2 workers).

Each scenario runs the register workload and the monitor the whole time (scenario.py),
injects its fault (nemesis.py), heals, waits for the cluster to be healthy again and
checks the invariants: the 6 workload Pods back Running on Ready nodes within the bound,
the history linearizable, one leader per term, no Pod running twice past the fencing
window. Every scenario leaves the cluster healthy (every node on and Ready, no fault), so
one cluster serves them all, in the order of nemesis.MATRIX; the last test takes it down
and finds nothing of it left on the host.

The workload's seed is printed; CHAOS_SEED=N replays it. CHAOS_LOSS_S sets the length of
the packet-loss scenario (30 s by default, as the matrix asks).
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Iterator

import pytest
import trio

from cluster import Cluster, down
from tests.chaos import nemesis
from tests.chaos.leftovers import traces
from tests.chaos.scenario import Chaos

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

TIMING = nemesis.Timing(loss_s=float(os.environ.get("CHAOS_LOSS_S", "30")))


@pytest.fixture(scope="module")
def chaos() -> Iterator[Chaos]:
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1_000_000)))
    name = f"chaos{uuid.uuid4().hex[:5]}"
    print(f"chaos suite: cluster {name}, seed {seed} (CHAOS_SEED={seed} replays the workload)")
    try:
        cluster = Cluster.up(name, nodes=5, servers=3, log=print)
        c = Chaos(cluster, seed)
        trio.run(c.deploy_work)
        yield c
    finally:
        if Cluster(name).run_dir.exists():
            print(f"agentd logs kept in {Chaos(Cluster(name), seed).keep_logs()}")
        down(name)


@pytest.fixture
def healthy(chaos: Chaos) -> Chaos:
    """Whatever an earlier failed scenario left: no fault, every node on."""
    chaos.cluster.heal()
    for node in sorted(chaos.cluster.state().off):
        chaos.cluster.start(node)
    return chaos


@pytest.mark.parametrize("title", list(nemesis.MATRIX))
async def test_scenario(healthy: Chaos, title: str):
    async with healthy.scenario(title) as s:
        await nemesis.MATRIX[title](healthy, s, TIMING)


def test_down_leaves_nothing(chaos: Chaos):
    layout = chaos.cluster.layout
    assert [row.power for row in chaos.cluster.status()] == ["on"] * 5
    print(f"agentd logs kept in {chaos.keep_logs()}")
    assert down(chaos.cluster.name) is True
    found = traces(chaos.cluster.name, layout.octet, layout.run_dir)
    assert found == {k: [] for k in found}, found
