"""HollowEngine: an in-memory stand-in for the Docker engine, for benchmarks and tests only.

A TEST/BENCH FACILITY: `agentd --hollow` selects it, so one machine can run many agentd
processes whose Pods cost nothing (a hollow node, as Kubernetes' kubemark has). It is never
chosen otherwise. The whole PodRuntime runs unchanged on top of it (workers, restart and
backoff, status reports, orphan sweeps); only the engine is pretend.
Rules:
  - a container "runs" from start until stop/kill/remove; nothing is executed;
  - every image is present, pulls succeed at once, images run as root;
  - exec (exec probes, exec hooks, fsGroup) succeeds with exit code 0, so a readiness probe
    of kind exec passes at its first period; httpGet/tcpSocket probes are not served (the
    sandbox's address is loopback, where no Pod listens): use exec probes on hollow nodes;
  - stop honours the grace period only in that it reports the container exited with 143
    (137 for kill); a stopped container emits a "die" event, as the engine does;
  - logs are empty; volumes are names in a dict.
The object shapes are the subset of the Engine API's that the runtime reads.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Iterable

import trio

from .errors import NotFound

_counter = itertools.count(1)


def _now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _matches(labels: dict[str, str], wanted: Iterable[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


class _EventStream:
    """What events_stream returns: a queue of events that `pump` drains."""

    def __init__(self, engine: "HollowEngine", labels: list[str]) -> None:
        self.engine = engine
        self.labels = labels
        self.send, self.receive = trio.open_memory_channel[dict[str, Any]](10_000)

    def close(self) -> None:
        self.engine._streams.discard(self)
        self.send.close()


class HollowEngine:
    """The DockerApi interface, kept in memory. See the module banner."""

    def __init__(self) -> None:
        self._containers: dict[str, dict[str, Any]] = {}  # id -> container record
        self._names: dict[str, str] = {}  # name -> id
        self._volumes: dict[str, dict[str, Any]] = {}
        self._streams: set[_EventStream] = set()

    # -- engine and images ------------------------------------------------------------

    def close(self) -> None:
        pass

    async def ping(self) -> bool:
        return True

    async def image_present(self, image: str) -> bool:
        return True

    async def image_user(self, image: str) -> str:
        return ""

    async def pull(self, image: str) -> None:
        await trio.lowlevel.checkpoint()

    # -- containers ---------------------------------------------------------------------

    def _get(self, ref: str) -> dict[str, Any]:
        cid = self._names.get(ref, ref)
        record = self._containers.get(cid)
        if record is None:
            raise NotFound(f"No such container: {ref}", 404)
        return record

    async def create_container(self, name: str, create_kwargs: dict[str, Any],
                               host_config_kwargs: dict[str, Any]) -> str:
        await trio.lowlevel.checkpoint()
        if name in self._names:
            from .errors import DockerApiError
            raise DockerApiError(f"Conflict. The container name {name!r} is already in use", 409)
        cid = f"{next(_counter):016x}{int(time.time() * 1e6):016x}"[:64].ljust(64, "0")
        self._names[name] = cid
        self._containers[cid] = {
            "Id": cid, "Name": name, "Labels": dict(create_kwargs.get("labels") or {}),
            "Image": create_kwargs.get("image", ""), "Status": "created", "Running": False,
            "ExitCode": 0, "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z",
        }
        return cid

    async def start(self, container_id: str) -> None:
        await trio.lowlevel.checkpoint()
        record = self._get(container_id)
        record.update(Status="running", Running=True, ExitCode=0, StartedAt=_now_text())

    def _exit(self, record: dict[str, Any], code: int) -> None:
        if not record["Running"]:
            return
        record.update(Status="exited", Running=False, ExitCode=code, FinishedAt=_now_text())
        event = {"Type": "container", "Action": "die", "status": "die", "id": record["Id"],
                 "Actor": {"ID": record["Id"], "Attributes": dict(record["Labels"], exitCode=str(code))}}
        for stream in list(self._streams):
            if _matches(record["Labels"], stream.labels):
                try:
                    stream.send.send_nowait(event)
                except (trio.WouldBlock, trio.ClosedResourceError):
                    pass  # a reader that fell that far behind resyncs from the listing

    async def stop(self, container_id: str, timeout_s: int) -> None:
        await trio.lowlevel.checkpoint()
        self._exit(self._get(container_id), 143)

    async def kill(self, container_id: str) -> None:
        await trio.lowlevel.checkpoint()
        self._exit(self._get(container_id), 137)

    async def remove_container(self, container_id: str, *, force: bool = True) -> None:
        await trio.lowlevel.checkpoint()
        try:
            record = self._get(container_id)
        except NotFound:
            return
        self._exit(record, 137)
        del self._containers[record["Id"]]
        self._names.pop(record["Name"], None)

    async def inspect_container(self, container_id: str) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        r = self._get(container_id)
        return {
            "Id": r["Id"], "Name": "/" + r["Name"], "Config": {"Labels": dict(r["Labels"]), "Image": r["Image"]},
            "State": {"Status": r["Status"], "Running": r["Running"], "ExitCode": r["ExitCode"],
                      "OOMKilled": False, "StartedAt": r["StartedAt"], "FinishedAt": r["FinishedAt"]},
            "NetworkSettings": {"IPAddress": "127.0.0.1" if r["Running"] else ""},
        }

    async def list_containers(self, labels: Iterable[str]) -> list[dict[str, Any]]:
        await trio.lowlevel.checkpoint()
        wanted = list(labels)
        return [{"Id": r["Id"], "Names": ["/" + r["Name"]], "Labels": dict(r["Labels"]), "State": r["Status"],
                 "Image": r["Image"]}
                for r in self._containers.values() if _matches(r["Labels"], wanted)]

    async def exec(self, container_id: str, command: list[str]) -> int:
        await trio.lowlevel.checkpoint()
        self._get(container_id)
        return 0

    # -- volumes ------------------------------------------------------------------------

    async def create_volume(self, name: str, labels: dict[str, str], driver_opts: dict[str, str]) -> None:
        await trio.lowlevel.checkpoint()
        self._volumes[name] = {"Name": name, "Labels": dict(labels)}

    async def remove_volume(self, name: str) -> None:
        await trio.lowlevel.checkpoint()
        self._volumes.pop(name, None)

    async def list_volumes(self, labels: Iterable[str]) -> list[dict[str, Any]]:
        await trio.lowlevel.checkpoint()
        wanted = list(labels)
        return [dict(v) for v in self._volumes.values() if _matches(v["Labels"], wanted)]

    # -- streams ------------------------------------------------------------------------

    async def events_stream(self, labels: Iterable[str], event_types: Iterable[str]) -> _EventStream:
        await trio.lowlevel.checkpoint()
        stream = _EventStream(self, list(labels))
        self._streams.add(stream)
        return stream

    async def pump(self, stream: _EventStream, send: trio.MemorySendChannel[Any]) -> None:
        async with send:
            async for event in stream.receive:
                await send.send(event)

    async def logs(self, container_id: str, *, tail: int | None, follow: bool) -> AsyncIterator[str]:
        self._get(container_id)
        if follow:
            while self._get(container_id)["Running"]:
                await trio.sleep(1.0)
        return
        yield  # an async generator with nothing to say
