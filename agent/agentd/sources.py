"""The runtime's desired Pods when they come from more than one place, and mirror Pods.

Owns: `StaticPods` (a manifest directory's Pods, followed once and shared), `MergedSource`
(the union of the cluster's placements and the static Pods, as kubelet runs both), and
`MirrorPods` (keeping the node's static Pods mirrored in the cluster state, so `get pods`
shows them and their status is reported, as kubelet's mirror Pods do).

Rules it keeps:
- The union is yielded only once every source has yielded once (the runtime's first
  desired set, after which it stops orphans, must be complete); after that, each time
  either changes. A static Pod and its mirror carry the same uid, so the runtime runs one.
- Mirrors are synced whole (the node's entire static set each time), after the static set
  changes or the cluster's view of this node does, and retried until the cluster
  accepts; a mirror someone deleted is created again, as kubelet does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import trio

from agent.agentd.assignments import ClusterAssignments
from agent.agentd.config import AgentConfig
from agent.agentd.notify import Changes, wait_any
from agent.api.cluster_service import ClusterServicer, LocalContext
from agent.grpcbridge.errors import RpcError
from agent.rpc import cluster_pb2 as pb
from agent.runtime.source import DesiredPodSource
from agent.state.pod import pod_to_dict
from agent.state.pod_lifecycle import is_mirror

log = logging.getLogger("agent.agentd.sources")


class StaticPods:
    """Follows a manifest directory once; `latest` and `changes` for everyone who needs it."""

    def __init__(self, source: DesiredPodSource) -> None:
        self._source = source
        self.latest: Mapping[str, Any] | None = None
        self.changes = Changes()

    async def run(self) -> None:
        async for desired in self._source.desired_sets():
            self.latest = desired
            self.changes.notify()


class MergedSource:
    def __init__(self, cluster: DesiredPodSource, static: StaticPods | None) -> None:
        self._cluster = cluster
        self._static = static

    async def desired_sets(self) -> AsyncIterator[Mapping[str, Any]]:
        if self._static is None:
            async for desired in self._cluster.desired_sets():
                yield desired
            return
        static = self._static
        cluster_latest: list[Mapping[str, Any] | None] = [None]
        cluster_changes = Changes()

        async def follow_cluster() -> None:
            async for desired in self._cluster.desired_sets():
                cluster_latest[0] = desired
                cluster_changes.notify()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow_cluster)
            seen_cluster = seen_static = 0
            while True:
                await wait_any([(cluster_changes, seen_cluster), (static.changes, seen_static)], timeout_s=3600)
                seen_cluster, seen_static = cluster_changes.version, static.changes.version
                if cluster_latest[0] is not None and static.latest is not None:
                    union = dict(cluster_latest[0])
                    union.update(static.latest)  # a static Pod wins over its own mirror
                    yield union


class MirrorPods:
    def __init__(self, config: AgentConfig, static: StaticPods, assignments: ClusterAssignments,
                 api: ClusterServicer) -> None:
        self.config = config
        self.static = static
        self.assignments = assignments
        self.api = api

    def _in_sync(self) -> bool:
        wanted = set((self.static.latest or {}).keys())
        mirrored = {uid for uid, doc in self.assignments.pod_docs.items() if is_mirror(doc)}
        return wanted == mirrored

    async def run(self) -> None:
        await self.assignments.synced.wait()
        failures = 0
        refused_before: list[str] = []
        while True:
            seen = [(self.static.changes, self.static.changes.version),
                    (self.assignments.changes, self.assignments.changes.version)]
            if self.static.latest is not None and not self._in_sync():
                pods = list(self.static.latest.items())
                request = pb.SyncMirrorPodsRequest(
                    node=self.config.name, uids=[uid for uid, _ in pods],
                    documents=[json.dumps(_without_node(pod_to_dict(pod))).encode() for _, pod in pods])
                try:
                    answer = await self.api.SyncMirrorPods(request, LocalContext())
                    failures = 0
                    if list(answer.refused) != refused_before:
                        refused_before = list(answer.refused)
                        for problem in refused_before:
                            log.error("%s event=mirror_pod_refused problem=%r", self.config.name, problem)
                except RpcError as exc:
                    failures += 1
                    log.info("%s event=mirror_sync_failed code=%s detail=%r", self.config.name, exc.code.name,
                             exc.details[:200])
                    await trio.sleep(min(2.0, 0.1 * 2 ** failures))
                    continue
            await wait_any(seen, timeout_s=5.0)


def _without_node(doc: dict[str, Any]) -> dict[str, Any]:
    doc["metadata"].pop("uid", None)
    doc["spec"].pop("nodeName", None)
    return doc
