"""PodRuntime: runs this node's desired Pods on the Docker engine.

Owns: the set of pod workers (one per desired Pod), the Docker events reader that routes
container deaths to them, the orphan sweep, and the status snapshot and its fan-out
(status_feed.py: coalesced per Pod, the last state of a Pod is never dropped).
Rules:
  - nothing is stopped before the first desired set has been read AND the engine's
    containers listed: a restarted agent adopts its running Pods instead of killing them;
  - containers with our node label that belong to no desired Pod are stopped and removed;
  - the events stream is the source of deaths; after it breaks (engine restart) every
    worker gets a fresh listing (Resync) so no death is missed; a periodic resync is a
    safety net;
  - Docker being down never ends `run`: it is retried with backoff and shown in statuses;
  - a Pod starts only once no Pod still stopping here has its uid, its namespace/name, or a
    hostPort it binds (the cluster forgets a deleted Pod at once, so its successor may
    arrive while it is still within its grace period).
"""

from __future__ import annotations

import logging
import math
import os
import socket
from functools import partial
from dataclasses import replace
from collections import defaultdict
from typing import Any, AsyncIterator

import trio

from . import containers as plans
from .backoff import BackoffPolicy, delay_for_streak
from .config import RuntimeConfig
from . import projected_dir
from .config_objects import ConfigObjects
from .config_volumes import pod_volumes_dir
from .docker_api import DockerApi, gather
from .errors import DockerApiError, DockerUnavailable, NotFound
from .images import ImageCache
from .node_resources import NodeResources, read_node_resources
from .pod_worker import PodWorker
from .pod_identity import choose_by_key
from .reconciler import plan_reconcile, runnable_problem
from .source import DesiredPodSource
from .status import PodStatus
from .status_feed import StatusFeed, StatusSubscription
from .worker_state import ContainerDied, Resync, Terminate, Wake

log = logging.getLogger("agent.runtime")


def _default_host_ip() -> str | None:
    """The address this host uses to reach the outside (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        return None


# How many container ids with an "oom" event are remembered: far more than die between two looks.
_OOM_MEMORY = 1024


class PodRuntime:
    def __init__(self, *, node_name: str, config: RuntimeConfig, docker: DockerApi | None = None,
                 host_ip: str | None = None) -> None:
        self.node_name = node_name
        self.config = config
        self.docker = docker or DockerApi(config.docker_url, threads=config.docker_threads,
                                          call_timeout_s=config.docker_call_timeout_s)
        self.host_ip = host_ip or _default_host_ip()
        self.listing_ready = trio.Event()  # the engine's containers have been listed once
        self.docker_message: str | None = "waiting for the Docker engine"
        self._listing: dict[str, list[dict[str, Any]]] = {}
        self._workers: dict[str, PodWorker] = {}
        self._terminating: dict[str, PodWorker] = {}  # uid -> worker tearing its Pod down
        self._statuses: dict[str, PodStatus] = {}
        self._feed = StatusFeed()
        self.images = ImageCache(self.docker)
        self.objects = ConfigObjects()  # the ConfigMaps and Secrets the feed hands this node
        self._desired_seen = False
        self._orphans_in_progress: set[str] = set()
        self._nursery: trio.Nursery | None = None
        self._node_label = f"{plans.LABEL_NODE}={node_name}"
        self._desired_pods: dict[str, Any] = {}  # the latest runnable desired set
        self.rejected: dict[str, str] = {}  # uid -> why a desired Pod cannot run here
        self._oom_seen: dict[str, None] = {}  # container ids with an "oom" event, oldest first

    # -- public API ------------------------------------------------------------------------

    async def run(self, source: DesiredPodSource, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled: follow `source`, keep the containers matching it."""
        log.info("%s event=runtime_starting infra_image=%s", self.node_name, self.config.infra_image)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._events_loop)
            nursery.start_soon(self._resync_loop)
            task_status.started()
            async for desired in source.desired_sets():
                self._apply_desired(desired)

    def statuses(self) -> dict[str, PodStatus]:
        return dict(self._statuses)

    def subscribe(self) -> StatusSubscription:
        """Every status change from now on, coalesced per Pod for a reader that falls behind."""
        return self._feed.subscribe()

    def pod(self, uid: str) -> Any | None:
        worker = self._workers.get(uid) or self._terminating.get(uid)
        return worker.pod if worker else None

    def find(self, namespace: str, name: str) -> tuple[Any, PodStatus] | None:
        for uid, worker in list(self._workers.items()) + list(self._terminating.items()):
            meta = worker.pod.metadata
            if meta.namespace == namespace and meta.name == name and uid in self._statuses:
                return worker.pod, self._statuses[uid]
        return None

    async def logs(self, uid: str, container: str, *, tail: int | None = None,
                   follow: bool = False, previous: bool = False) -> AsyncIterator[str]:
        """Lines of a container's output: the current instance (or the last one if none runs);
        with `previous`, the instance before it (as `kubectl logs --previous`).

        Raises KeyError for an unknown Pod or container. A follow ends when the instance stops."""
        worker = self._workers.get(uid) or self._terminating.get(uid)
        if worker is None:
            raise KeyError(f"no pod with uid {uid}")
        if container not in worker.apps:
            raise KeyError(f"pod {worker.pod.key} has no container {container!r}")
        container_id = worker.current_container_id(container, previous=previous)
        if container_id is None:
            return
        async for line in self.docker.logs(container_id, tail=tail, follow=follow):
            yield line

    def node_resources(self) -> NodeResources:
        return read_node_resources(reserved_cpu_millicores=self.config.reserved_cpu_millicores,
                                   reserved_memory_bytes=self.config.reserved_memory_bytes)

    # -- the PodHost protocol: what pod workers use -------------------------------------------

    def saw_oom(self, container_id: str) -> bool:
        """Did the engine report an out-of-memory kill in this container?"""
        return container_id in self._oom_seen

    def docker_lost(self) -> bool:
        """Was the engine reachable once and is it unreachable now?"""
        return self.listing_ready.is_set() and self.docker_message is not None

    def listed_containers(self, uid: str) -> list[dict[str, Any]]:
        """The containers of `uid` in the last listing, handed out once (a later worker lists afresh)."""
        return list(self._listing.pop(uid, ()))

    def publish(self, status: PodStatus) -> None:
        self._statuses[status.uid] = status
        self._feed.publish(status)

    # -- desired set -----------------------------------------------------------------------

    def _apply_desired(self, desired: dict[str, Any]) -> None:
        from agent.state.pod import pod_spec_hash

        runnable = {}
        problems: dict[str, str] = {}
        for uid, pod in desired.items():
            problem = runnable_problem(pod)
            if problem is None:
                runnable[uid] = pod
            else:
                problems[uid] = problem
        keep, duplicates = choose_by_key({uid: pod.key for uid, pod in runnable.items()}, running=self._workers)
        problems.update(duplicates)
        for uid, problem in problems.items():
            if self.rejected.get(uid) != problem:
                log.error("%s event=pod_rejected uid=%s pod=%s error=%r", self.node_name, uid,
                          getattr(desired[uid], "key", "?"), problem)
        self.rejected = problems
        desired = {uid: pod for uid, pod in runnable.items() if uid in keep}
        hashes = {uid: pod_spec_hash(pod) for uid, pod in desired.items()}
        current = {uid: w.spec_hash for uid, w in self._workers.items()}
        plan = plan_reconcile(desired=hashes, current=current)
        for uid in plan.stop:
            self._stop_worker(uid)
        self._desired_pods = desired
        assert self._nursery is not None
        for uid in plan.replace:
            self._stop_worker(uid)
            self._nursery.start_soon(self._start_after_predecessors, uid, desired[uid])
        for uid in plan.start:
            if self._predecessor(uid, desired[uid]) is not None:
                self._nursery.start_soon(self._start_after_predecessors, uid, desired[uid])
            else:
                self._start_worker(desired[uid], hashes[uid])
        if plan.start or plan.stop or plan.replace:
            log.info("%s event=desired_applied start=%d stop=%d replace=%d total=%d", self.node_name,
                     len(plan.start), len(plan.stop), len(plan.replace), len(desired))
        if not self._desired_seen:
            self._desired_seen = True
            if self.listing_ready.is_set():
                self._sweep_orphans(self._listing)

    def _start_worker(self, pod: Any, spec_hash: str) -> None:
        worker = PodWorker(self, pod, spec_hash)
        self._workers[worker.uid] = worker
        assert self._nursery is not None
        self._nursery.start_soon(self._run_worker, worker)

    def _stop_worker(self, uid: str) -> PodWorker:
        worker = self._workers.pop(uid)
        self._terminating[uid] = worker
        worker.send(Terminate())
        return worker

    def _predecessor(self, uid: str, pod: Any) -> PodWorker | None:
        """A worker still tearing down the same Pod: the same uid, or the same namespace/name
        (as kubelet, a Pod never runs twice at once, not even across a delete and re-create);
        or a Pod that still holds a hostPort this one binds (the cluster forgets a deleted
        Pod at once, while its containers stop within their grace period, so the scheduler
        may already have put the Pod that takes its place here)."""
        if uid in self._terminating:
            return self._terminating[uid]
        ports = host_ports_of(pod)
        return next((w for w in self._terminating.values()
                     if w.pod.key == pod.key or (ports and ports & host_ports_of(w.pod))), None)

    async def _start_after_predecessors(self, uid: str, pod: Any) -> None:
        """Start the desired Pod `uid` once no predecessor runs (if it is still desired then)."""
        from agent.state.pod import pod_spec_hash

        while (old := self._predecessor(uid, pod)) is not None:
            await old.done.wait()
            assert self._predecessor(uid, pod) is not old, "a finished worker is still listed as terminating"
        pod = self._desired_pods.get(uid)
        if pod is not None and uid not in self._workers:
            self._start_worker(pod, pod_spec_hash(pod))

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        finally:
            if self._terminating.get(worker.uid) is worker:
                del self._terminating[worker.uid]
            if self._workers.get(worker.uid) is worker:  # ended without being asked: an internal bug
                del self._workers[worker.uid]
            if worker.uid not in self._workers:
                last = self._statuses.pop(worker.uid, None)
                if last is not None:
                    self._feed.publish(replace(last, deleted=True))

    # -- Docker events, listings and orphans -------------------------------------------------

    def _worker_for(self, uid: str | None) -> PodWorker | None:
        if uid is None:
            return None
        return self._workers.get(uid) or self._terminating.get(uid)

    async def _list_ours(self) -> tuple[float, dict[str, list[dict[str, Any]]]]:
        listed_at = trio.current_time()
        listed = await self.docker.list_containers([self._node_label])
        by_uid: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for c in listed:
            uid = (c.get("Labels") or {}).get(plans.LABEL_POD_UID)
            if uid:
                by_uid[uid].append(c)
        return listed_at, dict(by_uid)

    async def _events_loop(self) -> None:
        retry = BackoffPolicy(self.config.docker_retry_base_s, self.config.docker_retry_cap_s, math.inf)
        streak = 0
        while True:
            try:
                stream = await self.docker.events_stream([self._node_label], ["die", "oom"])
                try:
                    listed_at, listing = await self._list_ours()
                    first = not self.listing_ready.is_set()
                    self._listing = listing
                    self.docker_message = None
                    self.listing_ready.set()
                    if streak or not first:
                        log.info("%s event=docker_reconnected", self.node_name)
                    streak = 0
                    if not first:
                        self._resync_workers(listed_at, listing)
                    if self._desired_seen:
                        self._sweep_orphans(listing)
                    await self._read_events(stream)
                finally:
                    try:
                        stream.close()
                    except Exception:  # noqa: BLE001 - the socket may already be gone
                        pass
                streak += 1
                log.warning("%s event=docker_events_ended", self.node_name)
                await trio.sleep(retry.base_s)
            except (DockerUnavailable, DockerApiError) as exc:
                streak += 1
                was_up = self.docker_message is None
                self.docker_message = f"docker unavailable: {exc}"
                if was_up:
                    for worker in list(self._workers.values()):
                        worker.send(Wake())  # republish: their state is Unknown while the engine is away
                delay = max(retry.base_s, delay_for_streak(retry, streak))
                log.warning("%s event=docker_unavailable retry_in_s=%.2f error=%r", self.node_name, delay, str(exc))
                await trio.sleep(delay)

    async def _read_events(self, stream: Any) -> None:
        """Route events until the stream ends; DockerUnavailable if it broke."""
        send, receive = trio.open_memory_channel[dict[str, Any]](256)
        broken: list[DockerUnavailable] = []

        async def pump() -> None:
            try:
                await self.docker.pump(stream, send)
            except DockerUnavailable as exc:
                broken.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            async with receive:
                async for event in receive:
                    self._route_event(event)
        if broken:
            raise broken[0]

    def _route_event(self, event: dict[str, Any]) -> None:
        actor = event.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        container_id = actor.get("ID") or event.get("id")
        worker = self._worker_for(attrs.get(plans.LABEL_POD_UID))
        if event.get("Action", event.get("status")) == "oom":
            # The death that follows usually carries OOMKilled in its inspect, but the engine
            # does not always set it (cgroup v2 races): remember the event as a second witness.
            log.warning("%s event=container_oom uid=%s container=%s id=%s", self.node_name,
                        attrs.get(plans.LABEL_POD_UID), attrs.get(plans.LABEL_CONTAINER), (container_id or "")[:12])
            if container_id:
                self._oom_seen[container_id] = None
                while len(self._oom_seen) > _OOM_MEMORY:
                    self._oom_seen.pop(next(iter(self._oom_seen)))
            return
        if worker is not None and container_id:
            worker.send(ContainerDied(container_id))

    def _resync_workers(self, listed_at: float, listing: dict[str, list[dict[str, Any]]]) -> None:
        for uid, worker in list(self._workers.items()) + list(self._terminating.items()):
            worker.send(Resync(listed_at, tuple(listing.get(uid, ()))))

    async def _resync_loop(self) -> None:
        while True:
            await trio.sleep(self.config.resync_interval_s)
            if not self.listing_ready.is_set():
                continue
            try:
                listed_at, listing = await self._list_ours()
            except (DockerUnavailable, DockerApiError):
                continue  # the events loop reports and retries
            self._resync_workers(listed_at, listing)
            if self._desired_seen:
                self._sweep_orphans(listing)
                await self._sweep_orphan_volumes()

    def _sweep_orphans(self, listing: dict[str, list[dict[str, Any]]]) -> None:
        assert self._nursery is not None
        for uid, found in listing.items():
            if self._worker_for(uid) is None and uid not in self._orphans_in_progress:
                self._orphans_in_progress.add(uid)
                self._nursery.start_soon(self._remove_orphan, uid, found)

    async def _remove_orphan(self, uid: str, found: list[dict[str, Any]]) -> None:
        try:
            labels = found[0].get("Labels") or {}
            grace = int(labels.get(plans.LABEL_GRACE_S, "30"))
            log.info("%s event=orphan_removing uid=%s pod=%s/%s containers=%d", self.node_name, uid,
                     labels.get(plans.LABEL_POD_NAMESPACE), labels.get(plans.LABEL_POD_NAME), len(found))
            await gather(*[partial(self._stop_quietly, c["Id"], grace) for c in found if c.get("State") == "running"])
            for c in found:
                await self.docker.remove_container(c["Id"])
            for v in await self.docker.list_volumes([self._node_label, f"{plans.LABEL_POD_UID}={uid}"]):
                await self.docker.remove_volume(v["Name"])
        except (DockerUnavailable, DockerApiError) as exc:
            log.warning("%s event=orphan_remove_failed uid=%s error=%r", self.node_name, uid, str(exc))
        finally:
            self._orphans_in_progress.discard(uid)

    async def _stop_quietly(self, container_id: str, grace_s: int) -> None:
        try:
            await self.docker.stop(container_id, grace_s)
        except NotFound:
            pass

    async def _sweep_orphan_volumes(self) -> None:
        try:
            volumes = await self.docker.list_volumes([self._node_label])
            for v in volumes:
                uid = (v.get("Labels") or {}).get(plans.LABEL_POD_UID)
                if uid and self._worker_for(uid) is None and uid not in self._orphans_in_progress:
                    await self.docker.remove_volume(v["Name"])
        except (DockerUnavailable, DockerApiError) as exc:
            log.warning("%s event=volume_sweep_failed error=%r", self.node_name, str(exc))
        self._sweep_orphan_config_volumes()  # in this thread: no worker can appear meanwhile (tmpfs: quick)

    def _sweep_orphan_config_volumes(self) -> None:
        """Remove the configMap/secret volume directories of Pods this node no longer runs
        (left by an agent that stopped before their Pods were deleted)."""
        node_dir = pod_volumes_dir(self.config.config_volume_dir, self.node_name, "x").rsplit("/", 1)[0]
        try:
            names = os.listdir(node_dir)
        except OSError:
            return
        keep = {pod_volumes_dir(self.config.config_volume_dir, self.node_name, uid).rsplit("/", 1)[1]
                for uid in (*self._workers, *self._terminating, *self._orphans_in_progress)}
        for name in names:
            if name not in keep:
                log.info("%s event=orphan_config_volumes_removed dir=%s", self.node_name, name)
                projected_dir.remove_tree(os.path.join(node_dir, name))


def host_ports_of(pod: Any) -> frozenset[tuple[int, str]]:
    """The (hostPort, protocol) pairs a Pod binds on its node."""
    return frozenset((p.host_port, (p.protocol or "TCP").upper())
                     for c in (*pod.spec.containers, *pod.spec.init_containers) for p in c.ports if p.host_port)


__all__ = ["PodRuntime"]
