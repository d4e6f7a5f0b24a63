"""DockerApi against an engine that accepts connections and never answers.

A stalled engine must never hold up the caller once it is cancelled: every SDK call runs
in a thread the caller abandons on cancellation, so stopping the runtime is prompt even
when a call would otherwise block until its (long) timeout.
"""

from __future__ import annotations

import socket

import trio

from agent.runtime import DockerApi, InMemorySource, PodRuntime, quick_profile

CALL_TIMEOUT_S = 30.0  # what a cancelled call would wait without abandoning its thread


class StalledEngine:
    """A unix socket that accepts every connection, reads what comes and answers nothing."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.url = f"unix://{path}"
        self.connected = trio.Event()  # set once a client is waiting on it

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(self.path)
        sock.listen(64)
        await trio.serve_listeners(self._hold, [trio.SocketListener(sock)], task_status=task_status)

    async def _hold(self, stream: trio.abc.Stream) -> None:
        async with stream:
            while await stream.receive_some(65536):
                self.connected.set()


async def test_a_cancelled_call_returns_at_once_on_a_stalled_engine(nursery, tmp_path) -> None:
    engine = StalledEngine(str(tmp_path / "stalled.sock"))
    await nursery.start(engine.serve)
    docker = DockerApi(engine.url, call_timeout_s=CALL_TIMEOUT_S)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as inner:
            inner.start_soon(docker.inspect_container, "anything")
            await engine.connected.wait()  # the call now waits for an answer that never comes
            t0 = trio.current_time()
            scope.cancel()
    elapsed = trio.current_time() - t0
    assert elapsed < CALL_TIMEOUT_S / 10, elapsed


async def test_the_runtime_stops_promptly_while_the_engine_is_stalled(nursery, tmp_path) -> None:
    engine = StalledEngine(str(tmp_path / "stalled.sock"))
    await nursery.start(engine.serve)
    config = quick_profile(docker_url=engine.url, docker_call_timeout_s=CALL_TIMEOUT_S)
    runtime = PodRuntime(node_name="stalled-node", config=config)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as inner:
            await inner.start(runtime.run, InMemorySource())
            await engine.connected.wait()  # the runtime now waits on the engine's first answer
            assert not runtime.listing_ready.is_set()
            t0 = trio.current_time()
            scope.cancel()
    elapsed = trio.current_time() - t0
    assert elapsed < CALL_TIMEOUT_S / 10, elapsed
