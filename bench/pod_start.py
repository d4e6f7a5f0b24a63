"""Pod start and restart latency of the node runtime on the real Docker engine.

Prints ONE JSON line:
  start_p50_s / start_p99_s   desired -> Running as the runtime reports it, one single-container
                              Pod at a time (20 Pods, or 5 with --quick)
  burst_all_running_s         N Pods desired at once -> all Running
  restart_p50_s               app container killed (docker kill) -> Running again, backoff base 0
  agent_rss_mb                RSS of a real agentd process (a one-node cluster) running the
                              same number of Pods from a manifest directory, all Running
  runtime_rss_mb              RSS of this process, which runs the runtime alone, after the runs
  sdk_floor_p50_s             the bare SDK calls for one Pod, measured in the same run (engine load)

The runtime runs in this process, fed by an InMemorySource; every container it made is
removed at the end (and, whatever happens, everything labelled with the bench's node).
Usage: .venv/bin/python bench/pod_start.py [--quick] [--pods N] [--image busybox:local]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import docker
import psutil
import trio

from agent.runtime import InMemorySource, PodRuntime, PodStatus, RuntimeConfig, quick_profile
from agent.runtime.containers import LABEL_NODE
from agent.runtime.status import Running
from agent.state.pod import Container, ObjectMeta, Pod, PodSpec


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def make_pod(image: str, name: str) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace="bench", uid=uuid.uuid4().hex),
        spec=PodSpec(containers=(Container(name="main", image=image, command=("sleep", "100000")),),
                     termination_grace_period_seconds=1),
    )


def sdk_floor_s(client: docker.DockerClient, image: str, node: str, runs: int = 5) -> float:
    """Median time of the bare SDK calls a Pod needs (create+start infra, create+start app),
    measured now: on a shared machine it says how loaded the engine is."""
    import time

    api = client.api
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        infra = api.create_container(image, ["sleep", "100000"], labels={LABEL_NODE: node},
                                     host_config=api.create_host_config(network_mode="bridge"))["Id"]
        api.start(infra)
        mode = f"container:{infra}"
        app = api.create_container(image, ["sleep", "100000"], labels={LABEL_NODE: node},
                                   host_config=api.create_host_config(network_mode=mode))["Id"]
        api.start(app)
        times.append(time.perf_counter() - t0)
        api.remove_container(app, force=True)
        api.remove_container(infra, force=True)
    return statistics.median(times)


class Watcher:
    """Records, from the runtime's status stream, when each Pod is Running (with a restart count)."""

    def __init__(self, runtime: PodRuntime) -> None:
        self.updates = runtime.subscribe()
        self.changed = trio.Event()
        self.latest: dict[str, PodStatus] = {}

    async def run(self) -> None:
        async for status in self.updates:
            self.latest[status.uid] = status
            self.changed.set()
            self.changed = trio.Event()

    def running(self, uid: str, *, restarts: int = 0) -> bool:
        status = self.latest.get(uid)
        if status is None or status.deleted:
            return False
        cs = status.container("main")
        return cs is not None and isinstance(cs.state, Running) and cs.restart_count >= restarts

    async def wait(self, predicate: Any, timeout_s: float = 60.0) -> None:
        with trio.fail_after(timeout_s):
            while not predicate():
                await self.changed.wait()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    node = f"bench-{uuid.uuid4().hex[:8]}"
    client = docker.from_env()
    config = quick_profile(crash_backoff_base_s=0.0, crash_backoff_cap_s=0.0, docker_threads=args.threads)
    source = InMemorySource()
    runtime = PodRuntime(node_name=node, config=config)
    pods: list[Pod] = []
    floor_s = await trio.to_thread.run_sync(sdk_floor_s, client, args.image, node)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run, source)
            watcher = Watcher(runtime)
            nursery.start_soon(watcher.run)
            await runtime.listing_ready.wait()

            # 1. One Pod at a time.
            starts = []
            for i in range(args.pods):
                pod = make_pod(args.image, f"seq-{i}")
                pods.append(pod)
                t0 = trio.current_time()
                source.set_pods(pods)
                await watcher.wait(lambda: watcher.running(pod.metadata.uid))
                starts.append(trio.current_time() - t0)

            # 2. Kill app containers: time until the runtime reports them running again.
            restarts = []
            for pod in pods[: args.restarts]:
                uid = pod.metadata.uid
                before = watcher.latest[uid].container("main")
                container_id = before.container_id
                t0 = trio.current_time()
                await trio.to_thread.run_sync(lambda: client.api.kill(container_id))
                await watcher.wait(lambda: watcher.running(uid, restarts=before.restart_count + 1))
                restarts.append(trio.current_time() - t0)

            # 3. Remove them all, then a burst of N at once.
            source.set_pods([])
            await watcher.wait(lambda: not runtime.statuses(), timeout_s=120)
            burst = [make_pod(args.image, f"burst-{i}") for i in range(args.pods)]
            t0 = trio.current_time()
            source.set_pods(burst)
            await watcher.wait(lambda: all(watcher.running(p.metadata.uid) for p in burst), timeout_s=120)
            burst_s = trio.current_time() - t0

            rss_mb = psutil.Process().memory_info().rss / (1024 * 1024)
            source.set_pods([])
            await watcher.wait(lambda: not runtime.statuses(), timeout_s=120)
            nursery.cancel_scope.cancel()
    finally:
        label = f"{LABEL_NODE}={node}"
        for c in client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"label": label}):
            v.remove(force=True)
    return {
        "bench": "pod_start",
        "pods": args.pods,
        "start_p50_s": round(statistics.median(starts), 4),
        "start_p99_s": round(percentile(starts, 0.99), 4),
        "start_max_s": round(max(starts), 4),
        "burst_all_running_s": round(burst_s, 4),
        "restart_p50_s": round(statistics.median(restarts), 4),
        "restart_max_s": round(max(restarts), 4),
        "agent_rss_mb": agentd_rss_mb(client, args.image, args.pods),
        "runtime_rss_mb": round(rss_mb, 1),
        "docker_threads": args.threads,
        "sdk_floor_p50_s": round(floor_s, 4),
        "load_avg_1m": round(psutil.getloadavg()[0], 2),
    }


def _manifest(image: str, pods: int) -> str:
    docs = []
    for i in range(pods):
        docs.append(
            "apiVersion: v1\nkind: Pod\n"
            f"metadata: {{name: rss-{i}, namespace: bench}}\n"
            "spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n"
            f"  - {{name: main, image: \"{image}\", imagePullPolicy: Never, command: [sleep, \"100000\"]}}\n"
        )
    return "---\n".join(docs)


def agentd_rss_mb(client: docker.DockerClient, image: str, pods: int) -> float:
    """RSS of a real agentd process (a one-node cluster: gossip, Raft, the cluster API and
    the runtime) once it runs `pods` static Pods from its manifest directory."""
    node = f"bench-agentd-{uuid.uuid4().hex[:8]}"
    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    server = f"127.0.0.1:{ports[0]}"
    with tempfile.TemporaryDirectory() as manifests, tempfile.TemporaryDirectory() as data_dir:
        with open(os.path.join(manifests, "pods.yaml"), "w") as f:
            f.write(_manifest(image, pods))
        agentd = subprocess.Popen(
            [sys.executable, "-m", "agent.daemon", "--name", node, "--data-dir", data_dir, "--bind", "127.0.0.1",
             "--api-port", str(ports[0]), "--gossip-port", str(ports[1]), "--bootstrap-expect", "1",
             "--voters", "1", "--manifest-dir", manifests, "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def running_pods() -> int:
            out = subprocess.run([sys.executable, "-m", "agent.cli.main", "--server", server, "get", "pods", "-A",
                                  "-o", "json"], capture_output=True, text=True, timeout=30)
            if out.returncode != 0:
                return -1
            return sum(1 for p in json.loads(out.stdout)["items"] if p["status"].get("phase") == "Running")

        try:
            deadline = time.monotonic() + 120
            while running_pods() < pods:
                if time.monotonic() > deadline or agentd.poll() is not None:
                    raise RuntimeError("agentd did not bring its Pods to Running")
                time.sleep(0.5)
            time.sleep(2.0)  # let probes, the status watchers and the gRPC server settle
            rss = psutil.Process(agentd.pid).memory_info().rss / (1024 * 1024)
        finally:
            agentd.terminate()
            agentd.wait(timeout=30)
            label = f"{LABEL_NODE}={node}"
            for c in client.containers.list(all=True, filters={"label": label}):
                c.remove(force=True)
            for v in client.volumes.list(filters={"label": label}):
                v.remove(force=True)
    return round(rss, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 Pods instead of 20 (CI)")
    parser.add_argument("--pods", type=int, default=None)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--image", default="busybox:local")
    parser.add_argument("--threads", type=int, default=RuntimeConfig().docker_threads,
                        help="threads allowed to block in the Docker SDK at once")
    args = parser.parse_args(argv)
    if args.pods is None:
        args.pods = 5 if args.quick else 20
    args.restarts = min(args.restarts, args.pods)
    result = trio.run(bench, args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
