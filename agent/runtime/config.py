"""Configuration of the node runtime (Pods on Docker).

Owns: every tunable of agent/runtime, in one frozen dataclass. Rules: units are in the
field names, each default carries the reason it has that value, and profiles are built
with `dataclasses.replace` (see `quick_profile`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    # Image and command of the infra ("pause") container that holds a Pod's network
    # namespace. busybox:local is the one image every node of this project can build offline.
    infra_image: str = "busybox:local"
    # A shell loop that exits at once on SIGTERM, so stopping a Pod never waits for the grace period.
    infra_command: tuple[str, ...] = (
        "sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done",
    )
    # Docker network the infra containers join; "bridge" gives every Pod an IP reachable from the host.
    docker_network: str = "bridge"
    # Docker socket URL; None means the environment's default (DOCKER_HOST or /var/run/docker.sock).
    docker_url: str | None = None
    # Threads allowed to block in the Docker SDK at once: about 8 lets ~8 Pods start in
    # parallel on 2 cores without starving the engine.
    docker_threads: int = 8
    # Timeout of one Docker API call; generous because a loaded engine can stall for seconds.
    docker_call_timeout_s: float = 60.0
    # CrashLoopBackOff: Kubernetes' kubelet uses a 10 s base ...
    crash_backoff_base_s: float = 10.0
    # ... doubling up to a 5 min cap ...
    crash_backoff_cap_s: float = 300.0
    # ... and forgets past crashes once a container has run for 10 minutes.
    crash_backoff_reset_after_s: float = 600.0
    # Retrying an image that is absent (ErrImagePull -> ImagePullBackOff): same shape as kubelet's.
    image_backoff_base_s: float = 10.0
    image_backoff_cap_s: float = 300.0
    # Retrying when the Docker engine is unreachable: short first, so a restarted engine is
    # noticed quickly, capped so a dead engine costs little.
    docker_retry_base_s: float = 0.5
    docker_retry_cap_s: float = 30.0
    # Full re-list of our containers as a safety net behind the events stream (missed events
    # after an engine restart); the events stream is the primary signal.
    resync_interval_s: float = 30.0
    # ManifestDirSource polls file mtimes this often, as kubelet's static Pod source does.
    manifest_poll_interval_s: float = 1.0
    # Container logs rotate as kubelet's containerLogMaxSize / containerLogMaxFiles do: the
    # json-file driver keeps at most this many files of this size per container, so one
    # chatty container cannot fill the node's disk (10 Mi and 5 are kubelet's defaults).
    container_log_max_size_bytes: int = 10 * 1024 * 1024
    container_log_max_files: int = 5
    # Processes (and threads) one Pod may run at once, as kubelet's podPidsLimit: a fork bomb
    # stays inside its Pod. Docker gives no Pod-level cgroup here, so the budget is split
    # between the Pod's containers (containers.pids_limits); None: no limit. 1024 is far
    # above what a Pod of a few services runs, and far below what starves a node.
    pod_pids_limit: int | None = 1024
    # Privileged containers (securityContext.privileged: true) get every device and capability
    # of the node: refused unless the node's operator allows them, as a PodSecurity policy would.
    allow_privileged: bool = False
    # Node reserve subtracted from capacity to give allocatable (system daemons, dockerd, agentd).
    reserved_cpu_millicores: int = 100
    reserved_memory_bytes: int = 256 * 1024 * 1024
    # Where configMap and secret volumes are written (<dir>/<node>/<pod uid>/<volume>):
    # /dev/shm is a tmpfs on every Linux, so a Secret never touches the node's disk, as
    # kubelet keeps secret volumes on tmpfs; the Docker engine shares this host's files.
    config_volume_dir: str = "/dev/shm/agentd-volumes"


    def __post_init__(self) -> None:
        if self.container_log_max_size_bytes < 1 or self.container_log_max_files < 1:
            raise ValueError(f"container logs need a size and a file count of at least 1: {self}")
        if self.pod_pids_limit is not None and self.pod_pids_limit < 1:
            raise ValueError(f"pod_pids_limit must be None (no limit) or at least 1: {self.pod_pids_limit}")


def quick_profile(**overrides: object) -> RuntimeConfig:
    """Small delays so the real-engine tests run in seconds, not minutes."""
    base = RuntimeConfig(
        crash_backoff_base_s=0.5,
        crash_backoff_cap_s=4.0,
        crash_backoff_reset_after_s=30.0,
        image_backoff_base_s=0.5,
        image_backoff_cap_s=2.0,
        docker_retry_base_s=0.2,
        docker_retry_cap_s=1.0,
        resync_interval_s=5.0,
        manifest_poll_interval_s=0.2,
        docker_call_timeout_s=30.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]
