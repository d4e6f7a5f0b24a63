"""This agent's Raft server, when it is one: its storage, node and transport.

Owns: starting Raft in one of three ways (recover what the data dir holds; bootstrap the
first configuration; join as an empty node the leader will add), keeping the transport's
peer addresses in step with the configuration and gossip, the RaftService handler (which
answers UNAVAILABLE while this agent is not a server), `changes`, bumped whenever the
role, leader, term or configuration moves, and stepping down for good when the cluster
removed this server from its configuration.

Rules it keeps:
- A data dir that holds Raft state is always recovered, never bootstrapped again.
- A removed server does not linger. A server that has heard from no leader for a while,
  or whose own configuration leaves it out, asks the leader (found through another live
  server; the leader's own answer only) what it is. Its Raft data is a removed member's,
  or stale, when the leader names it nowhere, or a standby while its own log says voter,
  and a linearizable read of its Node does not say `voter` (the leader labels a Node only
  from a committed configuration). Then it stops its Raft node, deletes its Raft data
  (log, snapshot, term and vote: nothing stale is kept, nothing can campaign with it),
  empties its copy of the state and works on as a worker. Meanwhile the others ignore
  it: it is no member of their committed configuration, and PreVote and CheckQuorum
  keep its campaigns from raising a term (tests/unit/test_roles_replacement.py).
- It becomes a server again only as a new, empty standby, when the leader labels its
  Node `standby` (checked with a linearizable read, not the stale copy it held).
- A recovered server advertises no role (`joining`) until the leader has named it with
  the role its own log gives it (or it leads): restarted after it was replaced, it asks
  at once and never shows itself as a voter.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from agent.agentd.config import AgentConfig, in_touch_with_leader
from agent.agentd.gossip_view import GossipView
from agent.agentd.notify import Changes
from agent.control.roles import MEMBER, STALE, WAIT, own_raft_data_verdict
from agent.grpcbridge import unary
from agent.grpcbridge.errors import RpcError, Unavailable
from agent.raft.messages import Message
from agent.raft.config import RaftConfig
from agent.raft.node import NodeConfig, RaftNode, bootstrap_storage
from agent.raft.storage import RaftStorage, StorageConfig
from agent.raft.transport import RaftServicer, RaftTransport, TransportConfig
from agent.rpc import cluster_pb2 as pb
from agent.state.machine import ClusterState
from agent.state.node import ROLE_LABEL

if TYPE_CHECKING:
    from agent.agentd.peers import Peers

log = logging.getLogger("agent.agentd.raft")

RECOVER, BOOTSTRAP, JOIN = "recover", "bootstrap", "join"
# Role, leader and term changes wake the follower at once (RaftNode.wait_status_change);
# configuration and gossip address changes are compared at least this often.
CONFIG_POLL_S = 0.1
# A server out of touch with every leader (or outside its own configuration) for this
# long asks whether it was removed, and again as often while it stays so: a few election
# timeouts, so an election or a restart settles first.
REMOVAL_CHECK_S = 2.0
# A recovered server asks this often until the leader has confirmed its role.
CONFIRM_CHECK_S = 0.5
# Servers asked, in turn, per check.
REMOVAL_ASK_SERVERS = 3


class RaftHost:
    def __init__(self, config: AgentConfig, state: ClusterState, gossip: GossipView,
                 peers: Peers | None = None) -> None:
        self.config = config
        self.state = state
        self.gossip = gossip
        self.peers = peers  # to ask other servers whether this one was removed (None: never asks)
        self.node: RaftNode | None = None
        self.transport: RaftTransport | None = None
        self.changes = Changes()
        self.transport_stats: Counter[str] = Counter()
        self.servicer = RaftServicer(config.name, self._exchange, self.transport_stats, TransportConfig())
        self._start = trio.Event()
        self._mode = ""
        self._voters: tuple[str, ...] = ()
        self._peer_addresses: dict[str, str] = {}
        # The leader named this server with the role its own log gives it (or it leads):
        # until then a recovered server advertises no role, its log may be a removed one's.
        self._confirmed = False
        self.removed = False  # this agent was removed from the configuration since the process started
        self.removals = 0

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
        if self.node is None:
            return "joining" if self._start.is_set() else "worker"  # starting: not yet known
        if self._mode == RECOVER and not self._confirmed:
            return "joining"  # perhaps a removed server's old log: wait for the leader's word
        voters, learners = self.membership()
        if self.config.name in voters:
            return "voter"
        if self.config.name in learners:
            return "standby"
        return "joining"

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
        while True:
            await self._start.wait()
            if self._mode == JOIN and self.removed and await self._own_label() != "standby":
                # The label that asked for it came from the copy of the state kept while
                # this agent was a server, not from the cluster: not yet.
                self._start = trio.Event()
                await trio.sleep(0.5)
                continue
            await self._serve()
            await self._forget()

    async def _serve(self) -> None:
        """Run the Raft node until this server learns it was removed (then return)."""
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
                nursery.start_soon(self._watch_removal, node, nursery.cancel_scope)
        finally:
            self.node = None
            self.transport = None
            storage.close()
            self.changes.notify()

    async def _forget(self) -> None:
        """After a removal: no Raft data, an empty state, ready to be started again (JOIN)."""
        raft_dir = self.config.raft_dir
        await trio.to_thread.run_sync(lambda: shutil.rmtree(raft_dir, ignore_errors=True))
        self.state.restore(ClusterState().snapshot())
        self._start = trio.Event()
        self._mode = ""
        self._confirmed = False
        self._peer_addresses = {}
        self.removed = True
        self.removals += 1
        log.warning("%s event=raft_removed_stopped raft_dir_deleted=%s role=worker", self.config.name, raft_dir)
        self.changes.notify()

    # ----------------------------------------------------------------- removal
    async def _watch_removal(self, node: RaftNode, scope: trio.CancelScope) -> None:
        """Stop this server (cancelling `scope`) once the cluster says it was removed."""
        if self.peers is None:
            self._confirm()
            return
        name = self.config.name
        doubtful_checks = 0
        while True:
            await trio.sleep(REMOVAL_CHECK_S if self._confirmed else CONFIRM_CHECK_S)
            if node.is_leader():
                self._confirm()
                doubtful_checks = 0
                continue
            conf = node.core.conf_state
            mine = "voter" if name in conf.voters else "standby" if name in conf.learners else ""
            if self._confirmed:
                if mine and in_touch_with_leader(node):
                    doubtful_checks = 0
                    continue
                doubtful_checks += 1
                if mine and doubtful_checks < 2:
                    continue  # out of touch for a moment only: an election, most likely
            verdict = await self._ask_leader(mine)
            if verdict == MEMBER:
                self._confirm()
            elif verdict == STALE:
                log.warning("%s event=raft_removed_by_cluster term=%d own_conf_role=%s", name, node.term,
                            mine or "none")
                scope.cancel()
                return

    def _confirm(self) -> None:
        if not self._confirmed:
            self._confirmed = True
            self.changes.notify()  # the role it advertises may change now

    def _other_servers(self) -> list[str]:
        servers = self.gossip.servers()
        names = sorted((n for n in servers if n != self.config.name), key=lambda n: (servers[n].role != "voter", n))
        return [servers[n].api_address for n in names[:REMOVAL_ASK_SERVERS]]

    async def _ask_leader(self, mine: str) -> str | None:
        """What the leader says of this server, against `mine`, the role its own log gives
        it (roles.own_raft_data_verdict): MEMBER, STALE (this server's Raft data is a
        removed member's: delete it), or None (no leader answered, or nothing to do yet)."""
        name = self.config.name
        for address in self._other_servers():
            try:
                seen = await unary(self.peers.cluster(address).Status, pb.StatusRequest(),
                                   timeout=self.config.rpc_timeout_s)
                leader_address = self.gossip.api_address(seen.leader) if seen.leader else None
                if not leader_address or seen.leader == name:
                    continue
                stub = self.peers.cluster(leader_address)
                status = await unary(stub.Status, pb.StatusRequest(), timeout=self.config.rpc_timeout_s)
                if status.answered_by != status.leader:
                    continue  # no longer the leader: ask again later
                theirs = "voter" if name in status.voters else "standby" if name in status.standbys else ""
                label = None
                if own_raft_data_verdict(mine, theirs, "worker") != own_raft_data_verdict(mine, theirs, "voter"):
                    label = await self._node_label(stub)  # only when it decides
                verdict = own_raft_data_verdict(mine, theirs, label)
            except RpcError as exc:
                log.info("%s event=removal_check_failed server=%s code=%s", name, address, exc.code.name)
                continue
            return None if verdict == WAIT else verdict
        return None

    async def _own_label(self) -> str | None:
        """This agent's Node role label, by a linearizable read through another server."""
        for address in self._other_servers():
            try:
                return await self._node_label(self.peers.cluster(address))
            except RpcError:
                continue
        return None

    async def _node_label(self, stub: Any) -> str:
        reply = await unary(stub.Get, pb.GetRequest(kind="Node", name=self.config.name),
                            timeout=self.config.rpc_timeout_s)
        doc = json.loads(reply.object_json)
        return ((doc.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL, "")

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
