"""Benchmark of Raft across 3 real node processes on loopback; prints one JSON line.

Figures:
- throughput_ops_s: commands committed and applied per second, proposed inside the
  leader's process (the Bench RPC) by `window` callers each passing `per_call` commands
  to one propose_many call, so many commands are in flight;
- latency_p50_ms / latency_p99_ms: one write at a time, propose -> applied, measured in
  the leader's process (client_put_p50_ms adds a client's gRPC round trip);
  latency_unpinned_*: the same with every node's threads let loose on every CPU;
- failover_p50_s / failover_p99_s: over N trials, SIGKILL of the leader -> the first
  write a client gets acknowledged by the survivors (the killed node is restarted and
  caught up between trials);
- spurious_elections: terms started during `--steady-s` of full load with no fault
  (leader_elected: leaderships won meanwhile; prevote_campaigns: follower timeouts that
  PreVote stopped before they disturbed anyone; ticks_late: loop stalls over a tick).

    .venv/bin/python bench/raft_bench.py            # full: 20 failover trials, 60 s steady load
    .venv/bin/python bench/raft_bench.py --quick    # under a minute

Each node runs pinned to one CPU (`--cpu`, round-robin over the CPUs), as several nodes
sharing one machine should (see agent/affinity.py); `--no-pin` leaves them unpinned.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import grpc

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from agent.rpc import raft_pb2 as pb  # noqa: E402
from tests.integration.raft_cluster import RaftCluster  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


def bench_rpc(cluster: RaftCluster, count: int, window: int, per_call: int, prefix: str,
              value_bytes: int = 16) -> pb.BenchReply:
    leader = cluster.wait_leader()
    reply = cluster.stub(leader).Bench(
        pb.BenchRequest(count=count, window=window, commands_per_call=per_call, value_bytes=value_bytes,
                        key_prefix=prefix),
        timeout=600,
    )
    if reply.status != pb.KV_OK:
        raise RuntimeError(f"bench refused: {reply}")
    return reply


def measure_throughput(cluster: RaftCluster, count: int, window: int, per_call: int) -> dict:
    bench_rpc(cluster, min(count, 20_000), window, per_call, "warm-")  # warm up caches and batches
    reply = bench_rpc(cluster, count, window, per_call, "tp-")
    return {"throughput_ops_s": round(reply.committed / reply.elapsed_s), "throughput_commands": reply.committed,
            "throughput_failed": reply.failed}


def measure_latency(cluster: RaftCluster, count: int) -> dict:
    reply = bench_rpc(cluster, count, 1, 1, "lat-")
    leader = cluster.wait_leader()
    stub = cluster.stub(leader)
    client = []
    for seq in range(1, min(count, 500) + 1):
        start = time.perf_counter()
        put = stub.Put(pb.PutRequest(client_id="bench-latency", seq=seq, key="lat", value="x"), timeout=5)
        client.append(time.perf_counter() - start)
        if put.status != pb.KV_OK:
            raise RuntimeError(f"put failed: {put}")
    return {
        "latency_p50_ms": round(reply.latency_p50_ms, 3),
        "latency_p99_ms": round(reply.latency_p99_ms, 3),
        "client_put_p50_ms": round(1000 * percentile(client, 0.5), 3),
        "client_put_p99_ms": round(1000 * percentile(client, 0.99), 3),
    }


def measure_latency_unpinned(cluster: RaftCluster, count: int) -> dict:
    """Latency again with every node free to use every CPU; the nodes are pinned back after."""
    pinned = {node_id: os.sched_getaffinity(node.process.pid) for node_id, node in cluster.nodes.items()}
    everywhere = set(os.sched_getaffinity(0))
    for node_id in cluster.nodes:
        cluster.set_cpus(node_id, everywhere)
    try:
        reply = bench_rpc(cluster, count, 1, 1, "lat-free-")
    finally:
        for node_id, cpus in pinned.items():
            cluster.set_cpus(node_id, cpus)
    return {
        "latency_unpinned_p50_ms": round(reply.latency_p50_ms, 3),
        "latency_unpinned_p99_ms": round(reply.latency_p99_ms, 3),
    }


def measure_steady(cluster: RaftCluster, seconds: float, window: int, per_call: int) -> dict:
    before = {n: cluster.status(n) for n in cluster.nodes}
    leader = cluster.wait_leader()
    committed = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        reply = bench_rpc(cluster, 100_000, window, per_call, "steady-")
        committed += reply.committed
    elapsed = time.monotonic() - start
    after = {n: cluster.status(n) for n in cluster.nodes}
    terms_started = max(a.term for a in after.values()) - max(b.term for b in before.values())
    def delta(name: str) -> int:
        return sum(after[n].counters.get(name, 0) - before[n].counters.get(name, 0) for n in cluster.nodes)

    return {
        "spurious_elections": terms_started,
        "leader_elected": delta("became_leader"),
        # Followers that timed out and ran a PreVote round the others refused (no new term).
        "prevote_campaigns": delta("campaigns_started"),
        "leader_kept": cluster.wait_leader() == leader,
        "steady_load_s": round(elapsed, 1),
        "steady_throughput_ops_s": round(committed / elapsed),
        "ticks_late": delta("ticks_late"),
    }


def first_acked_write(cluster: RaftCluster, survivors: list[str], client_id: str, seq: int,
                      deadline_s: float) -> float:
    """Time at which a write is first acknowledged by any survivor (following leader hints)."""
    target = survivors[0]
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            reply = cluster.stub(target).Put(
                pb.PutRequest(client_id=client_id, seq=seq, key="failover", value=str(seq), timeout_s=0.5),
                timeout=1.0,
            )
        except grpc.RpcError:
            reply = None
        if reply is not None and reply.status == pb.KV_OK:
            return time.monotonic()
        hint = reply.leader_id if reply is not None else ""
        if hint in survivors and hint != target:
            target = hint
        else:
            target = survivors[(survivors.index(target) + 1) % len(survivors)]
            time.sleep(0.002)
    raise RuntimeError("no write acknowledged after the leader was killed")


def measure_failover(cluster: RaftCluster, trials: int) -> dict:
    times = []
    for trial in range(trials):
        leader = cluster.wait_leader()
        cluster.put("bench-failover", 2 * trial + 1, "failover", "pre", start=leader)
        commit = cluster.status(leader).commit_index
        for node_id in cluster.nodes:
            cluster.wait_applied(node_id, commit)
        time.sleep(0.2)  # a few heartbeats: every follower's timer was just reset
        survivors = [n for n in cluster.nodes if n != leader]
        killed_at = time.monotonic()
        cluster.kill(leader)
        acked_at = first_acked_write(cluster, survivors, "bench-failover", 2 * trial + 2, 30)
        times.append(acked_at - killed_at)
        cluster.start(leader)
        cluster.wait_ready(leader)
    return {
        "failover_p50_s": round(percentile(times, 0.5), 3),
        "failover_p99_s": round(percentile(times, 0.99), 3),
        "failover_max_s": round(max(times), 3),
        "failover_trials": trials,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and shorter runs (< 1 minute)")
    parser.add_argument("--commands", type=int, default=None, help="commands of the throughput run")
    parser.add_argument("--window", type=int, default=64, help="concurrent proposers in the leader")
    parser.add_argument("--per-call", type=int, default=256, help="commands per propose_many call")
    parser.add_argument("--latency-writes", type=int, default=None)
    parser.add_argument("--steady-s", type=float, default=None)
    parser.add_argument("--failover-trials", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    parser.add_argument("--no-pin", action="store_true", help="do not pin each node to one CPU")
    args = parser.parse_args(argv)
    quick = args.quick
    commands = args.commands or (200_000 if quick else 1_000_000)
    latency_writes = args.latency_writes or (300 if quick else 2000)
    steady_s = args.steady_s if args.steady_s is not None else (8.0 if quick else 60.0)
    trials = args.failover_trials or (5 if quick else 20)

    root = Path(tempfile.mkdtemp(prefix="raft-bench-"))
    result: dict = {"bench": "raft", "mode": "quick" if quick else "full", "nodes": 3, "cpus": os.cpu_count()}
    started = time.monotonic()
    result["pinned"] = not args.no_pin
    with RaftCluster(root, 3, pin_cpus=not args.no_pin) as cluster:
        cluster.start()
        cluster.wait_ready()
        cluster.wait_leader()
        result.update(measure_throughput(cluster, commands, args.window, args.per_call))
        result.update(measure_latency(cluster, latency_writes))
        if not args.no_pin:
            result.update(measure_latency_unpinned(cluster, latency_writes))
        result.update(measure_steady(cluster, steady_s, args.window, args.per_call))
        result.update(measure_failover(cluster, trials))
    result["window"] = args.window
    result["per_call"] = args.per_call
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    result["wall_s"] = round(time.monotonic() - started, 1)
    if args.keep:
        result["data_dir"] = str(root)
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
