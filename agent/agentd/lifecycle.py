"""This agent's part in the cluster: recover, bootstrap, or join; and the role it advertises.

Owns: the start-up decision (a data dir with Raft state is recovered as the server it was;
otherwise, with `--bootstrap-expect`, the first voters are chosen from gossip; otherwise
the agent is a worker), starting an empty Raft node when the leader labels this agent's
Node a standby, and publishing the agent's current role in its gossip metadata.

Rules it keeps: the bootstrap choice must stay the same for `bootstrap_settle_s` before it
is acted on (see agentd/bootstrap.py); an agent never bootstraps beside a formed cluster;
the role advertised is what Raft's configuration says (voter, standby), or worker.
"""

from __future__ import annotations

import logging

import trio

from agent.agentd.assignments import ClusterAssignments
from agent.agentd.bootstrap import first_voters
from agent.agentd.config import AgentConfig
from agent.agentd.gossip_view import GossipView
from agent.agentd.notify import wait_any
from agent.agentd.raft_host import BOOTSTRAP, JOIN, RECOVER, RaftHost

log = logging.getLogger("agent.agentd.lifecycle")


class AgentLifecycle:
    def __init__(self, config: AgentConfig, raft: RaftHost, gossip: GossipView,
                 assignments: ClusterAssignments) -> None:
        self.config = config
        self.raft = raft
        self.gossip = gossip
        self.assignments = assignments
        self._formed = False

    async def run(self) -> None:
        name = self.config.name
        if self.raft.has_data():
            log.info("%s event=raft_recovering dir=%s", name, self.config.raft_dir)
            self.raft.start(RECOVER)
        elif self.config.bootstrap_expect > 0:
            await self._bootstrap()
        elif not self.config.join:
            log.warning("%s event=no_cluster_to_join hint=%r", name,
                        "start with --bootstrap-expect N (and --join peers) to form a cluster, "
                        "or --join an existing member")
        await self._advertise()

    async def _bootstrap(self) -> None:
        name, expect = self.config.name, self.config.bootstrap_expect
        decided: tuple[str, ...] | None = None
        decided_at = trio.current_time()
        log.info("%s event=bootstrap_waiting expect=%d", name, expect)
        while True:
            alive = {n: m for n, (state, m) in self.gossip.members().items() if state == "alive" and m is not None}
            choice = first_voters(name, expect, alive)
            if choice is None and any(m.formed for n, m in alive.items() if n != name):
                log.info("%s event=bootstrap_skipped reason=formed_cluster_seen", name)
                return
            now = trio.current_time()
            if choice != decided:
                decided, decided_at = choice, now
            elif choice is not None and now - decided_at >= self.config.bootstrap_settle_s:
                if name in choice:
                    log.info("%s event=bootstrap_decided voters=%s", name, ",".join(choice))
                    self.raft.start(BOOTSTRAP, choice)
                else:
                    log.info("%s event=bootstrap_not_a_first_voter voters=%s", name, ",".join(choice))
                return
            with trio.move_on_after(0.2):
                await self.gossip.changes.wait(self.gossip.changes.version)

    async def _advertise(self) -> None:
        """Keep the advertised role current; start Raft when the leader makes us a standby."""
        while True:
            raft_seen, assignments_seen = self.raft.changes.version, self.assignments.changes.version
            label = self.assignments.role_label()
            if not self.raft.started and label in ("standby", "voter"):
                log.info("%s event=raft_joining label=%s", self.config.name, label)
                self.raft.start(JOIN)
            if self.raft.started:
                role = self.raft.role()
                self._formed = self._formed or self.raft.leader_id() is not None
            else:
                role = "worker" if self.assignments.synced.is_set() else "joining"
                self._formed = self._formed or self.assignments.synced.is_set()
            self.gossip.publish(self.gossip.own.with_role(role, formed=self._formed))
            await wait_any([(self.raft.changes, raft_seen), (self.assignments.changes, assignments_seen)],
                           timeout_s=1.0)
