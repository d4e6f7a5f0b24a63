"""This agent's gossip: its own advertised metadata, and the members as the rest of agentd
needs them.

Owns: the running GossipNode's metadata (encode, update on a role change), reading the
member list as `(state, AgentMeta)` pairs and as the controllers' MemberViews, and the
`changes` counter that every member event bumps.

Rules it keeps: metadata from peers is decoded defensively (a member whose metadata is not
an agent's is a stranger); our own metadata is re-published only when it changes; the
membership is "settled" once gossip has run for `gossip_settle_s` (the leader then trusts
that a member it has never heard of is really missing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from agent.agentd import metadata
from agent.agentd.metadata import AgentMeta
from agent.agentd.notify import Changes
from agent.control.members import MemberView
from agent.gossip.driver import GossipNode
from agent.gossip.messages import MemberState

log = logging.getLogger("agent.agentd.gossip")

_STATES = {MemberState.ALIVE: "alive", MemberState.SUSPECT: "suspect", MemberState.DEAD: "dead",
           MemberState.LEFT: "left"}


class GossipView:
    def __init__(self, node: GossipNode, own: AgentMeta, *, settle_s: float) -> None:
        self.node = node
        self.own = own
        self.changes = Changes()
        self._settle_s = settle_s
        self._started_at: float | None = None

    @property
    def name(self) -> str:
        return self.node.name

    def encoded_own(self) -> bytes:
        return metadata.encode(self.own, max_bytes=self.node.config.max_meta_bytes)

    def publish(self, own: AgentMeta) -> None:
        """Advertise new metadata (a role change, say), if it differs."""
        if own == self.own:
            return
        self.own = own
        self.node.set_meta(self.encoded_own())
        log.info("%s event=gossip_meta_updated role=%s formed=%s", self.name, own.role, own.formed)
        self.changes.notify()

    def settled(self) -> bool:
        return self._started_at is not None and trio.current_time() - self._started_at >= self._settle_s

    def members(self) -> dict[str, tuple[str, AgentMeta | None]]:
        """Every member this agent knows of (itself included): name -> (state, metadata)."""
        out: dict[str, tuple[str, AgentMeta | None]] = {}
        if self.node.core is None:
            return out
        for record in self.node.members():
            out[record.name] = (_STATES.get(record.state, "dead"), metadata.decode(record.meta))
        out[self.name] = ("alive", self.own)
        return out

    def addresses(self) -> dict[str, tuple[str, int]]:
        """Every member's gossip address ("host:port") and incarnation, by name (itself included)."""
        if self.node.core is None:
            return {}
        out = {r.name: (f"{r.addr[0]}:{r.addr[1]}", r.incarnation) for r in self.node.members()}
        out[self.name] = (f"{self.node.addr[0]}:{self.node.addr[1]}", self.node.core.incarnation)
        return out

    def alive(self) -> dict[str, AgentMeta]:
        """Members not declared gone (alive or suspect) whose metadata is an agent's."""
        return {n: m for n, (s, m) in self.members().items() if m is not None and s in ("alive", "suspect")}

    def servers(self) -> dict[str, AgentMeta]:
        """Live members that hold the Raft log (voters and standbys), by name."""
        return {n: m for n, m in self.alive().items() if m.is_server}

    def api_address(self, name: str) -> str | None:
        entry = self.members().get(name)
        return entry[1].api_address if entry and entry[1] is not None else None

    def views(self) -> Mapping[str, MemberView]:
        out = {}
        for name, (state, meta) in self.members().items():
            if meta is None:
                out[name] = MemberView(name, state)
            else:
                out[name] = MemberView(name, state, meta.node_facts(), meta.role, meta.server_eligible,
                                       dict(meta.labels))
        return out

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the node's member events (bumping `changes`) until cancelled."""
        self._started_at = trio.current_time()
        task_status.started()
        async for event in self.node.events:
            log.info("%s event=member_%s member=%s incarnation=%d", self.name, event.kind.value, event.name,
                     event.incarnation)
            self.changes.notify()
