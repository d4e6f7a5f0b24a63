"""ClusterAssignments: the hand-over from a worker's watch to a server's own copy.

A worker made a server (a standby, say) must not lose sight of its placements while its
new copy of the state catches up, and once it follows the copy, the runtime must get the
copy's set at once, even though nothing changes afterwards. The watch is a fake (what a
server would stream); the Raft node is a fake whose read index answers when told.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import trio
import trio.testing

from agent.agentd.assignments import ClusterAssignments
from agent.agentd.config import AgentConfig
from agent.agentd.notify import Changes
from agent.rpc import cluster_pb2 as pb
from tests.unit.state_helpers import Log, pod


def placed(name: str) -> dict:
    doc = pod(name, node="n4")
    doc["metadata"]["uid"] = f"uid-{name}"
    return doc


def batch(*docs: dict, initial: bool = False) -> pb.WatchBatch:
    return pb.WatchBatch(events=[pb.WatchEvent(type=pb.WatchEvent.ADDED, object_json=json.dumps(d).encode())
                                 for d in docs], initial=initial, synced=True, leader_known=True)


class FakeNode:
    """A Raft node whose read index is answered once `caught_up` is set."""

    def __init__(self, state) -> None:
        self.state = state
        self.caught_up = trio.Event()
        self.leader_id = "n1"
        self.reads = 0

    def leader_silent_s(self) -> float:
        return 0.0

    async def read(self, query):
        self.reads += 1
        await self.caught_up.wait()
        return query(self.state)


async def next_names(sets) -> set[str]:
    with trio.fail_after(2):
        desired = await sets.__anext__()
    return {p.metadata.name for p in desired.values()}


async def test_a_worker_made_a_server_keeps_its_watch_until_its_copy_caught_up(tmp_path):
    own = Log()
    own.create(pod("from-copy", node="n4"))
    raft = SimpleNamespace(node=None, state=own.machine, changes=Changes())
    servers = {"n1": SimpleNamespace(role="voter", api_address="10.0.0.1:7070")}
    gossip = SimpleNamespace(servers=lambda: servers, changes=Changes())
    assignments = ClusterAssignments(AgentConfig(name="n4", data_dir=str(tmp_path)), raft, gossip, None, Changes())
    send, receive = trio.open_memory_channel(10)

    async def streamed_by_a_server(name: str, address: str) -> bool:
        async for b in receive:
            assignments._on_batch(b, name)
        return True

    assignments._watch_server = streamed_by_a_server
    async with trio.open_nursery() as nursery:
        nursery.start_soon(assignments.run)
        sets = assignments.desired_sets()
        await send.send(batch(placed("from-watch"), initial=True))
        assert await next_names(sets) == {"from-watch"}

        node = FakeNode(own.machine)
        raft.node = node
        raft.changes.notify()
        await trio.testing.wait_all_tasks_blocked()
        assert node.reads >= 1
        # Its copy has not caught up: the watch still serves.
        await send.send(batch(placed("from-watch-2")))
        assert await next_names(sets) == {"from-watch", "from-watch-2"}

        node.caught_up.set()  # now the copy is the source, and its set reaches the runtime
        assert await next_names(sets) == {"from-copy"}
        assert assignments.served_by == "own copy"
        nursery.cancel_scope.cancel()
