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
  or whose own configuration leaves it out, asks another live server whether it was
  removed: it was when that server, in touch with a leader, names it neither voter nor
  standby AND a linearizable read of its Node shows the label `worker` (the leader labels
  a Node `worker` only once a configuration without it is committed). Then it stops its
  Raft node, deletes its Raft data (log, snapshot, term and vote: nothing stale is kept,
  nothing can campaign with it), empties its copy of the state and works on as a worker.
  Restarted with an old log, a removed server finds this out the same way within seconds
  (the others ignore its votes meanwhile: it is no member of their committed
  configuration, and PreVote and CheckQuorum keep its campaigns from raising a term).
- It becomes a server again only as a new, empty standby, when the leader labels its
  Node `standby` (checked with a linearizable read, not the stale copy it held).
- A recovered server advertises the role its log gives it (voter, standby) only once it
  has heard from a leader since it started: until then it may be a removed one.
- Opening (recovering) storage runs on a worker thread: it may read a large log, and
  this process's Trio thread also runs gossip, whose probes time out in 80 ms.
- Peers are addressed by name; their addresses come from gossip metadata, so a member
  restarted at a new address is found again.
"""

from __future__ import annotations

import logging
import os
import json
import shutil
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from agent.agentd.config import AgentConfig, in_touch_with_leader
from agent.agentd.gossip_view import GossipView
from agent.agentd.notify import Changes
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
        self._heard_leader = False  # this Raft node has heard from a leader (or led) since it started
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
        voters, learners = self.membership()
        if self.node is not None and self._mode == RECOVER and not self._heard_leader:
            return "joining"  # perhaps a removed server's old log: wait for a leader's word
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
        self._heard_leader = False
        self._peer_addresses = {}
        self.removed = True
        self.removals += 1
        log.warning("%s event=raft_removed_stopped raft_dir_deleted=%s role=worker", self.config.name, raft_dir)
        self.changes.notify()

    # ----------------------------------------------------------------- removal
    async def _watch_removal(self, node: RaftNode, scope: trio.CancelScope) -> None:
        """Stop this server (cancelling `scope`) once the cluster says it was removed."""
        if self.peers is None:
            return
        name = self.config.name
        doubtful_checks = 0
        while True:
            await trio.sleep(REMOVAL_CHECK_S)
            conf = node.core.conf_state
            member = name in conf.voters or name in conf.learners
            if node.is_leader() or (member and in_touch_with_leader(node)):
                doubtful_checks = 0
                continue
            doubtful_checks += 1
            if doubtful_checks < 2 and member:
                continue  # out of touch for a moment only: an election, most likely
            if await self._cluster_removed_me():
                log.warning("%s event=raft_removed_by_cluster term=%d in_own_conf=%s", name, node.term, member)
                scope.cancel()
                return

    def _other_servers(self) -> list[str]:
        servers = self.gossip.servers()
        names = sorted((n for n in servers if n != self.config.name), key=lambda n: (servers[n].role != "voter", n))
        return [servers[n].api_address for n in names[:REMOVAL_ASK_SERVERS]]

    async def _cluster_removed_me(self) -> bool:
        name = self.config.name
        for address in self._other_servers():
            stub = self.peers.cluster(address)
            try:
                status = await unary(stub.Status, pb.StatusRequest(), timeout=self.config.rpc_timeout_s)
                if not status.leader or not status.voters:
                    continue  # that server knows no leader: ask another
                if name in status.voters or name in status.standbys:
                    return False
                label = await self._node_label(stub)
            except RpcError as exc:
                log.info("%s event=removal_check_failed server=%s code=%s", name, address, exc.code.name)
                continue
            return label == "worker"
        return False

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
            if not self._heard_leader and in_touch_with_leader(node):
                self._heard_leader = True
                seen = ()  # the role it advertises may change now
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
