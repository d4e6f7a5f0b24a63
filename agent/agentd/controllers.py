"""The leader's control loop: runs the pure controllers and proposes what they decide.

Owns: the task that, while this agent leads, runs the node lifecycle controller, the
workload controllers, the scheduler and the roles controller on the current state and
gossip view, proposes their commands through Raft, and carries out Raft membership changes.

Rules it keeps:
- Only the leader acts, and it rebuilds everything from the replicated state and its own
  gossip each pass: nothing lives only in this process's memory, so a new leader simply
  starts running passes.
- A pass runs when something may have changed: an entry applied, a gossip event, a Raft
  role or leader change, or at the latest every `control_interval_s`. Passes never
  overlap; each proposes its commands and waits for them to apply before the next pass
  reads the state, so no pass acts on a state its own previous writes have not reached.
- Lifecycle first (a dead node's Pods become pending), then the workload controllers
  (Deployments and ReplicaSets: replacements, rollouts, scaling), then the scheduler (which
  places every pending Pod) in the same pass, then roles: a dead node's Pods are Running
  elsewhere as soon as the survivors can start them. Before all of it, a leader whose own
  Node is cordoned hands leadership to another voter (control/handoff.py), so that a
  failing step later in the pass (a refused membership change) never holds it back.
  With `rebalance` on, after the scheduler, one Pod per uneven Deployment is evicted
  (control/rebalance.py).
- One Raft membership change at a time, awaited before the next pass.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import trio

from agent.agentd.config import AgentConfig
from agent.agentd.gossip_view import GossipView
from agent.agentd.notify import Changes, wait_any
from agent.agentd.raft_host import RaftHost
from agent.control.handoff import handoff_target
from agent.control.node_lifecycle import reconcile_nodes
from agent.control.rebalance import plan_rebalance
from agent.control.placement import SchedulerConfig, ScoringStrategy
from agent.control.scheduling import plan_placements
from agent.control.workloads import plan_workloads
from agent.control.roles import RaftMembership, RoleTargets, plan_roles
from agent.raft.errors import NotLeader, RaftError
from agent.state import commands as cmd
from agent.state.machine import is_error
from agent.state.node import role_of
from agent.state.objects import meta_of

log = logging.getLogger("agent.agentd.control")

# A learner counts as caught up once it is within this many entries of the leader's log.
CAUGHT_UP_ENTRIES = 64


class ControlLoop:
    def __init__(self, config: AgentConfig, raft: RaftHost, gossip: GossipView, state_changes: Changes, *,
                 clock: Callable[[], float] = time.time, new_uid: Callable[[], str] = lambda: str(uuid.uuid4())):
        self.config = config
        self.raft = raft
        self.gossip = gossip
        self.state_changes = state_changes
        self.clock = clock
        self.new_uid = new_uid
        self.targets = RoleTargets(config.voters, config.standbys)
        self.scheduler_config = SchedulerConfig(scoring_strategy=ScoringStrategy(config.scheduler_scoring))
        self.passes = 0
        self.commands_proposed = 0
        self._announced_term: int | None = None  # the term whose LeaderElected event this leader wrote

    async def run(self) -> None:
        seen = -1
        while True:
            if not self.raft.is_leader():
                seen = await self.raft.changes.wait(seen)
                continue
            log.info("%s event=control_loop_leading term=%d", self.config.name, self.raft.node.term)
            self._announced_term = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._lead)
                while self.raft.is_leader():
                    seen = await self.raft.changes.wait(seen)
                nursery.cancel_scope.cancel()
            log.info("%s event=control_loop_stopped", self.config.name)

    async def _lead(self) -> None:
        while True:
            watched = [(self.state_changes, self.state_changes.version),
                       (self.gossip.changes, self.gossip.changes.version),
                       (self.raft.changes, self.raft.changes.version)]
            try:
                await self._pass()
            except NotLeader as exc:
                log.info("%s event=control_pass_interrupted error=%r", self.config.name, str(exc))
                return
            except RaftError as exc:
                # A refused membership change (a learner not caught up yet) or a proposal
                # that timed out: this leader still leads, and the next pass tries again.
                log.info("%s event=control_pass_failed error=%r", self.config.name, str(exc))
            await wait_any(watched, timeout_s=self.config.control_interval_s)

    async def _pass(self) -> None:
        self.passes += 1
        node = self.raft.node
        if node is None or not node.is_leader():
            return
        state = self.raft.state
        members = self.gossip.views()
        now = self.clock()
        if self._announced_term != node.term and state.get("Node", "", self.config.name) is not None:
            await self._propose([cmd.record_events([(
                "Node", "", self.config.name, "Normal", "LeaderElected",
                f"{self.config.name} became the leader in term {node.term}", "agentd")], now)])
            self._announced_term = node.term
        await self._hand_off(state, self.raft.membership()[0])
        lifecycle = reconcile_nodes(state, members, now=now, settled=self.gossip.settled(), new_uid=self.new_uid)
        await self._propose(lifecycle)
        await self._propose(plan_workloads(state, now=now, new_uid=self.new_uid))
        await self._propose(plan_placements(state, now=now, config=self.scheduler_config))
        if self.config.rebalance:
            await self._propose(plan_rebalance(state, now=now))
        voters, learners = self.raft.membership()
        roles = {meta_of(doc)["name"]: role_of(doc) for doc in state.list("Node")}
        plan = plan_roles(RaftMembership(voters, learners, self._caught_up(learners)), members, roles, self.targets)
        await self._propose([cmd.set_node_role(name, role, now) for name, role in plan.labels])
        if plan.add_learner:
            log.info("%s event=raft_add_learner member=%s", self.config.name, plan.add_learner)
            await node.add_learner(plan.add_learner)
        elif plan.promote:
            log.info("%s event=raft_promote member=%s", self.config.name, plan.promote)
            await node.promote(plan.promote)

    async def _hand_off(self, state: Any, voters: tuple[str, ...]) -> None:
        """A leader whose own Node is cordoned hands leadership to another voter (handoff.py)."""
        nodes = {meta_of(doc)["name"]: doc for doc in state.list("Node")}
        target = handoff_target(self.config.name, nodes, voters, self._caught_up(voters))
        node = self.raft.node
        if target is None or node is None:
            return
        log.info("%s event=leadership_handoff target=%s reason=cordoned", self.config.name, target)
        await node.transfer_leadership(target)

    def _caught_up(self, learners: tuple[str, ...]) -> frozenset[str]:
        node = self.raft.node
        if node is None:
            return frozenset()
        last = node.core.last_index()
        progress = node.core.progress_match
        out = set()
        for name in learners:
            match = progress(name)
            if match is not None and last - match <= CAUGHT_UP_ENTRIES:
                out.add(name)
        return frozenset(out)

    async def _propose(self, commands: list[bytes]) -> None:
        if not commands:
            return
        node = self.raft.node
        if node is None:
            raise NotLeader(None)
        results = await node.propose_many(commands)
        self.commands_proposed += len(commands)
        for data, result in zip(commands, results):
            if is_error(result):
                log.warning("%s event=control_command_refused op=%s error=%s message=%r", self.config.name,
                            cmd.decode(data).op, result["error"], result["message"][:300])
