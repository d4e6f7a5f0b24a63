"""Benchmark SWIM + Lifeguard with real member processes on loopback addresses.

For each cluster size N (5, 20, 50) it starts N `python -m agent.gossip` processes (LAN
profile) inside a private network namespace, each on its own 127.0.0.x address, and
prints ONE JSON line with:
  join_converge_s        last member ready -> every member has seen every other join
  detect_all_p50_s/p99_s SIGKILL of one member -> every survivor has declared it dead
                         (>= 10 trials; the victim is restarted under the same name after
                         each trial and must rejoin)
  meta_spread_p50_s/max_s  one member publishes new metadata (set_meta, ~400 B as the agent
                         announces) -> every other member has it; under 10 % UDP loss;
                         meta_spread_bound_s is the profile's stated bound (spread_bound_s)
  false_positives        live members declared dead during the soak: 10 % random UDP loss
                         (iptables statistic DROP) and one member SIGSTOPped 0.5 s every 10 s
  bytes_per_s_per_member gossip payload sent (UDP + TCP push-pull) during the lossy soak;
                         bytes_per_s_per_member_idle is the same without loss
Run as root (network namespaces, iptables).   --quick finishes within about a minute.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.gossip.config import LAN, spread_bound_s  # noqa: E402
from tests.integration.gossip_member import GossipMember, wait_until  # noqa: E402

PORT = 7946


def agent_meta(host: str, generation: int = 0) -> str:
    """Metadata as the agent announces it (gRPC address, role, capacity, labels, version): ~400 B."""
    return json.dumps({
        "grpc": f"{host}:7070", "role": "worker", "version": "0.1.0", "generation": generation,
        "capacity": {"cpu_milli": 16000, "memory_bytes": 68719476736, "pods": 110,
                     "ephemeral_storage_bytes": 107374182400},
        "labels": {"topology.kubernetes.io/zone": "eu-west-1a", "topology.kubernetes.io/region": "eu-west-1",
                   "node.kubernetes.io/instance-type": "m5.4xlarge", "kubernetes.io/arch": "amd64",
                   "kubernetes.io/os": "linux", "team": "payments", "tier": "backend"},
    }, separators=(",", ":"))


def start_member(ns: str, name: str, host: str, seeds: list[str]) -> GossipMember:
    """A LAN-profile member inside the bench's namespace, announcing agent-like metadata."""
    return GossipMember(name, host, PORT, seeds, profile="lan", meta=agent_meta(host), netns=ns)


def learned(name: str, meta: str):
    """Predicate: the event at which a member learned `name`'s metadata `meta`.

    Usually "updated"; "alive" or "joined" when the member held `name` as suspect or dead
    at that moment (every event carries the member's current metadata).
    """
    return lambda o: o.get("name") == name and o.get("meta") == meta and o.get("event") in ("updated", "alive", "joined")


def meta_spread(members: list[GossipMember], rng: random.Random, trials: int) -> list[float]:
    """Seconds from set_meta on one member until every other member has the new metadata."""
    times: list[float] = []
    for k in range(trials):
        who = members[rng.randrange(len(members))]
        meta = agent_meta(who.host, generation=k + 1)
        marks = {m.name: len(m.lines) for m in members}
        t_set = time.monotonic()
        who.send(cmd="set_meta", meta=meta)
        worst = 0.0
        for m in members:
            if m is not who:
                got = m.wait_for(learned(who.name, meta), 20, start=marks[m.name])
                worst = max(worst, got["mono"] - t_set if got else float("inf"))
        times.append(worst)
    return times


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def knows_all(m: GossipMember, names: set[str], since: int = 0) -> bool:
    with m.cond:
        seen = {o["name"] for o in m.lines[since:] if o.get("event") == "joined"}
    return names - {m.name} <= seen


def gossip_traffic(members: list[GossipMember]) -> tuple[int, int]:
    """(payload bytes sent over UDP and TCP, UDP packets sent) summed over the members."""
    total = packets = 0
    for m in members:
        st = m.stats()
        total += st.get("udp_out_bytes", 0) + st.get("tcp_out_bytes", 0)
        packets += st.get("udp_out_packets", 0)
    return total, packets


def run_size(n: int, trials: int, soak_s: float, idle_s: float, meta_trials: int) -> dict:
    ns = f"swimb-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", ns)
    members: list[GossipMember] = []
    rng = random.Random(n)
    try:
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        hosts = [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(n)]
        seeds = [f"{hosts[0]}:{PORT}", f"{hosts[1]}:{PORT}"]
        names = {f"m{i}" for i in range(n)}
        for i, host in enumerate(hosts):
            members.append(start_member(ns, f"m{i}", host, seeds if i else []))
        for m in members:
            if not m.wait_for(lambda o: o.get("event") == "ready", 60):
                raise RuntimeError(f"{m.name} did not start")
        t_ready = max(m.wait_for(lambda o: o.get("event") == "ready", 1)["mono"] for m in members)
        if not wait_until(lambda: all(knows_all(m, names) for m in members), 60):
            raise RuntimeError("cluster did not converge")
        t_conv = max(o["mono"] for m in members for o in m.lines if o.get("event") == "joined")
        join_converge_s = max(0.0, t_conv - t_ready)

        # Idle bandwidth (no loss), once the push-pull every member repeats within
        # join_sync_s of joining is over: that is join traffic.
        time.sleep(LAN.join_sync_s + 1.0)
        (b0, _), t0 = gossip_traffic(members), time.monotonic()
        time.sleep(idle_s)
        idle_bps = (gossip_traffic(members)[0] - b0) / (time.monotonic() - t0) / n

        # Detection trials: SIGKILL one member, wait for every survivor, restart it.
        detect: list[float] = []
        for _ in range(trials):
            vi = rng.randrange(2, n) if n > 2 else 1
            victim = members[vi]
            marks = {m.name: len(m.lines) for m in members}
            t_kill = time.monotonic()
            victim.stop()
            worst = 0.0
            for m in members:
                if m is victim:
                    continue
                got = m.wait_for(lambda o: o.get("event") == "dead" and o.get("name") == victim.name, 20,
                                 start=marks[m.name])
                worst = max(worst, (got["mono"] - t_kill) if got else float("inf"))
            detect.append(worst)
            back = members[vi] = start_member(ns, victim.name, victim.host, seeds)
            for m in members:
                if m is not back and not m.wait_for(
                        lambda o: o.get("event") == "joined" and o.get("name") == victim.name, 30,
                        start=marks[m.name]):
                    raise RuntimeError(f"{m.name} did not see {victim.name} rejoin")
            if not wait_until(lambda: knows_all(back, names), 30):
                raise RuntimeError(f"the restarted {victim.name} did not learn every member")

        # 10 % UDP loss from here on: metadata spread, then the soak.
        sh("ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-p", "udp", "-m", "statistic",
           "--mode", "random", "--probability", "0.1", "-j", "DROP")
        spread = meta_spread(members, rng, meta_trials)

        # Soak: 10 % UDP loss, one member stalled 0.5 s every 10 s.
        marks = {m.name: len(m.lines) for m in members}
        (b0, p0), t0 = gossip_traffic(members), time.monotonic()
        staller = members[1]
        end = t0 + soak_s
        while time.monotonic() < end:
            time.sleep(min(9.5, max(0.0, end - time.monotonic())))
            if time.monotonic() >= end:
                break
            staller.proc.send_signal(signal.SIGSTOP)
            time.sleep(0.5)
            staller.proc.send_signal(signal.SIGCONT)
        b1, p1 = gossip_traffic(members)
        soak_time = time.monotonic() - t0
        soak_bps = (b1 - b0) / soak_time / n
        soak_pps = (p1 - p0) / soak_time / n
        false_pos = []
        suspects = 0
        for m in members:
            for o in m.lines[marks[m.name]:]:
                if o.get("event") == "dead":
                    false_pos.append(f"{m.name}:{o['name']}@{o['mono'] - t0:.1f}s")
                suspects += o.get("event") == "suspect"
        sh("ip", "netns", "exec", ns, "iptables", "-F", "INPUT")
        return {
            "bench": "swim",
            "n": n,
            "join_converge_s": round(join_converge_s, 3),
            "detect_trials": len(detect),
            "detect_all_p50_s": round(pct(detect, 50), 3),
            "detect_all_p99_s": round(pct(detect, 99), 3),
            "detect_all_max_s": round(max(detect), 3),
            "detect_all_mean_s": round(statistics.fmean(detect), 3),
            "meta_bytes": len(agent_meta(hosts[-1], generation=meta_trials)),
            "meta_trials": len(spread),
            "meta_spread_p50_s": round(pct(spread, 50), 3),
            "meta_spread_max_s": round(max(spread), 3),
            "meta_spread_bound_s": round(spread_bound_s(LAN), 3),
            "soak_s": soak_s,
            "false_positives": len(false_pos),
            "false_positive_detail": false_pos[:10],
            "suspect_events_in_soak": suspects,
            "bytes_per_s_per_member": round(soak_bps, 1),
            "udp_packets_per_s_per_member": round(soak_pps, 1),  # add 28 B each for IP+UDP headers
            "bytes_per_s_per_member_idle": round(idle_bps, 1),
            "udp_loss": 0.1,
            "stalled_member": "0.5 s every 10 s",
        }
    finally:
        for m in members:
            m.stop()
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5,20,50")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--soak-s", type=float, default=120.0)
    ap.add_argument("--idle-s", type=float, default=10.0)
    ap.add_argument("--meta-trials", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="sizes 5,20; 3 trials; 10 s soak (about a minute)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.trials, args.soak_s, args.idle_s, args.meta_trials = "5,20", 3, 10.0, 2.0, 5
    for n in (int(x) for x in args.sizes.split(",")):
        print(json.dumps(run_size(n, args.trials, args.soak_s, args.idle_s, args.meta_trials)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
