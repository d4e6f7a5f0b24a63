"""Self-replacing servers, on real processes in namespace nodes.

Seven nodes: five voters (`--voters 5`, all five from --bootstrap-expect), one standby
(`--standbys 1`) and one spare worker; the replacement time is REPLACE_AFTER_S. Three
voters are killed one after another (the second one is the leader), each once the
previous replacement finished. What is proven:
- a killed voter is replaced: the standby is promoted and the dead voter removed, so the
  configuration shows five voters again, every one of them alive, and a new standby is
  made from a healthy worker;
- writes succeed throughout (a Pod applied and read back after each kill, each
  replacement and each return), so quorum is never lost;
- the killed server, started again with its old Raft data, never comes back as a voter
  (neither in the configuration nor in what it advertises): the standby place being
  taken, it stays a worker, and its old Raft data is deleted; the next replacement then
  makes it a new (empty) standby, and the one after promotes it.

Why seven nodes and not six: with six, the only standby candidate after a replacement is
the server just killed, so the leader asks it back as a standby the moment it returns and
its old log simply catches up; the seventh takes that place, so the returning server must
find out by itself that it was removed -- the harder path, which this proves.

The agents' flags come from cluster/agents.py; the ones this test needs are added to its
command line (`agentd_argv`) for as long as the module's cluster lives.
"""

from __future__ import annotations

import shutil
import time

import pytest
import trio

from agent.client import ClusterClient
from agent.grpcbridge.errors import RpcError
from cluster import Cluster
from cluster import agents as cluster_agents
from tests.integration.cluster_fixtures import unique_name
from tests.integration.cluster_helpers import pod_manifest

pytestmark = [pytest.mark.cluster]

REPLACE_AFTER_S = 3.0
VOTERS = 5
NODES = 7
# Dead (SWIM, ~2 s) + REPLACE_AFTER_S + two membership changes: about 6 s; far more on a
# loaded 2-core CI machine.
REPLACED_WITHIN_S = 60.0
REJOIN_WITHIN_S = 90.0
WRITE_WITHIN_S = 20.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    original = cluster_agents.agentd_argv

    def argv(binary, layout, node, servers):
        out = original(binary, layout, node, servers)
        at = out.index("--docker-url")
        return [*out[:at], "--voters", str(VOTERS), "--standbys", "1",
                "--replace-dead-server-after", str(REPLACE_AFTER_S), *out[at:]]

    name = unique_name("sr")
    cluster_agents.agentd_argv = argv
    c = None
    try:
        c = Cluster.up(name, nodes=NODES, servers=VOTERS)
        yield c
    finally:
        cluster_agents.agentd_argv = original
        if c is not None:
            keep = tmp_path_factory.mktemp("agentd-logs")
            try:
                for node in c.state().layout.nodes:
                    shutil.copy(node.dir / "agentd.log", keep / f"{node.name}.log")
                print(f"agentd logs kept in {keep}")
            except Exception as exc:  # noqa: BLE001 - the logs are a help, never the point
                print(f"agentd logs not kept: {exc!r}")
        Cluster(name).down()


class Probe:
    """Asks each node on its own: the leader's own answer is the configuration's truth (a
    server restarted with an old log could answer with its stale copy)."""

    def __init__(self, cluster: Cluster) -> None:
        self.clients = {n.name: ClusterClient([n.api_address], timeout_s=2) for n in cluster.nodes}
        self.down: set[str] = set()

    def close(self) -> None:
        for c in self.clients.values():
            c.close()

    async def status(self, node: str):
        try:
            return await self.clients[node].status()
        except RpcError:
            return None

    async def leader_status(self):
        """The leader's own status, or None while there is none."""
        for node in sorted(self.clients):
            if node in self.down:
                continue
            seen = await self.status(node)
            if seen is None or not seen.leader or seen.leader in self.down:
                continue
            own = await self.status(seen.leader)
            if own is not None and own.leader == own.answered_by == seen.leader:
                return own
        return None

    async def wait(self, predicate, timeout_s: float, what: str, *, always=lambda s: None):
        """The leader's status once `predicate` holds; `always` checks every one seen."""
        last = None
        with trio.move_on_after(timeout_s):
            while True:
                last = await self.leader_status()
                if last is not None:
                    always(last)
                    if predicate(last):
                        return last
                await trio.sleep(0.2)
        pytest.fail(f"timed out after {timeout_s}s waiting for {what}; last leader status: {last}")


def alive(status) -> set[str]:
    return {m.name for m in status.members if m.state == "alive"}


def advertised(status) -> dict[str, str]:
    return {m.name: m.role for m in status.members if m.state == "alive"}


def healthy(status) -> bool:
    """Five voters and a standby, every one alive."""
    return (len(status.voters) == VOTERS and len(status.standbys) == 1
            and set(status.voters) | set(status.standbys) <= alive(status))


async def write_and_read_back(client: ClusterClient, name: str) -> None:
    with trio.fail_after(WRITE_WITHIN_S):
        while True:
            try:
                await client.apply([pod_manifest(name, cpu="10m", memory="4Mi")])
                doc = await client.get("Pod", name, namespace="default")
                assert doc["metadata"]["name"] == name
                return
            except RpcError:
                await trio.sleep(0.2)


async def test_three_voters_die_one_after_another_and_are_replaced(cluster):
    started = time.monotonic()
    probe = Probe(cluster)
    writes = 0
    async with ClusterClient([n.api_address for n in cluster.nodes], timeout_s=5) as client:
        try:
            status = await probe.wait(healthy, REPLACED_WITHIN_S, "five voters and a standby")
            victims: list[str] = []
            for round_ in range(3):
                others = sorted(v for v in status.voters if v != status.leader and v not in victims)
                victim = status.leader if round_ == 1 else others[0]
                victims.append(victim)
                standby = status.standbys[0]
                await trio.to_thread.run_sync(cluster.kill, victim)
                probe.down.add(victim)
                await write_and_read_back(client, f"during-{round_}")
                status = await probe.wait(
                    lambda s: victim not in s.voters and victim not in s.standbys and healthy(s),
                    REPLACED_WITHIN_S, f"{victim} replaced: five live voters and a new standby")
                assert standby in status.voters, (standby, status)  # the standby was promoted
                await write_and_read_back(client, f"after-{round_}")

                # The victim comes back with its old Raft data; the standby place is taken.
                def never_a_voter(s):
                    assert victim not in s.voters, s
                    assert advertised(s).get(victim) != "voter", s

                raft_dir = cluster.node(victim).agent_dir / "raft"
                assert raft_dir.is_dir() and any(raft_dir.iterdir())  # its old log is there
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.to_thread.run_sync, cluster.start, victim)
                    status = await probe.wait(lambda s: advertised(s).get(victim) == "worker" and healthy(s),
                                              REJOIN_WITHIN_S, f"{victim} back as a worker", always=never_a_voter)
                probe.down.discard(victim)
                assert victim not in status.standbys and victim not in status.voters
                assert not raft_dir.exists() or not any(raft_dir.iterdir()), "its old Raft data should be gone"
                own = await probe.status(victim)  # a worker's answer is a server's: no stale copy
                assert own is not None and own.answered_by == victim and victim not in own.voters, own
                await write_and_read_back(client, f"rejoined-{round_}")
                writes += 3
            # Each replacement after the first made a returned victim the new standby, and
            # the last one promoted the first victim: a voter again, by the proper road.
            assert victims[0] in status.voters and victims[1] in status.standbys, (victims, status)
            assert len(status.voters) == VOTERS and set(status.voters) <= alive(status)
            events, _ = await client.list("Event", fields="reason=ServerRemoved")
            assert {e["involvedObject"]["name"] for e in events} == set(victims), events
        finally:
            probe.close()
    assert writes == 9
    print(f"three replacements in {time.monotonic() - started:.1f}s")
