"""Every benchmark in bench/ runs on this machine in a short form and prints its JSON line.

The figures are the benchmarks' business (they are not timed tests): here each must run
to the end, print exactly one JSON line, and carry every figure its docstring promises
as a finite, positive number (a duration, a rate or a size), so a benchmark cannot rot
between the runs that produce the figures of a closing note. Counts of things that must
not happen in a short run without faults (false positives, spurious elections) must be
present, integers, and zero; a duration with a stated bound must be within it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from agent.gossip.config import LAN, detection_bound_s

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)


def run_bench(script: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / script), *args],
        capture_output=True, text=True, timeout=240, cwd=REPO_ROOT,
    )
    assert out.returncode == 0, f"{script} failed:\n{out.stderr[-8000:]}"
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"{script} printed {len(lines)} lines:\n{out.stdout[-3000:]}"
    return json.loads(lines[0])


def assert_figures(result: dict, *names: str, positive: bool = True) -> None:
    for name in names:
        value = result.get(name)
        assert isinstance(value, int | float) and not isinstance(value, bool), (name, value)
        assert math.isfinite(value) and (value > 0 if positive else value >= 0), (name, value)


def assert_none_happened(result: dict, *names: str) -> None:
    """Counts of events a short run without faults must not see: present, integers, zero."""
    for name in names:
        value = result.get(name)
        assert type(value) is int and value == 0, (name, value)


def test_raft_bench():
    result = run_bench(
        "raft_bench.py", "--commands", "20000", "--latency-writes", "100", "--steady-s", "1",
        "--failover-trials", "2",
    )
    assert result["bench"] == "raft" and result["pinned"] is True
    assert_figures(
        result, "throughput_ops_s", "latency_p50_ms", "latency_p99_ms", "latency_unpinned_p50_ms",
        "failover_p50_s", "failover_p99_s",
    )
    assert result["throughput_commands"] == 20000 and result["throughput_failed"] == 0
    assert result["failover_trials"] == 2
    # One second of steady load without a fault: the leader stays, no term starts.
    assert_none_happened(result, "spurious_elections")
    assert result["leader_kept"] is True


def test_raft_storage_bench():
    result = run_bench("raft_storage_bench.py", "--seconds-per-case", "0.1")
    assert_figures(result, "fdatasync_p50_ms", "recover_200k_entries_s")
    for case in ("segments_batch_1", "sqlite_batch_1", "segments_batch_1024", "sqlite_batch_1024"):
        assert_figures(result[case], "appends_per_s", "save_p50_ms", "save_p99_ms")


def test_swim_bench():
    result = run_bench("swim_bench.py", "--sizes", "5", "--trials", "1", "--soak-s", "3", "--idle-s", "2")
    assert result["n"] == 5 and result["detect_trials"] == 1
    assert_figures(result, "detect_all_p50_s", "detect_all_p99_s", "bytes_per_s_per_member",
                   "bytes_per_s_per_member_idle", "meta_spread_max_s")
    # The last member's join can be seen before it prints that it is ready: 0 is a valid figure.
    assert_figures(result, "join_converge_s", positive=False)
    # The LAN profile's targets: no live member declared dead at 10 % loss, every crash
    # detected within its stated bound, new metadata everywhere within the spread bound.
    assert_none_happened(result, "false_positives")
    assert result["false_positive_detail"] == []
    assert result["detect_all_max_s"] <= detection_bound_s(LAN, 5), result
    assert result["meta_spread_max_s"] <= result["meta_spread_bound_s"], result


def test_grpc_bridge_bench():
    result = run_bench("grpc_bridge_bench.py", "--calls", "200", "--stream-messages", "1000")
    assert_figures(result, "unary_p50_ms", "unary_p99_ms", "unary_calls_per_s_1_caller", "stream_msgs_per_s")


def test_pod_start_bench(docker_client):
    result = run_bench("pod_start.py", "--quick", "--pods", "3", "--restarts", "2")
    assert result["pods"] == 3
    assert_figures(
        result, "start_p50_s", "start_p99_s", "burst_all_running_s", "restart_p50_s", "agent_rss_mb",
        "runtime_rss_mb",
    )


def test_scheduler_core_bench():
    result = run_bench("scheduler_core_bench.py", "--quick")
    assert result["placed"] + result["unplaced"] == result["pods"]
    assert_figures(result, "placements_per_s", "placements_per_s_wall", "placements_per_s_interleaved", "pass_cpu_s")
    assert_none_happened(result, "overcommitted_nodes")
    assert result["spread_max_minus_min"] <= 1  # 1,050 equal Pods on 100 equal nodes: as even as it gets


@pytest.mark.cluster
def test_heal_bench():
    """A 5-node namespace cluster (3 servers): kill machines, measure how fast their Pods move."""
    result = run_bench("heal_bench.py", "--quick", "--name", "bench-heal")
    assert result["nodes"] == 5 and result["servers"] == 3 and result["quick"] is True
    assert result["heal_trials"] >= 2 and result["leader_trials"] >= 1
    assert result["pods_moved_per_trial"] > 0  # a trial that moved nothing measures nothing
    assert result["rss_pods_in_state"] >= 300
    assert_figures(
        result, "apply_to_running_p50_s", "heal_p50_s", "heal_p99_s", "leader_heal_p50_s", "detect_p50_s",
        "server_rss_mb",
    )


def test_scheduler_bench():
    """Through plan_placements and the state machine's apply, as the leader does."""
    result = run_bench("scheduler_bench.py", "--quick")
    assert result["placed"] + result["unplaced"] == result["pods"] and result["unplaced"] == 0
    assert_figures(result, "placements_per_s", "placements_per_s_wall")
    assert_none_happened(result, "overcommitted_nodes")
    assert result["spread_max_minus_min"] <= 1  # equal Pods on equal nodes: as even as it gets


def test_scale_bench():
    """10 hollow agentd processes (agentd --hollow) on loopback: join, 300 Pods, 2 nodes killed."""
    result = run_bench("scale_bench.py", "--quick")
    assert result["nodes"] == 10 and result["servers"] == 3 and result["pods"] == 300 and result["killed"] == 2
    assert result["pods_on_killed"] > 0  # a kill that moved nothing measures nothing
    assert_figures(result, "join_all_s", "pods_running_s", "heal_s", "leader_cpu_pct", "server_rss_mb")


@pytest.mark.cluster
def test_rollout_bench():
    """A 7-node namespace cluster: a rolling update of 6 busybox httpd Pods under a readiness
    probe, with HTTP traffic through their hostPorts, then `agentctl rollout undo`, and not
    one request failed."""
    result = run_bench("rollout_bench.py", "--quick", "--host-ports", "--name", "bench-rollout")
    assert result["replicas"] == 6 and result["nodes"] == 7 and result["through"] == "hostPort"
    assert result["requests"] > 0
    assert_figures(result, "rollout_s", "rollback_s")
    assert_none_happened(result, "failed_requests")
