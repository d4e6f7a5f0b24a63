"""Benchmark of the Trio <-> grpcio bridge on loopback; prints one JSON line.

Figures: unary p50/p99 latency of sequential calls, unary calls/s with one and with
several concurrent callers on one channel, and server-stream messages/s on one stream.
The server runs in a child process by default, as it does between two nodes; with
--in-process client and server share one process (and one GIL), which is slower.

    .venv/bin/python bench/grpc_bridge_bench.py [--calls 3000] [--stream-messages 50000] [--in-process]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import trio

from agent.grpcbridge import Channel, TrioGrpcServer, server_stream, unary
from agent.rpc import bridge_test_pb2 as pb
from agent.rpc import bridge_test_pb2_grpc as pb_grpc


class EchoServicer:
    async def Echo(self, request, context):
        return pb.EchoReply(text=request.text)

    async def Count(self, request, context):
        reply = pb.EchoReply(text=request.text)
        for i in range(request.count):
            reply.index = i
            yield reply

    async def Join(self, requests, context):
        return pb.EchoReply(text="".join([r.text async for r in requests]))

    async def Chat(self, requests, context):
        async for request in requests:
            yield pb.EchoReply(text=request.text)


async def sequential_latencies_s(stub, calls: int) -> list[float]:
    request = pb.EchoRequest(text="x")
    latencies = []
    for _ in range(calls):
        start = time.perf_counter()
        await unary(stub.Echo, request, timeout=5)
        latencies.append(time.perf_counter() - start)
    return latencies


async def concurrent_calls_per_s(stub, calls: int, callers: int) -> float:
    request = pb.EchoRequest(text="x")
    per_caller = calls // callers

    async def caller() -> None:
        for _ in range(per_caller):
            await unary(stub.Echo, request, timeout=5)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(callers):
            nursery.start_soon(caller)
    return per_caller * callers / (time.perf_counter() - start)


async def stream_messages_per_s(stub, messages: int) -> float:
    start = time.perf_counter()
    received = 0
    async with server_stream(stub.Count, pb.EchoRequest(text="x", count=messages), timeout=120) as replies:
        async for _ in replies:
            received += 1
    assert received == messages
    return received / (time.perf_counter() - start)


async def serve(port_file: str) -> None:
    """Child process: serve the echo service and write the bound port to port_file."""
    server = TrioGrpcServer(node_id="bench")
    server.add_service(pb_grpc.add_BridgeTestServicer_to_server, EchoServicer())
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(port_file + ".tmp", port_file)


async def start_child_server() -> tuple[subprocess.Popen, int]:
    port_file = f"/tmp/grpc_bridge_bench.{os.getpid()}.port"
    child = subprocess.Popen([sys.executable, __file__, "--serve", port_file])
    with trio.fail_after(30):
        while not os.path.exists(port_file):
            await trio.sleep(0.05)
    with open(port_file) as f:
        port = int(f.read())
    os.unlink(port_file)
    return child, port


async def main(calls: int, stream_messages: int, callers: int, in_process: bool) -> None:
    child = None
    async with trio.open_nursery() as nursery:
        if in_process:
            server = TrioGrpcServer(node_id="bench")
            server.add_service(pb_grpc.add_BridgeTestServicer_to_server, EchoServicer())
            port = await nursery.start(server.run)
        else:
            child, port = await start_child_server()
        async with Channel(f"127.0.0.1:{port}") as channel:
            await channel.wait_ready(timeout=5)
            stub = channel.stub(pb_grpc.BridgeTestStub)
            await sequential_latencies_s(stub, 200)  # warm-up
            latencies = sorted(await sequential_latencies_s(stub, calls))
            one_caller = await concurrent_calls_per_s(stub, calls, 1)
            many_callers = await concurrent_calls_per_s(stub, calls, callers)
            stream_rate = await stream_messages_per_s(stub, stream_messages)
        nursery.cancel_scope.cancel()
    if child is not None:
        child.terminate()
        child.wait()
    print(
        json.dumps(
            {
                "bench": "grpc_bridge",
                "server": "in_process" if in_process else "child_process",
                "unary_p50_ms": round(statistics.median(latencies) * 1e3, 3),
                "unary_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1e3, 3),
                "unary_calls_per_s_1_caller": round(one_caller),
                f"unary_calls_per_s_{callers}_callers": round(many_callers),
                "stream_msgs_per_s": round(stream_rate),
                "calls": calls,
                "stream_messages": stream_messages,
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--stream-messages", type=int, default=50000)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--in-process", action="store_true", help="run the server in this process")
    parser.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve, args.serve)
    else:
        trio.run(main, args.calls, args.stream_messages, args.callers, args.in_process)
