"""The leader's control loop keeps running its passes after a pass fails for a reason
other than losing the leadership (a refused membership change, a timed-out proposal)."""

from __future__ import annotations

from types import SimpleNamespace

import trio

from agent.agentd.controllers import ControlLoop
from agent.agentd.notify import Changes
from agent.raft.errors import NotLeader, RaftError


def loop_with(failures: list[BaseException]) -> tuple[ControlLoop, list[int]]:
    config = SimpleNamespace(voters=3, standbys=2, scheduler_scoring="LeastAllocated", control_interval_s=0.01,
                             replace_dead_server_after_s=30.0,
                             name="n1")
    raft = SimpleNamespace(changes=Changes())
    gossip = SimpleNamespace(changes=Changes())
    loop = ControlLoop(config, raft, gossip, Changes())  # type: ignore[arg-type]
    passes: list[int] = []

    async def fake_pass() -> None:
        passes.append(len(passes))
        if failures:
            raise failures.pop(0)

    loop._pass = fake_pass  # type: ignore[method-assign]
    return loop, passes


async def test_a_failed_membership_change_does_not_stop_the_passes():
    loop, passes = loop_with([RaftError("n4 has not caught up"), RaftError("proposal timed out")])
    with trio.move_on_after(0.5):
        await loop._lead()
    assert len(passes) > 3  # went on passing after both failures


async def test_losing_the_leadership_ends_the_passes():
    loop, passes = loop_with([NotLeader(None)])
    with trio.fail_after(1):
        await loop._lead()
    assert passes == [0]
