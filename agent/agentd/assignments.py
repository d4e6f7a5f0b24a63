"""The Pods the cluster places on this node: the runtime's desired set, from the state.

Owns: following "what concerns this node" (the Pods whose spec.nodeName is this node,
and this node's own Node object) from this agent's own copy of the state when it is a
server, or through a Watch stream from a server when it is a worker (list, then watch,
resuming from the last resourceVersion seen, failing over to another server); turning
those documents into the runtime's Pods; and fencing.

Rules it keeps:
- Nothing is handed to the runtime before the feed is synced (a worker: a fresh list
  from a server that caught up with a read index; a server: its own copy caught up with
  a read index). The runtime stops orphaned containers only after its first desired set,
  so a restarted agent whose view is behind never stops Pods it should keep.
- A worker made a server keeps its watch until its own copy has caught up (a read
  index), then follows the copy, handing the runtime the copy's set at once: the
  switch never leaves a gap in which a placement goes unseen.
- A Pod runs only where the current state says: a Pod that leaves this node (placed
  elsewhere, deleted) leaves the desired set, and the runtime stops it.
- Fencing: when this agent has been out of touch with a leader for `fence_after_s` (a
  worker whose watches bring no word of a leader, a server whose Raft knows none), it
  gives the runtime an empty cluster set: the leader has by then placed its Pods on
  other nodes, and two copies must not run for longer than that. In touch again, the
  set comes back from the state. Static Pods (a manifest directory) are never fenced.
- A Pod the control plane marked Failed because its node was lost is not run again
  here, even if this node comes back: it must not run twice.
- The ConfigMaps and Secrets the runtime reads (env, config volumes) are followed with
  the Pods into `objects`: a server takes every one from its own copy (it holds them
  all anyway); a worker's watch carries only those its Pods refer to (the server keeps
  that interest per watch, agent/state/node_interest.py), so a Secret no Pod here uses
  never reaches this node. Nothing here logs their contents.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import trio

from agent.agentd.config import WATCH_SILENCE_S, AgentConfig, in_touch_with_leader
from agent.agentd.gossip_view import GossipView
from agent.agentd.notify import Changes
from agent.agentd.peers import Peers
from agent.agentd.raft_host import RaftHost
from agent.grpcbridge import server_stream
from agent.grpcbridge.errors import RpcError
from agent.raft.errors import NotLeader, RaftError
from agent.raft.node import RaftNode
from agent.runtime.config_objects import ConfigObjects
from agent.rpc import cluster_pb2 as pb
from agent.state.history import Expired, events_for
from agent.state.machine import ClusterState, person_part
from agent.state.objects import meta_of
from agent.state.pod import ManifestError, Pod, parse_pod
from agent.state.pod_lifecycle import NODE_LOST_REASON, placement_epoch

log = logging.getLogger("agent.agentd.assignments")

CONFIG_KINDS = ("ConfigMap", "Secret")
# A read index asked of the leader is lost when it is sent before the transport knows the
# leader (a server that just joined applies the configuration naming it a moment before
# its transport adds the peer): ask again this soon rather than after an RPC timeout.
CATCH_UP_READ_S = 1.0
WATCH_RETRY_S = (0.05, 0.1, 0.2, 0.5, 1.0)  # backoff between watch attempts, by consecutive failures



class ClusterAssignments:
    def __init__(self, config: AgentConfig, raft: RaftHost, gossip: GossipView, peers: Peers,
                 state_changes: Changes, objects: ConfigObjects | None = None) -> None:
        self.config = config
        self.objects = objects if objects is not None else ConfigObjects()  # the runtime's ConfigMaps and Secrets
        self.raft = raft
        self.gossip = gossip
        self.peers = peers
        self.state_changes = state_changes
        self.changes = Changes()  # bumped when the desired set, the node or fencing changes
        self.pod_docs: dict[str, Mapping[str, Any]] = {}  # uid -> Pod document placed here
        self.node_doc: Mapping[str, Any] | None = None
        self.synced = trio.Event()
        self.fenced = False
        self.served_by = ""
        self._last_contact = trio.current_time()
        self._watch_version = 0  # the resourceVersion a worker's watch resumes from
        self._parsed: dict[str, tuple[tuple[Any, ...], Pod]] = {}

    # ----------------------------------------------------------------- reading
    def epoch_of(self, uid: str) -> int | None:
        doc = self.pod_docs.get(uid)
        return placement_epoch(doc) if doc is not None else None

    def role_label(self) -> str:
        if self.node_doc is None:
            return ""
        return (meta_of(self.node_doc).get("labels") or {}).get("agentd.io/role", "")

    def desired(self) -> dict[str, Pod]:
        """The runtime's Pods for the current documents (empty while fenced)."""
        if self.fenced:
            return {}
        out = {}
        for uid, doc in self.pod_docs.items():
            pod = self._pod(uid, doc)
            if pod is not None:
                out[uid] = pod
        return out

    def _pod(self, uid: str, doc: Mapping[str, Any]) -> Pod | None:
        status = doc.get("status") or {}
        if status.get("phase") == "Failed" and status.get("reason") == NODE_LOST_REASON:
            return None
        meta = meta_of(doc)
        key = (meta.get("generation"), placement_epoch(doc), json.dumps(meta.get("labels"), sort_keys=True),
               json.dumps(meta.get("annotations"), sort_keys=True), (doc.get("spec") or {}).get("nodeName"))
        cached = self._parsed.get(uid)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            pod = parse_pod(person_part(doc)).with_uid(uid)
        except ManifestError as exc:  # the state holds only admitted Pods; say so loudly if not
            log.error("%s event=assigned_pod_unparseable uid=%s error=%r", self.config.name, uid, str(exc))
            return None
        self._parsed[uid] = (key, pod)
        return pod

    # ----------------------------------------------------------------- the runtime's source
    async def desired_sets(self) -> AsyncIterator[Mapping[str, Pod]]:
        await self.synced.wait()
        seen = -1
        while True:
            seen = self.changes.version
            yield self.desired()
            await self.changes.wait(seen)

    # ----------------------------------------------------------------- following
    async def run(self, *, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_fencing)
            while True:
                if self.raft.node is not None:
                    await self._follow_local()
                else:
                    await self._follow_remote()

    def _replace(self, docs: list[Mapping[str, Any]]) -> None:
        self.pod_docs = {}
        self.node_doc = None
        self.objects.replace([d for d in docs if d.get("kind") in CONFIG_KINDS])
        for doc in docs:
            if doc.get("kind") not in CONFIG_KINDS:
                self._take(doc, deleted=False)
        self._parsed = {uid: v for uid, v in self._parsed.items() if uid in self.pod_docs}

    def _take(self, doc: Mapping[str, Any], *, deleted: bool) -> None:
        meta = meta_of(doc)
        if doc.get("kind") == "Node":
            self.node_doc = None if deleted else doc
            return
        if doc.get("kind") in CONFIG_KINDS:
            if deleted:
                self.objects.remove(doc["kind"], meta.get("namespace", ""), meta.get("name", ""))
            else:
                self.objects.put(doc)
            return
        uid = meta.get("uid", "")
        if deleted or (doc.get("spec") or {}).get("nodeName") != self.config.name:
            self.pod_docs.pop(uid, None)
            self._parsed.pop(uid, None)
        else:
            self.pod_docs[uid] = doc

    def _concerns_me(self, doc: Mapping[str, Any]) -> bool:
        kind = doc.get("kind")
        if kind == "Pod":
            return (doc.get("spec") or {}).get("nodeName") == self.config.name
        if kind in CONFIG_KINDS:
            return True  # a server's own copy: every ConfigMap and Secret (lookups read only what Pods name)
        return kind == "Node" and meta_of(doc).get("name") == self.config.name

    def _contact(self) -> None:
        self._last_contact = trio.current_time()
        if self.fenced:
            self.fenced = False
            log.warning("%s event=fence_lifted pods=%d", self.config.name, len(self.pod_docs))
            self.changes.notify()

    async def _follow_local(self) -> None:
        """A server: its own copy of the state, synced once it caught up with a read index."""
        node = self.raft.node
        assert node is not None
        state: ClusterState = self.raft.state
        if not await self._caught_up(node):
            return
        version = state.applied_index
        self._replace([d for d in (*state.list("Pod"), *state.list("Node"), *_config_docs(state)) if self._concerns_me(d)])
        self.changes.notify()
        log.info("%s event=assignments_following source=own-copy applied=%d pods=%d", self.config.name,
                 version, len(self.pod_docs))
        self._mark_synced("own copy")
        seen = -1
        while self.raft.node is node:
            if in_touch_with_leader(node):
                self._contact()
            try:
                changes = state.changes_since(version)
            except Expired:
                version = state.applied_index
                self._replace([d for d in (*state.list("Pod"), *state.list("Node"), *_config_docs(state)) if self._concerns_me(d)])
                self.changes.notify()
                continue
            version = max(version, state.applied_index)
            events = events_for(changes, self._concerns_me)
            for kind, doc in events:
                self._take(doc, deleted=kind == "DELETED")
            if events:
                self.changes.notify()
            with trio.move_on_after(0.5):  # re-check the leader now and then for fencing
                seen = await self.state_changes.wait(seen)

    async def _caught_up(self, node: RaftNode) -> bool:
        """Wait until `node`'s own copy has applied everything a leader had committed
        (a read index); False if this agent stops being that server first."""
        while self.raft.node is node:
            with trio.move_on_after(CATCH_UP_READ_S):
                try:
                    await node.read(lambda s: s.applied_index)
                    return True
                except (NotLeader, RaftError):
                    pass
            await trio.sleep(0.1)
        return False

    async def _follow_remote(self) -> None:
        """A worker: list then watch through a server, resuming, failing over."""
        self._watch_version = 0
        failures = 0
        while self.raft.node is None:
            servers = self.gossip.servers()
            names = sorted(servers, key=lambda n: (servers[n].role != "voter", n))
            if not names:
                await trio.sleep(WATCH_RETRY_S[min(failures, len(WATCH_RETRY_S) - 1)])
                failures += 1
                continue
            name = names[failures % len(names)]
            async with trio.open_nursery() as nursery:
                # Gossip declaring the server dead or gone ends the watch at once (SWIM
                # knows within ~1.5 s); silence ends it after WATCH_SILENCE_S.
                nursery.start_soon(self._abandon_when_gone, name, nursery.cancel_scope)
                # This agent made a server: the watch serves until its own copy caught up.
                nursery.start_soon(self._hand_over_when_own_copy_ready, nursery.cancel_scope)
                if await self._watch_server(name, servers[name].api_address):
                    failures = 0  # it served, then failed: the next server, without backing off
                nursery.cancel_scope.cancel()
            if self.raft.node is not None:
                return
            failures += 1
            await trio.sleep(WATCH_RETRY_S[min(failures - 1, len(WATCH_RETRY_S) - 1)])

    async def _watch_server(self, name: str, address: str) -> bool:
        """Follow one server's watch until it fails or falls silent (or the caller
        cancels it); True if it delivered at least one batch."""
        request = pb.WatchRequest(node=self.config.name, resource_version=self._watch_version)
        served = False
        try:
            with trio.move_on_after(WATCH_SILENCE_S) as idle:
                async with server_stream(self.peers.cluster(address).Watch, request, timeout=None) as batches:
                    async for batch in batches:
                        idle.deadline = trio.current_time() + WATCH_SILENCE_S
                        self._watch_version = self._on_batch(batch, name)
                        served = True
            if idle.cancelled_caught:
                log.warning("%s event=watch_silent server=%s", self.config.name, name)
        except RpcError as exc:
            if exc.code.name == "OUT_OF_RANGE":
                self._watch_version = 0  # too far behind the window: list again
            log.info("%s event=watch_failed server=%s code=%s detail=%r", self.config.name, name,
                     exc.code.name, exc.details[:200])
        return served

    async def _hand_over_when_own_copy_ready(self, scope: trio.CancelScope) -> None:
        seen = -1
        while True:
            node = self.raft.node
            if node is not None and await self._caught_up(node):
                scope.cancel()
                return
            seen = await self.raft.changes.wait(seen)

    async def _abandon_when_gone(self, server: str, scope: trio.CancelScope) -> None:
        seen = -1
        while server in self.gossip.servers():
            seen = await self.gossip.changes.wait(seen)
        log.warning("%s event=watch_server_gone server=%s", self.config.name, server)
        scope.cancel()

    def _on_batch(self, batch: pb.WatchBatch, server: str) -> int:
        if batch.leader_known:
            self._contact()
        docs = [(event.type, json.loads(event.object_json)) for event in batch.events]
        if batch.initial:
            self._replace([doc for _, doc in docs])
            self.changes.notify()
        elif docs:
            for kind, doc in docs:
                self._take(doc, deleted=kind == pb.WatchEvent.DELETED)
            self.changes.notify()
        if batch.synced:
            self._mark_synced(server)
        return batch.resource_version

    def _mark_synced(self, source: str) -> None:
        self.served_by = source
        if not self.synced.is_set():
            log.info("%s event=assignments_synced source=%s pods=%d", self.config.name, source, len(self.pod_docs))
            self.synced.set()
            self.changes.notify()

    async def _watch_fencing(self) -> None:
        while True:
            await trio.sleep(min(0.5, self.config.fence_after_s / 4))
            silent = trio.current_time() - self._last_contact
            if not self.fenced and silent >= self.config.fence_after_s:
                self.fenced = True
                log.warning("%s event=fenced silent_s=%.1f pods_stopped=%d", self.config.name, silent,
                            len(self.pod_docs))
                self.changes.notify()


def _config_docs(state: ClusterState) -> list[Mapping[str, Any]]:
    return [doc for kind in CONFIG_KINDS for doc in state.list(kind)]
