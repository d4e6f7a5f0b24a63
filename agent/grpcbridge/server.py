"""The server half of the Trio <-> grpcio bridge: grpcio's thread-pool server with
handlers written as Trio coroutines and async generators.

Owns: `TrioGrpcServer` and its settings, `lockstep`, and the mapping of a handler's
exception to a call's status (`status_for`).

How it works: grpcio's sync server runs each call on a pool thread. That thread enters
Trio with `trio.from_thread.run`, so the handler runs as a Trio task inside a cancel scope
whose deadline is the client's remaining time. When the call ends early (client
cancelled, deadline passed, server stopping) grpc's termination callback cancels that
scope. Server-streaming handlers run as one Trio task feeding a bounded channel; the pool
thread takes messages from it in batches and hands them to grpc. A bidi call's requests
are read ahead by a thread of their own and handed to Trio one by one. A bidi handler
marked `@lockstep` answers each request with one reply: its pool thread reads each
request itself and hands it to the call's Trio task (no reader thread).

Rules it keeps:
- A handler answers an error by raising `agent.grpcbridge.errors.RpcError` (or a
  subclass); a few other exceptions map to codes (see `status_for`); anything else
  becomes INTERNAL with a short message and is logged with its traceback. No handler
  failure stops the server.
- Handlers should raise RpcError rather than call `context.abort` (which works too, but
  is a plain exception to Trio); reading metadata, peer and deadline from the context is
  fine, and so is setting trailing metadata.
- A streaming call holds a pool thread for as long as it lasts (grpcio's sync API has no
  other way), so streams are bounded: past `max_concurrent_streams` a new stream is
  refused with RESOURCE_EXHAUSTED, and the threads above that bound are kept for unary
  calls, which are therefore always answered however many streams sit idle.
- Every Trio task this module starts is bounded by the call it serves: nothing outlives
  its RPC.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import inspect
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
import trio

from agent.grpcbridge.errors import BridgeError, RpcError

__all__ = ["GrpcServerConfig", "TrioGrpcServer", "lockstep", "status_for"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class GrpcServerConfig:
    """Settings of one TrioGrpcServer."""

    # A streaming call holds one pool thread for as long as it lasts: at most this many run at
    # once, and one more is refused with RESOURCE_EXHAUSTED. 256 covers a server's Raft peers
    # plus the watches of a hundred-odd workers and a few people with `agentctl get -w`.
    max_concurrent_streams: int = 256
    # Pool threads kept for unary calls beyond the streams' share, so that however many
    # streams sit idle a unary call is still answered; 64 covers a node's Raft callers and clients.
    unary_workers: int = 64
    # grpc's own default; a larger request is refused with RESOURCE_EXHAUSTED before any handler runs.
    max_receive_message_bytes: int = 4 * MIB
    # Symmetric with receive, so a reply we send is one our own clients accept.
    max_send_message_bytes: int = 4 * MIB
    # On shutdown in-flight calls get this long to finish, then grpc cancels them.
    stop_grace_s: float = 0.5
    # Server-stream messages moved to grpc per thread hop; amortises the hop when the handler is fast.
    stream_batch_messages: int = 64
    # Server-stream messages a handler may run ahead of the network before it blocks.
    stream_buffer_messages: int = 128
    # Clients may send keepalive pings this often, with or without calls in flight. grpc's
    # server default (one per 5 minutes, none while idle) answers a peer that pings every
    # few seconds to notice a dead server with GOAWAY too_many_pings, dropping its channel.
    min_client_ping_interval_ms: int = 1000


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str, bool]:
    """The status a handler's exception becomes: (code, details, unexpected?)."""
    if isinstance(exc, RpcError):
        return exc.code, exc.details, False
    if isinstance(exc, _CallEnded):
        return exc.code, exc.details, False
    if isinstance(exc, trio.TooSlowError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, "handler timed out", False
    if isinstance(exc, trio.Cancelled | trio.RunFinishedError):
        return grpc.StatusCode.UNAVAILABLE, "server stopping", False
    if isinstance(exc, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED, "not implemented", False
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})", True


class _CallEnded(Exception):
    """The handler's cancel scope fired: the deadline passed or the call was cancelled."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _ended_status(scope: trio.CancelScope) -> _CallEnded:
    if scope.deadline <= trio.current_time():
        return _CallEnded(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    return _CallEnded(grpc.StatusCode.CANCELLED, "call cancelled")


def _cancel_soon(token: trio.lowlevel.TrioToken, scope: trio.CancelScope) -> None:
    """Cancel a Trio scope from any thread; a no-op once Trio has exited."""
    try:
        token.run_sync_soon(scope.cancel)
    except trio.RunFinishedError:
        pass


def lockstep(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a bidi handler that answers each request with exactly one reply, in order.

    Write it as `async def Method(self, request, context) -> reply`: it is awaited once
    per request of the call. The call's pool thread reads each request and enters Trio
    with it itself, so a request reaches its handler with one thread hop instead of two
    (for request/reply channels on one long-lived call, such as Raft's Stream). Requests
    of one call are handled one at a time; a failure ends the call with its status.
    """
    handler.grpc_lockstep = True  # type: ignore[attr-defined]
    return handler


class _LockstepCall:
    """One lockstep call: the pool thread hands each request to a Trio task that lives
    as long as the call, and waits for its reply. A request costs one `run_sync_soon`
    each way, with no task to spawn."""

    __slots__ = ("token", "requests", "request_ready", "replies", "scope")

    _END = object()

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self.token = token
        self.requests: collections.deque[Any] = collections.deque()  # touched in Trio only
        self.request_ready: trio.Event | None = None
        self.replies: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()  # (ok, reply or error)
        self.scope = trio.CancelScope()

    def submit(self, request: Any) -> None:
        """From the pool thread: hand over a request (or `_END`)."""
        self.token.run_sync_soon(self._deliver, request)

    def _deliver(self, request: Any) -> None:
        self.requests.append(request)
        if self.request_ready is not None:
            self.request_ready.set()

    async def next_request(self) -> Any:
        while not self.requests:
            self.request_ready = trio.Event()
            await self.request_ready.wait()
        return self.requests.popleft()

    def on_call_terminated(self) -> None:
        _cancel_soon(self.token, self.scope)  # a no-op once the task has ended


class _CallGuard:
    """Cancels a handler's scope when its call ends early; nothing once the handler is done."""

    __slots__ = ("token", "scope", "handler_done")

    def __init__(self, token: trio.lowlevel.TrioToken, scope: trio.CancelScope) -> None:
        self.token = token
        self.scope = scope
        self.handler_done = False

    def on_call_terminated(self) -> None:
        # grpc runs this for every call when it ends, also after a normal reply; skipping
        # the Trio wake-up then saves work on the hot unary path.
        if not self.handler_done:
            _cancel_soon(self.token, self.scope)


class _RequestStream:
    """A grpc request iterator (blocking) seen from Trio as an async iterator."""

    _END = object()

    def __init__(self, requests: Iterator[Any], limiter: trio.CapacityLimiter) -> None:
        self._requests = requests
        self._limiter = limiter

    def __aiter__(self) -> _RequestStream:
        return self

    async def __anext__(self) -> Any:
        item = await trio.to_thread.run_sync(
            next, self._requests, self._END, abandon_on_cancel=True, limiter=self._limiter
        )
        if item is self._END:
            raise StopAsyncIteration
        return item


class _PrefetchedRequests:
    """The request iterator of a bidi call, read ahead by its own thread.

    Cheaper per message than `_RequestStream` (one hand-over to Trio with `run_sync_soon`
    instead of a worker-thread round trip per request), which matters for long-lived
    calls that carry many small requests. At most `buffer_messages` requests wait unread;
    the thread ends with the call (grpc's iterator stops or raises then).
    """

    _END = object()

    def __init__(self, requests: Iterator[Any], token: trio.lowlevel.TrioToken, buffer_messages: int) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._space = threading.Semaphore(buffer_messages)
        self._closed = threading.Event()
        self._wakeup: trio.Event | None = None
        reader = functools.partial(self._read, requests, token)
        trio.lowlevel.start_thread_soon(reader, lambda _outcome: None, name="grpc-request-reader")

    def _read(self, requests: Iterator[Any], token: trio.lowlevel.TrioToken) -> None:
        """Worker thread: move requests from grpc to Trio until the call ends."""
        end: Any = self._END
        try:
            for request in requests:
                self._space.acquire()
                if self._closed.is_set():
                    return
                token.run_sync_soon(self._deliver, request)
        except trio.RunFinishedError:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the handler in Trio
            end = exc
        try:
            token.run_sync_soon(self._deliver, end)
        except trio.RunFinishedError:
            pass

    def _deliver(self, item: Any) -> None:
        self._items.append(item)
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def close(self) -> None:
        """Stop reading (thread-safe): unblock the reader if it waits for room."""
        self._closed.set()
        self._space.release()

    def __aiter__(self) -> _PrefetchedRequests:
        return self

    async def __anext__(self) -> Any:
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._items:
            self._wakeup = wakeup = trio.Event()
            await wakeup.wait()
        item = self._items[0]
        if item is self._END:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        self._items.popleft()
        self._space.release()
        return item


class _StreamPump:
    """One server-streaming call: a Trio task produces, a grpc pool thread consumes."""

    def __init__(self, buffer_messages: int, batch_messages: int) -> None:
        self.scope = trio.CancelScope()
        self.send, self.receive = trio.open_memory_channel[Any](buffer_messages)
        self.batch_messages = batch_messages
        self.error: BaseException | None = None

    async def next_batch(self) -> list[Any] | None:
        """Up to batch_messages replies, waiting for the first; None when the stream is done."""
        try:
            batch = [await self.receive.receive()]
        except trio.EndOfChannel:
            if self.error is not None:
                raise self.error from None
            return None
        while len(batch) < self.batch_messages:
            try:
                batch.append(self.receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return batch


class _Recorder:
    """Stands in for a grpc.Server so a generated add_*_to_server function shows its handlers."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        pass  # the same handlers also arrive through add_registered_method_handlers

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict[str, Any]) -> None:
        self.services[service_name] = dict(method_handlers)


def _is_generated_stub(behavior: Callable[..., Any]) -> bool:
    """True for the placeholder methods of a generated *Servicer base class."""
    function = getattr(behavior, "__func__", behavior)
    return getattr(function, "__module__", "").endswith("_pb2_grpc") and not inspect.iscoroutinefunction(function)


class TrioGrpcServer:
    """A grpcio server whose handlers are Trio coroutines and async generators.

    Usage:
        server = TrioGrpcServer(node_id="n1")
        server.add_service(raft_pb2_grpc.add_RaftServicer_to_server, RaftServicer(...))
        port = await nursery.start(server.run, "0.0.0.0:7000")

    The servicer has `async def Method(self, request, context)` for unary calls and async
    generators for server-streaming calls; for client-streaming and bidi calls `request`
    is an async iterator of requests.
    """

    def __init__(self, config: GrpcServerConfig | None = None, *, node_id: str = "-", **overrides: Any) -> None:
        self.config = dataclasses.replace(config or GrpcServerConfig(), **overrides)
        self.node_id = node_id
        self.port: int | None = None
        self._services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        self._token: trio.lowlevel.TrioToken | None = None
        self._reader_limiter = trio.CapacityLimiter(self.config.unary_workers)
        self._streams_lock = threading.Lock()
        self._streams = 0  # streaming calls holding a pool thread now
        self.streams_refused = 0

    # -- setup ---------------------------------------------------------------------------

    def add_service(self, add_fn: Callable[[Any, Any], None], async_servicer: Any) -> None:
        """Register a service from its generated add_XServicer_to_server and an async servicer."""
        if self._token is not None:
            raise BridgeError("add services before run(): grpc cannot add them to a started server")
        recorder = _Recorder()
        add_fn(async_servicer, recorder)
        if not recorder.services:
            raise BridgeError(f"{add_fn!r} registered no method handlers (regenerate with scripts/gen_proto.py)")
        for service_name, handlers in recorder.services.items():
            if service_name in self._services:
                raise BridgeError(f"service {service_name} added twice")
            self._services[service_name] = {
                name: self._wrap(f"{service_name}/{name}", handler) for name, handler in handlers.items()
            }

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        behavior = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        if _is_generated_stub(behavior):
            # Not overridden: the generated base class answers UNIMPLEMENTED by itself.
            return handler
        codecs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if getattr(behavior, "grpc_lockstep", False):
            if not (handler.request_streaming and handler.response_streaming):
                raise BridgeError(f"@lockstep handler for {method}: the method must stream both ways")
            if not inspect.iscoroutinefunction(behavior):
                raise BridgeError(f"@lockstep handler for {method} must be an async def, got {behavior!r}")
            serve = functools.partial(self._serve_lockstep, method, behavior)
            return grpc.stream_stream_rpc_method_handler(self._bounded_stream(method, serve), **codecs)
        wanted = inspect.isasyncgenfunction if handler.response_streaming else inspect.iscoroutinefunction
        if not wanted(behavior):
            kind = "an async generator" if handler.response_streaming else "an async def"
            raise BridgeError(f"handler for {method} must be {kind}, got {behavior!r}")
        if not handler.request_streaming and not handler.response_streaming:
            serve = functools.partial(self._serve_unary, method, handler.unary_unary, False)
            return grpc.unary_unary_rpc_method_handler(serve, **codecs)
        if not handler.request_streaming:
            serve = functools.partial(self._serve_stream, method, handler.unary_stream, False)
            return grpc.unary_stream_rpc_method_handler(self._bounded_stream(method, serve), **codecs)
        if not handler.response_streaming:
            serve = functools.partial(self._serve_unary, method, handler.stream_unary, True)
            return grpc.stream_unary_rpc_method_handler(self._bounded_call(method, serve), **codecs)
        serve = functools.partial(self._serve_stream, method, handler.stream_stream, True)
        return grpc.stream_stream_rpc_method_handler(self._bounded_stream(method, serve), **codecs)

    def _bounded_stream(self, method: str, serve: Callable[[Any, Any], Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        """`serve` holding one of the streams' slots for as long as its call lasts."""

        def bounded(request: Any, context: Any) -> Iterator[Any]:
            self._take_stream_slot(context, method)
            try:
                yield from serve(request, context)
            finally:
                self._release_stream_slot()

        return bounded

    def _bounded_call(self, method: str, serve: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """A client-streaming `serve`: it reads requests for as long as the client sends them."""

        def bounded(request: Any, context: Any) -> Any:
            self._take_stream_slot(context, method)
            try:
                return serve(request, context)
            finally:
                self._release_stream_slot()

        return bounded

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self, bind: str = "127.0.0.1:0", *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; reports the bound port through task_status.started(port)."""
        self._token = trio.lowlevel.current_trio_token()
        cfg = self.config
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=cfg.max_concurrent_streams + cfg.unary_workers, thread_name_prefix="grpc-handler"
            ),
            options=[
                ("grpc.max_receive_message_length", cfg.max_receive_message_bytes),
                ("grpc.max_send_message_length", cfg.max_send_message_bytes),
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_recv_ping_interval_without_data_ms", cfg.min_client_ping_interval_ms),
                ("grpc.http2.min_ping_interval_without_data_ms", cfg.min_client_ping_interval_ms),
            ],
        )
        for service_name, handlers in self._services.items():
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service_name, handlers),))
            server.add_registered_method_handlers(service_name, handlers)
        try:
            port = server.add_insecure_port(bind)
        except RuntimeError as exc:
            raise BridgeError(f"cannot bind gRPC server to {bind}: {exc}") from exc
        if port == 0:
            raise BridgeError(f"cannot bind gRPC server to {bind}")
        server.start()
        self.port = port
        log.info("%s event=grpc_server_started bind=%s port=%d", self.node_id, bind, port)
        try:
            task_status.started(port)
            await trio.sleep_forever()
        finally:
            # Handlers run as Trio system tasks, so they keep running through the grace
            # period; grpc then cancels the calls left, which cancels their handlers.
            with trio.CancelScope(shield=True):
                stopped = server.stop(cfg.stop_grace_s)
                await trio.to_thread.run_sync(stopped.wait)
            log.info("%s event=grpc_server_stopped port=%d", self.node_id, port)

    # -- per-call machinery (runs on grpc pool threads unless marked "in Trio") ------------

    @property
    def streams_open(self) -> int:
        return self._streams

    def _take_stream_slot(self, context: grpc.ServicerContext, method: str) -> None:
        """Count a streaming call in, or end it with RESOURCE_EXHAUSTED when the streams'
        share of the pool is taken (so unary calls always find a thread)."""
        limit = self.config.max_concurrent_streams
        with self._streams_lock:
            if self._streams < limit:
                self._streams += 1
                return
            self.streams_refused += 1
        log.warning("%s event=rpc_stream_refused method=%s open_streams=%d", self.node_id, method, limit)
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"too many open streams on this server ({limit}); close one or retry later",
        )

    def _release_stream_slot(self) -> None:
        with self._streams_lock:
            self._streams -= 1

    def _start_call(self, context: grpc.ServicerContext, scope: trio.CancelScope) -> _CallGuard | None:
        """Tie scope to the call's lifetime; None if the call is already over."""
        token = self._token
        if token is None:
            return None
        guard = _CallGuard(token, scope)
        if not context.add_callback(guard.on_call_terminated):
            return None
        return guard

    def _abort(self, context: grpc.ServicerContext, method: str, exc: BaseException) -> None:
        code, details, unexpected = status_for(exc)
        preset = context.code()
        if unexpected and preset is not None and preset != grpc.StatusCode.OK:
            # The handler set a status itself (context.abort or set_code) and then raised.
            preset_details = context.details() or b""
            context.abort(preset, preset_details.decode(errors="replace"))
        if unexpected:
            log.error(
                "%s event=rpc_handler_failed method=%s error=%s",
                self.node_id,
                method,
                type(exc).__name__,
                exc_info=exc,
            )
        context.abort(code, details)  # raises, ending the call with this status

    def _serve_unary(
        self, method: str, behavior: Callable[..., Any], streamed_request: bool, request: Any, context: Any
    ) -> Any:
        scope = trio.CancelScope()
        guard = self._start_call(context, scope)
        if guard is None:
            context.abort(grpc.StatusCode.CANCELLED, "call ended before it started")
        if streamed_request:
            request = _RequestStream(request, self._reader_limiter)
        try:
            return trio.from_thread.run(
                self._run_unary, scope, context.time_remaining(), behavior, request, context, trio_token=guard.token
            )
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a status
            self._abort(context, method, exc)
        finally:
            guard.handler_done = True

    async def _run_unary(
        self, scope: trio.CancelScope, remaining_s: float | None, behavior: Callable[..., Any], request: Any, context: Any
    ) -> Any:
        """In Trio: one unary handler, bounded by the call's deadline."""
        if remaining_s is not None:
            scope.deadline = trio.current_time() + remaining_s
        with scope:
            return await behavior(request, context)
        raise _ended_status(scope)

    def _serve_stream(
        self, method: str, behavior: Callable[..., Any], streamed_request: bool, request: Any, context: Any
    ) -> Iterator[Any]:
        cfg = self.config
        pump = _StreamPump(cfg.stream_buffer_messages, cfg.stream_batch_messages)
        guard = self._start_call(context, pump.scope)
        if guard is None:
            return
        token = guard.token
        if streamed_request:
            request = _PrefetchedRequests(request, token, cfg.stream_buffer_messages)
        try:
            trio.from_thread.run_sync(
                trio.lowlevel.spawn_system_task,
                self._run_stream,
                pump,
                context.time_remaining(),
                behavior,
                request,
                context,
                trio_token=token,
            )
            while (batch := trio.from_thread.run(pump.next_batch, trio_token=token)) is not None:
                yield from batch
        except GeneratorExit:
            raise  # grpc stopped reading: the call is over; finally cancels the handler
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a status
            self._abort(context, method, exc)
        finally:
            _cancel_soon(token, pump.scope)
            if streamed_request:
                request.close()

    def _serve_lockstep(self, method: str, behavior: Callable[..., Any], requests: Any, context: Any) -> Iterator[Any]:
        token = self._token
        if token is None:
            return
        call = _LockstepCall(token)
        if not context.add_callback(call.on_call_terminated):
            return
        try:
            trio.from_thread.run_sync(
                trio.lowlevel.spawn_system_task,
                self._run_lockstep,
                call,
                context.time_remaining(),
                behavior,
                context,
                trio_token=token,
            )
        except trio.RunFinishedError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "server stopping")
        try:
            for request in requests:
                call.submit(request)
                ok, reply = call.replies.get()
                if not ok:
                    raise reply
                yield reply
        except GeneratorExit:
            raise  # grpc stopped reading: the call is over; finally ends the task
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a status
            self._abort(context, method, exc)
        finally:
            try:
                call.submit(_LockstepCall._END)
            except trio.RunFinishedError:
                pass

    async def _run_lockstep(
        self, call: _LockstepCall, remaining_s: float | None, behavior: Callable[..., Any], context: Any
    ) -> None:
        """In Trio (a system task): answer the requests of one lockstep call in turn."""
        if remaining_s is not None:
            call.scope.deadline = trio.current_time() + remaining_s
        try:
            with call.scope:
                while (request := await call.next_request()) is not _LockstepCall._END:
                    call.replies.put((True, await behavior(request, context)))
                return
            call.replies.put((False, _ended_status(call.scope)))
        except trio.Cancelled as exc:  # Trio itself is shutting down
            call.replies.put((False, exc))
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the client by the pool thread
            call.replies.put((False, exc))

    async def _run_stream(
        self, pump: _StreamPump, remaining_s: float | None, behavior: Callable[..., Any], request: Any, context: Any
    ) -> None:
        """In Trio (a system task): drive one streaming handler into the pump's channel."""
        if remaining_s is not None:
            pump.scope.deadline = trio.current_time() + remaining_s
        try:
            with pump.scope:
                replies = behavior(request, context)
                try:
                    async for reply in replies:
                        await pump.send.send(reply)
                finally:
                    await replies.aclose()
            if pump.scope.cancelled_caught:
                pump.error = _ended_status(pump.scope)
        except trio.Cancelled as exc:  # Trio itself is shutting down
            pump.error = exc
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the client by the pool thread
            pump.error = exc
        finally:
            pump.send.close()
