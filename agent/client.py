"""A Python client of the cluster's API (ClusterService), for agentctl, tests and benchmarks.

Owns: calling ClusterService from Trio with plain Python values in and out (documents as
dicts), and failing over between the agents it is given.

Rules it keeps:
- Any agent answers any call (it forwards what it cannot serve), so the client simply
  tries its addresses in turn when one is unreachable (UNAVAILABLE), and sticks to the
  last one that answered.
- Errors are the bridge's RpcError family (NotFound, InvalidArgument, ...), unchanged.
- A request's timeout bounds one attempt; a watch has no deadline (it ends when the caller
  stops reading or the server goes away).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import grpc

from agent.grpcbridge import Channel, server_stream, unary
from agent.grpcbridge.errors import DeadlineExceeded, RpcError, Unavailable
from agent.rpc import cluster_pb2 as pb
from agent.rpc import cluster_pb2_grpc

Doc = dict[str, Any]


# How long a first connection to an agent may take before the next agent is tried.
CONNECT_TIMEOUT_S = 1.0
# Calls that change nothing: safe to repeat on another agent after a timeout.
_READS = frozenset({"Get", "List", "Status"})


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class ClusterClient:
    def __init__(self, addresses: str | Sequence[str], *, timeout_s: float = 10.0) -> None:
        if isinstance(addresses, str):
            addresses = [a.strip() for a in addresses.split(",") if a.strip()]
        if not addresses:
            raise ValueError("no agent address given")
        self.addresses = list(addresses)
        self.timeout_s = timeout_s
        self._channels: dict[str, Channel] = {}
        self._reached: set[str] = set()  # addresses this client has been connected to
        self._current = 0

    async def __aenter__(self) -> ClusterClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def prefer(self, address: str) -> None:
        """Send the next calls (and the next watch) to `address` first."""
        self._current = self.addresses.index(address)

    async def _connected(self, address: str) -> None:
        """Connect to `address` first if this client never has, within CONNECT_TIMEOUT_S:
        a machine that is off drops the connection attempt silently, and a call's whole
        deadline must not be spent finding that out when other agents could answer."""
        if address in self._reached or len(self.addresses) == 1:
            return
        import trio  # local: the rest of this module does not need it

        self._stub(address)
        ready = grpc.channel_ready_future(self._channels[address].grpc_channel)
        try:
            await trio.to_thread.run_sync(ready.result, CONNECT_TIMEOUT_S, abandon_on_cancel=True)
        except grpc.FutureTimeoutError:
            ready.cancel()
            raise Unavailable(f"no connection to {address} within {CONNECT_TIMEOUT_S:g}s") from None
        self._reached.add(address)

    def _stub(self, address: str) -> Any:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = Channel(address).open()
        return channel.stub(cluster_pb2_grpc.ClusterServiceStub)

    async def _call(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        """Call `method` on the agent last answering, moving on to the next address when
        one is unreachable. A read that times out is tried on the next address too (a
        machine that died mid-call never answers); a write that times out is not retried,
        as it may have been applied, but the next call starts at the next address."""
        last: RpcError | None = None
        for attempt in range(len(self.addresses)):
            index = (self._current + attempt) % len(self.addresses)
            try:
                await self._connected(self.addresses[index])
                reply = await unary(getattr(self._stub(self.addresses[index]), method), request,
                                    timeout=timeout_s or self.timeout_s)
            except Unavailable as exc:
                last = exc
                continue
            except DeadlineExceeded as exc:
                if method in _READS:
                    last = exc
                    continue
                self._current = (index + 1) % len(self.addresses)
                raise
            self._current = index
            return reply
        assert last is not None
        self._current = (self._current + 1) % len(self.addresses)
        raise last

    # ------------------------------------------------------------------ writes
    async def apply(self, docs: Iterable[Mapping[str, Any]], *, create_only: bool = False, dry_run: bool = False,
                    session: tuple[str, int] | None = None) -> list[tuple[str, str, str, str, Doc]]:
        """(kind, namespace, name, action, object) per document; all or nothing."""
        request = pb.ApplyRequest(documents=[_json(d) for d in docs], create_only=create_only, dry_run=dry_run)
        if session is not None:
            request.session.client_id, request.session.seq = session
        reply = await self._call("Apply", request)
        return [(r.kind, r.namespace, r.name, r.action, json.loads(r.object_json)) for r in reply.results]

    async def patch(self, kind: str, name: str, patch: Mapping[str, Any], *, namespace: str = "",
                    resource_version: str = "", session: tuple[str, int] | None = None) -> Doc:
        request = pb.PatchRequest(kind=kind, namespace=namespace, name=name, merge_patch_json=_json(patch),
                                  resource_version=resource_version)
        if session is not None:
            request.session.client_id, request.session.seq = session
        return json.loads((await self._call("Patch", request)).object_json)

    async def delete(self, kind: str, name: str, *, namespace: str = "", resource_version: str = "",
                     uid: str = "", session: tuple[str, int] | None = None) -> Doc:
        request = pb.DeleteRequest(kind=kind, namespace=namespace, name=name, resource_version=resource_version,
                                   uid=uid)
        if session is not None:
            request.session.client_id, request.session.seq = session
        return json.loads((await self._call("Delete", request)).object_json)

    async def evict(self, name: str, *, namespace: str = "", uid: str = "", force: bool = False,
                    session: tuple[str, int] | None = None) -> Doc:
        """Evict a Pod: deleted if its Deployment keeps replicas - maxUnavailable available
        without it (else RpcError RESOURCE_EXHAUSTED), a Pod with no controller only with force."""
        request = pb.DeleteRequest(kind="Pod", namespace=namespace, name=name, uid=uid, evict=True, force=force)
        if session is not None:
            request.session.client_id, request.session.seq = session
        return json.loads((await self._call("Delete", request)).object_json)

    async def register_session(self) -> str:
        return (await self._call("RegisterSession", pb.RegisterSessionRequest())).client_id

    # ------------------------------------------------------------------ reads
    async def get(self, kind: str, name: str, *, namespace: str = "", stale_ok: bool = False) -> Doc:
        request = pb.GetRequest(kind=kind, namespace=namespace, name=name, stale_ok=stale_ok)
        return json.loads((await self._call("Get", request)).object_json)

    async def list(self, kind: str, *, namespace: str = "", labels: str = "", fields: str = "",
                   stale_ok: bool = False) -> tuple[list[Doc], int]:
        request = pb.ListRequest(kind=kind, namespace=namespace, label_selector=labels, field_selector=fields,
                                 stale_ok=stale_ok)
        reply = await self._call("List", request)
        return [json.loads(item) for item in reply.items], reply.resource_version

    async def status(self) -> pb.ClusterStatus:
        return await self._call("Status", pb.StatusRequest())

    async def watch(self, kinds: Sequence[str] = (), *, namespace: str = "", labels: str = "", fields: str = "",
                    resource_version: int = 0, node: str = "") -> AsyncIterator[pb.WatchBatch]:
        """The watch's batches (each event's object_json decoded by the caller). Uses the
        address that answered last; on UNAVAILABLE before the first batch, the next one."""
        request = pb.WatchRequest(kinds=list(kinds), namespace=namespace, label_selector=labels,
                                  field_selector=fields, resource_version=resource_version, node=node)
        last: Unavailable | None = None
        for attempt in range(len(self.addresses)):
            index = (self._current + attempt) % len(self.addresses)
            started = False
            try:
                async with server_stream(self._stub(self.addresses[index]).Watch, request, timeout=None) as batches:
                    async for batch in batches:
                        started = True
                        self._current = index
                        yield batch
                return
            except Unavailable as exc:
                if started:
                    raise
                last = exc
        assert last is not None
        raise last

    async def logs(self, pod: str, *, namespace: str = "", container: str = "", tail: int = 0,
                   follow: bool = False, previous: bool = False) -> AsyncIterator[str]:
        request = pb.LogsRequest(namespace=namespace, name=pod, container=container, tail_lines=tail,
                                 follow=follow, previous=previous)
        address = self.addresses[self._current]
        async with server_stream(self._stub(address).Logs, request, timeout=None) as chunks:
            async for chunk in chunks:
                yield chunk.line


class ClusterView:
    """A client-side copy of some kinds, kept current by list-then-watch (an informer).

    `objects[kind][(namespace, name)]` holds the latest documents. When its watch fails it
    resumes from the last version through the next address (listing again if that is
    older than the server's window), so it survives the death of the agent it watched.
    """

    def __init__(self, client: ClusterClient, kinds: Sequence[str] = ("Pod", "Node"), *,
                 silence_s: float = 3.0) -> None:
        import trio  # local: the rest of this module does not need it

        self._trio = trio
        self.client = client
        self.kinds = list(kinds)
        self.objects: dict[str, dict[tuple[str, str], Doc]] = {k: {} for k in self.kinds}
        self.version = 0
        self.batches = 0
        self.relists = 0
        self.silence_s = silence_s  # no batch for this long (bookmarks come every second): watch elsewhere
        self._stream_scope = trio.CancelScope()
        self._restarting = False
        self._changed = trio.Event()

    def pods(self) -> list[Doc]:
        return list(self.objects.get("Pod", {}).values())

    def nodes(self) -> dict[str, Doc]:
        return {name: doc for (_, name), doc in self.objects.get("Node", {}).items()}

    def ready_nodes(self) -> set[str]:
        """Names of the Nodes whose Ready condition is True."""
        return {name for name, doc in self.nodes().items()
                if any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in (doc.get("status") or {}).get("conditions") or ())}

    def running_on(self) -> dict[str, str]:
        """uid -> node, for every Pod its agent reports Running."""
        return {p["metadata"]["uid"]: p["spec"].get("nodeName", "") for p in self.pods()
                if (p.get("status") or {}).get("phase") == "Running"}

    async def wait(self, predicate: Any, *, timeout_s: float) -> Any:
        """Wait until predicate(self) is truthy; return its value. Raises TooSlowError."""
        with self._trio.fail_after(timeout_s):
            while True:
                value = predicate(self)
                if value:
                    return value
                await self._changed.wait()

    def _apply(self, batch: pb.WatchBatch) -> None:
        if batch.initial:
            self.objects = {k: {} for k in self.kinds}
        for event in batch.events:
            doc = json.loads(event.object_json)
            meta = doc.get("metadata") or {}
            key = (meta.get("namespace", ""), meta.get("name", ""))
            table = self.objects.setdefault(doc.get("kind", ""), {})
            if event.type == pb.WatchEvent.DELETED:
                table.pop(key, None)
            else:
                table[key] = doc
        self.version = batch.resource_version
        self.batches += 1
        self._changed.set()
        self._changed = self._trio.Event()

    async def restart(self) -> None:
        """Drop the current watch and resume from the address the client now prefers;
        returns once that watch delivered a batch."""
        self._restarting = True
        self._stream_scope.cancel()
        seen = self.batches
        await self.wait(lambda v: v.batches > seen, timeout_s=30)

    async def run(self, *, task_status: Any = None) -> None:
        """Follow until cancelled; `task_status.started()` once the first list arrived."""
        trio = self._trio
        started = False
        while True:
            stream = self.client.watch(self.kinds, resource_version=self.version)
            self._restarting = False
            try:
                with trio.CancelScope() as self._stream_scope:
                    while True:
                        # Servers send a bookmark every second: silence means the agent or
                        # its machine is gone (a dead machine never closes the stream).
                        with trio.move_on_after(self.silence_s) as idle:
                            batch = await stream.__anext__()
                        if idle.cancelled_caught:
                            break
                        self._apply(batch)
                        if not started and task_status is not None:
                            task_status.started()
                        started = True
            except StopAsyncIteration:
                pass
            except RpcError as exc:
                if exc.code.name == "OUT_OF_RANGE":
                    self.version = 0  # too far behind the window: list again
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    await stream.aclose()
            self.relists += 1
            if not self._restarting:
                self.client._current = (self.client._current + 1) % len(self.client.addresses)
                await trio.sleep(0.05)
