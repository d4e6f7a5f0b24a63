"""Helpers for tests and benchmarks on a namespace cluster (cluster/): manifests, what the
state says runs where, and what a node's own engine holds."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from agent.client import ClusterView
from cluster import Cluster
from cluster import agents as cluster_agents
from cluster.cluster import REPO


def pod_manifest(name: str, *, cpu: str = "50m", memory: str = "16Mi", labels: dict | None = None,
                 command: str = "sleep 100000") -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"test": "cluster"}},
        "spec": {
            "containers": [{"name": "app", "image": "busybox:local", "command": ["sh", "-c", command],
                            "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
            "terminationGracePeriodSeconds": 1,
        },
    }


def ready_nodes(view: ClusterView) -> set[str]:
    return view.ready_nodes()


def running_on(view: ClusterView) -> dict[str, str]:
    return view.running_on()


def node_containers(cluster: Cluster, node: str, uid: str) -> list[dict[str, Any]]:
    """The containers of Pod `uid` in `node`'s own engine (running or not)."""
    n = cluster.node(node)
    out = subprocess.run(["docker", "-H", n.docker_url, "ps", "-a", "--no-trunc", "--format", "{{json .}}",
                          "--filter", f"label=agentd.pod.uid={uid}"], capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [{"Id": r["ID"], "State": r["State"], "Created": r["CreatedAt"]} for r in rows]


def restart_all_agents(cluster: Cluster) -> None:
    """Stop every agentd (SIGTERM: Pods are left running) and start them all again."""
    st = cluster.state()
    for node in cluster.nodes:
        assert cluster_agents.stop(node), f"agentd of {node.name} did not stop"
    for node in cluster.nodes:
        cluster_agents.start(cluster_agents.agentd_binary(REPO), st.layout, node, st.servers)
    cluster_agents.wait_ready(cluster.nodes)
