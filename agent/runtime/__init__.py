"""Pods on this node's Docker engine: containers, restart/backoff, probes, status, logs.

The daemon runs one PodRuntime fed by a DesiredPodSource (ManifestDirSource for static
Pods, InMemorySource for tests and tools, a cluster-state source later).

Module map (pure modules have no I/O, clock or Docker import):
  config.py           RuntimeConfig: every tunable, units in names, a reason per default
  source.py           DesiredPodSource, ManifestDirSource, InMemorySource
  pod_runtime.py      PodRuntime: workers per Pod, Docker events, orphans, status fan-out
  pod_worker.py       one Pod's life: create/adopt/restart/probe/report/tear down
  pod_host.py         PodHost: the narrow protocol a worker uses to reach its runtime
  images.py           ImageCache: image presence and pull bookkeeping shared by the workers
  worker_state.py     the worker's records and messages (plain data)
  reconciler.py       pure: desired vs running -> start/stop/replace; runnable checks
  containers.py       pure: Pod -> Docker names, labels, create arguments, volumes
  restart_policy.py   pure: restartPolicy decision after an exit
  backoff.py          pure: CrashLoopBackOff delays
  probes.py           pure: probe thresholds -> verdicts
  probe_executors.py  one exec / httpGet / tcpSocket attempt
  host_paths.py       hostPath types: checked (or created) before mounting
  status.py           PodStatus (Kubernetes' shape, to_dict) and the phase rules
  status_feed.py      the status fan-out: coalesced per Pod, latest wins, a last state never lost
  docker_api.py       the Docker SDK behind trio.to_thread with a CapacityLimiter
  node_resources.py   capacity (psutil) and allocatable (minus a reserve)
"""

from .config import RuntimeConfig, quick_profile
from .docker_api import DockerApi
from .errors import DockerApiError, DockerUnavailable, ImageNotFound, NotFound, PodRuntimeError
from .node_resources import NodeResources
from .pod_runtime import PodRuntime
from .source import DesiredPodSource, InMemorySource, ManifestDirSource, static_pod_uid
from .status import ContainerStatus, PodCondition, PodStatus, Running, Terminated, Waiting

__all__ = [
    "RuntimeConfig", "quick_profile", "DockerApi", "DockerApiError", "DockerUnavailable", "ImageNotFound",
    "NotFound", "PodRuntimeError", "NodeResources", "PodRuntime", "DesiredPodSource", "InMemorySource",
    "ManifestDirSource", "static_pod_uid", "ContainerStatus", "PodCondition", "PodStatus", "Running",
    "Terminated", "Waiting",
]
