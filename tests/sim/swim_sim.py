"""Deterministic discrete-event simulator for the SWIM + Lifeguard core.

Owns: a virtual clock, a seeded network (loss, random latency so packets reorder, 1 %
duplicates, partitions that heal), member crashes and restarts, slow members that
answer late and members that stall (the SIGSTOP case), and the properties checked
over a run. Every packet goes through the real codec, so sizes and wire rules are
exercised too.

Replay a seed:  .venv/bin/python tests/sim/swim_sim.py --seed 123 [-v]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.gossip import codec
from agent.gossip.config import LAN, GossipConfig, detection_bound_s, spread_bound_s
from agent.gossip.core import GossipCore
from agent.gossip.events import EventKind
from agent.gossip.messages import MemberState

_INF = float("inf")


@dataclass
class SimNode:
    name: str
    addr: tuple[str, int]
    core: GossipCore | None = None
    up: bool = False
    life: int = 0  # bumps on every restart, so stale deliveries to an old life are dropped
    wake_at: float = _INF
    slow_delay_s: float = 0.0  # every packet it receives is handled this much later
    paused_until: float = 0.0


@dataclass
class Observation:
    at_s: float
    observer: str
    kind: EventKind
    subject: str
    incarnation: int
    meta_version: int


@dataclass
class Scenario:
    seed: int
    n: int
    loss: float
    kind: str  # "crash" | "stall" | "partition" | "meta" | "restart"
    duration_s: float = 0.0
    detail: dict = field(default_factory=dict)


class Simulation:
    def __init__(self, seed: int, n: int, config: GossipConfig, loss: float = 0.0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config
        self.loss = loss
        self.duplicate = 0.01  # share of packets delivered twice
        self.now = 0.0
        self._queue: list = []
        self._counter = itertools.count()
        self.codec = codec.Codec(config.max_packet_bytes, config.max_meta_bytes, config.max_stream_bytes)
        self.nodes = [SimNode(f"n{i}", (f"10.0.{i // 250}.{i % 250 + 1}", 7946)) for i in range(n)]
        self.by_addr = {node.addr: node for node in self.nodes}
        self.groups: dict[str, int] | None = None  # partition: name -> side
        self.observations: list[Observation] = []
        self.packets = 0
        self.bytes = 0
        self.max_packet = 0
        self.out_of_range = 0  # numbers the codec refused in what members sent (honest members send none)

    # ---------------------------------------------------------------- event loop
    def at(self, t: float, fn, *args) -> None:
        heapq.heappush(self._queue, (t, next(self._counter), fn, args))

    def run_until(self, t_end: float) -> None:
        while self._queue and self._queue[0][0] <= t_end:
            t, _, fn, args = heapq.heappop(self._queue)
            self.now = t
            fn(*args)
        self.now = t_end

    # ---------------------------------------------------------------- nodes
    def start(self, node: SimNode, seeds: list[tuple[str, int]], meta: bytes = b"") -> None:
        node.life += 1
        node.up = True
        node.wake_at = _INF
        node.core = GossipCore(
            self.config, node.name, node.addr, random.Random(self.rng.random()), now_s=self.now, meta=meta
        )
        node.core.join(self.now, seeds)
        self._after(node)

    def crash(self, node: SimNode) -> None:
        node.up = False
        node.core = None
        node.life += 1

    def stall(self, node: SimNode, seconds: float) -> None:
        node.paused_until = max(node.paused_until, self.now + seconds)

    def reachable(self, a: SimNode, b: SimNode) -> bool:
        return self.groups is None or self.groups.get(a.name, -1) == self.groups.get(b.name, -2)

    def _deferred(self, node: SimNode, fn, *args) -> bool:
        """A stalled node handles nothing until it resumes (like a SIGSTOPped process)."""
        if node.paused_until > self.now:
            self.at(node.paused_until, fn, *args)
            return True
        return False

    def _wake(self, node: SimNode, life: int) -> None:
        if not node.up or node.life != life:
            return
        if self._deferred(node, self._wake, node, life):
            return
        node.wake_at = _INF
        node.core.tick(self.now)
        self._after(node)

    def _after(self, node: SimNode) -> None:
        core = node.core
        out = core.take_output()
        for pkt in out.packets:
            data = codec.encode_packet(pkt.messages, self.config.max_packet_bytes - 29)
            self.packets += 1
            self.bytes += len(data)
            self.max_packet = max(self.max_packet, len(data))
            dst = self.by_addr.get(pkt.addr)
            if dst is None or not self.reachable(node, dst) or self.rng.random() < self.loss:
                continue
            delay = self.rng.uniform(0.0002, 0.002) + dst.slow_delay_s  # random: packets reorder
            self.at(self.now + delay, self._deliver, dst, dst.life, node.addr, data)
            if self.rng.random() < self.duplicate:
                self.at(self.now + delay + self.rng.uniform(0.0, 0.01), self._deliver, dst, dst.life, node.addr, data)
        for req in out.streams:
            self._stream(node, node.life, req)
        for ev in out.events:
            self.observations.append(
                Observation(self.now, node.name, ev.kind, ev.name, ev.incarnation, ev.meta_version)
            )
        d = core.next_deadline_s()
        if d < node.wake_at:
            node.wake_at = d
            self.at(max(d, self.now), self._wake, node, node.life)

    def _deliver(self, node: SimNode, life: int, from_addr, data: bytes) -> None:
        if not node.up or node.life != life:
            return
        if self._deferred(node, self._deliver, node, life, from_addr, data):
            return
        decoded = self.codec.decode_packet(data)
        self.out_of_range += decoded.out_of_range
        node.core.handle_packet(self.now, from_addr, decoded.messages)
        self._after(node)

    # ---------------------------------------------------------------- push-pull over "TCP"
    def _stream(self, src: SimNode, life: int, req) -> None:
        dst = self.by_addr.get(req.addr)
        payload = codec.encode_stream(req.state)
        self.bytes += len(payload)
        ok = dst is not None and dst.up and self.reachable(src, dst)
        if not ok:
            self.at(self.now + self.config.stream_timeout_s, self._stream_done, src, life, req.request_id, None)
            return
        self.at(self.now + self.rng.uniform(0.001, 0.004), self._stream_serve, src, life, dst, dst.life, req, payload)

    def _stream_serve(self, src, src_life, dst, dst_life, req, payload) -> None:
        if not dst.up or dst.life != dst_life or dst.paused_until > self.now + self.config.stream_timeout_s:
            self.at(self.now + self.config.stream_timeout_s, self._stream_done, src, src_life, req.request_id, None)
            return
        if self._deferred(dst, self._stream_serve, src, src_life, dst, dst_life, req, payload):
            return
        reply = dst.core.handle_push_pull(self.now, self._decode_stream(payload))
        self._after(dst)
        reply_bytes = codec.encode_stream(reply)
        self.bytes += len(reply_bytes)
        self.at(self.now + self.rng.uniform(0.001, 0.004), self._stream_done, src, src_life, req.request_id,
                self._decode_stream(reply_bytes))

    def _decode_stream(self, payload: bytes):
        decoded = self.codec.decode_stream(payload)
        self.out_of_range += decoded.out_of_range
        return decoded.state

    def _stream_done(self, src, life, request_id, reply) -> None:
        if not src.up or src.life != life:
            return
        if self._deferred(src, self._stream_done, src, life, request_id, reply):
            return
        src.core.push_pull_done(self.now, request_id, reply)
        self._after(src)

    # ---------------------------------------------------------------- views
    def live(self) -> list[SimNode]:
        return [n for n in self.nodes if n.up]

    def view(self, node: SimNode) -> dict[str, MemberState]:
        return {r.name: r.state for r in node.core.members()}


# ==================================================================== scenarios


def make_scenario(seed: int) -> Scenario:
    rng = random.Random(seed * 7919 + 17)
    big = seed % 125 == 3  # 4 of every 500 seeds run 200 members
    n = 200 if big else rng.choice([3, 4, 5, 5, 6, 8, 10, 12, 16, 24])
    kind = rng.choice(["crash", "crash", "stall", "stall", "partition", "meta", "restart"])
    if big:
        kind = ["crash", "stall", "meta", "restart"][(seed // 125) % 4]
    loss = rng.choice([0.0, 0.01, 0.05, 0.1, 0.1])
    if kind == "crash" and rng.random() < 0.2:
        loss = rng.choice([0.2, 0.3])  # heavy loss: only detection is checked (false positives allowed)
    if kind == "partition":
        n = max(n, 4)
        n = min(n, 12)
    return Scenario(seed, n, loss, kind)


META_UPDATES = 8
"""Metadata changes in one "meta" scenario, each checked against spread_bound_s."""


@dataclass
class Result:
    scenario: Scenario
    failures: list[str]
    detect_times_s: list[float]
    detect_all_s: list[float]
    packets: int
    bytes_per_s_per_member: float
    max_packet: int

    @property
    def ok(self) -> bool:
        return not self.failures


def replay_hint(seed: int) -> str:
    return f"replay: .venv/bin/python tests/sim/swim_sim.py --seed {seed} -v"


def run_scenario(seed: int, config: GossipConfig = LAN, verbose: bool = False) -> Result:
    sc = make_scenario(seed)
    sim = Simulation(seed, sc.n, config, loss=sc.loss)
    rng = sim.rng
    failures: list[str] = []
    detect: list[float] = []
    detect_all: list[float] = []  # per crash: until the last survivor declared it dead
    seed_addr = sim.nodes[0].addr
    # Everyone joins through n0 (and one other seed that may not be up yet, to exercise retries).
    seeds = [seed_addr, sim.nodes[-1].addr]
    sim.start(sim.nodes[0], [])
    for node in sim.nodes[1:]:
        sim.at(rng.uniform(0.0, 1.0), sim.start, node, seeds, b"v0")
    join_done_s = 4.0 + sc.n / 40.0
    sim.run_until(join_done_s)
    if sc.loss <= 0.1:
        for node in sim.live():
            view = sim.view(node)
            missing = [o.name for o in sim.nodes if view.get(o.name) not in (MemberState.ALIVE, MemberState.SUSPECT) and o.up]
            if missing:
                failures.append(f"join: {node.name} does not see {missing[:5]} alive at t={sim.now:.1f}")
    t0 = sim.now
    bound = detection_bound_s(config, sc.n)
    fp_check = sc.kind in ("crash", "stall", "meta", "restart") and sc.loss <= 0.1
    crashed: dict[str, float] = {}

    if sc.kind == "crash":
        victims = rng.sample(sim.nodes[1:], min(len(sim.nodes) - 2, rng.choice([1, 1, 2])))
        for v in victims:
            sim.crash(v)
            crashed[v.name] = t0
        if sc.loss > 0.1:
            bound *= 2  # heavy loss: awareness stretches every period
        end = t0 + bound + 0.5
        sim.run_until(end)
        for v in victims:
            per_victim: list[float] = []
            for node in sim.live():
                dead_at = [o.at_s for o in sim.observations
                           if o.observer == node.name and o.subject == v.name and o.kind is EventKind.DEAD
                           and o.at_s >= t0]
                state = sim.view(node).get(v.name)
                if state in (MemberState.ALIVE, MemberState.SUSPECT) or (not dead_at and state is not None):
                    failures.append(f"crash: {node.name} has not declared {v.name} dead {bound:.1f}s after the crash")
                elif dead_at:
                    detect.append(dead_at[0] - t0)
                    per_victim.append(dead_at[0] - t0)
            if per_victim and len(per_victim) == len(sim.live()):
                detect_all.append(max(per_victim))
    elif sc.kind == "stall":
        slow = rng.sample(sim.nodes, max(1, sc.n // 5))
        for s in slow:
            s.slow_delay_s = rng.uniform(0.005, 0.03)  # answers late, but within the probe timeout
        if rng.random() < 0.5:
            # One member answers later than the probe timeout (a starved host): it gets
            # suspected again and again and must refute every time, never be declared dead.
            rng.choice(sim.nodes).slow_delay_s = rng.uniform(0.08, 0.15)
        staller = rng.choice(sim.nodes)
        for k in range(3):
            sim.at(t0 + 1.0 + 10.0 * k, sim.stall, staller, 0.5)
        sim.run_until(t0 + 25.0)
    elif sc.kind == "partition":
        side = {node.name: (0 if i < sc.n // 2 else 1) for i, node in enumerate(sim.nodes)}
        sim.groups = side
        split_s = rng.uniform(6.0, 12.0)
        sim.run_until(t0 + split_s)
        sim.groups = None
        heal_bound = 2 * 1.2 * config.reconnect_interval_s + config.suspicion_max_s + 20 * config.probe_interval_s
        sim.run_until(t0 + split_s + heal_bound)
        names = {n.name for n in sim.live()}
        for node in sim.live():
            view = sim.view(node)
            seen = {k for k, st in view.items() if st in (MemberState.ALIVE, MemberState.SUSPECT)}
            if seen != names:
                failures.append(
                    f"partition: {heal_bound:.1f}s after heal {node.name} sees {sorted(seen ^ names)[:6]} wrongly"
                )
    elif sc.kind == "meta":
        # Metadata changes one after another (of up to ~400 B, as the agent's), each of which
        # must reach every member within the stated spread bound.
        meta_bound = spread_bound_s(config)
        for k in range(META_UPDATES):
            who = rng.choice(sim.nodes)
            meta = b"v%d:" % (k + 1) + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
            who.core.set_meta(sim.now, meta)
            sim._after(who)
            want = who.core.member(who.name).meta_version
            t_set = sim.now
            sim.run_until(t_set + meta_bound)
            late = [n.name for n in sim.live() if (rec := n.core.member(who.name)) is None or rec.meta_version < want]
            if late:
                failures.append(f"meta: {late[:5]} lack {who.name}'s meta v{want} {meta_bound:.1f}s after "
                                f"the change at t={t_set:.2f}")
                break
    elif sc.kind == "restart":
        victim = rng.choice(sim.nodes[1:])
        old_inc = victim.core.incarnation
        sim.crash(victim)
        down_s = rng.choice([0.3, 6.0 + bound])
        sim.run_until(t0 + down_s)
        sim.start(victim, seeds, b"v-restarted")
        sim.run_until(t0 + down_s + 6.0)
        for node in sim.live():
            rec = node.core.member(victim.name)
            # Suspect is allowed: under loss a fresh false suspicion may be in flight at the check.
            if (rec is None or rec.state not in (MemberState.ALIVE, MemberState.SUSPECT)
                    or rec.meta != b"v-restarted"
                    or (rec.incarnation <= old_inc and node is not victim)):
                failures.append(f"restart: {node.name} sees {victim.name} as {rec and rec.state.name} after its restart")
        crashed[victim.name] = t0

    # Invariant: what one member believes about another only moves to newer incarnations
    # (SWIM §4.2: only the member itself raises it; nobody ever goes back).
    last_inc: dict[tuple[str, str], int] = {}
    for o in sim.observations:
        key = (o.observer, o.subject)
        if o.incarnation < last_inc.get(key, -1):
            failures.append(f"invariant: {o.observer} saw {o.subject}'s incarnation go back to {o.incarnation}")
            break
        last_inc[key] = o.incarnation
    if sim.out_of_range:
        failures.append(f"range: members sent {sim.out_of_range} numbers the codec refuses")
    if fp_check:
        for o in sim.observations:
            if o.kind is EventKind.DEAD and o.subject not in crashed:
                failures.append(f"false positive: {o.observer} declared live {o.subject} dead at t={o.at_s:.2f}")
                break
    elapsed = max(sim.now, 1e-9)
    bpm = sim.bytes / elapsed / sc.n
    if verbose:
        print(f"seed={seed} n={sc.n} kind={sc.kind} loss={sc.loss} t={sim.now:.1f}s packets={sim.packets} "
              f"bytes/s/member={bpm:.0f} max_packet={sim.max_packet}")
        if detect:
            print(f"  detect p50={_pct(detect, 50):.2f}s max={max(detect):.2f}s")
        for f_ in failures:
            print("  FAIL", f_)
    return Result(sc, failures, detect, detect_all, sim.packets, bpm, sim.max_packet)


def meta_spread_times(seed: int, n: int = 20, loss: float = 0.1, updates: int = 5,
                      config: GossipConfig = LAN) -> list[float]:
    """Seconds until every member has each of `updates` metadata changes (~400 B, as the
    agent's) made one after another by random members of a settled cluster under loss;
    float('inf') for one that is still missing somewhere 30 s later."""
    sim = Simulation(seed, n, config, loss=loss)
    sim.start(sim.nodes[0], [])
    for node in sim.nodes[1:]:
        sim.at(sim.rng.uniform(0.0, 1.0), sim.start, node, [sim.nodes[0].addr], b"x" * 400)
    sim.run_until(8.0)
    times: list[float] = []
    for k in range(updates):
        who = sim.rng.choice(sim.nodes)
        meta = b"%d" % k + b"y" * 400
        t_set = sim.now
        who.core.set_meta(t_set, meta)
        sim._after(who)
        spread = _INF
        while sim.now < t_set + 30.0:
            sim.run_until(sim.now + 0.01)
            if all(node.core.member(who.name).meta == meta for node in sim.nodes):
                spread = sim.now - t_set
                break
        times.append(spread)
        sim.run_until(sim.now + 3.0)
    return times


def measure_steady_state(n: int, loss: float, seconds: float, seed: int = 1,
                         config: GossipConfig = LAN) -> dict[str, float]:
    """Bandwidth and false suspicions of a stable cluster under random loss (for tuning and reports)."""
    sim = Simulation(seed, n, config, loss=loss)
    sim.start(sim.nodes[0], [])
    for node in sim.nodes[1:]:
        sim.at(sim.rng.uniform(0.0, 1.0), sim.start, node, [sim.nodes[0].addr])
    sim.run_until(5.0)
    b0, p0, o0 = sim.bytes, sim.packets, len(sim.observations)
    sim.run_until(5.0 + seconds)
    obs = sim.observations[o0:]
    return {
        "n": n,
        "loss": loss,
        "bytes_per_s_per_member": round((sim.bytes - b0) / seconds / n, 1),
        "packets_per_s_per_member": round((sim.packets - p0) / seconds / n, 2),
        "suspect_events": sum(1 for o in obs if o.kind is EventKind.SUSPECT),
        "false_dead_events": sum(1 for o in obs if o.kind is EventKind.DEAD),
        "max_packet": sim.max_packet,
    }


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, action="append")
    ap.add_argument("--seeds", type=int, default=0, help="run seeds 0..N-1")
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    seeds = args.seed or list(range(args.seeds))
    bad = 0
    detect: list[float] = []
    detect_all: list[float] = []
    for s in seeds:
        r = run_scenario(s, verbose=args.v)
        if r.scenario.loss <= 0.1:
            detect.extend(r.detect_times_s)
            detect_all.extend(r.detect_all_s)
        if not r.ok:
            bad += 1
            print(f"seed {s} FAILED ({r.scenario.kind}, n={r.scenario.n}, loss={r.scenario.loss}): {r.failures[0]}")
    if detect:
        print(f"detection by each survivor (loss <= 10 %): n={len(detect)} p50={_pct(detect, 50):.2f}s "
              f"p99={_pct(detect, 99):.2f}s max={max(detect):.2f}s")
    if detect_all:
        print(f"detection by all survivors (loss <= 10 %): crashes={len(detect_all)} p50={_pct(detect_all, 50):.2f}s "
              f"p99={_pct(detect_all, 99):.2f}s max={max(detect_all):.2f}s")
    print(f"{len(seeds) - bad}/{len(seeds)} seeds ok")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
