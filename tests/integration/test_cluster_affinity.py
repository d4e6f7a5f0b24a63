"""Affinity on real processes: a 3-node namespace cluster places by node affinity and pod
anti-affinity, and says in Kubernetes' words why a Pod it cannot place waits.

What is proven here:
- a Pod with required node affinity (kubernetes.io/hostname In [n2]) runs on n2;
- two replicas with required podAntiAffinity on kubernetes.io/hostname, kept off n3 by
  node affinity, run on n1 and n2, one each; a third stays Pending, PodScheduled False,
  reason Unschedulable, with both reasons in its message.
The cluster is taken down whatever happens.
"""

from __future__ import annotations

import pytest

from agent.client import ClusterClient, ClusterView
from cluster import Cluster, down
from tests.integration.cluster_fixtures import unique_name
from tests.integration.cluster_helpers import pod_manifest, ready_nodes, running_on

pytestmark = [pytest.mark.cluster]

REQ = "requiredDuringSchedulingIgnoredDuringExecution"
WAIT_S = 60


@pytest.fixture(scope="module")
def cluster():
    name = unique_name("af")
    try:
        yield Cluster.up(name, nodes=3, servers=3)
    finally:
        down(name)


@pytest.fixture
async def view(cluster, nursery):
    async with ClusterClient([n.api_address for n in cluster.nodes], timeout_s=5) as client:
        v = ClusterView(client)
        await nursery.start(v.run)
        yield client, v


def hostname_term(operator: str, *nodes: str) -> dict:
    return {"nodeAffinity": {REQ: {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": operator, "values": list(nodes)}]}]}}}


def pod_of(view: ClusterView, name: str) -> dict | None:
    return next((p for p in view.pods() if p["metadata"]["name"] == name), None)


def unschedulable_message(view: ClusterView, name: str) -> str | None:
    doc = pod_of(view, name)
    for cond in ((doc or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                and cond.get("reason") == "Unschedulable":
            return cond.get("message")
    return None


async def test_affinity_places_and_anti_affinity_keeps_the_extra_replica_pending(view):
    client, v = view
    await v.wait(lambda x: len(ready_nodes(x)) == 3, timeout_s=WAIT_S)

    pinned = pod_manifest("pinned")
    pinned["spec"]["affinity"] = hostname_term("In", "n2")
    [(_, _, _, _, doc)] = await client.apply([pinned])
    assert await v.wait(lambda x: running_on(x).get(doc["metadata"]["uid"]), timeout_s=WAIT_S) == "n2"

    replicas = []
    for i in range(3):
        m = pod_manifest(f"web-{i}", labels={"app": "web"})
        m["spec"]["affinity"] = {**hostname_term("NotIn", "n3"), "podAntiAffinity": {REQ: [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}
        replicas.append(m)
    await client.apply(replicas[:2])
    await v.wait(lambda x: sum(1 for i in range(2) if (pod_of(x, f"web-{i}") or {}).get("metadata", {}).get("uid")
                               in running_on(x)) == 2, timeout_s=WAIT_S)
    nodes = {running_on(v)[pod_of(v, f"web-{i}")["metadata"]["uid"]] for i in range(2)}
    assert nodes == {"n1", "n2"}

    await client.apply(replicas[2:])
    message = await v.wait(lambda x: unschedulable_message(x, "web-2"), timeout_s=WAIT_S)
    assert "node(s) didn't match pod anti-affinity rules" in message
    assert message == ("0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                       "2 node(s) didn't match pod anti-affinity rules.")
    assert not (pod_of(v, "web-2").get("spec") or {}).get("nodeName")
