"""The control plane at size on one machine, with hollow nodes: one JSON line of figures.

Hollow nodes are real agentd processes started with `--hollow` (agent/runtime/hollow.py):
gossip, Raft, the API, the controllers, the runtime's workers and status reports all run;
only the container engine is pretend, so a Pod costs no container. They need no network
namespace nor dockerd each: every agentd binds 127.0.0.1 with ports of its own (what is
measured is the control plane, not the data path), so the bench needs no root. Three
servers (`--bootstrap-expect 3 --standbys 0`), the rest `--no-server` workers, each
advertising 4 CPUs and 8Gi.

  join_all_s      all agentd processes started -> every node Ready in the state
  pods_running_s  3,000 Pods in 30 Deployments (exec readiness probe) applied -> all
                  reported Running
  heal_s          10 hollow workers SIGKILLed -> the Deployments have all their Pods
                  Running again on the survivors
  leader_cpu_pct  the leader's CPU use over 10 s at steady state (100 = one core)
  fleet_cpu_pct   every agent's CPU use together over the same 10 s (what the machine
                  must give the fleet at rest; `cores` says what it has)
  server_rss_mb   the largest RSS of the three servers at steady state
Targets at 100 nodes: join_all_s <= 15, pods_running_s <= 30, heal_s <= 8, server_rss_mb <= 150.
`--quick`: 10 nodes, 300 Pods, 2 killed.
A timed-out phase prints the figures reached and exits 1.

    .venv/bin/python bench/scale_bench.py [--nodes 100] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.client import ClusterClient, ClusterView  # noqa: E402
from cluster.log_digest import digest  # noqa: E402

SERVERS = 3
BASE_PORT = 23000  # node i: API BASE_PORT + 2i, gossip BASE_PORT + 2i + 1


def progress(message: str) -> None:
    print(f"scale_bench: {message}", file=sys.stderr, flush=True)


def deployment(name: str, replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "bench": "scale"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": "busybox:local", "command": ["sleep", "100000"],
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 2}}]}},
        },
    }


class HollowFleet:
    """The agentd processes this bench started (and only those)."""

    def __init__(self, nodes: int, workdir: Path, log_level: str = "warning") -> None:
        self.nodes = nodes
        self.workdir = workdir
        self.log_level = log_level
        # This checkout's agentd (not whichever one the virtualenv's script points at).
        self.env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.procs: dict[str, subprocess.Popen] = {}

    def name(self, i: int) -> str:
        return f"h{i:03d}"

    def api(self, i: int) -> str:
        return f"127.0.0.1:{BASE_PORT + 2 * i}"

    def start_all(self) -> None:
        seeds = [f"127.0.0.1:{BASE_PORT + 2 * s + 1}" for s in range(SERVERS)]
        for i in range(self.nodes):
            name = self.name(i)
            argv = [sys.executable, "-m", "agent.daemon", "--name", name, "--data-dir", str(self.workdir / name), "--bind", "127.0.0.1",
                    "--api-port", str(BASE_PORT + 2 * i), "--gossip-port", str(BASE_PORT + 2 * i + 1),
                    "--hollow", "--capacity-cpu", "4", "--capacity-memory", "8Gi", "--standbys", "0",
                    "--log-level", self.log_level]
            for s, seed in enumerate(seeds):
                if s != i:
                    argv += ["--join", seed]
            argv += ["--bootstrap-expect", str(SERVERS)] if i < SERVERS else ["--no-server"]
            log = open(self.workdir / f"{name}.log", "wb")
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True, env=self.env, cwd=ROOT)
            log.close()

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


async def wait_listening(address: str, timeout_s: float) -> None:
    host, port = address.rsplit(":", 1)
    with trio.fail_after(timeout_s):
        while True:
            try:
                stream = await trio.open_tcp_stream(host, int(port))
                await stream.aclose()
                return
            except OSError:
                await trio.sleep(0.2)


async def bench(fleet: HollowFleet, args: argparse.Namespace, figures: dict) -> None:
    started = time.monotonic()
    fleet.start_all()
    await wait_listening(fleet.api(0), 60)
    client = ClusterClient([fleet.api(s) for s in range(SERVERS)], timeout_s=20)
    view = ClusterView(client)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(120):
            while True:  # the first list needs a leader
                try:
                    await nursery.start(view.run)
                    break
                except Exception:  # noqa: BLE001 - no leader yet
                    await trio.sleep(0.5)
        figures["timed_out"] = "join"
        await view.wait(lambda v: len(v.ready_nodes()) >= fleet.nodes, timeout_s=args.timeout_s)
        figures["join_all_s"] = round(time.monotonic() - started, 2)
        progress(f"{fleet.nodes} nodes Ready after {figures['join_all_s']}s")

        per = args.pods // args.deployments
        docs = [deployment(f"scale-{d}", per) for d in range(args.deployments)]
        total = per * args.deployments
        started = time.monotonic()
        await client.apply(docs)

        def running_count(v: ClusterView, exclude: frozenset[str] = frozenset()) -> int:
            return sum(1 for p in v.pods() if (p.get("status") or {}).get("phase") == "Running"
                       and (p.get("metadata") or {}).get("labels", {}).get("bench") == "scale"
                       and not (p.get("metadata") or {}).get("deletionTimestamp")
                       and p["spec"].get("nodeName") not in exclude)

        figures["timed_out"] = "pods_running"
        try:
            await view.wait(lambda v: running_count(v) >= total, timeout_s=args.timeout_s)
        except trio.TooSlowError:
            figures["pods_running_at_timeout"] = running_count(view)
            figures["pods_bound_at_timeout"] = sum(1 for p in view.pods() if p["spec"].get("nodeName"))
            raise
        figures["pods"] = total
        figures["pods_running_s"] = round(time.monotonic() - started, 2)
        progress(f"{total} Pods Running after {figures['pods_running_s']}s")

        await trio.sleep(args.settle_s)
        leader = (await client.status()).leader
        leader_proc = fleet.procs[leader]
        ticks = os.sysconf("SC_CLK_TCK")
        t0, c0 = time.monotonic(), cpu_ticks(leader_proc.pid)
        fleet0 = sum(cpu_ticks(p.pid) for p in fleet.procs.values())
        await trio.sleep(args.cpu_window_s)
        window = time.monotonic() - t0
        figures["leader_cpu_pct"] = round(100 * (cpu_ticks(leader_proc.pid) - c0) / ticks / window, 1)
        fleet_ticks = sum(cpu_ticks(p.pid) for p in fleet.procs.values()) - fleet0
        figures["fleet_cpu_pct"] = round(100 * fleet_ticks / ticks / window, 1)
        figures["cores"] = os.cpu_count()
        figures["server_rss_mb"] = round(max(rss_mb(fleet.procs[fleet.name(s)].pid) for s in range(SERVERS)), 1)
        figures["leader"] = leader

        victims = frozenset(fleet.name(i) for i in range(fleet.nodes - args.kill, fleet.nodes))
        moved = sum(1 for uid, node in view.running_on().items() if node in victims)
        started = time.monotonic()
        for victim in sorted(victims):
            fleet.kill(victim)
        figures["timed_out"] = "heal"
        await view.wait(lambda v: running_count(v, victims) >= total, timeout_s=args.timeout_s)
        del figures["timed_out"]
        figures["killed"] = len(victims)
        figures["pods_on_killed"] = moved
        figures["heal_s"] = round(time.monotonic() - started, 2)
        progress(f"{len(victims)} nodes killed with {moved} Pods: all Running elsewhere after {figures['heal_s']}s")
        nursery.cancel_scope.cancel()
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 nodes, 300 Pods, 2 killed")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=3000)
    parser.add_argument("--deployments", type=int, default=30)
    parser.add_argument("--kill", type=int, default=10)
    parser.add_argument("--settle-s", type=float, default=10.0, help="steady state before CPU and RSS")
    parser.add_argument("--cpu-window-s", type=float, default=10.0)
    parser.add_argument("--timeout-s", type=float, default=300.0, help="for each phase")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--log-level", default="warning", help="the hollow agents' (info to see placements)")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.pods, args.deployments, args.kill = 10, 300, 10, 2
        args.settle_s, args.cpu_window_s, args.timeout_s = 3.0, 3.0, 60.0
    workdir = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    fleet = HollowFleet(args.nodes, workdir, args.log_level)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    figures: dict = {"bench": "scale", "nodes": args.nodes, "servers": SERVERS}
    code = 0
    try:
        trio.run(bench, fleet, args, figures)
    except* trio.TooSlowError:
        progress(f"timed out after {args.timeout_s:.0f}s in phase {figures.get('timed_out')}; the servers' "
                 f"telling log lines:\n{digest(workdir, pattern='h00[0-2].log')}")
        code = 1  # the figures reached so far are still printed
    finally:
        fleet.stop_all()
        if args.keep_logs:
            progress(f"logs in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    figures["load_avg_1m_before"] = round(load_before, 2)
    figures["quick"] = args.quick
    figures["elapsed_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))
    return code


if __name__ == "__main__":
    sys.exit(main())
