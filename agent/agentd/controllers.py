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
- One Raft membership change at a time, awaited before the next pass; one the core
  refuses (a learner not caught up after all, say) is logged and planned again next pass.
- How long each member of the configuration has been down is kept here, in this leader's
  memory only: it is measured from when *this* leader first saw it down (dead or left in
  gossip, or absent once gossip has settled), and forgotten when it is seen up again or
  when this agent stops leading. A new leader starts counting afresh: replacing a dead
  server waits a little longer after a leader change, never less.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
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
from agent.control.members import MemberView
from agent.control.roles import RaftMembership, RolePlan, RoleTargets, is_down, plan_roles
from agent.raft.errors import ConfChangeRejected, NotLeader, RaftError
from agent.state import commands as cmd
from agent.state.machine import is_error
from agent.state.node import role_of
from agent.state.objects import meta_of

log = logging.getLogger("agent.agentd.control")

# A learner counts as caught up once it is within this many entries of the leader's log.
CAUGHT_UP_ENTRIES = 64


class ControlLoop:
    def __init__(self, config: AgentConfig, raft: RaftHost, gossip: GossipView, state_changes: Changes, *,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 new_uid: Callable[[], str] = lambda: str(uuid.uuid4())):
        self.config = config
        self.raft = raft
        self.gossip = gossip
        self.state_changes = state_changes
        self.clock = clock
        self.monotonic = monotonic
        self.new_uid = new_uid
        self.targets = RoleTargets(config.voters, config.standbys, config.replace_dead_server_after_s)
        self.scheduler_config = SchedulerConfig(scoring_strategy=ScoringStrategy(config.scheduler_scoring))
        self.passes = 0
        self.commands_proposed = 0
        self._announced_term: int | None = None  # the term whose LeaderElected event this leader wrote
        self.down_since: dict[str, float] = {}  # member of the configuration -> when first seen down

    async def run(self) -> None:
        seen = -1
        while True:
            if not self.raft.is_leader():
                seen = await self.raft.changes.wait(seen)
                continue
            log.info("%s event=control_loop_leading term=%d", self.config.name, self.raft.node.term)
            self._announced_term = None
            self.down_since = {}
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
        core = node.core
        membership = RaftMembership(voters, learners, self._caught_up(learners),
                                    change_pending=core.conf_index > core.commit_index)
        mono = self.monotonic()
        self._note_down(voters + learners, members, mono)
        plan = plan_roles(membership, members, roles, self.targets, now=mono, down_since=self.down_since)
        await self._propose([cmd.set_node_role(name, role, now) for name, role in plan.labels])
        await self._change_membership(plan)

    def _note_down(self, in_conf: tuple[str, ...], members: Mapping[str, MemberView], now: float) -> None:
        settled = self.gossip.settled()
        for name in in_conf:
            if name in members and not is_down(name, members):
                self.down_since.pop(name, None)
            elif (name in members or settled) and name not in self.down_since:
                self.down_since[name] = now
                log.info("%s event=server_down member=%s", self.config.name, name)
        for name in [n for n in self.down_since if n not in in_conf]:
            del self.down_since[name]

    async def _change_membership(self, plan: RolePlan) -> None:
        node = self.raft.node
        if node is None:
            raise NotLeader(None)
        for kind, member, call in (("add_learner", plan.add_learner, node.add_learner),
                                   ("promote", plan.promote, node.promote),
                                   ("remove", plan.remove, node.remove)):
            if member is None:
                continue
            log.info("%s event=raft_%s member=%s notes=%r", self.config.name, kind, member, ";".join(plan.notes))
            try:
                await call(member)
            except ConfChangeRejected as exc:  # planned again next pass, from the state then
                log.warning("%s event=raft_%s_refused member=%s error=%r", self.config.name, kind, member, str(exc))
                return
            said = {"add_learner": ("Normal", "ServerAdded", f"{member} joined the Raft configuration as a standby"),
                    "promote": ("Normal", "ServerPromoted", f"{member} promoted from standby to voter"),
                    "remove": ("Warning", "ServerRemoved", f"{member} removed from the Raft configuration: down "
                                                           f"longer than {self.config.replace_dead_server_after_s:g}s"
                               if member in self.down_since else f"{member} removed from the Raft configuration")}
            event_type, reason, message = said[kind]
            if self.raft.state.get("Node", "", member) is not None:
                await self._propose([cmd.record_events([("Node", "", member, event_type, reason, message, "agentd")],
                                                       self.clock())])
            return

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
