"""What a pod worker needs from the runtime that hosts it, and nothing more.

Owns: the PodHost protocol. Rules: a PodWorker reaches its host only through these
members; PodRuntime implements them. Keeping the surface this small keeps the worker
testable on its own and the import graph one-way (pod_runtime -> pod_worker -> pod_host).
"""

from __future__ import annotations

from typing import Any, Protocol

import trio

from .config import RuntimeConfig
from .config_objects import ConfigObjects
from .docker_api import DockerApi
from .images import ImageCache
from .node_resources import NodeResources
from .status import PodStatus


class PodHost(Protocol):
    @property
    def node_name(self) -> str: ...

    @property
    def config(self) -> RuntimeConfig: ...

    @property
    def host_ip(self) -> str | None: ...

    @property
    def docker(self) -> DockerApi: ...

    @property
    def images(self) -> ImageCache: ...

    @property
    def objects(self) -> ConfigObjects:
        """The ConfigMaps and Secrets this node knows (env and config volumes read them)."""
        ...

    @property
    def listing_ready(self) -> trio.Event:
        """Set once the engine's containers have been listed (adoption may begin)."""
        ...

    @property
    def docker_message(self) -> str | None:
        """Why the engine cannot be used now; None while it answers."""
        ...

    def docker_lost(self) -> bool:
        """Was the engine reachable once and is it unreachable now?"""
        ...

    def node_resources(self) -> NodeResources:
        """The node's capacity and allocatable CPU and memory (what an unset limit reads as)."""
        ...

    def saw_oom(self, container_id: str) -> bool:
        """Did the engine report an out-of-memory kill in this container?"""
        ...

    def listed_containers(self, uid: str) -> list[dict[str, Any]]:
        """The Pod's containers in the engine's first listing (handed out once)."""
        ...

    def publish(self, status: PodStatus) -> None:
        """Record the Pod's new status and hand it to the status subscribers."""
        ...
