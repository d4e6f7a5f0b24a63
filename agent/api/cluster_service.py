"""ClusterService: the cluster's API, served by every agent (proto/agent/rpc/cluster.proto).

Owns: turning API calls into state-machine commands (stamped with the time and new uids
here, on the leader) and reads of the replicated state, forwarding what this agent cannot
answer itself, serving watches from the state's change window, and proxying logs to the
agent that runs the Pod.

Rules it keeps:
- Writes are proposed by the leader only. Any other agent forwards the call unchanged to
  the leader (a server knows it from Raft; a worker asks a server, which forwards again).
  A call is forwarded at most twice (`agentd-hops` metadata), so a confused view can never
  bounce a call around.
- Reads are linearizable unless the caller accepts stale data: a server runs a ReadIndex
  round (thesis §6.4) and answers from its own copy; a worker forwards to a server.
- A refused command is a gRPC status with the state machine's message: INVALID_ARGUMENT
  (field paths), NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION (stale resourceVersion,
  session), PERMISSION_DENIED; no leader or no quorum is UNAVAILABLE (retry).
- A watch first waits until this agent's copy has caught up with a read index, so its
  `synced` flag means what it says; it sends a bookmark at least every `bookmark_s` with
  whether this agent is in touch with a leader (workers fence on that).
- Nothing a client sends changes anything unless it is a valid command accepted by Raft.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import grpc
import trio

from agent.agentd.config import WATCH_SILENCE_S, AgentConfig, in_touch_with_leader
from agent.agentd.gossip_view import GossipView
from agent.agentd.peers import Peers
from agent.agentd.raft_host import RaftHost
from agent.grpcbridge import server_stream, unary
from agent.grpcbridge.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RpcError,
    Unavailable,
)
from agent.raft.errors import NotLeader, RaftError
from agent.rpc import cluster_pb2 as pb
from agent.rpc import node_pb2
from agent.state import commands as cmd
from agent.state.history import Expired, events_for
from agent.state.machine import ClusterState, is_error
from agent.state.node_interest import NodeInterest
from agent.state.objects import KINDS, kind_for, meta_of
from agent.state.selectors import FieldSelector, LabelSelector, SelectorError, parse_field_selector, \
    parse_label_selector

log = logging.getLogger("agent.api.cluster")
# How often a forwarded watch that is waiting checks that its server is still alive.
FORWARD_CHECK_S = 0.25
T = TypeVar("T")

HOPS_KEY = "agentd-hops"
MAX_HOPS = 2
MAX_DOCUMENT_BYTES = 3 * 1024 * 1024
WATCH_EVENT_TYPES = {"ADDED": pb.WatchEvent.ADDED, "MODIFIED": pb.WatchEvent.MODIFIED,
                     "DELETED": pb.WatchEvent.DELETED}


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


class LocalContext:
    """The context of a call made in-process by this agent's own parts (no metadata)."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


def _hops(context: Any) -> int:
    for key, value in context.invocation_metadata() or ():
        if key == HOPS_KEY:
            return int(value) if str(value).isdigit() else MAX_HOPS
    return 0


_ERRORS: dict[str, Callable[[str], RpcError]] = {
    "invalid": InvalidArgument,
    "malformed": InvalidArgument,
    "not_found": NotFound,
    "already_exists": AlreadyExists,
    "conflict": FailedPrecondition,
    "session_expired": FailedPrecondition,
    "stale_sequence": FailedPrecondition,
    "forbidden": lambda message: RpcError(grpc.StatusCode.PERMISSION_DENIED, message),
    "too_many_requests": lambda message: RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, message),
}


def raise_for(result: object) -> None:
    if is_error(result):
        code = result["error"]  # type: ignore[index]
        raise _ERRORS.get(code, InvalidArgument)(result["message"])  # type: ignore[index]


def _session(request_session: pb.Session) -> tuple[str, int] | None:
    if not request_session.client_id:
        return None
    if request_session.seq < 1:
        raise InvalidArgument("session.seq: must be >= 1")
    return request_session.client_id, request_session.seq


class ClusterServicer:
    """Async implementation of agent.rpc.cluster.ClusterService."""

    def __init__(self, config: AgentConfig, raft: RaftHost, gossip: GossipView, peers: Peers, *,
                 bookmark_s: float = 1.0, clock: Callable[[], float] = time.time,
                 new_uid: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.config = config
        self.raft = raft
        self.gossip = gossip
        self.peers = peers
        self.bookmark_s = bookmark_s
        self.clock = clock
        self.new_uid = new_uid
        self._server_turn = itertools.count()
        self.state_changes = trio.Event()

    @property
    def state(self) -> ClusterState:
        return self.raft.state

    def notify_state_change(self, _index: int) -> None:
        """The state machine applied a change (called from its on_change hook)."""
        self.state_changes.set()
        self.state_changes = trio.Event()

    # ================================================================== routing
    def _leader_address(self) -> str | None:
        leader = self.raft.leader_id()
        return self.gossip.api_address(leader) if leader else None

    def _server_addresses(self) -> list[str]:
        """Live servers' API addresses, voters first, rotated so that load spreads."""
        return [address for _, address in self._servers()]

    def _servers(self) -> list[tuple[str, str]]:
        """(name, API address) of the live servers other than this agent, voters first,
        rotated so that load spreads."""
        servers = self.gossip.servers()
        names = sorted(servers, key=lambda n: (servers[n].role != "voter", n))
        if not names:
            return []
        start = next(self._server_turn) % len(names)
        names = names[start:] + names[:start]
        return [(n, servers[n].api_address) for n in names if n != self.config.name]

    async def _forward_unary(self, method: str, request: Any, context: Any, *, to_leader: bool) -> Any:
        hops = _hops(context)
        if hops >= MAX_HOPS:
            raise Unavailable("no leader could be reached (the call was already forwarded); retry shortly")
        targets = []
        leader = self._leader_address() if self.raft.node is not None else None
        if leader and leader != self.config.api_address:
            targets = [leader]
        elif self.raft.node is not None and to_leader:
            raise Unavailable("this cluster has no leader right now (an election or a lost quorum); retry shortly")
        else:
            targets = self._server_addresses()
        if not targets:
            raise Unavailable("no server of the cluster is reachable from this agent; retry shortly")
        metadata = ((HOPS_KEY, str(hops + 1)),)
        last: RpcError | None = None
        for address in targets[:3]:
            stub = self.peers.cluster(address)
            try:
                return await unary(getattr(stub, method), request, timeout=self.config.rpc_timeout_s,
                                   metadata=metadata)
            except Unavailable as exc:
                last = exc
                continue
        raise Unavailable(f"no server answered: {last.details if last else 'none reachable'}")

    def _must_forward_write(self) -> bool:
        return not self.raft.is_leader()

    async def _propose(self, command: bytes) -> Any:
        node = self.raft.node
        if node is None or not node.is_leader():
            raise Unavailable("leadership moved while the request was in flight; retry")
        with trio.move_on_after(self.config.rpc_timeout_s):
            try:
                return await node.propose(command)
            except NotLeader:
                raise Unavailable("leadership moved before the write committed; its outcome is unknown, "
                                  "retry (with a session to make the retry safe)") from None
            except RaftError as exc:
                raise Unavailable(f"the write could not be proposed: {exc}") from None
        raise Unavailable("the write did not commit in time (no quorum?); its outcome is unknown")

    async def _read(self, request: Any, context: Any, method: str, query: Callable[[ClusterState], T],
                    stale_ok: bool) -> T:
        node = self.raft.node
        if node is None:
            return await self._forward_unary(method, request, context, to_leader=False)
        if stale_ok:
            return query(self.state)
        with trio.move_on_after(self.config.rpc_timeout_s):
            try:
                return await node.read(query)
            except NotLeader:
                pass
            except RaftError as exc:
                raise Unavailable(f"read failed: {exc}") from None
        raise Unavailable("no leader confirmed the read (an election or a lost quorum); retry shortly")

    # ================================================================== writes
    async def Apply(self, request: pb.ApplyRequest, context: Any) -> pb.ApplyResponse:
        docs = []
        for i, raw in enumerate(request.documents):
            if len(raw) > MAX_DOCUMENT_BYTES:
                raise InvalidArgument(f"document {i + 1}: larger than {MAX_DOCUMENT_BYTES} bytes")
            try:
                docs.append(json.loads(raw))
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidArgument(f"document {i + 1}: not JSON ({exc})") from None
        if not docs:
            raise InvalidArgument("documents: nothing to apply")
        session = _session(request.session)
        if request.dry_run:
            def plan(state: ClusterState) -> Any:
                return state.plan_apply(docs, create_only=request.create_only)

            plans = await self._read(request, context, "Apply", plan, stale_ok=False)
            if isinstance(plans, pb.ApplyResponse):  # forwarded
                return plans
            raise_for(plans)
            return pb.ApplyResponse(results=[
                pb.ApplyResult(kind=p.admitted.kind.name, namespace=p.admitted.namespace, name=p.admitted.name,
                               action=p.action, object_json=_json(p.doc)) for p in plans])
        if self._must_forward_write():
            return await self._forward_unary("Apply", request, context, to_leader=True)
        command = cmd.apply_objects(docs, [self.new_uid() for _ in docs], self.clock(),
                                    create_only=request.create_only, session=session)
        result = await self._propose(command)
        raise_for(result)
        return pb.ApplyResponse(
            results=[pb.ApplyResult(kind=k, namespace=ns, name=n, action=action, object_json=_json(doc))
                     for k, ns, n, action, doc in result["results"]],
            resource_version=self.state.applied_index,
        )

    async def Patch(self, request: pb.PatchRequest, context: Any) -> pb.ObjectResponse:
        kind = self._kind(request.kind)
        try:
            patch = json.loads(request.merge_patch_json)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"merge_patch_json: not JSON ({exc})") from None
        if not isinstance(patch, dict):
            raise InvalidArgument("merge_patch_json: must be a JSON object")
        session = _session(request.session)
        if self._must_forward_write():
            return await self._forward_unary("Patch", request, context, to_leader=True)
        result = await self._propose(cmd.patch_object(kind.name, request.namespace, request.name, patch, self.clock(),
                                                      resource_version=request.resource_version, session=session))
        raise_for(result)
        return pb.ObjectResponse(object_json=_json(result["object"]))

    async def Delete(self, request: pb.DeleteRequest, context: Any) -> pb.ObjectResponse:
        kind = self._kind(request.kind)
        if not request.name:
            raise InvalidArgument("name: required")
        session = _session(request.session)
        if (request.evict or request.force) and (kind.name != "Pod" or not request.evict):
            raise InvalidArgument("evict: only Pods are evicted, and force goes with evict")
        if self._must_forward_write():
            return await self._forward_unary("Delete", request, context, to_leader=True)
        namespace = request.namespace or ("default" if kind.namespaced else "")
        if request.evict:
            result = await self._propose(cmd.evict_pod(namespace, request.name, request.uid, self.clock(),
                                                       force=request.force, session=session))
            raise_for(result)
            return pb.ObjectResponse(object_json=_json(result["object"]))
        result = await self._propose(cmd.delete_object(kind.name, namespace, request.name, self.clock(),
                                                       resource_version=request.resource_version, uid=request.uid,
                                                       session=session))
        raise_for(result)
        return pb.ObjectResponse(object_json=_json(result["object"]))

    async def ReportStatus(self, request: pb.ReportStatusRequest, context: Any) -> pb.ReportStatusResponse:
        if not request.node:
            raise InvalidArgument("node: required")
        reports = []
        for i, item in enumerate(request.pods):
            try:
                status = json.loads(item.status_json)
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument(f"pods[{i}].status_json: not JSON") from None
            reports.append((item.namespace, item.name, item.uid, item.epoch, status))
        if self._must_forward_write():
            return await self._forward_unary("ReportStatus", request, context, to_leader=True)
        result = await self._propose(cmd.report_pod_statuses(request.node, reports, self.clock()))
        raise_for(result)
        return pb.ReportStatusResponse(accepted=result["accepted"], ignored=result["ignored"])

    async def SyncMirrorPods(self, request: pb.SyncMirrorPodsRequest, context: Any) -> pb.SyncMirrorPodsResponse:
        if not request.node:
            raise InvalidArgument("node: required")
        if len(request.uids) != len(request.documents):
            raise InvalidArgument("uids: one per document")
        try:
            docs = [json.loads(raw) for raw in request.documents]
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument("documents: not JSON") from None
        if self._must_forward_write():
            return await self._forward_unary("SyncMirrorPods", request, context, to_leader=True)
        result = await self._propose(cmd.sync_mirror_pods(request.node, docs, list(request.uids), self.clock()))
        raise_for(result)
        return pb.SyncMirrorPodsResponse(created=result["created"], deleted=result["deleted"],
                                         refused=result["refused"])

    async def RegisterSession(self, request: pb.RegisterSessionRequest, context: Any) -> pb.RegisterSessionResponse:
        if self._must_forward_write():
            return await self._forward_unary("RegisterSession", request, context, to_leader=True)
        result = await self._propose(cmd.register_session(self.clock()))
        raise_for(result)
        return pb.RegisterSessionResponse(client_id=result["client_id"])

    # ================================================================== reads
    def _kind(self, text: str) -> Any:
        try:
            return kind_for(text)
        except KeyError as exc:
            raise NotFound(exc.args[0]) from None

    @staticmethod
    def _selectors(label_text: str, field_text: str) -> tuple[LabelSelector, FieldSelector]:
        try:
            return parse_label_selector(label_text), parse_field_selector(field_text)
        except SelectorError as exc:
            raise InvalidArgument(str(exc)) from None

    async def Get(self, request: pb.GetRequest, context: Any) -> pb.ObjectResponse:
        kind = self._kind(request.kind)
        if not request.name:
            raise InvalidArgument("name: required")
        namespace = request.namespace or ("default" if kind.namespaced else "")

        def query(state: ClusterState) -> Any:
            return state.get(kind.name, namespace, request.name)

        found = await self._read(request, context, "Get", query, request.stale_ok)
        if isinstance(found, pb.ObjectResponse):
            return found
        if found is None:
            where = f' in namespace "{namespace}"' if kind.namespaced else ""
            raise NotFound(f'{kind.plural} "{request.name}" not found{where}')
        return pb.ObjectResponse(object_json=_json(found))

    async def List(self, request: pb.ListRequest, context: Any) -> pb.ListResponse:
        kind = self._kind(request.kind)
        labels, fields = self._selectors(request.label_selector, request.field_selector)

        def query(state: ClusterState) -> Any:
            items = state.list(kind.name, namespace=request.namespace if kind.namespaced else "",
                               labels=labels, fields=fields)
            return items, state.applied_index

        answer = await self._read(request, context, "List", query, request.stale_ok)
        if isinstance(answer, pb.ListResponse):
            return answer
        items, version = answer
        return pb.ListResponse(items=[_json(doc) for doc in items], resource_version=version)

    async def Status(self, request: pb.StatusRequest, context: Any) -> pb.ClusterStatus:
        members = []
        addresses = self.gossip.addresses()
        for name, (state, meta) in sorted(self.gossip.members().items()):
            gossip_address, incarnation = addresses.get(name, ("", 0))
            members.append(pb.Member(
                name=name, state=state, api_address=meta.api_address if meta else "",
                role=meta.role if meta else "", version=meta.version if meta else "",
                gossip_address=gossip_address, incarnation=incarnation))
        node = self.raft.node
        if node is None:
            try:
                forwarded = await self._forward_unary("Status", request, context, to_leader=False)
            except RpcError:
                forwarded = pb.ClusterStatus()  # no server reachable: gossip's view is all there is
            out = pb.ClusterStatus()
            out.CopyFrom(forwarded)
            del out.members[:]
            out.members.extend(members)
            out.answered_by = self.config.name
            return out
        status = node.status()
        voters, learners = status["voters"], status["learners"]
        in_conf = set(voters) | set(learners)
        workers = [m.name for m in members if m.name not in in_conf and m.state in ("alive", "suspect")
                   and m.api_address]
        return pb.ClusterStatus(
            leader=status["leader_id"] or "", term=status["term"], voters=voters, standbys=learners,
            workers=workers, members=members, commit_index=status["commit_index"],
            applied_index=status["applied_index"], answered_by=self.config.name)

    # ================================================================== watch
    async def Watch(self, request: pb.WatchRequest, context: Any) -> AsyncIterator[pb.WatchBatch]:
        matches = self._watch_filter(request)
        node = self.raft.node
        if node is None:
            async for batch in self._forward_watch(request, context):
                yield batch
            return
        # Caught up to a read index first: from then on, what this copy says is current.
        with trio.move_on_after(self.config.rpc_timeout_s):
            try:
                synced_at = await node.read(lambda state: state.applied_index)
            except (NotLeader, RaftError):
                synced_at = None
        if synced_at is None:
            raise Unavailable("no leader confirmed where the watch starts (an election or a lost quorum); retry")
        state = self.state
        version = request.resource_version
        # A node's watch also carries the ConfigMaps and Secrets its Pods use (node_interest.py).
        interest = NodeInterest(request.node) if request.node else None
        get = state.get
        if interest is not None and version != 0:
            interest.initial(state.store.pods_on(request.node), (), get)  # resuming: who uses what now
        if version == 0:
            version = state.applied_index
            if interest is not None:
                objects = interest.initial(state.store.pods_on(request.node), state.list("Node"), get)
            else:
                objects = [doc for kind in KINDS for doc in state.list(kind) if matches(doc)]
            yield pb.WatchBatch(
                events=[pb.WatchEvent(type=pb.WatchEvent.ADDED, object_json=_json(doc)) for doc in objects],
                resource_version=version, initial=True, synced=True, leader_known=self._leader_known(),
                served_by=self.config.name)
        last_sent = trio.current_time()
        while True:
            woken = self.state_changes  # taken before reading, so no change slips between read and wait
            try:
                changes = state.changes_since(version)
            except Expired as exc:
                raise RpcError(grpc.StatusCode.OUT_OF_RANGE, f"{exc}: list again") from None
            events = interest.events(changes, get) if interest is not None else events_for(changes, matches)
            version = max(version, state.applied_index)
            # A bookmark at least every bookmark_s, even while unrelated changes keep us busy.
            if events or trio.current_time() - last_sent >= self.bookmark_s:
                yield pb.WatchBatch(
                    events=[pb.WatchEvent(type=WATCH_EVENT_TYPES[kind], object_json=_json(doc))
                            for kind, doc in events],
                    resource_version=version, synced=version >= synced_at, leader_known=self._leader_known(),
                    served_by=self.config.name)
                last_sent = trio.current_time()
            with trio.move_on_at(last_sent + self.bookmark_s):
                await woken.wait()

    def _leader_known(self) -> bool:
        return in_touch_with_leader(self.raft.node)

    def _watch_filter(self, request: pb.WatchRequest) -> Callable[[Mapping[str, Any]], bool]:
        if request.node:
            node_name = request.node

            def concerning_node(doc: Mapping[str, Any]) -> bool:
                kind = doc.get("kind")
                if kind == "Pod":
                    return (doc.get("spec") or {}).get("nodeName") == node_name
                return kind == "Node" and meta_of(doc).get("name") == node_name

            return concerning_node
        kinds = {self._kind(k).name for k in request.kinds} if request.kinds else set(KINDS)
        labels, fields = self._selectors(request.label_selector, request.field_selector)
        namespace = request.namespace

        def selected(doc: Mapping[str, Any]) -> bool:
            meta = meta_of(doc)
            return (doc.get("kind") in kinds
                    and (not namespace or meta.get("namespace", "") == namespace or not meta.get("namespace"))
                    and labels.matches(meta.get("labels")) and fields.matches(doc))

        return selected

    async def _forward_watch(self, request: pb.WatchRequest, context: Any) -> AsyncIterator[pb.WatchBatch]:
        """A watch served through a server, resumed through another one (from the last
        version passed on) when that server fails or falls silent: the caller's stream
        goes on as if nothing happened. An expired version still reaches the caller."""
        hops = _hops(context)
        if hops >= MAX_HOPS:
            raise Unavailable("no server could serve the watch; retry shortly")
        forwarded = pb.WatchRequest()
        forwarded.CopyFrom(request)
        failures = 0
        while True:
            targets = self._servers()
            if not targets:
                raise Unavailable("no server of the cluster is reachable from this agent; retry shortly")
            if failures >= 2 * len(targets):
                raise Unavailable("no server could serve the watch; retry shortly")
            name, address = targets[failures % len(targets)]
            try:
                async with server_stream(self.peers.cluster(address).Watch, forwarded, timeout=None,
                                         metadata=((HOPS_KEY, str(hops + 1)),)) as batches:
                    heard = trio.current_time()
                    while True:
                        # Move on when gossip declares the server dead (within ~1.5 s) or
                        # it misses three bookmarks (a path that died, gossip still fine).
                        with trio.move_on_after(FORWARD_CHECK_S) as waiting:
                            batch = await batches.__anext__()
                        if waiting.cancelled_caught:
                            if name not in self.gossip.servers():
                                log.info("%s event=forwarded_watch_server_gone server=%s", self.config.name, name)
                                break
                            if trio.current_time() - heard >= WATCH_SILENCE_S:
                                log.info("%s event=forwarded_watch_silent server=%s", self.config.name, name)
                                break
                            continue
                        heard = trio.current_time()
                        forwarded.resource_version = batch.resource_version
                        failures = 0
                        yield batch
            except StopAsyncIteration:
                pass
            except Unavailable as exc:
                log.info("%s event=forwarded_watch_failed server=%s detail=%r", self.config.name, name,
                         exc.details[:200])
            failures += 1
            await trio.sleep(0.05)

    # ================================================================== logs
    async def Logs(self, request: pb.LogsRequest, context: Any) -> AsyncIterator[pb.LogChunk]:
        if not request.name:
            raise InvalidArgument("name: required")
        if request.tail_lines < 0:
            raise InvalidArgument(f"tail_lines: must be >= 0, got {request.tail_lines}")
        namespace = request.namespace or "default"
        get = pb.GetRequest(kind="Pod", namespace=namespace, name=request.name, stale_ok=True)
        found = await self.Get(get, context)
        doc = json.loads(found.object_json)
        node_name = (doc.get("spec") or {}).get("nodeName")
        if not node_name:
            raise FailedPrecondition(f'pod "{request.name}" is not placed on a node yet')
        address = self.gossip.api_address(node_name)
        if address is None:
            raise Unavailable(f'pod "{request.name}" runs on {node_name}, which is not reachable')
        node_request = node_pb2.PodLogsRequest(namespace=namespace, name=request.name, container=request.container,
                                               tail_lines=request.tail_lines, follow=request.follow,
                                               previous=request.previous)
        async with server_stream(self.peers.node(address).PodLogs, node_request, timeout=None) as lines:
            async for line in lines:
                yield pb.LogChunk(line=line.line)
