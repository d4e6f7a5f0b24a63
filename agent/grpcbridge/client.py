"""The client half of the Trio <-> grpcio bridge: awaiting grpcio calls from Trio.

Owns: `unary`, `server_stream` / `ServerStream` and `Channel`.

How it works: `multicallable.future(...)` with a done-callback that wakes a `trio.Event`
through the Trio token; streams are read by a cached worker thread that hands messages
to Trio with `run_sync_soon`. A Trio cancellation of the waiting task cancels the call.

Rules it keeps:
- Clients get `RpcError` (the most specific subclass for the code) for every non-OK status.
- A stream's reader thread ends with its call; dropping a stream cancels the call.
"""

from __future__ import annotations

import collections
import functools
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import trio

from agent.grpcbridge.errors import BridgeError, RpcError

__all__ = ["Channel", "ServerStream", "server_stream", "unary"]

MIB = 1024 * 1024


def _set_soon(token: trio.lowlevel.TrioToken, event: trio.Event) -> None:
    try:
        token.run_sync_soon(event.set)
    except trio.RunFinishedError:
        pass


def _to_rpc_error(exc: grpc.RpcError) -> RpcError:
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    return RpcError.from_status(code, details or "")


async def unary(
    multicallable: Any, request: Any, *, timeout: float, metadata: Sequence[tuple[str, str]] | None = None
) -> Any:
    """Make one unary (or stream-unary with an iterator request) call from Trio.

    Raises RpcError for a non-OK status. Cancelling the calling task cancels the call.
    """
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    future = multicallable.future(request, timeout=timeout, metadata=metadata)
    future.add_done_callback(lambda _: _set_soon(token, done))
    try:
        await done.wait()
    finally:
        if not done.is_set():
            future.cancel()
    try:
        return future.result()
    except grpc.RpcError as exc:
        raise _to_rpc_error(exc) from None


class ServerStream:
    """The replies of a server-streaming call, as an async iterator (and async context manager).

    A cached worker thread reads the blocking grpc iterator and hands each reply to Trio;
    at most buffer_messages replies wait unread. `aclose()` (or leaving `async with`, or a
    Trio cancellation while waiting for a reply, or dropping the object) cancels the call
    and frees the thread.
    """

    def __init__(self, call: Any, buffer_messages: int) -> None:
        self._call = call
        self._replies: collections.deque[Any] = collections.deque()
        self._space = threading.Semaphore(buffer_messages)
        self._closed = threading.Event()
        self._wakeup: trio.Event | None = None
        self._finished = False
        self._error: BaseException | None = None
        # The reader holds only a weak reference, so an abandoned stream is collected,
        # and collecting it cancels the call.
        reader = functools.partial(
            _read_replies, call, self._space, self._closed, trio.lowlevel.current_trio_token(), weakref.ref(self)
        )
        trio.lowlevel.start_thread_soon(reader, lambda _outcome: None, name="grpc-stream-reader")

    def _deliver(self, reply: Any) -> None:
        self._replies.append(reply)
        self._wake()

    def _finish(self, error: BaseException | None) -> None:
        self._finished = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def __aiter__(self) -> ServerStream:
        return self

    async def __anext__(self) -> Any:
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._replies:
            if self._closed.is_set():
                raise StopAsyncIteration
            if self._finished:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._wakeup = wakeup = trio.Event()
            try:
                await wakeup.wait()
            except trio.Cancelled:
                self.cancel()
                raise
        if self._closed.is_set():
            raise StopAsyncIteration
        self._space.release()
        return self._replies.popleft()

    def cancel(self) -> None:
        """Cancel the call (thread-safe, idempotent); iteration then stops."""
        if not self._closed.is_set():
            self._closed.set()
            self._call.cancel()
            self._space.release()  # unblock the reader if it waits for room

    async def aclose(self) -> None:
        self.cancel()

    async def __aenter__(self) -> ServerStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()

    def __del__(self) -> None:
        if not self._finished:
            self.cancel()


def _read_replies(
    call: Any,
    space: threading.Semaphore,
    closed: threading.Event,
    token: trio.lowlevel.TrioToken,
    stream_ref: weakref.ref[ServerStream],
) -> None:
    """Worker thread: move replies of one call from grpc to Trio until the call ends."""
    error: BaseException | None = None
    try:
        for reply in call:
            space.acquire()
            if closed.is_set():
                return
            token.run_sync_soon(_to_stream, stream_ref, ServerStream._deliver, reply)
    except grpc.RpcError as exc:
        error = _to_rpc_error(exc)
    except trio.RunFinishedError:
        call.cancel()
        return
    except BaseException as exc:  # noqa: BLE001 - handed to the reader in Trio
        error = exc
    try:
        token.run_sync_soon(_to_stream, stream_ref, ServerStream._finish, error)
    except trio.RunFinishedError:
        pass


def _to_stream(stream_ref: weakref.ref[ServerStream], method: Callable[..., None], arg: Any) -> None:
    """In Trio: pass a reply or the end of the call to the stream, if anyone still holds it."""
    stream = stream_ref()
    if stream is not None:
        method(stream, arg)


def server_stream(
    multicallable: Any,
    request: Any,
    *,
    timeout: float | None,
    metadata: Sequence[tuple[str, str]] | None = None,
    buffer_messages: int = 128,
) -> ServerStream:
    """Start a server-streaming (or, with an iterator request, bidi) call from Trio.

    Iterate the result with `async for`; prefer `async with server_stream(...) as replies:`
    so the call ends with the block. timeout=None means no deadline (for watches that
    last until cancelled). Raises RpcError from iteration for a non-OK status.
    """
    return ServerStream(multicallable(request, timeout=timeout, metadata=metadata), buffer_messages)


class Channel:
    """A grpc.insecure_channel with this project's message-size limits, as an async context manager.

        async with Channel("10.0.0.2:7000") as channel:
            stub = channel.stub(raft_pb2_grpc.RaftStub)
            reply = await unary(stub.AppendEntries, request, timeout=1.0)
    """

    def __init__(
        self,
        target: str,
        *,
        max_receive_message_bytes: int = 4 * MIB,
        max_send_message_bytes: int = 4 * MIB,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.target = target
        self._options = [
            ("grpc.max_receive_message_length", max_receive_message_bytes),
            ("grpc.max_send_message_length", max_send_message_bytes),
            *options,
        ]
        self._channel: grpc.Channel | None = None

    @property
    def grpc_channel(self) -> grpc.Channel:
        if self._channel is None:
            raise BridgeError(f"channel to {self.target} is not open (use `async with Channel(...)`)")
        return self._channel

    def stub(self, stub_class: Callable[[grpc.Channel], Any]) -> Any:
        return stub_class(self.grpc_channel)

    def open(self) -> Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.target, options=self._options)
        return self

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    async def wait_ready(self, *, timeout: float) -> None:
        """Wait until the channel is connected; raises Unavailable after timeout seconds."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        future = grpc.channel_ready_future(self.grpc_channel)
        future.add_done_callback(lambda _: _set_soon(token, done))
        try:
            with trio.move_on_after(timeout):
                await done.wait()
        finally:
            if not done.is_set():
                future.cancel()
        if not done.is_set():
            raise RpcError.from_status(grpc.StatusCode.UNAVAILABLE, f"{self.target} not ready after {timeout}s")

    async def __aenter__(self) -> Channel:
        return self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
