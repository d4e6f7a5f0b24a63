"""This agent's Raft server, when it is one: its storage, node and transport.

Owns: starting Raft in one of three ways (recover what the data dir holds; bootstrap the
first configuration; join as an empty node the leader will add), keeping the transport's
peer addresses in step with the configuration and gossip, the RaftService handler (which
answers UNAVAILABLE while this agent is not a server), and `changes`, bumped whenever the
role, leader, term or configuration moves.

Rules it keeps:
- An agent starts Raft at most once per process; a data dir that holds Raft state is
  always recovered, never bootstrapped again.
- Opening (recovering) storage runs on a worker thread: it may read a large log, and
  this process's Trio thread also runs gossip, whose probes time out in 80 ms.
- Peers are addressed by name; their addresses come from gossip metadata, so a member
  restarted at a new address is found again.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import trio

from agent.agentd.config import AgentConfig
from agent.agentd.gossip_view import GossipView
from agent.agentd.notify import Changes
from agent.grpcbridge.errors import Unavailable
from agent.raft.messages import Message
from agent.raft.config import RaftConfig
from agent.raft.node import NodeConfig, RaftNode, bootstrap_storage
from agent.raft.storage import RaftStorage, StorageConfig
from agent.raft.transport import RaftServicer, RaftTransport, TransportConfig
from agent.state.machine import ClusterState

log = logging.getLogger("agent.agentd.raft")

RECOVER, BOOTSTRAP, JOIN = "recover", "bootstrap", "join"
# Role, leader and term changes wake the follower at once (RaftNode.wait_status_change);
# configuration and gossip address changes are compared at least this often.
CONFIG_POLL_S = 0.1


class RaftHost:
    def __init__(self, config: AgentConfig, state: ClusterState, gossip: GossipView) -> None:
        self.config = config
        self.state = state
        self.gossip = gossip
        self.node: RaftNode | None = None
        self.transport: RaftTransport | None = None
        self.changes = Changes()
        self.transport_stats: Counter[str] = Counter()
        self.servicer = RaftServicer(config.name, self._exchange, self.transport_stats, TransportConfig())
        self._start = trio.Event()
        self._mode = ""
        self._voters: tuple[str, ...] = ()
        self._peer_addresses: dict[str, str] = {}

    # ----------------------------------------------------------------- facts
    def has_data(self) -> bool:
        """Does the data dir hold Raft state (this agent was a server before)?"""
        try:
            return any(os.scandir(self.config.raft_dir))
        except FileNotFoundError:
            return False

    @property
    def started(self) -> bool:
        return self._start.is_set()

    def is_leader(self) -> bool:
        return self.node is not None and self.node.is_leader()

    def leader_id(self) -> str | None:
        return self.node.leader_id if self.node is not None else None

    def membership(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(voters, learners) of the configuration this server knows; empty on a worker."""
        if self.node is None:
            return (), ()
        conf = self.node.core.conf_state
        return tuple(conf.voters), tuple(conf.learners)

    def role(self) -> str:
        voters, learners = self.membership()
        if self.config.name in voters:
            return "voter"
        if self.config.name in learners:
            return "standby"
        return "worker" if self.node is None else "joining"

    # ----------------------------------------------------------------- starting
    def start(self, mode: str, voters: Sequence[str] = ()) -> None:
        if self._start.is_set():
            return
        self._mode = mode
        self._voters = tuple(voters)
        self._start.set()

    async def _exchange(self, messages: list[Message], queued: Any = None) -> list[Message]:
        node = self.node
        if node is None:
            raise Unavailable(f"{self.config.name} is not a Raft server")
        return await node.exchange(messages, queued)

    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await self._start.wait()
        name = self.config.name
        os.makedirs(self.config.raft_dir, exist_ok=True)
        storage = await trio.to_thread.run_sync(RaftStorage.open, self.config.raft_dir, StorageConfig(node_id=name))
        try:
            if self._mode == BOOTSTRAP:
                if bootstrap_storage(storage, self._voters, ClusterState().snapshot()):
                    log.info("%s event=raft_bootstrapped voters=%s", name, ",".join(self._voters))
            transport = RaftTransport(name, {}, TransportConfig())
            transport.stats = self.transport_stats
            node = RaftNode(name, storage, self.state, transport.send, RaftConfig(), NodeConfig())
            transport.deliver = node.receive
            async with trio.open_nursery() as nursery:
                await nursery.start(transport.run)
                self.transport = transport
                await nursery.start(node.run)  # recovers storage off-thread; node.core exists after this
                self._sync_peers(node)
                self.node = node
                log.info("%s event=raft_started mode=%s term=%d applied=%d", name, self._mode, node.term,
                         self.state.applied_index)
                self.changes.notify()
                nursery.start_soon(self._follow, node)
        finally:
            self.node = None
            self.transport = None
            storage.close()
            self.changes.notify()

    # ----------------------------------------------------------------- following
    async def _follow(self, node: RaftNode) -> None:
        """Bump `changes` when the node's role, leader, term or configuration moves, and
        keep the transport's peers in step with the configuration and gossip."""
        seen: tuple[Any, ...] = ()
        gossip_seen = -1
        while True:
            soft = node.soft_state
            conf = node.core.conf_state
            now = (node.role, node.leader_id, node.term, tuple(conf.voters), tuple(conf.learners))
            if now != seen or self.gossip.changes.version != gossip_seen:
                gossip_seen = self.gossip.changes.version
                self._sync_peers(node)
                if now != seen:
                    seen = now
                    self.changes.notify()
            with trio.move_on_after(CONFIG_POLL_S):
                await node.wait_status_change(soft)

    def _sync_peers(self, node: RaftNode) -> None:
        transport = self.transport
        if transport is None:
            return
        conf = node.core.conf_state
        wanted = {}
        for member in (*conf.voters, *conf.learners):
            if member == self.config.name:
                continue
            address = self.gossip.api_address(member) or self._peer_addresses.get(member)
            if address:
                wanted[member] = address
        for member, address in wanted.items():
            if self._peer_addresses.get(member) != address:
                if member in self._peer_addresses:
                    transport.remove_peer(member)
                transport.add_peer(member, address)
                self._peer_addresses[member] = address
                log.info("%s event=raft_peer_added peer=%s address=%s", self.config.name, member, address)
        for member in [m for m in self._peer_addresses if m not in wanted]:
            transport.remove_peer(member)
            del self._peer_addresses[member]
