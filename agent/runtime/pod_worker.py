"""One Pod's life on Docker: create, adopt, restart, probe, report, tear down.

Owns: the Docker objects of one Pod (its infra container, init and app containers and
emptyDir volumes) and the Pod's status. Rules:
  - one task (`run`) owns all the state below; other tasks (probes, background stops,
    the runtime's events reader) only send messages to its inbox;
  - container deaths arrive as messages from the Docker events stream (and from resyncs
    after the stream was lost), never from polling;
  - the restart decision and the backoff are the pure functions of restart_policy.py;
  - a Docker failure (engine down, absent image, create error) is shown in the status and
    retried with backoff; it never ends the task;
  - once spec.activeDeadlineSeconds have passed since the Pod started, its containers
    are stopped (preStop, grace period) and never restarted: phase Failed, reason
    DeadlineExceeded, as kubelet does;
  - init containers run one at a time in order, each to success, before any app container
    is created; a failed one is retried (unless the Pod's restartPolicy is Never, which
    fails the Pod). A sidecar (an init container with restartPolicy Always) lets the next
    one start once it has started (past its startupProbe), always restarts, and is stopped
    after the app containers: when the Pod stops, or when they have all finished.
  - configMap and secret volumes are written (projected_dir.py) before any container is
    created (a missing object keeps the containers in ContainerCreating, said so), and
    rewritten in place, atomically, whenever the node's ConfigMaps or Secrets change (a
    follower task only sends ConfigChanged; the run task writes). A container whose env
    needs a missing ConfigMap, Secret or key waits in CreateContainerConfigError and is
    retried as soon as the objects change. Messages name objects and keys, never values.
"""

from __future__ import annotations

import logging
import math
import time
from functools import partial
from typing import Any

import trio

from . import containers as plans
from agent.state.config_kinds import pod_references
from agent.state.pod import pod_to_dict

from . import projected_dir
from .config_volumes import VolumeFilesError, config_volume_dir, config_volumes, pod_volumes_dir, volume_files
from . import probes as probe_core
from .backoff import BackoffPolicy, CrashHistory, delay_for_streak
from .docker_api import gather
from .env import needs_pod_ip
from .errors import DockerApiError, DockerUnavailable, ImageNotFound, ImagePullError, NoSandboxAddress, NotFound
from .host_paths import host_path_problems
from .init_order import InitProgress, all_done, may_start_app, may_start_init
from .pod_host import PodHost
from .probe_executors import run_hook, run_probe
from .restart_policy import decide
from .status import (
    CONTAINER_CREATING, CRASH_LOOP_BACK_OFF, CREATE_CONTAINER_CONFIG_ERROR, CREATE_CONTAINER_ERROR, ERR_IMAGE_NEVER_PULL, ERR_IMAGE_PULL,
    IMAGE_PULL_BACK_OFF, POD_INITIALIZING, RUN_CONTAINER_ERROR, ContainerStatus, PodCondition, PodStatus, Running,
    Terminated, Waiting, containers_ready, init_status_word, pod_phase, terminated_reason,
)
from .worker_state import (
    AppState, ConfigChanged, ContainerDied, InfraState, ProbeVerdict, Resync, Terminate, container_ip, parse_docker_time,
    pod_started_at,
)

log = logging.getLogger("agent.runtime.pod")


class PodWorker:
    """Runs one Pod; see the module docstring. Created and driven by its host (PodRuntime)."""

    def __init__(self, host: PodHost, pod: Any, spec_hash: str) -> None:
        self.host = host
        self.pod = pod
        self.uid: str = pod.metadata.uid
        self.spec_hash = spec_hash
        self.node = host.node_name
        cfg = host.config
        self.crash_backoff = BackoffPolicy(cfg.crash_backoff_base_s, cfg.crash_backoff_cap_s,
                                           cfg.crash_backoff_reset_after_s)
        self.image_backoff = BackoffPolicy(cfg.image_backoff_base_s, cfg.image_backoff_cap_s, math.inf)
        self.docker_backoff = BackoffPolicy(cfg.docker_retry_base_s, cfg.docker_retry_cap_s, math.inf)
        self.inbox_send, self._inbox = trio.open_memory_channel[Any](math.inf)
        self.apps: dict[str, AppState] = self._fresh_apps()
        self.initialized = not pod.spec.init_containers  # every init container done (sticky)
        self.init_failed = False  # a regular init container failed and will not be retried
        self.deadline_exceeded = False  # spec.activeDeadlineSeconds passed: everything stops, the Pod fails
        self.infra = InfraState()
        self.volumes_ready = False
        self.host_paths_ready = False
        self.config_volumes_ready = False  # written once; rewritten on ConfigChanged
        self._config_volumes = config_volumes(pod)
        self._reads_config = bool(self._config_volumes) or any(
            c.env_from or any(e.value_from is not None and (e.value_from.config_map_key_ref is not None
                                                          or e.value_from.secret_key_ref is not None) for e in c.env)
            for c in (*pod.spec.containers, *pod.spec.init_containers))
        self.terminating = False
        self.done = trio.Event()
        self.docker_history = CrashHistory()
        self.docker_retry_at = 0.0
        self.infra_retry_at = 0.0
        self.message: str | None = None
        self.start_time = time.time()
        self._ready_since: tuple[bool, float] = (False, self.start_time)
        self._last_status: PodStatus | None = None
        self._nursery: trio.Nursery | None = None

    def _fresh_apps(self) -> dict[str, AppState]:
        """Init containers first, in order, then the app containers."""
        apps = {c.name: AppState(spec=c, init=True, sidecar=c.restart_policy == "Always")
                for c in self.pod.spec.init_containers}
        apps.update({c.name: AppState(spec=c) for c in self.pod.spec.containers})
        return apps

    def _regular(self) -> list[AppState]:
        return [a for a in self.apps.values() if not a.init]

    def _sidecars(self) -> list[AppState]:
        return [a for a in self.apps.values() if a.sidecar]

    def _init_progress(self) -> list[InitProgress]:
        return [InitProgress(sidecar=a.sidecar, completed=a.completed,
                             started=a.started and a.container_id is not None)
                for a in self.apps.values() if a.init]

    def _may_start(self, app: AppState) -> bool:
        """May this container be started now? (init_order.py's rules)"""
        if not app.init:
            return may_start_app(initialized=self.initialized, failed=self.init_failed)
        index = [a for a in self.apps.values() if a.init].index(app)
        return may_start_init(self._init_progress(), index, initialized=self.initialized, failed=self.init_failed)

    def _note_initialized(self) -> None:
        if not self.initialized and all_done(self._init_progress()):
            self.initialized = True
            self._log("initialized")

    # -- public (called by the runtime) --------------------------------------------------

    def send(self, msg: Any) -> None:
        try:
            self.inbox_send.send_nowait(msg)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def current_container_id(self, name: str, *, previous: bool = False) -> str | None:
        app = self.apps.get(name)
        if app is None:
            return None
        if previous:
            return app.previous_id
        return app.container_id or app.previous_id

    _WARNINGS = frozenset({"docker_call_failed", "infra_failed", "create_failed", "start_failed", "stop_failed",
                           "background_call_failed", "adopt_retry", "teardown_retry", "image_unavailable"})

    def _log(self, event: str, **kv: Any) -> None:
        extra = " ".join(f"{k}={v}" for k, v in kv.items())
        level = logging.WARNING if event in self._WARNINGS else logging.INFO
        log.log(level, "%s event=%s pod=%s uid=%s %s", self.node, event, self.pod.key, self.uid, extra)

    # -- main loop ----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._reads_config:
                    nursery.start_soon(self._follow_config)
                self.publish()
                await self._wait_for_listing()
                if not self.terminating:
                    await self._adopt_with_retry()
                while not self.terminating:
                    await self._converge()
                    self.publish()
                    with trio.move_on_at(self._next_wakeup()):
                        msg = await self._inbox.receive()
                        await self._handle(msg)
                        while True:  # drain what else arrived before converging again
                            try:
                                msg = self._inbox.receive_nowait()
                            except trio.WouldBlock:
                                break
                            await self._handle(msg)
                await self._teardown()
                nursery.cancel_scope.cancel()
        finally:
            self.done.set()

    async def _wait_for_listing(self) -> None:
        while not self.host.listing_ready.is_set() and not self.terminating:
            with trio.move_on_after(1.0):
                msg = await self._inbox.receive()
                if isinstance(msg, Terminate):
                    self.terminating = True
            self.message = self.host.docker_message
            self.publish()
        self.message = None

    def _next_wakeup(self) -> float:
        wake = math.inf
        if self.docker_retry_at:
            wake = min(wake, self.docker_retry_at)
        if self.infra_retry_at:
            wake = min(wake, self.infra_retry_at)
        deadline = self._deadline()
        if deadline is not None and not self.deadline_exceeded:
            wake = min(wake, trio.current_time() + max(0.0, deadline - time.time()))
        for app in self.apps.values():
            if app.container_id is None and not app.finished and self._may_start(app):
                wake = min(wake, app.start_at)
        return wake

    async def _handle(self, msg: Any) -> None:
        if isinstance(msg, Terminate):
            self.terminating = True
        elif isinstance(msg, ContainerDied):
            await self._on_died(msg.container_id)
        elif isinstance(msg, ProbeVerdict):
            self._on_probe(msg)
        elif isinstance(msg, Resync):
            await self._on_resync(msg)
        elif isinstance(msg, ConfigChanged):
            await self._on_config_changed()

    # -- ConfigMaps and Secrets -------------------------------------------------------------

    async def _follow_config(self) -> None:
        """Tell the run task whenever the node's ConfigMaps or Secrets change."""
        objects = self.host.objects
        refs = sorted(pod_references(pod_to_dict(self.pod)))
        seen = objects.version

        def used() -> list[Any]:
            return [objects.doc(*ref) for ref in refs]

        before = used()
        while True:
            seen = await objects.wait(seen)
            now = used()
            if any(a is not b for a, b in zip(before, now)):  # only the objects this Pod reads
                before = now
                self.send(ConfigChanged())

    def _volume_dir(self, name: str) -> str:
        return config_volume_dir(self.host.config.config_volume_dir, self.node, self.uid, name)

    async def _write_config_volumes(self) -> list[str]:
        """Write every config volume whose object is there; the problems of the others."""
        problems = []
        for vol in self._config_volumes:
            try:
                psc = self.pod.spec.security_context
                files = volume_files(vol, self.pod.metadata.namespace, self.host.objects.lookup,
                                     fs_group=psc.fs_group if psc is not None else None)
            except VolumeFilesError as exc:
                problems.append(str(exc))
                continue
            try:
                changed = await trio.to_thread.run_sync(projected_dir.write_files, self._volume_dir(vol.name), files)
            except OSError as exc:
                problems.append(f'MountVolume.SetUp failed for volume "{vol.name}": {exc.strerror or exc}')
                continue
            if changed and self.config_volumes_ready:
                self._log("config_volume_updated", volume=vol.name, files=len(files))
        return problems

    async def _on_config_changed(self) -> None:
        if self._config_volumes:
            problems = await self._write_config_volumes()
            if problems:  # kubelet keeps the last good files when an update cannot be made
                self._log("config_volume_stale", problems=repr("; ".join(problems)))
        now = trio.current_time()
        for app in self.apps.values():
            waiting = app.waiting
            if app.container_id is None and waiting is not None and (
                    waiting.reason == CREATE_CONTAINER_CONFIG_ERROR
                    or (waiting.reason == CONTAINER_CREATING and (waiting.message or "").startswith("MountVolume"))):
                app.start_at = min(app.start_at, now)  # what it waited for may be there now

    # -- converge: make Docker match the spec -------------------------------------------

    def _all_finished(self) -> bool:
        """Will no app container run again (all finished, the init containers failed, or the deadline passed)?"""
        return self.init_failed or self.deadline_exceeded or all(a.finished for a in self._regular())

    def _deadline(self) -> float | None:
        """When the Pod's activeDeadlineSeconds run out (wall clock), if it has one."""
        seconds = self.pod.spec.active_deadline_seconds
        return None if seconds is None else self.start_time + seconds

    def _check_deadline(self) -> None:
        deadline = self._deadline()
        if deadline is None or self.deadline_exceeded or time.time() < deadline:
            return
        self.deadline_exceeded = True
        self._log("deadline_exceeded", active_deadline_s=self.pod.spec.active_deadline_seconds)
        for app in self.apps.values():
            if app.container_id is not None:
                if app.kill_reason is None:
                    app.kill_reason = "deadline"
                    self._spawn(self._kill_app, app.spec, app.container_id, plans.grace_period_s(self.pod))
            elif not app.finished:
                app.finished = True

    async def _converge(self) -> None:
        now = trio.current_time()
        if now < self.docker_retry_at:
            return
        self._note_initialized()
        self._check_deadline()
        try:
            if self._all_finished():
                # Nothing will run again: the sidecars, then the infra container, have no one to serve.
                sidecars_up = False
                for app in self._sidecars():
                    if app.container_id is not None:
                        sidecars_up = True
                        if app.kill_reason is None:
                            app.kill_reason = "pod-done"
                            self._spawn(self._kill_app, app.spec, app.container_id, plans.grace_period_s(self.pod))
                    elif not app.finished:
                        app.finished = True
                        app.waiting = None
                if sidecars_up:
                    return
                if self.infra.running and not self.infra.stopping:
                    self.infra.stopping = True
                    self._spawn(self._stop_infra)
                self._docker_ok()
                return
            if not self.volumes_ready:
                for vol in plans.volume_plans(self.pod, self.node, self.spec_hash):
                    await self.host.docker.create_volume(vol.name, dict(vol.labels), dict(vol.driver_opts))
                self.volumes_ready = True
            due = [a for a in self.apps.values()
                   if a.container_id is None and not a.finished and a.start_at <= now and self._may_start(a)]
            if not due:
                self._docker_ok()
                return
            if not self.host_paths_ready:
                problems = await trio.to_thread.run_sync(host_path_problems, self.pod, abandon_on_cancel=True)
                if problems:
                    # Kubernetes: a failed mount keeps the containers in ContainerCreating.
                    for app in due:
                        self._error_retry(app, CONTAINER_CREATING, "; ".join(problems))
                    return
                self.host_paths_ready = True
            if not self.config_volumes_ready and self._config_volumes:
                problems = await self._write_config_volumes()
                if problems:
                    # Kubernetes: a volume that cannot be set up keeps the containers in ContainerCreating.
                    for app in due:
                        self._error_retry(app, CONTAINER_CREATING, "; ".join(problems))
                    return
            self.config_volumes_ready = True
            if not self.infra.running and any(needs_pod_ip(a.spec) for a in due):
                # The environment reads the Pod IP: the sandbox must run before they are created.
                if now < self.infra_retry_at:
                    return
                infra_id = await self._create_infra()
                if infra_id is None or not await self._start_infra(infra_id):
                    return
            if self.infra.running:
                prepared = await gather(*[partial(self._prepare_app, app) for app in due])
            else:
                # Pipeline: the app containers are created while the infra container starts.
                if now < self.infra_retry_at:
                    return
                infra_id = await self._create_infra()
                if infra_id is None:
                    return
                infra_ok, *prepared = await gather(partial(self._start_infra, infra_id),
                                                   *[partial(self._prepare_app, app) for app in due])
                if not infra_ok:
                    for item in prepared:
                        if item is not None:
                            self._spawn(self.host.docker.remove_container, item[0])
                    return
            await gather(*[partial(self._run_app, app, item[0], item[1])
                           for app, item in zip(due, prepared) if item is not None])
            self._docker_ok()
        except (DockerUnavailable, DockerApiError) as exc:
            self.docker_history = CrashHistory(self.docker_history.streak + 1)
            delay = max(self.docker_backoff.base_s, delay_for_streak(self.docker_backoff, self.docker_history.streak))
            self.docker_retry_at = trio.current_time() + delay
            if isinstance(exc, DockerUnavailable):
                self.message = f"docker unavailable: {exc}"
            self._log("docker_call_failed", retry_in_s=f"{delay:.2f}", error=repr(str(exc)))

    def _docker_ok(self) -> None:
        self.docker_history = CrashHistory()
        self.docker_retry_at = 0.0
        if self.message and self.message.startswith("docker unavailable"):
            self.message = None

    async def _create_infra(self) -> str | None:
        """Create the infra container; None if it must be retried later (reason in the apps' status)."""
        docker = self.host.docker
        if self.infra.container_id is not None:
            await docker.remove_container(self.infra.container_id)
            self.infra.container_id = None
        image = self.host.config.infra_image
        try:
            plan = plans.infra_plan(self.pod, self.node, self.spec_hash, self.host.config, started_at=self.start_time)
            if not await self.host.images.present(image):
                raise ImageNotFound(f"infra image {image} is not present", 404)
            infra_id = await self._create(plan)
        except (DockerApiError, plans.SpecError) as exc:
            self._infra_failed(exc)
            return None
        self.infra.container_id = infra_id
        return infra_id

    async def _start_infra(self, infra_id: str) -> bool:
        try:
            await self.host.docker.start(infra_id)
            info = await self.host.docker.inspect_container(infra_id)
        except DockerApiError as exc:
            self._infra_failed(exc)
            return False
        ip = container_ip(info)
        network = self.host.config.docker_network
        if ip is None and network != "host":
            # A network that gives no address (a dockerd started with --bridge=none runs "bridge"
            # Pods with no network at all): the Pod could reach nothing and nothing could reach it.
            self._infra_failed(NoSandboxAddress(f"network {network!r} gave the sandbox no IP address"
                                                " (is it a network of this engine?)"))
            return False
        fs_group = plans.fs_group_command(self.pod)
        if fs_group is not None:
            # kubelet gives the emptyDir volumes to the Pod's fsGroup before any container starts.
            try:
                code = await self.host.docker.exec(infra_id, fs_group)
            except DockerApiError as exc:
                self._infra_failed(exc)
                return False
            if code != 0:
                self._log("fs_group_failed", exit_code=code)
        self.infra_retry_at = 0.0
        self.infra.running = True
        self.infra.stopping = False
        self.infra.ip = ip or self.infra.ip
        return True

    def _infra_failed(self, exc: DockerApiError | plans.SpecError | NoSandboxAddress) -> None:
        image = self.host.config.infra_image
        if isinstance(exc, ImageNotFound):
            self.host.images.forget(image)
        reason = ERR_IMAGE_NEVER_PULL if isinstance(exc, ImageNotFound) else CREATE_CONTAINER_ERROR
        self.infra_retry_at = trio.current_time() + max(self.image_backoff.base_s, 0.1)
        for app in self.apps.values():
            if app.container_id is None and not app.finished:
                app.waiting = Waiting(reason, f"pod sandbox: {exc}")
        self._log("infra_failed", error=repr(str(exc)))

    async def _create(self, plan: plans.ContainerPlan) -> str:
        docker = self.host.docker
        try:
            return await docker.create_container(plan.name, dict(plan.create_kwargs), dict(plan.host_config_kwargs))
        except DockerApiError as exc:
            if exc.status_code != 409:
                raise
            # A leftover with our name (e.g. the agent died between create and start): replace it.
            await docker.remove_container(plan.name)
            return await docker.create_container(plan.name, dict(plan.create_kwargs), dict(plan.host_config_kwargs))

    async def _image_ready(self, app: AppState) -> bool:
        """Is the app's image present (pulling it if the policy allows)? Sets the waiting state if not."""
        spec = app.spec
        if await self.host.images.present(spec.image):
            if spec.image_pull_policy != "Always" or self.host.images.was_pulled(spec.image):
                return True
        policy = spec.image_pull_policy or "IfNotPresent"
        if policy == "Never":
            if await self.host.images.present(spec.image):
                return True
            self._image_retry(app, ERR_IMAGE_NEVER_PULL,
                              f'Container image "{spec.image}" is not present with pull policy of Never')
            return False
        try:
            await self.host.images.pull(spec.image)
            return True
        except ImagePullError as exc:
            if policy == "Always" and await self.host.images.present(spec.image):
                # No registry reachable but a local copy exists: run it (and say so once).
                self._log("pull_failed_using_local", image=spec.image, error=repr(str(exc)))
                self.host.images.note_pulled(spec.image)
                return True
            reason = ERR_IMAGE_PULL if app.image_history.streak == 0 else IMAGE_PULL_BACK_OFF
            self._image_retry(app, reason, f"failed to pull image {spec.image}: {exc}")
            return False

    def _image_retry(self, app: AppState, reason: str, message: str) -> None:
        app.image_history = CrashHistory(app.image_history.streak + 1)
        delay = max(self.image_backoff.base_s, delay_for_streak(self.image_backoff, app.image_history.streak))
        app.start_at = trio.current_time() + delay
        app.waiting = Waiting(reason, message)
        self._log("image_unavailable", container=app.spec.name, reason=reason, retry_in_s=f"{delay:.2f}")

    async def _prepare_app(self, app: AppState) -> tuple[str, int] | None:
        """Check the image and create the app container: (container id, restart count), or None."""
        if not await self._image_ready(app):
            return None
        restart_count = app.restart_count + 1 if app.instances > 0 else 0
        image_user = ""
        if plans.needs_image_user(self.pod, app.spec):
            try:
                image_user = await self.host.docker.image_user(app.spec.image)
            except DockerApiError as exc:
                self._error_retry(app, CREATE_CONTAINER_CONFIG_ERROR, f"cannot read the image's user: {exc}")
                return None
        try:
            node = self.host.node_resources()
            plan = plans.app_plan(self.pod, app.spec, self.node, self.spec_hash, str(self.infra.container_id),
                                  self.host.config, restart_count=restart_count, crash_streak=app.history.streak,
                                  started_at=self.start_time, pod_ip=self.infra.ip, host_ip=self.host.host_ip,
                                  node_cpu_millicores=node.allocatable_cpu_millicores,
                                  node_memory_bytes=node.allocatable_memory_bytes, image_user=image_user,
                                  lookup=self.host.objects.lookup)
        except plans.ConfigError as exc:
            self._error_retry(app, CREATE_CONTAINER_CONFIG_ERROR, str(exc))
            return None
        except (plans.SpecError, ValueError) as exc:
            self._error_retry(app, CREATE_CONTAINER_ERROR, str(exc))
            return None
        try:
            return await self._create(plan), restart_count
        except ImageNotFound as exc:
            self.host.images.forget(app.spec.image)
            self._image_retry(app, ERR_IMAGE_NEVER_PULL if app.spec.image_pull_policy == "Never" else ERR_IMAGE_PULL,
                              str(exc))
        except DockerApiError as exc:
            self._error_retry(app, CREATE_CONTAINER_ERROR, str(exc))
        return None

    async def _run_app(self, app: AppState, container_id: str, restart_count: int) -> None:
        docker = self.host.docker
        app.instances += 1
        app.restart_count = restart_count
        app.image_history = CrashHistory()
        app.container_id = container_id
        app.started_trio = trio.current_time()
        try:
            await docker.start(container_id)
        except DockerApiError as exc:
            # Kubernetes counts a start failure as a failed run (it restarts with backoff).
            self._log("start_failed", container=app.spec.name, error=repr(str(exc)))
            app.container_id = None
            self._spawn(docker.remove_container, container_id)
            now = time.time()
            term = Terminated(128, "StartError", None, now, container_id, message=str(exc))
            self._after_exit(app, exit_code=128, started_at=None, finished_at=now, failed=True, term=term)
            if not app.finished:
                app.waiting = Waiting(RUN_CONTAINER_ERROR, str(exc))
            return
        post_start = app.spec.lifecycle.post_start if app.spec.lifecycle is not None else None
        if post_start is not None:
            # Kubernetes: the container is not Running until its postStart hook has returned.
            problem = await run_hook(self.host.docker, post_start, app.spec, container_id=container_id,
                                     pod_ip=self.infra.ip, timeout_s=max(1, plans.grace_period_s(self.pod)))
            if problem is not None and app.container_id == container_id:
                self._log("post_start_failed", container=app.spec.name, id=container_id[:12], error=repr(problem))
                app.running_since = time.time()
                app.kill_reason = "postStart"
                app.kill_message = f"FailedPostStartHook: {problem}"
                self._spawn(self._kill_app, app.spec, container_id, plans.grace_period_s(self.pod))
                return
        if app.container_id != container_id:
            return  # it died during its postStart hook; its death has been handled
        app.running_since = time.time()
        app.waiting = None
        app.terminated = None
        app.error_history = CrashHistory()
        self._log("container_started", container=app.spec.name, id=container_id[:12], restarts=restart_count)
        self._start_probes(app, container_id, started_trio=app.started_trio)

    def _error_retry(self, app: AppState, reason: str, message: str) -> None:
        app.error_history = CrashHistory(app.error_history.streak + 1)
        delay = max(self.crash_backoff.base_s, delay_for_streak(self.crash_backoff, app.error_history.streak))
        app.start_at = trio.current_time() + delay
        app.waiting = Waiting(reason, message)
        self._log("create_failed", container=app.spec.name, reason=reason, error=repr(message))

    # -- deaths ---------------------------------------------------------------------------

    async def _on_died(self, container_id: str) -> None:
        if container_id == self.infra.container_id:
            await self._on_infra_died()
            return
        for app in self.apps.values():
            if app.container_id == container_id:
                await self._on_app_died(app, container_id)
                return

    async def _on_infra_died(self) -> None:
        if not self.infra.running:
            return
        self.infra.running = False
        if self.infra.stopping or self.terminating:
            return
        self._log("sandbox_died")
        # The app containers lost their network namespace: kill them; their restart policy decides.
        for app in self.apps.values():
            if app.container_id is not None and app.running_since is not None:
                app.kill_reason = "sandbox"
                self._spawn(self._stop_container, app.container_id, 0)

    async def _on_app_died(self, app: AppState, container_id: str) -> None:
        exit_code, oom, started_at, finished_at = 137, False, app.running_since, time.time()
        try:
            info = await self.host.docker.inspect_container(container_id)
            state = info.get("State") or {}
            if state.get("Running"):
                return  # a stale event (it was restarted by someone else): nothing died
            exit_code = int(state.get("ExitCode") or 0)
            oom = bool(state.get("OOMKilled")) or self.host.saw_oom(container_id)
            started_at = parse_docker_time(state.get("StartedAt")) or started_at
            finished_at = parse_docker_time(state.get("FinishedAt")) or finished_at
        except (DockerUnavailable, DockerApiError):
            pass  # removed by someone else, or the engine is away: keep the defaults (killed)
        self._cancel_probes(app)
        reason = terminated_reason(exit_code, oom)
        if app.kill_reason in ("liveness", "startup", "postStart") and not oom:
            reason = "Error"
        term = Terminated(exit_code, reason, started_at, finished_at, container_id, message=app.kill_message)
        app.kill_message = None
        if app.previous_id and app.previous_id != container_id:
            self._spawn(self.host.docker.remove_container, app.previous_id)
        app.previous_id = container_id
        app.container_id = None
        app.running_since = None
        self._log("container_died", container=app.spec.name, id=container_id[:12], exit_code=exit_code,
                  reason=reason, killed_for=app.kill_reason)
        failed = app.kill_reason in ("liveness", "startup", "postStart")
        pod_done = app.kill_reason == "pod-done"
        app.kill_reason = None
        if self.terminating or self.deadline_exceeded or (app.sidecar and (pod_done or self._all_finished())):
            app.terminated = term
            app.finished = True
            return
        self._after_exit(app, exit_code=exit_code, started_at=started_at, finished_at=finished_at, failed=failed,
                         term=term)

    def _after_exit(self, app: AppState, *, exit_code: int, started_at: float | None, finished_at: float,
                    failed: bool, term: Terminated) -> None:
        policy = self.pod.spec.restart_policy
        if app.sidecar:
            policy = "Always"
        elif app.init and policy == "Always":
            policy = "OnFailure"  # an init container runs until it succeeds
        decision = decide(policy, exit_code=exit_code, failed=failed,
                          started_at_s=started_at, finished_at_s=finished_at, history=app.history,
                          backoff=self.crash_backoff)
        app.history = decision.history
        if decision.restart:
            delay = max(0.0, decision.at_s - finished_at)
            # The delay counts from the exit, which may be in the past (adoption): use the wall clock.
            remaining = max(0.0, decision.at_s - time.time())
            app.start_at = trio.current_time() + remaining
            if delay > 0:
                app.waiting = Waiting(CRASH_LOOP_BACK_OFF,
                                      f"back-off {delay:g}s restarting failed container={app.spec.name}")
            else:
                app.waiting = Waiting(CONTAINER_CREATING)
            app.terminated = None
            app.last = term
        else:
            app.terminated = term  # lastState keeps the instance before this one, as Kubernetes shows it
            app.finished = True
            app.waiting = None
            if app.init and not app.sidecar and exit_code != 0:
                self.init_failed = True  # restartPolicy Never: the Pod fails
                self._log("init_failed", container=app.spec.name, exit_code=exit_code)

    async def _kill_app(self, spec: Any, container_id: str, grace_s: int) -> None:
        """Stop an app container as kubelet does: its preStop hook first, inside the grace
        period, then SIGTERM with what is left of it (at least 2 s), then SIGKILL."""
        pre_stop = spec.lifecycle.pre_stop if spec.lifecycle is not None else None
        if pre_stop is not None and grace_s > 0:
            began = trio.current_time()
            problem = await run_hook(self.host.docker, pre_stop, spec, container_id=container_id,
                                     pod_ip=self.infra.ip, timeout_s=grace_s)
            if problem is not None:
                self._log("pre_stop_failed", container=spec.name, id=container_id[:12], error=repr(problem))
            grace_s = max(2, math.ceil(grace_s - (trio.current_time() - began)))
        await self._stop_container(container_id, grace_s)

    async def _stop_container(self, container_id: str, grace_s: int) -> None:
        """docker stop: SIGTERM, `grace_s`, SIGKILL. A container already gone is stopped enough."""
        try:
            await self.host.docker.stop(container_id, grace_s)
        except NotFound:
            pass
        except DockerApiError as exc:
            self._log("stop_failed", id=container_id[:12], error=repr(str(exc)))

    async def _stop_infra(self) -> None:
        infra_id = self.infra.container_id
        if infra_id is not None:
            await self._stop_container(infra_id, 1)

    # -- probes ---------------------------------------------------------------------------

    def _start_probes(self, app: AppState, container_id: str, *, started_trio: float) -> None:
        spec = app.spec
        if spec.startup_probe is None:
            app.started = True
            if spec.readiness_probe is None:
                app.ready = True
        if spec.startup_probe is None and spec.liveness_probe is None and spec.readiness_probe is None:
            return
        scope = trio.CancelScope()
        app.probe_scope = scope
        self._spawn(self._probe_container, app.spec, container_id, started_trio, scope)

    def _cancel_probes(self, app: AppState) -> None:
        if app.probe_scope is not None:
            app.probe_scope.cancel()
            app.probe_scope = None
        app.ready = False
        app.started = False

    async def _probe_container(self, spec: Any, container_id: str, started_trio: float,
                               scope: trio.CancelScope) -> None:
        with scope:
            if spec.startup_probe is not None:
                passed = await self._probe_loop(spec, container_id, probe_core.STARTUP, spec.startup_probe,
                                                started_trio, stop_on_verdict=True)
                if not passed:
                    return
                started_trio = trio.current_time()
            async with trio.open_nursery() as nursery:
                if spec.liveness_probe is not None:
                    nursery.start_soon(self._probe_loop, spec, container_id, probe_core.LIVENESS,
                                       spec.liveness_probe, started_trio, False)
                if spec.readiness_probe is not None:
                    nursery.start_soon(self._probe_loop, spec, container_id, probe_core.READINESS,
                                       spec.readiness_probe, started_trio, False)

    async def _probe_loop(self, spec: Any, container_id: str, kind: str, probe: Any, started_trio: float,
                          stop_on_verdict: bool) -> bool:
        timing = probe_core.ProbeTiming.of(probe)
        state = probe_core.initial_state(kind, timing, started_at_s=started_trio)
        while True:
            await trio.sleep_until(state.next_at_s)
            ok = await run_probe(self.host.docker, probe, spec, container_id=container_id, pod_ip=self.infra.ip)
            before = state.verdict
            state = probe_core.observe(kind, timing, state, success=ok, now_s=trio.current_time())
            if state.verdict != before and state.verdict is not None:
                self.send(ProbeVerdict(spec.name, container_id, kind, state.verdict))
            if probe_core.is_terminal_failure(kind, state):
                return False
            if stop_on_verdict and state.verdict:
                return True

    def _on_probe(self, msg: ProbeVerdict) -> None:
        app = self.apps.get(msg.container)
        if app is None or app.container_id != msg.container_id or app.running_since is None:
            return  # about an instance that is gone
        self._log("probe_verdict", container=msg.container, probe=msg.kind, ok=msg.verdict)
        if msg.kind == probe_core.STARTUP and msg.verdict:
            app.started = True
            if app.spec.readiness_probe is None:
                app.ready = True
        elif msg.kind == probe_core.READINESS:
            app.ready = msg.verdict
        elif not msg.verdict and app.kill_reason is None:  # liveness or startup failed: kill it
            app.kill_reason = msg.kind
            app.ready = False
            self._spawn(self._kill_app, app.spec, msg.container_id, plans.grace_period_s(self.pod))

    # -- adoption and resync ----------------------------------------------------------------

    async def _adopt_with_retry(self) -> None:
        listed = self.host.listed_containers(self.uid)
        streak = 0
        while True:
            try:
                await self._adopt(listed)
                return
            except (DockerUnavailable, DockerApiError) as exc:
                # Start over from a clean slate with a fresh listing.
                for app in self.apps.values():
                    self._cancel_probes(app)
                self.apps = self._fresh_apps()
                self.infra = InfraState()
                streak += 1
                delay = max(self.docker_backoff.base_s, delay_for_streak(self.docker_backoff, streak))
                self._log("adopt_retry", retry_in_s=f"{delay:.2f}", error=repr(str(exc)))
                await trio.sleep(delay)
                try:
                    listed = await self.host.docker.list_containers([f"{plans.LABEL_NODE}={self.node}",
                                                                   f"{plans.LABEL_POD_UID}={self.uid}"])
                except (DockerUnavailable, DockerApiError):
                    pass

    async def _adopt(self, listed: list[dict[str, Any]]) -> None:
        """Take over the containers a previous agent left for this Pod."""
        docker = self.host.docker
        infra: list[dict[str, Any]] = []
        apps: dict[str, list[dict[str, Any]]] = {}
        for c in listed:
            labels = c.get("Labels") or {}
            if labels.get(plans.LABEL_SPEC_HASH) != self.spec_hash:
                self._spawn(docker.remove_container, c["Id"])
                continue
            if labels.get(plans.LABEL_ROLE) == plans.ROLE_INFRA:
                infra.append(c)
            elif labels.get(plans.LABEL_CONTAINER) in self.apps:
                apps.setdefault(labels[plans.LABEL_CONTAINER], []).append(c)
            else:
                self._spawn(docker.remove_container, c["Id"])
        if not infra and not apps:
            return
        self.start_time = pod_started_at(listed, default=self.start_time)
        self._ready_since = (False, self.start_time)
        self.volumes_ready = False  # create is idempotent: make sure they all exist
        infra_running = [c for c in infra if c.get("State") == "running"]
        keep_infra = infra_running[0] if infra_running else None
        for c in infra:
            if c is not keep_infra:
                self._spawn(docker.remove_container, c["Id"])
        if keep_infra is not None:
            info = await docker.inspect_container(keep_infra["Id"])
            self.infra = InfraState(container_id=keep_infra["Id"], running=True, ip=container_ip(info))
        self._log("adopting", infra=bool(keep_infra), containers=sum(len(v) for v in apps.values()))
        if any(not self.apps[name].init for name in apps):
            self.initialized = True  # the app containers ran: the init containers had all done
        for name, found in apps.items():
            app = self.apps[name]
            found.sort(key=lambda c: int((c.get("Labels") or {}).get(plans.LABEL_RESTART_COUNT, "0")), reverse=True)
            current, older = found[0], found[1:]
            for stale in older[1:]:
                self._spawn(docker.remove_container, stale["Id"])
            labels = current.get("Labels") or {}
            app.restart_count = int(labels.get(plans.LABEL_RESTART_COUNT, "0"))
            app.instances = app.restart_count + 1
            app.history = CrashHistory(int(labels.get(plans.LABEL_CRASH_STREAK, "0")))
            if older:
                app.previous_id = older[0]["Id"]
                app.last = await self._terminated_of(older[0]["Id"])
            info = await docker.inspect_container(current["Id"])
            state = info.get("State") or {}
            app.image_id = info.get("Image")
            if state.get("Status") == "created":
                # Created but never started (the agent stopped in between): start that instance afresh.
                self._spawn(docker.remove_container, current["Id"])
                app.instances = app.restart_count
                app.restart_count = max(0, app.restart_count - 1)
            elif state.get("Running") and keep_infra is not None:
                app.container_id = current["Id"]
                app.running_since = parse_docker_time(state.get("StartedAt")) or time.time()
                app.started_trio = trio.current_time() - max(0.0, time.time() - app.running_since)
                app.waiting = None
                self._start_probes(app, current["Id"], started_trio=trio.current_time())
            elif state.get("Running"):
                # Its sandbox is gone: it cannot be reached; kill it and let the policy decide.
                app.container_id = current["Id"]
                app.running_since = parse_docker_time(state.get("StartedAt")) or time.time()
                app.kill_reason = "sandbox"
                self._spawn(self._stop_container, current["Id"], 0)
            else:
                app.container_id = current["Id"]
                await self._on_app_died(app, current["Id"])

    async def _terminated_of(self, container_id: str) -> Terminated | None:
        try:
            info = await self.host.docker.inspect_container(container_id)
        except NotFound:
            return None
        state = info.get("State") or {}
        code = int(state.get("ExitCode") or 0)
        return Terminated(code, terminated_reason(code, bool(state.get("OOMKilled"))),
                          parse_docker_time(state.get("StartedAt")), parse_docker_time(state.get("FinishedAt")),
                          container_id)

    async def _on_resync(self, msg: Resync) -> None:
        by_id = {c["Id"]: c for c in msg.containers}
        if self.infra.running and self.infra.container_id:
            c = by_id.get(self.infra.container_id)
            if c is None or c.get("State") in ("exited", "dead"):
                await self._on_infra_died()
        for app in self.apps.values():
            cid = app.container_id
            if cid is None or app.running_since is None or app.started_trio > msg.listed_at:
                continue
            c = by_id.get(cid)
            if c is None or c.get("State") in ("exited", "dead"):
                await self._on_app_died(app, cid)

    # -- teardown ---------------------------------------------------------------------------

    async def _teardown(self) -> None:
        """Stop (grace period, then SIGKILL) and remove every container and volume of the Pod."""
        docker = self.host.docker
        grace = plans.grace_period_s(self.pod)
        for app in self.apps.values():
            self._cancel_probes(app)
        self._log("terminating", grace_s=grace)
        delay_streak = 0
        while True:
            try:
                # The app containers first, then the sidecars in reverse order, as kubelet does.
                running = [a for a in self.apps.values() if a.container_id and not a.sidecar]
                await gather(*[partial(self._kill_app, a.spec, a.container_id, grace) for a in running])
                for app in reversed(self._sidecars()):
                    if app.container_id:
                        await self._kill_app(app.spec, app.container_id, grace)
                if self.infra.container_id:
                    await self._stop_container(self.infra.container_id, 1)
                listed = await docker.list_containers([f"{plans.LABEL_NODE}={self.node}",
                                                       f"{plans.LABEL_POD_UID}={self.uid}"])
                await gather(*[partial(docker.remove_container, c["Id"]) for c in listed])
                volumes = await docker.list_volumes([f"{plans.LABEL_NODE}={self.node}",
                                                     f"{plans.LABEL_POD_UID}={self.uid}"])
                for v in volumes:
                    await docker.remove_volume(v["Name"])
                if self._config_volumes:
                    await trio.to_thread.run_sync(projected_dir.remove_tree, pod_volumes_dir(
                        self.host.config.config_volume_dir, self.node, self.uid))
                break
            except (DockerUnavailable, DockerApiError) as exc:
                delay_streak += 1
                delay = max(self.docker_backoff.base_s, delay_for_streak(self.docker_backoff, delay_streak))
                self._log("teardown_retry", retry_in_s=f"{delay:.2f}", error=repr(str(exc)))
                await trio.sleep(delay)
        self._log("terminated")

    # -- helpers ----------------------------------------------------------------------------

    def _spawn(self, fn: Any, *args: Any) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._quietly, fn, *args)

    async def _quietly(self, fn: Any, *args: Any) -> None:
        try:
            await fn(*args)
        except (DockerUnavailable, DockerApiError) as exc:
            self._log("background_call_failed", call=getattr(fn, "__name__", fn), error=repr(str(exc)))

    # -- status ------------------------------------------------------------------------------

    def build_status(self) -> PodStatus:
        statuses = []
        init_statuses = []
        for app in self.apps.values():
            state: Any
            if app.container_id is not None and app.running_since is not None:
                state = Running(app.running_since)
            elif app.terminated is not None and app.finished:
                state = app.terminated
            elif app.waiting is not None:
                state = app.waiting
            elif not self._may_start(app) and app.instances == 0:
                state = Waiting(POD_INITIALIZING)
            else:
                state = Waiting(CONTAINER_CREATING)
            (init_statuses if app.init else statuses).append(ContainerStatus(
                name=app.spec.name, image=app.spec.image, state=state, last_state=app.last,
                ready=app.ready and isinstance(state, Running), started=app.started and isinstance(state, Running),
                restart_count=app.restart_count,
                container_id=app.container_id or (app.terminated.container_id if app.terminated else None),
                image_id=app.image_id,
            ))
        phase = "Failed" if self.init_failed or self.deadline_exceeded else pod_phase(self.pod.spec.restart_policy,
                                                                                        statuses)
        sidecars = frozenset(a.spec.name for a in self._sidecars())
        reason = None if self.initialized and not self.init_failed else init_status_word(init_statuses, sidecars)
        message = self.message
        if self.deadline_exceeded:
            reason = "DeadlineExceeded"
            message = "Pod was active on the node longer than the specified deadline"
        if self.host.docker_lost():
            message = message or self.host.docker_message
            if any(a.container_id for a in self.apps.values()):
                phase = "Unknown"  # its containers exist but their state cannot be read now
        ready = containers_ready(statuses + [c for c in init_statuses if c.name in sidecars]) and phase == "Running"
        now = time.time()
        if ready != self._ready_since[0]:
            self._ready_since = (ready, now)
        since = self._ready_since[1]
        not_ready_reason = None if ready else ("PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady")
        conditions = (
            PodCondition("PodScheduled", True, self.start_time),
            PodCondition("Initialized", self.initialized, self.start_time,
                         None if self.initialized else "ContainersNotInitialized"),
            PodCondition("ContainersReady", ready, since, not_ready_reason),
            PodCondition("Ready", ready, since, not_ready_reason),
        )
        meta = self.pod.metadata
        return PodStatus(
            uid=self.uid, namespace=meta.namespace, name=meta.name, phase=phase, conditions=conditions,
            container_statuses=tuple(statuses), pod_ip=self.infra.ip, host_ip=self.host.host_ip,
            start_time=self.start_time, message=message, reason=reason,
            init_container_statuses=tuple(init_statuses),
        )

    def publish(self) -> None:
        status = self.build_status()
        if status != self._last_status:
            self._last_status = status
            self.host.publish(status)


__all__ = ["PodWorker"]
