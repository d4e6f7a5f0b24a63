"""A rolling update under traffic: one JSON line of figures.

On a namespace cluster (4 nodes, 3 servers, each with its own dockerd and agentd), a
Deployment of 10 replicas of a tiny HTTP server (busybox httpd) with an httpGet readiness
probe and a RollingUpdate strategy of maxSurge 1, maxUnavailable 0. A client on the host
sends requests the whole time to the Pods it sees Ready (by Pod IP: the host routes every
node's container subnet), learning which those are from a watch of the cluster state, as a
Service's endpoints would. Then the Pod template changes and the rollout runs; then
`agentctl rollout undo` takes the Deployment back to the first template.

  rollout_s        template changed -> 10 Pods of the new template Ready and no old Pod left
  rollback_s       `rollout undo` -> 10 Pods of the first template Ready and no other left
  requests         requests sent during the whole run
  failed_requests  requests that got no 200 (must be 0)

A Pod being removed keeps receiving requests until the client learns it is going (its
deletion or its Ready condition turning False reaches the watch). So the Pods drain as
Kubernetes users make them: a `lifecycle.preStop` sleep (3 s) keeps the server up while
clients stop picking it, and terminationGracePeriodSeconds (10) leaves time for that sleep
and the in-flight requests.
`--host-ports`: the Pods take hostPort 8080 and the client goes to the nodes' addresses,
as a load balancer in front of the nodes would; one replica fits a node, so the cluster
gets replicas + 1 nodes (the surge). `--quick`: the same with 6 replicas.

    .venv/bin/python bench/rollout_bench.py [--quick] [--host-ports] [--keep]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.client import ClusterClient, ClusterView  # noqa: E402
from bench.on_cluster import run_on_cluster  # noqa: E402
from cluster import Cluster  # noqa: E402

PORT = 8080
NAME = "web"


def progress(message: str) -> None:
    print(f"rollout_bench: {message}", file=sys.stderr, flush=True)


def deployment(replicas: int, version: str, host_ports: bool = False) -> dict:
    port = {"containerPort": PORT, "hostPort": PORT} if host_ports else {"containerPort": PORT}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": NAME}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": NAME}}, "spec": {
                "terminationGracePeriodSeconds": 10,
                "containers": [{
                    "name": "httpd", "image": "busybox:local",
                    # sh stays PID 1 and ends at SIGTERM (httpd as PID 1 would ignore it and be
                    # killed only at the end of the grace period, holding its hostPort till then).
                    "command": ["sh", "-c", f"mkdir -p /www && echo $VERSION > /www/index.html && "
                                            f"trap 'exit 0' TERM; httpd -f -p {PORT} -h /www & wait"],
                    "env": [{"name": "VERSION", "value": version}],
                    "ports": [port],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": PORT}, "periodSeconds": 1,
                                       "failureThreshold": 1},
                    "lifecycle": {"preStop": {"sleep": {"seconds": 3}}},
                }]}},
        },
    }


def version_of(pod: dict) -> str:
    for container in pod["spec"].get("containers") or ():
        for env in container.get("env") or ():
            if env.get("name") == "VERSION":
                return env.get("value", "")
    return ""


def is_ready(pod: dict) -> bool:
    status = pod.get("status") or {}
    return (not pod["metadata"].get("deletionTimestamp") and bool(status.get("podIP"))
            and any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()))


def address_of(pod: dict, host_ports: bool) -> str:
    """Where the client reaches a Ready Pod: its node's address (the hostPort) or its own IP."""
    status = pod["status"]
    return status.get("hostIP", "") if host_ports else status["podIP"]


def web_pods(view: ClusterView) -> list[dict]:
    return [p for p in view.pods() if (p["metadata"].get("labels") or {}).get("app") == NAME]


class Load:
    """Clients that GET / from the Pods the view shows Ready, until cancelled."""

    def __init__(self, view: ClusterView, host_ports: bool) -> None:
        self.view = view
        self.host_ports = host_ports
        self.sent = 0
        self.failed = 0
        self.failures: list[str] = []

    async def client(self) -> None:
        while True:
            targets = [address_of(p, self.host_ports) for p in web_pods(self.view) if is_ready(p)]
            if not targets:
                await trio.sleep(0.05)
                continue
            ip = random.choice(targets)
            self.sent += 1
            problem = await self.get(ip)
            if problem:
                self.failed += 1
                if len(self.failures) < 20:
                    self.failures.append(f"{ip}: {problem}")
            await trio.sleep(0.01)

    async def get(self, ip: str) -> str | None:
        try:
            with trio.fail_after(2):
                stream = await trio.open_tcp_stream(ip, PORT)
                async with stream:
                    await stream.send_all(f"GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
                    data = b""
                    while True:
                        chunk = await stream.receive_some(4096)
                        if not chunk:
                            break
                        data += chunk
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            return f"{type(exc).__name__}: {exc}"
        status = data.split(b"\r\n", 1)[0]
        return None if b" 200 " in status + b" " else f"status {status!r}"


async def undo(cluster: Cluster) -> None:
    """`agentctl rollout undo`, as a person would type it."""
    servers = ",".join(n.api_address for n in cluster.nodes)
    await trio.run_process([sys.executable, "-c", "import sys; from agent.cli.main import main; sys.exit(main())",
                            "-s", servers, "rollout", "undo", f"deployment/{NAME}"], capture_stdout=True, cwd=ROOT)


async def roll(view: ClusterView, args: argparse.Namespace, version: str, change) -> float:
    """Make `change`; the seconds until every replica runs `version`, Ready, and no other Pod is left."""
    started = time.monotonic()
    await change()

    def rolled(v: ClusterView) -> bool:
        pods = web_pods(v)
        return len(pods) == args.replicas and all(version_of(p) == version and is_ready(p) for p in pods)

    try:
        await view.wait(rolled, timeout_s=args.timeout_s)
    except trio.TooSlowError:
        for p in web_pods(view):
            progress(f"not rolled to {version}: {p['metadata']['name']} version={version_of(p)} "
                     f"ready={is_ready(p)} phase={(p.get('status') or {}).get('phase')} "
                     f"node={p['spec'].get('nodeName')} deleting={bool(p['metadata'].get('deletionTimestamp'))}")
        raise
    return round(time.monotonic() - started, 2)


async def bench(cluster: Cluster, args: argparse.Namespace) -> dict:
    client = ClusterClient([n.api_address for n in cluster.nodes], timeout_s=10)
    view = ClusterView(client)
    figures: dict = {"bench": "rollout", "nodes": len(cluster.nodes), "replicas": args.replicas,
                     "through": "hostPort" if args.host_ports else "podIP"}
    async with trio.open_nursery() as nursery:
        await nursery.start(view.run)
        await view.wait(lambda v: len(v.ready_nodes()) == len(cluster.nodes), timeout_s=60)
        await client.apply([deployment(args.replicas, "v1", args.host_ports)])
        await view.wait(lambda v: sum(is_ready(p) for p in web_pods(v)) >= args.replicas, timeout_s=120)
        progress(f"{args.replicas} Pods of v1 Ready")

        load = Load(view, args.host_ports)
        async with trio.open_nursery() as clients:
            for _ in range(args.clients):
                clients.start_soon(load.client)
            await trio.sleep(args.before_s)
            figures["rollout_s"] = await roll(view, args, "v2",
                                              lambda: client.apply([deployment(args.replicas, "v2", args.host_ports)]))
            progress(f"rolled out in {figures['rollout_s']}s")
            await trio.sleep(args.between_s)
            figures["rollback_s"] = await roll(view, args, "v1", lambda: undo(cluster))
            progress(f"rolled back in {figures['rollback_s']}s")
            await trio.sleep(args.after_s)
            clients.cancel_scope.cancel()
        figures["requests"] = load.sent
        figures["failed_requests"] = load.failed
        if load.failures:
            figures["failures"] = load.failures
        nursery.cancel_scope.cancel()
    client.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 replicas")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--before-s", type=float, default=3.0, help="traffic before the rollout")
    parser.add_argument("--between-s", type=float, default=3.0, help="traffic between the rollout and the undo")
    parser.add_argument("--after-s", type=float, default=3.0, help="traffic after the undo")
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--name", default="rollout-bench")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up")
    parser.add_argument("--host-ports", action="store_true",
                        help="the Pods take a hostPort and the client goes through the nodes' addresses "
                             "(one replica per node: the cluster gets replicas + 1 nodes, for the surge)")
    args = parser.parse_args()
    if args.quick:
        args.replicas, args.before_s, args.between_s, args.after_s, args.timeout_s = 6, 2.0, 1.0, 1.0, 90.0
    if args.host_ports:
        args.nodes = max(args.nodes, args.replicas + 1)
    return run_on_cluster("rollout_bench", bench, args)


if __name__ == "__main__":
    sys.exit(main())
