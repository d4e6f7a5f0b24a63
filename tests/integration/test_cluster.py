"""The cluster on real processes: namespace nodes, each with its own dockerd and agentd.

One 4-node cluster (3 servers from --bootstrap-expect, the fourth a standby) is shared by
the tests of this module, in the order they are written; a test that kills a machine
starts it again before it ends. What is proven here:
- the cluster forms from --bootstrap-expect, and a later agent becomes a standby;
- an applied Pod runs on the node the scheduler chose (its container is in THAT node's engine);
- a bad manifest is a field-path error and creates nothing;
- killing a machine moves its Pods: Running on a survivor, reported by its agent;
- the dead machine returns: Ready again, and the Pods it still had are stopped there;
- killing the leader's machine: a new leader, nothing acknowledged lost;
- every agent restarted at once: the same objects, the containers adopted, not restarted;
- idle watch streams never lock out the API;
- a server cut off by a partition hears the leader again within seconds of the heal.
"""

from __future__ import annotations

import pytest
import trio

from agent.client import ClusterClient
from agent.grpcbridge.errors import InvalidArgument, ResourceExhausted, RpcError
from cluster import Cluster
from tests.integration.cluster_helpers import (
    node_containers,
    pod_manifest,
    ready_nodes,
    restart_all_agents,
    running_on,
)

pytestmark = [pytest.mark.cluster]

HEAL_TIMEOUT_S = 30  # far above the ~2-3 s a heal takes, for a loaded CI machine


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.up("itest", nodes=4, servers=3)
    try:
        yield c
    finally:
        c.down()


async def test_the_cluster_forms_from_bootstrap_expect(cluster, client, view):
    await view.wait(lambda v: len(ready_nodes(v)) == 4, timeout_s=60)
    status = await client.status()
    assert sorted(status.voters) == ["n1", "n2", "n3"]
    assert status.leader in ("n1", "n2", "n3")
    assert list(status.standbys) == ["n4"]
    gossip = {m.name: m.gossip_address for m in status.members}
    assert gossip == {n.name: n.gossip_address for n in cluster.nodes}
    roles = {name: doc["metadata"]["labels"]["agentd.io/role"] for name, doc in view.nodes().items()}
    assert roles == {"n1": "voter", "n2": "voter", "n3": "voter", "n4": "standby"}


async def test_an_applied_pod_runs_on_the_node_the_scheduler_chose(cluster, client, view):
    [(_, _, _, action, doc)] = await client.apply([pod_manifest("chosen")])
    assert action == "created"
    uid = doc["metadata"]["uid"]
    node = await view.wait(lambda v: running_on(v).get(uid), timeout_s=HEAL_TIMEOUT_S)
    for other in cluster.nodes:
        containers = node_containers(cluster, other.name, uid)
        assert bool(containers) == (other.name == node), (other.name, containers)


async def test_a_bad_manifest_is_a_field_path_error_and_creates_nothing(client):
    good, bad = pod_manifest("good-one"), pod_manifest("bad-one")
    bad["spec"]["containers"][0]["resources"]["requests"]["memory"] = "12Q"
    with pytest.raises(InvalidArgument, match=r"document 2: spec\.containers\[0\]\.resources\.requests\.memory"):
        await client.apply([good, bad])
    pods, _ = await client.list("Pod")
    assert not [p for p in pods if p["metadata"]["name"] in ("good-one", "bad-one")]


async def test_killing_a_machine_moves_its_pods_and_the_machine_returning_stops_them(cluster, client, view):
    await client.apply([pod_manifest(f"spread-{i}") for i in range(6)])
    await view.wait(lambda v: sum(1 for p in v.pods() if p["metadata"]["name"].startswith("spread-")
                                  and p["metadata"]["uid"] in running_on(v)) == 6, timeout_s=HEAL_TIMEOUT_S)
    victim = "n4"
    moved = {uid for uid, node in running_on(view).items() if node == victim}
    assert moved, "the scheduler should have spread Pods onto every node"
    await trio.to_thread.run_sync(cluster.kill, victim)
    await view.wait(lambda v: victim not in ready_nodes(v), timeout_s=HEAL_TIMEOUT_S)
    await view.wait(lambda v: all(running_on(v).get(uid, victim) != victim for uid in moved),
                    timeout_s=HEAL_TIMEOUT_S)
    # The machine comes back: Ready again, and nothing it ran before keeps running there.
    await trio.to_thread.run_sync(cluster.start, victim)
    await view.wait(lambda v: victim in ready_nodes(v), timeout_s=60)
    with trio.fail_after(HEAL_TIMEOUT_S):
        while any(c["State"] == "running" for uid in moved for c in node_containers(cluster, victim, uid)):
            await trio.sleep(0.2)


async def test_killing_the_leaders_machine_elects_another_and_loses_nothing(cluster, client, view):
    acknowledged = []
    for i in range(5):
        [(_, _, name, _, _)] = await client.apply([pod_manifest(f"acked-{i}")])
        acknowledged.append(name)
    old = (await client.status()).leader
    await trio.to_thread.run_sync(cluster.kill, old)
    with trio.fail_after(HEAL_TIMEOUT_S):
        while True:
            try:
                status = await client.status()
                if status.leader and status.leader != old:
                    break
            except Exception:  # noqa: BLE001 - the agent asked may be the dead one
                pass
            await trio.sleep(0.1)
    pods, _ = await client.list("Pod")
    assert set(acknowledged) <= {p["metadata"]["name"] for p in pods}
    await trio.to_thread.run_sync(cluster.start, old)
    await view.wait(lambda v: old in ready_nodes(v), timeout_s=60)


async def test_every_agent_restarted_keeps_every_object_and_adopts_its_containers(cluster, client, view):
    await view.wait(lambda v: len(ready_nodes(v)) == 4, timeout_s=60)
    # Pods the previous tests moved may still be starting: take the containers once every
    # Running Pod's containers are ready and the engines show the same two looks running.
    await view.wait(lambda v: all(cs.get("ready") for p in v.pods() if p["status"].get("phase") == "Running"
                                  for cs in p["status"].get("containerStatuses") or ()), timeout_s=HEAL_TIMEOUT_S)
    started_at: dict = {}
    with trio.fail_after(HEAL_TIMEOUT_S):
        while True:
            running = running_on(view)
            look = {uid: {c["Id"]: c["Created"] for c in node_containers(cluster, node, uid)}
                    for uid, node in running.items()}
            if look == started_at:
                break
            started_at = look
            await trio.sleep(1.0)
    before_pods = {p["metadata"]["uid"]: p["spec"].get("nodeName") for p in view.pods()}
    logs = {n.name: n.dir / "agentd.log" for n in cluster.nodes}
    offsets = {name: log.stat().st_size for name, log in logs.items()}
    await trio.to_thread.run_sync(restart_all_agents, cluster)

    def adopted_by_new_agent(uid: str, node: str) -> bool:
        with open(logs[node], errors="replace") as f:
            f.seek(offsets[node])
            return any("event=adopting" in line and f"uid={uid} " in line for line in f)

    # Judged from the new agents, not from what the view held before: each Pod adopted by
    # its node's new agentd, then a leader answering a linearizable list.
    with trio.fail_after(90):
        while not all(adopted_by_new_agent(uid, node) for uid, node in running.items()):
            await trio.sleep(0.2)
        while True:
            try:
                if (await client.status()).leader:
                    pods, _ = await client.list("Pod")
                    break
            except RpcError:
                pass
            await trio.sleep(0.2)
    assert {p["metadata"]["uid"]: p["spec"].get("nodeName") for p in pods} == before_pods
    for uid, node in running.items():
        now = {c["Id"]: c["Created"] for c in node_containers(cluster, node, uid)}
        assert now == started_at[uid], f"pod {uid} on {node}: containers were replaced"
    await view.wait(lambda v: len(ready_nodes(v)) == 4 and set(running) <= set(running_on(v)), timeout_s=30)
    for uid in running:
        restarts = [cs.get("restartCount", 0) for p in view.pods() if p["metadata"]["uid"] == uid
                    for cs in p["status"].get("containerStatuses") or ()]
        assert restarts and not any(restarts)


async def test_idle_watches_never_lock_out_the_api(cluster, client):
    """Far more idle watches than the server's pool threads: unary calls are still answered,
    and past the streams' bound a new watch is refused clearly."""
    address = cluster.nodes[0].api_address
    async with ClusterClient([address], timeout_s=5) as one:
        watches = []
        refused = None
        try:
            for _ in range(300):
                stream = one.watch(["Pod"])
                try:
                    await stream.__anext__()
                except ResourceExhausted as exc:
                    refused = exc
                    break
                watches.append(stream)
            with trio.fail_after(5):
                pods, _ = await one.list("Pod")
            assert pods
        finally:
            for stream in watches:
                await stream.aclose()
    assert refused is not None and "too many open streams" in refused.details
    assert len(watches) >= 64


async def test_a_server_cut_off_for_a_while_hears_the_leader_again_at_once_after_the_heal(cluster, client):
    """TCP alone resumes a connection whose packets were dropped only at its next
    retransmission, whose backoff grew all through the cut (10 s and more after a 20 s
    partition); keepalive pings close such connections, so a fresh one carries Raft's
    messages as soon as the path is back."""
    status = await client.status()
    cut = sorted(v for v in status.voters if v != status.leader)[0]
    rest = [n.name for n in cluster.nodes if n.name != cut]
    await trio.to_thread.run_sync(lambda: cluster.partition([rest, [cut]]))
    try:
        await trio.sleep(20)
    finally:
        await trio.to_thread.run_sync(cluster.heal)
    healed = trio.current_time()
    async with ClusterClient([cluster.node(cut).api_address], timeout_s=2) as alone:
        while True:
            try:
                own = await alone.status()
                if own.answered_by == cut and own.leader and own.leader != cut:
                    break
            except Exception:  # noqa: BLE001 - still settling
                pass
            assert trio.current_time() - healed < 5, f"{cut} has not heard from a leader 5 s after the heal"
            await trio.sleep(0.1)
