"""NodeService: the agent's gRPC API for the Pods on its own node.

Owns: turning the runtime's Pods and statuses into the wire messages of node.proto
(Kubernetes-shaped JSON documents) and serving logs. Rules: read-only towards the
runtime; an unknown Pod or container is NOT_FOUND, a malformed request INVALID_ARGUMENT;
nothing a client sends changes the node.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import trio

from agent import __version__
from agent.grpcbridge.errors import InvalidArgument, NotFound
from agent.rpc import node_pb2
from agent.runtime import PodRuntime
from agent.state.pod import Pod, pod_to_dict


def _json(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def pod_view(pod: Pod, status_doc: dict) -> node_pb2.PodView:
    return node_pb2.PodView(
        uid=pod.metadata.uid or "",
        namespace=pod.metadata.namespace,
        name=pod.metadata.name,
        pod_json=_json(pod_to_dict(pod)),
        status_json=_json(status_doc),
    )


class NodeServicer:
    """Async implementation of agent.rpc.NodeService, served through agent.grpcbridge."""

    def __init__(self, runtime: PodRuntime, *, node_labels: dict[str, str] | None = None) -> None:
        self._runtime = runtime
        self._node_labels = dict(node_labels or {})

    def _views(self, namespace: str) -> list[node_pb2.PodView]:
        views = []
        for uid, status in sorted(self._runtime.statuses().items()):
            pod = self._runtime.pod(uid)
            if pod is None or (namespace and pod.metadata.namespace != namespace):
                continue
            views.append(pod_view(pod, status.to_dict()))
        views.sort(key=lambda v: (v.namespace, v.name))
        return views

    def _find(self, namespace: str, name: str) -> tuple[Pod, object]:
        if not name:
            raise InvalidArgument("name: required")
        found = self._runtime.find(namespace or "default", name)
        if found is None:
            raise NotFound(f'pod "{name}" not found in namespace "{namespace or "default"}"')
        return found

    async def GetNode(self, request: node_pb2.GetNodeRequest, context: object) -> node_pb2.NodeInfo:
        res = self._runtime.node_resources()
        docker_problem = self._runtime.docker_message  # None while the engine answers
        return node_pb2.NodeInfo(
            name=self._runtime.node_name,
            version=__version__,
            capacity_cpu_millicores=res.capacity_cpu_millicores,
            capacity_memory_bytes=res.capacity_memory_bytes,
            allocatable_cpu_millicores=res.allocatable_cpu_millicores,
            allocatable_memory_bytes=res.allocatable_memory_bytes,
            labels=self._node_labels,
            docker_available=docker_problem is None,
            docker_error=docker_problem or "",
        )

    async def ListPods(self, request: node_pb2.ListPodsRequest, context: object) -> node_pb2.ListPodsResponse:
        return node_pb2.ListPodsResponse(pods=self._views(request.namespace))

    async def GetPod(self, request: node_pb2.GetPodRequest, context: object) -> node_pb2.PodView:
        pod, status = self._find(request.namespace, request.name)
        return pod_view(pod, status.to_dict())

    async def WatchPods(self, request: node_pb2.WatchPodsRequest, context: object) -> AsyncIterator[node_pb2.PodEvent]:
        updates = self._runtime.subscribe()
        async with updates:
            for view in self._views(request.namespace):
                yield node_pb2.PodEvent(kind=node_pb2.PodEvent.CURRENT, pod=view)
            async for status in updates:
                pod = self._runtime.pod(status.uid)
                if status.deleted or pod is None:
                    # Gone from the node: the last status still names it.
                    yield node_pb2.PodEvent(
                        kind=node_pb2.PodEvent.DELETED,
                        pod=node_pb2.PodView(uid=status.uid, namespace=status.namespace, name=status.name),
                    )
                    continue
                if request.namespace and pod.metadata.namespace != request.namespace:
                    continue
                yield node_pb2.PodEvent(kind=node_pb2.PodEvent.MODIFIED, pod=pod_view(pod, status.to_dict()))

    async def PodLogs(self, request: node_pb2.PodLogsRequest, context: object) -> AsyncIterator[node_pb2.LogLine]:
        if request.tail_lines < 0:
            raise InvalidArgument(f"tail_lines: must be >= 0, got {request.tail_lines}")
        pod, _status = self._find(request.namespace, request.name)
        names = [c.name for c in pod.spec.containers]
        every = names + [c.name for c in pod.spec.init_containers]  # init containers' logs too, by name
        container = request.container
        if not container:
            if len(names) != 1:
                raise InvalidArgument(
                    f'a container name must be given for pod "{pod.metadata.name}": one of {every}'
                )
            container = names[0]
        elif container not in every:
            raise NotFound(f'container "{container}" is not valid for pod "{pod.metadata.name}": one of {every}')
        lines = self._runtime.logs(
            pod.metadata.uid, container, tail=request.tail_lines or None, follow=request.follow,
            previous=request.previous,
        )
        async for line in lines:
            yield node_pb2.LogLine(line=line)
            await trio.lowlevel.checkpoint()
