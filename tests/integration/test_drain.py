"""`agentctl drain` on real processes: namespace nodes, each with its own dockerd and agentd.

One 4-node cluster (3 servers, the fourth a standby that holds no vote) is made for this
module and always taken down. What is proven here:
- draining a worker moves its Deployment Pods away while the Deployment (6 replicas,
  maxUnavailable 1) never has fewer than 5 available Pods, sampled all along, and prints
  kubectl's lines;
- draining the node of the Raft leader moves leadership to another server first (the
  cordoned leader hands off), then its two Pods, the second eviction refused for the
  budget and retried until the first one's replacement is available;
- a bare Pod stops a drain without --force (the node stays cordoned) and goes with it;
  an eviction asked of anything but a Pod is refused;
- uncordon makes both nodes schedulable again, and the leader (its servers run with
  `--rebalance`) moves Pods onto them one at a time until the spread is even, the
  Deployment again never below its budget;
- a Deployment of 3 with the default strategy (maxUnavailable rounds to 0) is drained by
  a replacement started first: never fewer than 3 Ready Pods, never more than 4 Pods.
"""

from __future__ import annotations

import sys

import pytest
import trio

from agent.client import ClusterView
from agent.grpcbridge.errors import InvalidArgument
from agent.rpc import cluster_pb2 as pb
from cluster import Cluster
from cluster import agents as cluster_agents
from cluster import cgroups
from cluster.cluster import REPO
from cluster.system import spawn_detached
from tests.integration.cluster_fixtures import unique_name

pytestmark = [pytest.mark.cluster]

REPLICAS = 6  # 2 per node once the worker is drained: the leader's drain must wait for a replacement
BUDGET = REPLICAS - 1  # maxUnavailable 1


def _deployment() -> dict:
    labels = {"app": "drained"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "drained"},
        "spec": {
            "replicas": REPLICAS, "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": "busybox:local", "command": ["sh", "-c", "sleep 100000"],
                                "resources": {"requests": {"cpu": "20m", "memory": "16Mi"}}}]}},
        },
    }


def _available(view: ClusterView) -> list[dict]:
    """The Deployment's live Pods whose Ready condition is True."""
    return [p for p in view.pods() if p["metadata"]["name"].startswith("drained-")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (p.get("status") or {}).get("conditions") or ())]


def _on(view: ClusterView, node: str) -> list[dict]:
    return [p for p in _available(view) if p["spec"].get("nodeName") == node]


SERVERS = 3


def _restart_servers_rebalancing(cluster: Cluster) -> None:
    """Restart the servers' agentd (SIGTERM: nothing runs yet) with --rebalance, a cluster setting."""
    st = cluster.state()
    servers = cluster.nodes[:SERVERS]
    for node in servers:
        assert cluster_agents.stop(node), f"agentd of {node.name} did not stop"
    for node in servers:
        argv = cluster_agents.agentd_argv(cluster_agents.agentd_binary(REPO), st.layout, node, st.servers)
        spawn_detached([*argv, "--rebalance"], cgroup_dirs=cgroups.placed_dirs(node.cgroup),
                       pidfile=node.dir / "agentd.pid", log=node.dir / "agentd.log")
    cluster_agents.wait_ready(servers)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.up(unique_name("dr"), nodes=4, servers=SERVERS)
    try:
        _restart_servers_rebalancing(c)
        yield c
    finally:
        c.down()


async def _agentctl(cluster: Cluster, *args: str) -> tuple[int, str, str]:
    servers = ",".join(n.api_address for n in cluster.nodes)
    done = await trio.run_process([sys.executable, "-m", "agent.cli.main", "--server", servers, *args],
                                  capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def _sampled(view: ClusterView, work) -> tuple[object, int]:
    """Run `work()` while sampling the Deployment's available Pods: (its result, the fewest seen)."""
    fewest = [len(_available(view))]

    async def sample(cancel: trio.CancelScope) -> None:
        with cancel:
            while True:
                fewest[0] = min(fewest[0], len(_available(view)))
                await trio.sleep(0.02)

    cancel = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample, cancel)
        result = await work()
        cancel.cancel()
    return result, fewest[0]


async def _drain_sampled(cluster: Cluster, view: ClusterView, node: str, *flags: str) -> tuple[str, str, int]:
    """Drain `node` while sampling the Deployment's available Pods; (stdout, stderr, fewest seen)."""
    (code, out, err), fewest = await _sampled(
        view, lambda: _agentctl(cluster, "drain", node, "--timeout", "90s", *flags))
    assert code == 0, f"drain {node} failed:\n{out}\n{err}"
    return out, err, fewest


async def test_drain_a_worker_then_the_leaders_node_within_the_budget(cluster, client, view):
    await view.wait(lambda v: len(v.ready_nodes()) == 4, timeout_s=60)
    await client.apply([_deployment()])
    await view.wait(lambda v: len(_available(v)) == REPLICAS, timeout_s=60)
    status = await client.status()
    worker = next(n for n in ("n4", "n3", "n2", "n1") if n not in status.voters)
    if not _on(view, worker):  # the scheduler spreads the 6 replicas over the 4 nodes; make sure
        pytest.fail(f"no Pod of the Deployment on {worker}: {[p['spec'].get('nodeName') for p in _available(view)]}")

    # 1. A worker, which also runs a bare Pod: refused without --force, deleted with it.
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"}, "spec": {
        "nodeName": worker, "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "app", "image": "busybox:local", "command": ["sh", "-c", "sleep 100000"]}]}}
    await client.apply([bare])
    code, out, err = await _agentctl(cluster, "drain", worker, "--timeout", "30s")
    assert code == 1 and "cannot delete Pods that declare no controller (use --force to override): default/bare" \
        in err, (out, err)
    assert (await client.get("Pod", "bare"))["spec"]["nodeName"] == worker
    with pytest.raises(InvalidArgument, match="only Pods are evicted"):
        await client._call("Delete", pb.DeleteRequest(kind="Node", name=worker, evict=True))
    out, _, fewest = await _drain_sampled(cluster, view, worker, "--force")
    assert "pod/bare evicted" in out.splitlines(), out
    lines = out.splitlines()
    assert lines[0] == f"node/{worker} cordoned" and lines[-1] == f"node/{worker} drained", out
    assert any(line.startswith("evicting pod default/drained-") for line in lines), out
    assert any(line.startswith("pod/drained-") and line.endswith(" evicted") for line in lines), out
    assert fewest >= BUDGET, f"the Deployment dropped to {fewest} available Pods during the drain"
    await view.wait(lambda v: len(_available(v)) == REPLICAS and not _on(v, worker), timeout_s=60)
    assert view.nodes()[worker]["spec"].get("unschedulable") is True

    # 2. The node of the Raft leader: leadership moves first, then its Pods.
    leader = (await client.status()).leader
    if len(_on(view, leader)) < 2:  # 6 replicas spread over 3 schedulable nodes
        pytest.fail(f"fewer than 2 Pods of the Deployment on the leader {leader}")
    out, err, fewest = await _drain_sampled(cluster, view, leader)
    assert "(will retry after 1s): Cannot evict pods" in err and "below its budget" in err, err
    lines = out.splitlines()
    assert f"node/{leader} runs the Raft leader; waiting for leadership to move to another server" in lines, out
    moved = next(i for i, line in enumerate(lines) if line.startswith("leadership moved to "))
    first_eviction = next(i for i, line in enumerate(lines) if line.startswith("evicting pod "))
    assert moved < first_eviction, out
    assert lines[-1] == f"node/{leader} drained", out
    assert fewest >= BUDGET, f"the Deployment dropped to {fewest} available Pods during the leader's drain"
    new_leader = (await client.status()).leader
    assert new_leader not in (leader, worker, ""), new_leader
    await view.wait(lambda v: len(_available(v)) == REPLICAS and not _on(v, leader), timeout_s=60)
    on_nodes = {p["spec"].get("nodeName") for p in _available(view)}
    assert on_nodes.isdisjoint({leader, worker}), on_nodes

    # 3. Uncordon both: schedulable again, and the rebalancer evens the spread out.
    for node in (worker, leader):
        code, out, err = await _agentctl(cluster, "uncordon", node)
        assert code == 0 and out.strip() == f"node/{node} uncordoned", err

    def even(v: ClusterView) -> bool:
        counts = {n: len(_on(v, n)) for n in v.nodes()}
        return len(_available(v)) == REPLICAS and max(counts.values()) - min(counts.values()) <= 1

    async def rebalanced() -> None:
        await view.wait(even, timeout_s=60)

    _, fewest = await _sampled(view, rebalanced)
    assert fewest >= BUDGET, f"the Deployment dropped to {fewest} available Pods while rebalancing"
    assert _on(view, worker) and _on(view, leader)


def _steady(view: ClusterView) -> tuple[list[dict], list[dict]]:
    """The default-strategy Deployment's live Pods, and those of them Ready."""
    live = [p for p in view.pods() if p["metadata"]["name"].startswith("steady-")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    ready = [p for p in live if any(c.get("type") == "Ready" and c.get("status") == "True"
                                    for c in (p.get("status") or {}).get("conditions") or ())]
    return live, ready


async def test_a_deployment_with_the_default_strategy_is_drained_by_surging_first(cluster, client, view):
    """3 replicas and the default strategy: 25 % rounds maxUnavailable down to 0 and maxSurge
    up to 1. The drain's refused eviction marks the Pod, its ReplicaSet starts a replacement
    elsewhere, and the eviction passes once that one is Ready: never fewer than 3 Ready Pods,
    never more than 4 Pods."""
    steady = _deployment()
    steady["metadata"]["name"] = "steady"
    steady["spec"]["replicas"] = 3
    del steady["spec"]["strategy"]
    steady["spec"]["selector"]["matchLabels"] = steady["spec"]["template"]["metadata"]["labels"] = {"app": "steady"}
    await client.apply([steady])
    await view.wait(lambda v: len(_steady(v)[1]) == 3, timeout_s=60)
    leader = (await client.status()).leader
    node = next(p["spec"]["nodeName"] for p in _steady(view)[1] if p["spec"]["nodeName"] != leader)
    extremes = {"fewest_ready": 3, "most_live": 3}

    async def drain() -> tuple[int, str, str]:
        return await _agentctl(cluster, "drain", node, "--timeout", "90s")

    async def sample(cancel: trio.CancelScope) -> None:
        with cancel:
            while True:
                live, ready = _steady(view)
                extremes["fewest_ready"] = min(extremes["fewest_ready"], len(ready))
                extremes["most_live"] = max(extremes["most_live"], len(live))
                await trio.sleep(0.02)

    cancel = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample, cancel)
        code, out, err = await drain()
        cancel.cancel()
    assert code == 0, f"drain {node} failed:\n{out}\n{err}"
    assert "a drain marks it" in err, err
    assert out.splitlines()[-1] == f"node/{node} drained", out
    assert extremes["fewest_ready"] >= 3, extremes
    assert extremes["most_live"] <= 4, extremes
    await view.wait(lambda v: len(_steady(v)[1]) == 3 and len(_steady(v)[0]) == 3, timeout_s=60)
    assert node not in {p["spec"]["nodeName"] for p in _steady(view)[0]}
    code, out, err = await _agentctl(cluster, "uncordon", node)
    assert code == 0, err
