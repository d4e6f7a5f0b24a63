"""The Trio <-> grpcio bridge (agent/grpcbridge/) over real gRPC on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import queue

import grpc
import pytest
import trio

from agent.grpcbridge import errors
from agent.grpcbridge import Channel, TrioGrpcServer, lockstep, server_stream, status_for, unary
from agent.rpc import bridge_test_pb2 as pb
from agent.rpc import bridge_test_pb2_grpc as pb_grpc

MIB = 1024 * 1024


class Servicer:
    """Test handlers; `fail_with` in the request selects a failure."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = trio.Event()
        self.cancelled = trio.Event()

    async def _maybe_fail(self, request: pb.EchoRequest, context) -> None:
        match request.fail_with:
            case "":
                return
            case "not_found":
                raise errors.NotFound("no such pod")
            case "invalid":
                raise errors.InvalidArgument("bad name")
            case "aborted":
                raise errors.RpcError(grpc.StatusCode.ABORTED, "lost a race")
            case "too_slow":
                with trio.fail_after(0.01):
                    await trio.sleep(10)
            case "crash":
                raise KeyError("boom")
            case "context_abort":
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")
            case other:
                raise AssertionError(f"unknown failure {other}")

    async def _sleep_noting_cancel(self, delay_s: float) -> None:
        try:
            await trio.sleep(delay_s)
        except trio.Cancelled:
            self.cancelled.set()
            raise

    async def Echo(self, request, context):
        self.calls += 1
        self.started.set()
        if request.delay_s:
            await self._sleep_noting_cancel(request.delay_s)
        await self._maybe_fail(request, context)
        if request.text == "time left?":
            return pb.EchoReply(text=repr(trio.current_effective_deadline() - trio.current_time()))
        return pb.EchoReply(text=request.text, index=len(request.blob))

    async def Count(self, request, context):
        self.calls += 1
        self.started.set()
        for i in range(request.count):
            yield pb.EchoReply(text=request.text, index=i)
            if request.delay_s:
                await self._sleep_noting_cancel(request.delay_s)
            else:
                await trio.lowlevel.checkpoint()
        await self._maybe_fail(request, context)

    async def Join(self, requests, context):
        texts = [r.text async for r in requests]
        return pb.EchoReply(text="".join(texts), index=len(texts))

    async def Chat(self, requests, context):
        async for request in requests:
            await self._maybe_fail(request, context)
            yield pb.EchoReply(text=request.text.upper())


@pytest.fixture
async def servicer():
    return Servicer()


@contextlib.asynccontextmanager
async def serving(nursery, servicer):
    """A stub of a TrioGrpcServer serving `servicer` on loopback."""
    server = TrioGrpcServer(node_id="test", stop_grace_s=0.1)
    server.add_service(pb_grpc.add_BridgeTestServicer_to_server, servicer)
    port = await nursery.start(server.run)
    # The client may send more than the server accepts, so the server's limit is what is tested.
    async with Channel(f"127.0.0.1:{port}", max_send_message_bytes=16 * MIB) as channel:
        await channel.wait_ready(timeout=5)
        yield channel.stub(pb_grpc.BridgeTestStub)


@pytest.fixture
async def stub(nursery, servicer):
    async with serving(nursery, servicer) as stub:
        yield stub


async def test_unary_ok(stub, servicer):
    reply = await unary(stub.Echo, pb.EchoRequest(text="hello"), timeout=5)
    assert reply.text == "hello"
    assert servicer.calls == 1


@pytest.mark.parametrize(
    ("fail_with", "error_type", "code"),
    [
        ("not_found", errors.NotFound, grpc.StatusCode.NOT_FOUND),
        ("invalid", errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        ("aborted", errors.RpcError, grpc.StatusCode.ABORTED),
        ("too_slow", errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
        ("context_abort", errors.RpcError, grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_handler_errors_become_status_codes(stub, fail_with, error_type, code):
    with pytest.raises(error_type) as caught:
        await unary(stub.Echo, pb.EchoRequest(fail_with=fail_with), timeout=5)
    assert caught.value.code == code


async def test_error_details_reach_the_client(stub):
    with pytest.raises(errors.NotFound) as caught:
        await unary(stub.Echo, pb.EchoRequest(fail_with="not_found"), timeout=5)
    assert caught.value.details == "no such pod"
    assert isinstance(caught.value, LookupError)


async def test_unexpected_exception_is_internal_logged_and_server_keeps_serving(stub, caplog):
    caplog.set_level(logging.ERROR, logger="agent.grpcbridge.server")
    with pytest.raises(errors.Internal) as caught:
        await unary(stub.Echo, pb.EchoRequest(fail_with="crash"), timeout=5)
    assert caught.value.details == "internal error (KeyError)"
    failures = [r for r in caplog.records if "event=rpc_handler_failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].getMessage().startswith("test ")
    assert "BridgeTest/Echo" in failures[0].getMessage()
    assert failures[0].exc_info is not None
    reply = await unary(stub.Echo, pb.EchoRequest(text="still here"), timeout=5)
    assert reply.text == "still here"


async def test_handler_scope_carries_the_client_deadline(stub):
    reply = await unary(stub.Echo, pb.EchoRequest(text="time left?"), timeout=5)
    assert 3 < float(reply.text) <= 5.1  # grpc rounds the timeout it sends up a little


async def test_deadline_exceeded_cancels_slow_handler(stub, servicer):
    start = trio.current_time()
    with pytest.raises(errors.DeadlineExceeded):
        await unary(stub.Echo, pb.EchoRequest(delay_s=30), timeout=0.3)
    assert trio.current_time() - start < 3
    with trio.fail_after(3):
        await servicer.cancelled.wait()


async def test_trio_cancellation_of_client_cancels_handler(stub, servicer):
    with trio.move_on_after(10) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(unary, stub.Echo, pb.EchoRequest(delay_s=30), timeout=30))
            await servicer.started.wait()
            nursery.cancel_scope.cancel()
    assert not scope.cancelled_caught
    with trio.fail_after(3):
        await servicer.cancelled.wait()


async def test_server_stream_delivers_many_messages_in_order(stub):
    async with server_stream(stub.Count, pb.EchoRequest(text="x", count=3000), timeout=20) as replies:
        indices = [reply.index async for reply in replies]
    assert indices == list(range(3000))


async def test_server_stream_without_deadline(stub):
    async with server_stream(stub.Count, pb.EchoRequest(count=3), timeout=None) as replies:
        assert [reply.index async for reply in replies] == [0, 1, 2]


async def test_server_stream_closed_midway_cancels_handler(stub, servicer):
    request = pb.EchoRequest(text="x", count=1_000_000, delay_s=0.001)
    got = []
    async with server_stream(stub.Count, request, timeout=30) as replies:
        async for reply in replies:
            got.append(reply.index)
            if len(got) == 20:
                break
    assert got == list(range(20))
    with trio.fail_after(3):
        await servicer.cancelled.wait()


async def test_abandoned_server_stream_is_cancelled(stub, servicer):
    request = pb.EchoRequest(text="x", count=1_000_000, delay_s=0.001)
    async for reply in server_stream(stub.Count, request, timeout=30):
        assert reply.index == 0
        break
    gc.collect()
    with trio.fail_after(3):
        await servicer.cancelled.wait()


async def test_server_stream_trio_cancellation_cancels_handler(stub, servicer):
    request = pb.EchoRequest(text="x", count=1_000_000, delay_s=0.001)
    got = 0
    with trio.move_on_after(0.3):
        async for _ in server_stream(stub.Count, request, timeout=30):
            got += 1
    assert got > 0
    with trio.fail_after(3):
        await servicer.cancelled.wait()


async def test_server_stream_error_after_messages(stub):
    got = []
    with pytest.raises(errors.Internal):
        async with server_stream(stub.Count, pb.EchoRequest(count=5, fail_with="crash"), timeout=5) as replies:
            async for reply in replies:
                got.append(reply.index)
    assert got == list(range(5))


async def test_server_stream_deadline(stub, servicer):
    request = pb.EchoRequest(count=1_000_000, delay_s=0.01)
    with pytest.raises(errors.DeadlineExceeded):
        async for _ in server_stream(stub.Count, request, timeout=0.3):
            pass
    with trio.fail_after(3):
        await servicer.cancelled.wait()


async def test_oversized_request_is_resource_exhausted_and_not_handled(stub, servicer):
    with pytest.raises(errors.ResourceExhausted):
        await unary(stub.Echo, pb.EchoRequest(blob=b"x" * (5 * MIB)), timeout=5)
    assert servicer.calls == 0
    reply = await unary(stub.Echo, pb.EchoRequest(blob=b"x" * (3 * MIB)), timeout=5)
    assert reply.index == 3 * MIB
    assert servicer.calls == 1


async def test_many_concurrent_calls(stub, servicer):
    replies = {}

    async def call(i: int) -> None:
        reply = await unary(stub.Echo, pb.EchoRequest(text=str(i), delay_s=0.05), timeout=10)
        replies[i] = reply.text

    async with trio.open_nursery() as nursery:
        for i in range(300):
            nursery.start_soon(call, i)
    assert replies == {i: str(i) for i in range(300)}
    assert servicer.calls == 300


async def test_client_streaming(stub):
    requests = iter([pb.EchoRequest(text=t) for t in "abc"])
    reply = await unary(stub.Join, requests, timeout=5)
    assert (reply.text, reply.index) == ("abc", 3)


async def test_bidi_streaming(stub):
    requests = iter([pb.EchoRequest(text=t) for t in ("a", "b", "c")])
    async with server_stream(stub.Chat, requests, timeout=5) as replies:
        texts = [reply.text async for reply in replies]
    assert texts == ["A", "B", "C"]


async def test_bidi_ping_pong_answers_each_request_before_the_next_is_sent(stub):
    """A long-lived bidi call used as a request/reply channel (as Raft's Stream is)."""
    requests: queue.SimpleQueue = queue.SimpleQueue()
    async with server_stream(stub.Chat, iter(requests.get, None), timeout=10) as replies:
        for k in range(200):
            requests.put(pb.EchoRequest(text=f"m{k}"))
            with trio.fail_after(3):
                reply = await anext(replies)
            assert reply.text == f"M{k}"
        requests.put(None)  # half-close: the handler's loop ends, and so does the call
        with trio.fail_after(3):
            assert [reply async for reply in replies] == []


async def test_bidi_handler_error_after_replies_reaches_the_client(stub):
    requests = iter([pb.EchoRequest(text="a"), pb.EchoRequest(text="b", fail_with="not_found")])
    got = []
    with pytest.raises(errors.NotFound):
        async with server_stream(stub.Chat, requests, timeout=5) as replies:
            async for reply in replies:
                got.append(reply.text)
    assert got == ["A"]


async def test_unreachable_server_is_unavailable():
    async with Channel("127.0.0.1:1") as channel:
        with pytest.raises(errors.Unavailable):
            await unary(channel.stub(pb_grpc.BridgeTestStub).Echo, pb.EchoRequest(), timeout=2)


def test_status_for_maps_exception_types():
    assert status_for(errors.NotFound("x"))[:2] == (grpc.StatusCode.NOT_FOUND, "x")
    assert status_for(trio.TooSlowError())[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_for(ValueError("secret"))[:2] == (grpc.StatusCode.INTERNAL, "internal error (ValueError)")
    assert status_for(ValueError("secret"))[2] is True


async def test_stopping_the_server_cancels_in_flight_handlers(nursery):
    servicer = Servicer()
    server = TrioGrpcServer(node_id="test", stop_grace_s=0.1)
    server.add_service(pb_grpc.add_BridgeTestServicer_to_server, servicer)
    async with trio.open_nursery() as server_nursery:
        port = await server_nursery.start(server.run)
        outcome = {}

        async def slow_call() -> None:
            async with Channel(f"127.0.0.1:{port}") as channel:
                try:
                    await unary(channel.stub(pb_grpc.BridgeTestStub).Echo, pb.EchoRequest(delay_s=30), timeout=30)
                except errors.RpcError as exc:
                    outcome["error"] = exc

        nursery.start_soon(slow_call)
        await servicer.started.wait()
        start = trio.current_time()
        server_nursery.cancel_scope.cancel()
    assert trio.current_time() - start < 3
    with trio.fail_after(3):
        await servicer.cancelled.wait()
        while "error" not in outcome:
            await trio.sleep(0.01)
    assert outcome["error"].code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)


async def test_binding_a_taken_port_fails_loudly(nursery):
    taken = TrioGrpcServer()
    first_port = await nursery.start(taken.run)
    second = TrioGrpcServer()
    with pytest.raises(errors.BridgeError):
        await nursery.start(second.run, f"127.0.0.1:{first_port}")


class PartialServicer(pb_grpc.BridgeTestServicer):
    async def Echo(self, request, context):
        return pb.EchoReply(text=request.text)


async def test_methods_left_to_the_generated_base_answer_unimplemented(nursery):
    server = TrioGrpcServer()
    server.add_service(pb_grpc.add_BridgeTestServicer_to_server, PartialServicer())
    port = await nursery.start(server.run)
    async with Channel(f"127.0.0.1:{port}") as channel:
        stub = channel.stub(pb_grpc.BridgeTestStub)
        assert (await unary(stub.Echo, pb.EchoRequest(text="a"), timeout=5)).text == "a"
        with pytest.raises(errors.Unimplemented):
            async for _ in server_stream(stub.Count, pb.EchoRequest(count=1), timeout=5):
                pass


def test_a_sync_handler_is_refused_at_registration():
    class SyncServicer(PartialServicer):
        def Echo(self, request, context):
            return pb.EchoReply()

    with pytest.raises(errors.BridgeError, match="async def"):
        TrioGrpcServer().add_service(pb_grpc.add_BridgeTestServicer_to_server, SyncServicer())


def test_rpc_errors_round_trip_to_their_most_specific_type():
    for error_type in (errors.NotFound, errors.InvalidArgument, errors.Unavailable, errors.FailedPrecondition):
        sent = error_type("why")
        received = errors.RpcError.from_status(sent.code, sent.details)
        assert type(received) is error_type
        assert received.details == "why"
    other = errors.RpcError.from_status(grpc.StatusCode.DATA_LOSS, "gone")
    assert type(other) is errors.RpcError and other.code == grpc.StatusCode.DATA_LOSS
    with pytest.raises(TypeError):
        errors.RpcError("not a code", "details")


# ---------------------------------------------------------------- lockstep bidi calls


class LockstepServicer(Servicer):
    """Chat as a lockstep handler: one reply per request, numbered by arrival."""

    @lockstep
    async def Chat(self, request, context):
        self.calls += 1
        self.started.set()
        if request.delay_s:
            await self._sleep_noting_cancel(request.delay_s)
        await self._maybe_fail(request, context)
        return pb.EchoReply(text=request.text.upper(), index=self.calls)


@pytest.fixture
async def lockstep_servicer():
    return LockstepServicer()


@pytest.fixture
async def lockstep_stub(nursery, lockstep_servicer):
    async with serving(nursery, lockstep_servicer) as stub:
        yield stub


async def test_lockstep_answers_each_request_in_order(lockstep_stub, lockstep_servicer):
    requests: queue.SimpleQueue = queue.SimpleQueue()
    async with server_stream(lockstep_stub.Chat, iter(requests.get, None), timeout=10) as replies:
        for k in range(300):
            requests.put(pb.EchoRequest(text=f"m{k}"))
            if k % 3 == 0:  # sometimes several requests wait at once
                continue
            with trio.fail_after(3):
                while lockstep_servicer.calls <= k:
                    reply = await anext(replies)
                    assert (reply.text, reply.index) == (f"M{reply.index - 1}", reply.index)
        requests.put(None)  # half-close ends the call
        with trio.fail_after(3):
            rest = [reply async for reply in replies]
    assert lockstep_servicer.calls == 300
    assert [r.index for r in rest] == list(range(300 - len(rest) + 1, 301))


async def test_lockstep_handler_error_ends_the_call_with_its_status(lockstep_stub, lockstep_servicer):
    requests = iter([pb.EchoRequest(text="a"), pb.EchoRequest(fail_with="not_found"), pb.EchoRequest(text="c")])
    got = []
    with pytest.raises(errors.NotFound, match="no such pod"):
        async with server_stream(lockstep_stub.Chat, requests, timeout=5) as replies:
            async for reply in replies:
                got.append(reply.text)
    assert got == ["A"]
    assert lockstep_servicer.calls == 2  # nothing after the failure was handled


async def test_lockstep_client_cancel_cancels_the_running_handler(lockstep_stub, lockstep_servicer):
    requests: queue.SimpleQueue = queue.SimpleQueue()
    replies = server_stream(lockstep_stub.Chat, iter(requests.get, None), timeout=None)
    requests.put(pb.EchoRequest(text="slow", delay_s=30))
    with trio.fail_after(5):
        await lockstep_servicer.started.wait()
    await replies.aclose()
    requests.put(None)
    with trio.fail_after(5):
        await lockstep_servicer.cancelled.wait()


async def test_lockstep_deadline_cancels_the_handler(lockstep_stub, lockstep_servicer):
    requests = iter([pb.EchoRequest(text="a"), pb.EchoRequest(text="slow", delay_s=30)])
    with pytest.raises(errors.DeadlineExceeded):
        async with server_stream(lockstep_stub.Chat, requests, timeout=0.5) as replies:
            with trio.fail_after(5):
                async for _ in replies:
                    pass
    with trio.fail_after(5):
        await lockstep_servicer.cancelled.wait()


def test_lockstep_is_refused_on_a_generator_or_a_method_that_does_not_stream_both_ways():
    class GeneratorChat(Servicer):
        @lockstep
        async def Chat(self, requests, context):
            yield pb.EchoReply()

    class UnaryEcho(Servicer):
        @lockstep
        async def Echo(self, request, context):
            return pb.EchoReply()

    for servicer_class, problem in ((GeneratorChat, "async def"), (UnaryEcho, "stream both ways")):
        server = TrioGrpcServer(node_id="test")
        with pytest.raises(errors.BridgeError, match=problem):
            server.add_service(pb_grpc.add_BridgeTestServicer_to_server, servicer_class())


async def test_idle_streams_are_bounded_and_never_starve_unary_calls(nursery, servicer):
    """Each stream holds a pool thread; past max_concurrent_streams a new one is refused with a
    clear RESOURCE_EXHAUSTED, while unary calls keep their own threads and are answered."""
    server = TrioGrpcServer(node_id="test", stop_grace_s=0.1, max_concurrent_streams=6, unary_workers=2)
    server.add_service(pb_grpc.add_BridgeTestServicer_to_server, servicer)
    port = await nursery.start(server.run)
    async with Channel(f"127.0.0.1:{port}") as channel:
        await channel.wait_ready(timeout=5)
        stub = channel.stub(pb_grpc.BridgeTestStub)
        idle = []
        for _ in range(6):  # streams that send one message and then sit idle for a minute
            stream = server_stream(stub.Count, pb.EchoRequest(text="idle", count=2, delay_s=60), timeout=None)
            idle.append(stream)
            assert (await stream.__anext__()).text == "idle"
        assert server.streams_open == 6
        refused = server_stream(stub.Count, pb.EchoRequest(text="one too many", count=1), timeout=5)
        with pytest.raises(errors.ResourceExhausted, match="too many open streams"):
            await refused.__anext__()
        assert server.streams_refused == 1
        # Far more unary calls than there are unary threads, all answered while the streams idle.
        async with trio.open_nursery() as callers:
            for i in range(20):
                callers.start_soon(functools.partial(unary, stub.Echo, pb.EchoRequest(text=str(i)), timeout=5))
        with trio.fail_after(5):
            assert (await unary(stub.Echo, pb.EchoRequest(text="still answered"), timeout=5)).text == "still answered"
        # A slot freed by a closed stream is taken by the next one.
        await idle.pop().aclose()
        with trio.fail_after(5):
            while server.streams_open != 5:
                await trio.sleep(0.01)
        async with server_stream(stub.Count, pb.EchoRequest(text="now", count=1), timeout=5) as accepted:
            assert [r.text async for r in accepted] == ["now"]
        for stream in idle:
            await stream.aclose()


async def test_client_keepalive_pings_do_not_get_the_channel_dropped(nursery, servicer):
    """A client that pings an idle server every few seconds (agentd's peers do, to notice a
    dead server) keeps its connection: grpc's server default answers such pings with GOAWAY
    too_many_pings after two strikes, and the channel falls back to IDLE."""
    server = TrioGrpcServer(node_id="test", stop_grace_s=0.1, min_client_ping_interval_ms=100)
    server.add_service(pb_grpc.add_BridgeTestServicer_to_server, servicer)
    port = await nursery.start(server.run)
    states: list[grpc.ChannelConnectivity] = []
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
        ("grpc.keepalive_time_ms", 150),
        ("grpc.keepalive_timeout_ms", 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ])
    try:
        channel.subscribe(states.append, try_to_connect=True)
        stub = pb_grpc.BridgeTestStub(channel)
        reply = await trio.to_thread.run_sync(lambda: stub.Echo(pb.EchoRequest(text="hi"), timeout=5))
        assert reply.text == "hi"
        await trio.sleep(4.0)  # a server refusing these pings sends GOAWAY about 3 s in
        assert states[-1] == grpc.ChannelConnectivity.READY, states
        assert states.count(grpc.ChannelConnectivity.READY) == 1, states
    finally:
        channel.close()
