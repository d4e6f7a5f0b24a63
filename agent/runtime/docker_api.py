"""Thin Trio wrapper over the Docker SDK's low-level APIClient.

Owns: the one connection to the Docker engine. Rules: every blocking SDK call runs in a
worker thread through `trio.to_thread.run_sync(..., abandon_on_cancel=True)` with a
CapacityLimiter (so at most `threads` calls block at once): a cancelled caller returns at
once and the thread finishes (or times out) on its own, so shutting down never waits on
a stalled engine. Long-lived streams use a separate limiter so they never starve the
short calls: the events stream is read by a dedicated thread feeding a Trio channel
(`pump`), a log stream one thread hop per batch of chunks (one chunk when followed).
SDK and transport errors are mapped to agent.runtime.errors: DockerUnavailable (retry
later), NotFound/ImageNotFound, DockerApiError.
The low-level client is used so a create costs one round trip (the high-level one
re-inspects every object it creates).
"""

from __future__ import annotations

import http.client
import threading
from typing import Any, AsyncIterator, Callable, Iterable, TypeVar

import docker
import docker.errors
import requests.exceptions
import trio
import urllib3.exceptions

from .errors import DockerApiError, DockerUnavailable, ImageNotFound, ImagePullError, NotFound

T = TypeVar("T")

# Log chunks (about a line each) read per worker-thread hop when a log is read to its end.
_LOG_CHUNKS_PER_HOP = 256


def _map_error(exc: BaseException) -> BaseException:
    if isinstance(exc, docker.errors.ImageNotFound):
        return ImageNotFound(str(exc), 404)
    if isinstance(exc, docker.errors.NotFound):
        msg = str(exc)
        if "No such image" in msg:
            return ImageNotFound(msg, 404)
        return NotFound(msg, 404)
    if isinstance(exc, docker.errors.APIError):
        return DockerApiError(str(exc), exc.status_code)
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError,
                        http.client.HTTPException, ConnectionError, FileNotFoundError, TimeoutError)):
        return DockerUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, docker.errors.DockerException):
        return DockerUnavailable(str(exc))
    return exc


class DockerApi:
    """Async access to one Docker engine. Safe to share between tasks."""

    def __init__(self, url: str | None = None, *, threads: int = 8, call_timeout_s: float = 60.0) -> None:
        self._url = url
        self._timeout_s = call_timeout_s
        self._limiter = trio.CapacityLimiter(threads)
        self._stream_limiter = trio.CapacityLimiter(256)
        self._client: docker.APIClient | None = None
        self._follow_client: docker.APIClient | None = None  # no read timeout: for `logs --follow`
        self._client_kwargs: dict[str, Any] = {}
        self._client_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------

    def _connect(self) -> docker.APIClient:
        with self._client_lock:
            if self._client is None:
                kwargs: dict[str, Any] = {}
                if self._url is not None:
                    kwargs["base_url"] = self._url
                else:
                    kwargs.update(docker.utils.kwargs_from_env())
                # version="auto" asks the engine once; it fails here if the engine is down.
                self._client = docker.APIClient(version="auto", timeout=int(self._timeout_s), **kwargs)
                self._client_kwargs = kwargs
            return self._client

    def _blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Callable[[], T]:
        def run() -> T:
            try:
                return fn(self._connect(), *args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised mapped
                mapped = _map_error(exc)
                if mapped is exc:
                    raise
                if isinstance(mapped, DockerUnavailable):
                    self._forget_client()
                raise mapped from exc
        return run

    def _follow_connect(self) -> docker.APIClient:
        client = self._connect()
        with self._client_lock:
            if self._follow_client is None:
                self._follow_client = docker.APIClient(version=client.api_version, timeout=None,
                                                       **self._client_kwargs)
            return self._follow_client

    def _forget_client(self) -> None:
        with self._client_lock:
            for client in (self._client, self._follow_client):
                if client is not None:
                    try:
                        client.close()
                    except Exception:  # noqa: BLE001 - closing a broken client
                        pass
            self._client = None
            self._follow_client = None

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await trio.to_thread.run_sync(self._blocking(fn, *args, **kwargs), limiter=self._limiter,
                                             abandon_on_cancel=True)

    def close(self) -> None:
        self._forget_client()

    # -- engine -----------------------------------------------------------------

    async def ping(self) -> bool:
        return await self._call(lambda c: c.ping())

    # -- images -----------------------------------------------------------------

    async def image_present(self, image: str) -> bool:
        try:
            await self._call(lambda c: c.inspect_image(image))
            return True
        except ImageNotFound:
            return False
        except NotFound:
            return False

    async def image_user(self, image: str) -> str:
        """The user the image runs as (its Config.User, "" for root by default)."""
        info = await self._call(lambda c: c.inspect_image(image))
        return str((info.get("Config") or {}).get("User") or "")

    async def pull(self, image: str) -> None:
        repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
        try:
            await self._call(lambda c: c.pull(repo, tag=tag))
        except (DockerApiError, DockerUnavailable) as exc:
            if isinstance(exc, DockerUnavailable):
                raise
            raise ImagePullError(str(exc), exc.status_code) from exc

    # -- containers -------------------------------------------------------------

    async def create_container(self, name: str, create_kwargs: dict[str, Any], host_config_kwargs: dict[str, Any]) -> str:
        """Create a container; returns its id (no inspect round trip)."""
        def create(c: docker.APIClient) -> str:
            host_config = c.create_host_config(**{k: v for k, v in host_config_kwargs.items() if v is not None})
            args = {k: v for k, v in create_kwargs.items() if v is not None}
            return c.create_container(name=name, host_config=host_config, **args)["Id"]
        return await self._call(create)

    async def start(self, container_id: str) -> None:
        await self._call(lambda c: c.start(container_id))

    async def stop(self, container_id: str, timeout_s: int) -> None:
        """SIGTERM, wait up to timeout_s, then SIGKILL (docker stop)."""
        def stop(c: docker.APIClient) -> None:
            # The HTTP call lasts as long as the grace period: give it room.
            c.stop(container_id, timeout=timeout_s)
        # The stream limiter: a stop lasts as long as the grace period and must not hold up short calls.
        await trio.to_thread.run_sync(self._blocking(stop), limiter=self._stream_limiter, abandon_on_cancel=True)

    async def kill(self, container_id: str) -> None:
        await self._call(lambda c: c.kill(container_id))

    async def remove_container(self, container_id: str, *, force: bool = True) -> None:
        try:
            await self._call(lambda c: c.remove_container(container_id, force=force, v=False))
        except NotFound:
            pass
        except DockerApiError as exc:
            if exc.status_code == 409 and "already in progress" in str(exc):
                return
            raise

    async def inspect_container(self, container_id: str) -> dict[str, Any]:
        return await self._call(lambda c: c.inspect_container(container_id))

    async def list_containers(self, labels: Iterable[str]) -> list[dict[str, Any]]:
        """All containers (running or not) carrying every `key=value` label given."""
        filters = {"label": list(labels)}
        return await self._call(lambda c: c.containers(all=True, filters=filters))

    async def exec(self, container_id: str, command: list[str]) -> int:
        """Run a command in a running container; returns its exit code."""
        def run(c: docker.APIClient) -> int:
            exec_id = c.exec_create(container_id, command, stdout=True, stderr=True)["Id"]
            c.exec_start(exec_id)
            return int(c.exec_inspect(exec_id)["ExitCode"] or 0)
        return await trio.to_thread.run_sync(self._blocking(run), limiter=self._stream_limiter,
                                             abandon_on_cancel=True)

    # -- volumes ----------------------------------------------------------------

    async def create_volume(self, name: str, labels: dict[str, str], driver_opts: dict[str, str]) -> None:
        await self._call(lambda c: c.create_volume(name=name, driver="local", driver_opts=driver_opts or None,
                                                    labels=labels))

    async def remove_volume(self, name: str) -> None:
        try:
            await self._call(lambda c: c.remove_volume(name, force=True))
        except NotFound:
            pass

    async def list_volumes(self, labels: Iterable[str]) -> list[dict[str, Any]]:
        result = await self._call(lambda c: c.volumes(filters={"label": list(labels)}))
        return list(result.get("Volumes") or [])

    # -- streams ----------------------------------------------------------------

    async def _open_stream(self, opener: Callable[[docker.APIClient], Any]) -> Any:
        return await trio.to_thread.run_sync(self._blocking(opener), limiter=self._stream_limiter,
                                             abandon_on_cancel=True)

    async def _iterate_stream(self, stream: Any, *, batch_items: int = 1) -> AsyncIterator[list[Any]]:
        """Items of a blocking SDK stream, up to `batch_items` per worker-thread hop (a hop costs far
        more than an item); closes the stream at the end. A batch waits until it is full or the
        stream ends, so a stream that may pause (a followed log) must use batches of one."""
        iterator = iter(stream)

        def next_batch() -> list[Any]:
            batch: list[Any] = []
            try:
                for item in iterator:
                    batch.append(item)
                    if len(batch) >= batch_items:
                        break
            except Exception as exc:  # noqa: BLE001 - re-raised mapped
                mapped = _map_error(exc)
                if mapped is exc:  # whatever breaks a stream mid-way: the engine went away
                    raise DockerUnavailable(f"stream broken: {type(exc).__name__}: {exc}") from exc
                raise mapped from exc
            return batch

        try:
            while True:
                batch = await trio.to_thread.run_sync(next_batch, limiter=self._stream_limiter,
                                                      abandon_on_cancel=True)
                if not batch:
                    return
                yield batch
        finally:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a stream whose socket may be gone
                pass

    async def events_stream(self, labels: Iterable[str], event_types: Iterable[str]) -> Any:
        """Open the engine's container-event stream (filtered by labels and event names).

        Events are recorded from the moment this returns, so a caller that lists containers
        afterwards misses nothing. Read it with `pump`.
        """
        filters = {"type": "container", "label": list(labels), "event": list(event_types)}
        return await self._open_stream(lambda c: c.events(decode=True, filters=filters))

    async def pump(self, stream: Any, send: trio.MemorySendChannel[Any]) -> None:
        """Read a blocking SDK stream in a dedicated thread that feeds `send` (closed at the end).

        Returns when the stream ends; raises DockerUnavailable if it broke. Cancelling the
        caller closes the stream, which ends the thread.
        """
        token = trio.lowlevel.current_trio_token()

        def reader() -> BaseException | None:
            try:
                for item in stream:
                    try:
                        trio.from_thread.run(send.send, item, trio_token=token)
                    except BaseException:  # noqa: BLE001 - the consumer or the run is gone: stop reading
                        return None
            except Exception as exc:  # noqa: BLE001 - returned to the Trio side, mapped there
                return exc
            return None

        try:
            async with send:
                error = await trio.to_thread.run_sync(reader, limiter=self._stream_limiter, abandon_on_cancel=True)
        finally:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - the socket may already be gone
                pass
        if error is not None:
            mapped = _map_error(error)
            if not isinstance(mapped, DockerUnavailable):
                mapped = DockerUnavailable(f"stream broken: {type(error).__name__}: {error}")
            raise mapped from error

    async def logs(self, container_id: str, *, tail: int | None, follow: bool) -> AsyncIterator[str]:
        """Lines (without the newline) of a container's stdout and stderr."""
        def open_logs(_: docker.APIClient) -> Any:
            # A followed log may stay silent for long: it must not hit the per-call read timeout.
            client = self._follow_connect() if follow else self._connect()
            return client.logs(container_id, stream=True, follow=follow, stdout=True, stderr=True,
                               tail="all" if tail is None else int(tail))

        stream = await self._open_stream(open_logs)
        pending = b""
        # A log read to its end comes in batches of chunks; a followed one chunk by chunk, as it is written.
        async for chunks in self._iterate_stream(stream, batch_items=1 if follow else _LOG_CHUNKS_PER_HOP):
            pending += b"".join(chunks)
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")
        if pending:
            yield pending.decode("utf-8", "replace")


async def gather(*calls: Callable[[], Any]) -> list[Any]:
    """Run async calls concurrently; results in order.

    If some failed with a runtime error (engine down, API error), the first such error is
    re-raised as itself (not as an exception group) once all calls are done; any other
    exception is a bug and propagates as Trio raises it.
    """
    from .errors import PodRuntimeError

    results: list[Any] = [None] * len(calls)
    errors: list[PodRuntimeError] = []

    async def one(index: int, call: Callable[[], Any]) -> None:
        try:
            results[index] = await call()
        except PodRuntimeError as exc:
            errors.append(exc)

    if len(calls) == 1:
        await one(0, calls[0])
    else:
        async with trio.open_nursery() as nursery:
            for index, call in enumerate(calls):
                nursery.start_soon(one, index, call)
    if errors:
        raise errors[0]
    return results
