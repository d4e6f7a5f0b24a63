"""Reporting this node's Pod statuses to the cluster: batched, only what changed.

Owns: comparing what the runtime reports for the Pods the cluster placed here with what
was last accepted, and sending the differences in one ReportStatus call per interval,
through this agent's own ClusterService (which proposes it on the leader or forwards it).

Rules it keeps:
- Latest wins, per Pod: a status that changes ten times between two sends is sent once,
  as it is at the send. Nothing is lost when a send fails: the Pods stay due and the next
  interval sends their newest state.
- A Pod is reported under the placement epoch it was given; when the cluster places it
  here again (a new epoch), its current status is due again even if the runtime's view
  did not change.
- One call per `status_report_interval_s` at most, so a node's status traffic is bounded
  by time, not by how many Pods it runs.
- Static Pods (from a manifest directory) are not the cluster's and are not reported.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio

from agent.agentd.assignments import ClusterAssignments
from agent.agentd.config import AgentConfig
from agent.api.cluster_service import ClusterServicer, LocalContext
from agent.grpcbridge.errors import RpcError
from agent.rpc import cluster_pb2 as pb
from agent.runtime import PodRuntime

log = logging.getLogger("agent.agentd.status")

RETRY_S = (0.1, 0.2, 0.5, 1.0)


class StatusReporter:
    def __init__(self, config: AgentConfig, runtime: PodRuntime, assignments: ClusterAssignments,
                 api: ClusterServicer) -> None:
        self.config = config
        self.runtime = runtime
        self.assignments = assignments
        self.api = api
        self._accepted: dict[str, tuple[int, bytes]] = {}  # uid -> (epoch, status) last accepted
        self.reports_sent = 0
        self.statuses_sent = 0

    def due(self) -> list[pb.PodStatusReport]:
        """Reports for every placed Pod whose status differs from what the cluster accepted."""
        statuses = self.runtime.statuses()
        out = []
        for uid, doc in self.assignments.pod_docs.items():
            status = statuses.get(uid)
            epoch = self.assignments.epoch_of(uid)
            if status is None or epoch is None or status.deleted:
                continue
            body = json.dumps(_status_doc(status.to_dict()), sort_keys=True, separators=(",", ":")).encode()
            if self._accepted.get(uid) == (epoch, body):
                continue
            meta = doc["metadata"]
            out.append(pb.PodStatusReport(namespace=meta.get("namespace", "default"), name=meta["name"], uid=uid,
                                          epoch=epoch, status_json=body))
        for uid in [u for u in self._accepted if u not in self.assignments.pod_docs]:
            del self._accepted[uid]
        return out

    async def run(self) -> None:
        updates = self.runtime.subscribe()
        failures = 0
        async with updates:
            await self.assignments.synced.wait()
            while True:
                reports = self.due()
                if reports:
                    try:
                        await self._send(reports)
                        failures = 0
                    except RpcError as exc:
                        failures += 1
                        log.info("%s event=status_report_failed pods=%d code=%s detail=%r", self.config.name,
                                 len(reports), exc.code.name, exc.details[:200])
                        await trio.sleep(RETRY_S[min(failures - 1, len(RETRY_S) - 1)])
                        continue
                await trio.sleep(self.config.status_report_interval_s)
                await self._wait_for_news(updates)

    async def _send(self, reports: list[pb.PodStatusReport]) -> None:
        request = pb.ReportStatusRequest(node=self.config.name, pods=reports)
        with trio.fail_after(self.config.rpc_timeout_s + 1):
            answer = await self.api.ReportStatus(request, LocalContext())
        if answer.ignored:
            # Some were about a placement the state no longer (or not yet) has: all stay due;
            # repeating the accepted ones writes nothing, and the placements settle shortly.
            return
        for report in reports:
            self._accepted[report.uid] = (report.epoch, report.status_json)
        self.reports_sent += 1
        self.statuses_sent += len(reports)

    async def _wait_for_news(self, updates: Any) -> None:
        """Until the runtime publishes a status or the placements change (or a second
        passes: a safety net that also retries statuses ignored during a placement race)."""
        seen = self.assignments.changes.version
        with trio.move_on_after(1.0):
            async with trio.open_nursery() as nursery:
                async def runtime_news() -> None:
                    # every changed Pod at once (coalesced, latest wins); the statuses
                    # themselves are read afresh from the runtime by due()
                    await updates.receive_batch()
                    nursery.cancel_scope.cancel()

                async def placement_news() -> None:
                    await self.assignments.changes.wait(seen)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(runtime_news)
                nursery.start_soon(placement_news)


def _status_doc(runtime_status: dict[str, Any]) -> dict[str, Any]:
    """The runtime's status document without what is the cluster's to say."""
    return {k: v for k, v in runtime_status.items() if k not in ("deleted",)}
