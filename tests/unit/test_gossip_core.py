"""Unit tests of the pure SWIM + Lifeguard core, each tagged with the paper section it checks."""

from __future__ import annotations

import copy
import math
import random
from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.gossip import codec
from agent.gossip.config import LAN, retransmit_limit
from agent.gossip.core import GossipCore
from agent.gossip.errors import MetadataTooLarge
from agent.gossip.events import EventKind
from agent.gossip.messages import (
    MAX_ACCUSED_INCARNATION,
    MAX_INCARNATION,
    MAX_META_VERSION,
    MAX_SEQ,
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MemberState,
    Nack,
    Ping,
    Suspect,
)

CFG = LAN


def addr(i: int) -> tuple[str, int]:
    return (f"10.0.0.{i}", 7946)


class Net:
    """Routes core output between in-memory cores; `drop(src, dst)` decides losses."""

    def __init__(self, n: int, cfg=CFG, seed: int = 1) -> None:
        self.cfg = cfg
        self.now = 0.0
        self.cores = {
            addr(i): GossipCore(cfg, f"n{i}", addr(i), random.Random(seed * 100 + i), now_s=0.0, meta=f"m{i}".encode())
            for i in range(n)
        }
        self.down: set[tuple[str, int]] = set()
        self.drop = lambda src, dst: False
        self.events: dict[str, list] = {c.name: [] for c in self.cores.values()}
        self.sent: list[tuple[str, tuple, tuple]] = []
        self.codec = codec.Codec(cfg.max_packet_bytes, cfg.max_meta_bytes, cfg.max_stream_bytes)

    def core(self, i: int) -> GossipCore:
        return self.cores[addr(i)]

    def bootstrap(self) -> None:
        """Everyone joins through n0 and gossip settles."""
        for i in range(1, len(self.cores)):
            self.core(i).join(self.now, [addr(0)])
        self.flush()
        self.run(2.0)

    def flush(self) -> None:
        for _ in range(50):
            busy = False
            for a, c in list(self.cores.items()):
                out = c.take_output()
                self.events[c.name].extend(out.events)
                if a in self.down:
                    continue
                for p in out.packets:
                    busy = True
                    data = codec.encode_packet(p.messages, self.cfg.max_packet_bytes)
                    self.sent.append((c.name, p.addr, p.messages))
                    if p.addr in self.cores and p.addr not in self.down and not self.drop(a, p.addr):
                        decoded = self.codec.decode_packet(data)
                        assert decoded.out_of_range == 0, f"{c.name} sent a number out of range: {p.messages}"
                        self.cores[p.addr].handle_packet(self.now, a, decoded.messages)
                for s in out.streams:
                    busy = True
                    peer = self.cores.get(s.addr)
                    if peer is None or s.addr in self.down or self.drop(a, s.addr):
                        c.push_pull_done(self.now, s.request_id, None)
                    else:
                        reply = peer.handle_push_pull(self.now, self._through_codec(s.state))
                        c.push_pull_done(self.now, s.request_id, self._through_codec(reply))
            if not busy:
                return

    def _through_codec(self, state):
        decoded = self.codec.decode_stream(codec.encode_stream(state))
        assert decoded.out_of_range == 0, f"a push-pull carried a number out of range: {state}"
        return decoded.state

    def run(self, seconds: float, step: float = 0.005) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for a, c in self.cores.items():
                if a not in self.down and c.next_deadline_s() <= self.now:
                    c.tick(self.now)
            self.flush()

    def kinds(self, observer: int, subject: str) -> list[EventKind]:
        return [e.kind for e in self.events[f"n{observer}"] if e.name == subject]


def test_join_through_seed_learns_everyone_swim_4_1():
    """SWIM §4.1: a joiner is spread by piggybacked gossip; push-pull gives it the full state."""
    net = Net(5)
    net.bootstrap()
    for c in net.cores.values():
        assert {m.name for m in c.members() if m.state is MemberState.ALIVE} == {f"n{i}" for i in range(5)}
    assert EventKind.JOINED in net.kinds(3, "n4")
    assert net.core(2).member("n4").meta == b"m4"


def test_probe_round_robin_over_shuffled_list_swim_4_3():
    """SWIM §4.3: within one round of n-1 periods every other member is probed exactly once."""
    net = Net(6)
    net.bootstrap()
    c = net.core(0)
    net.sent.clear()
    # Align to the start of a fresh round, then collect the targets of the next 2 rounds.
    targets: list[str] = []
    while len(targets) < 10 * 5:
        net.run(CFG.probe_interval_s / 4)
        targets = [m.target for src, _, msgs in net.sent if src == "n0" for m in msgs if isinstance(m, Ping)]
    for start in range(0, 50 - 5, 5):
        window = targets[start : start + 5]
        if sorted(window) == [f"n{i}" for i in range(1, 6)]:
            break
    else:
        pytest.fail(f"no full round of distinct targets in {targets}")
    # Over any 2 consecutive rounds nobody is probed more than twice (round-robin, not random).
    assert max(targets[:10].count(f"n{i}") for i in range(1, 6)) <= 3
    assert c.counters["probe_failures"] == 0


def test_ack_clears_probe_and_lowers_awareness_lifeguard_4a():
    """Lifeguard §IV-A: a successful probe lowers the local health score."""
    net = Net(3)
    net.bootstrap()
    c = net.core(0)
    c._awareness.apply(3)
    net.run(CFG.probe_interval_s * 2)
    assert c.awareness_multiplier < 4


def test_silent_target_triggers_indirect_probe_and_suspicion_swim_3_1():
    """SWIM §3.1/§4.2: no direct ack -> ping-req via k members -> suspect, told first to the suspect."""
    net = Net(6)
    net.bootstrap()
    victim = addr(5)
    net.down.add(victim)
    net.sent.clear()
    net.run(CFG.probe_interval_s * 12)
    ind = [m for _, _, msgs in net.sent for m in msgs if isinstance(m, IndirectPing) and m.target == "n5"]
    assert ind, "expected ping-req for the silent member"
    # The suspector sent the Suspect straight to the suspect (buddy system, Lifeguard §IV-B).
    direct = [dst for src, dst, msgs in net.sent if dst == victim and any(isinstance(m, Suspect) for m in msgs)]
    assert direct
    assert EventKind.SUSPECT in net.kinds(0, "n5")


def test_intermediary_relays_ack_and_nacks_silence_lifeguard_4a():
    """SWIM §3.1 ping-req relays the target's ack; Lifeguard §IV-A nacks when the target is silent."""
    net = Net(3)
    net.bootstrap()
    mid = net.core(1)
    mid.take_output()
    mid.handle_packet(net.now, addr(0), (IndirectPing(77, "n2", addr(2), True),))
    out = mid.take_output()
    ping = next(m for p in out.packets for m in p.messages if isinstance(m, Ping))
    assert ping.target == "n2"
    mid.handle_packet(net.now + 0.001, addr(2), (Ack(ping.seq),))
    relayed = [m for p in mid.take_output().packets if p.addr == addr(0) for m in p.messages]
    assert Ack(77) in relayed
    # Now a silent target: a nack arrives after nack_timeout_s.
    mid.handle_packet(net.now, addr(0), (IndirectPing(78, "n2", addr(2), True),))
    mid.take_output()
    mid.tick(net.now + CFG.nack_timeout_s / 2)
    assert not any(Nack(78) in p.messages for p in mid.take_output().packets)
    mid.tick(net.now + CFG.nack_timeout_s + 1e-6)
    assert any(Nack(78) in p.messages and p.addr == addr(0) for p in mid.take_output().packets)


def test_missed_nacks_raise_awareness_and_stretch_probe_interval_lifeguard_4a():
    """Lifeguard §IV-A: when our helpers' nacks do not arrive we slow our own probing down."""
    net = Net(5)
    net.bootstrap()
    c = net.core(0)
    assert c.awareness_multiplier == 1
    net.drop = lambda src, dst: src == addr(0) or dst == addr(0)  # n0 is cut off: no acks, no nacks
    net.run(CFG.probe_interval_s * 6)
    assert c.awareness_multiplier >= 4
    t = net.now
    c.tick(t)  # the period now lasts interval x multiplier
    assert c._next_probe_s - t <= CFG.probe_interval_s * c.awareness_multiplier + 1e-9


def test_suspect_refutes_with_higher_incarnation_swim_4_2():
    """SWIM §4.2: a suspected member that hears of it gossips Alive with a higher incarnation."""
    net = Net(4)
    net.bootstrap()
    target = net.core(3)
    before = target.incarnation
    target.handle_packet(net.now, addr(1), (Suspect(before, "n3", "n1"),))
    assert target.incarnation == before + 1
    out = target.take_output()
    # The refutation goes straight back to the suspector too.
    assert any(p.addr == addr(1) and any(isinstance(m, Alive) and m.incarnation == before + 1 for m in p.messages)
               for p in out.packets)
    # A peer holding the suspicion returns the member to alive on the refutation.
    peer = net.core(2)
    peer.handle_packet(net.now, addr(1), (Suspect(before, "n3", "n1"),))
    assert peer.member("n3").state is MemberState.SUSPECT
    peer.handle_packet(net.now, addr(3), (Alive(before + 1, "n3", addr(3), 0, None),))
    assert peer.member("n3").state is MemberState.ALIVE
    assert [e.kind for e in peer.take_output().events if e.name == "n3"] == [EventKind.SUSPECT, EventKind.ALIVE]


def test_incarnation_precedence_rules_swim_4_2():
    """SWIM §4.2: Alive(i) beats Suspect(j) iff i > j; Suspect(i) beats Alive(j) iff i >= j; Dead is final."""
    net = Net(3)
    net.bootstrap()
    c = net.core(0)
    c.handle_packet(1.0, addr(1), (Suspect(0, "n2", "n1"),))
    assert c.member("n2").state is MemberState.SUSPECT
    c.handle_packet(1.0, addr(1), (Alive(0, "n2", addr(2), 0, None),))  # same incarnation: stale
    assert c.member("n2").state is MemberState.SUSPECT
    c.handle_packet(1.0, addr(1), (Alive(2, "n2", addr(2), 0, None),))
    assert c.member("n2").state is MemberState.ALIVE
    c.handle_packet(1.0, addr(1), (Suspect(1, "n2", "n1"),))  # older than what we know
    assert c.member("n2").state is MemberState.ALIVE
    c.handle_packet(1.0, addr(1), (Dead(2, "n2", "n1"),))
    assert c.member("n2").state is MemberState.DEAD
    c.handle_packet(1.0, addr(1), (Alive(2, "n2", addr(2), 0, None), Suspect(5, "n2", "n1")))
    assert c.member("n2").state is MemberState.DEAD
    c.handle_packet(1.0, addr(1), (Alive(3, "n2", addr(2), 0, None),))  # back with a newer life
    assert c.member("n2").state is MemberState.ALIVE
    kinds = [e.kind for e in c.take_output().events if e.name == "n2"]
    assert kinds == [EventKind.SUSPECT, EventKind.ALIVE, EventKind.DEAD, EventKind.JOINED]


def test_suspicion_shrinks_with_independent_confirmations_lifeguard_4b():
    """Lifeguard §IV-B: the timer starts at max and reaches min after K distinct confirmations."""
    net = Net(8)
    net.bootstrap()
    c = net.core(0)
    t = net.now
    c.handle_packet(t, addr(1), (Suspect(0, "n7", "n1"),))
    s = c._suspicions["n7"]
    assert s.deadline_s == pytest.approx(t + CFG.suspicion_max_s)
    c.handle_packet(t, addr(1), (Suspect(0, "n7", "n1"),))  # same suspector again: no confirmation
    assert s.deadline_s == pytest.approx(t + CFG.suspicion_max_s)
    last = s.deadline_s
    for by in ("n2", "n3", "n4"):
        c.handle_packet(t, addr(2), (Suspect(0, "n7", by),))
        assert s.deadline_s < last
        last = s.deadline_s
    assert s.deadline_s == pytest.approx(t + CFG.suspicion_min_s)
    c.handle_packet(t, addr(5), (Suspect(0, "n7", "n5"),))
    assert s.deadline_s == pytest.approx(t + CFG.suspicion_min_s)  # never below min
    c.tick(t + CFG.suspicion_min_s - 0.01)
    assert c.member("n7").state is MemberState.SUSPECT
    c.tick(t + CFG.suspicion_min_s)
    assert c.member("n7").state is MemberState.DEAD
    c.take_output()
    c.handle_packet(t + CFG.suspicion_min_s, addr(1), (Ping(99, "n0"),))  # the Dead rides on the ack
    dead = [m for p in c.take_output().packets for m in p.messages if isinstance(m, Dead)]
    assert Dead(0, "n7", "n0") in dead


def test_crashed_member_declared_dead_by_all_swim_4_2():
    """SWIM §4.2: suspicion expires into Dead, which spreads to every member."""
    net = Net(6)
    net.bootstrap()
    net.down.add(addr(4))
    net.run(CFG.probe_interval_s * 15 + CFG.suspicion_max_s + 2.0)
    for i in (0, 1, 2, 3, 5):
        assert net.core(i).member("n4").state is MemberState.DEAD, i
        assert EventKind.DEAD in net.kinds(i, "n4")


def test_no_false_positive_with_a_slow_link_lifeguard_4a():
    """SWIM §3.1, Lifeguard §IV-A: a member that only misses direct pings (indirect works) is never declared dead."""
    net = Net(6)
    net.bootstrap()
    net.drop = lambda src, dst: (src, dst) in ((addr(0), addr(1)), (addr(1), addr(0)))
    net.run(10.0)
    for i in range(6):
        assert EventKind.DEAD not in net.kinds(i, "n1")
        assert EventKind.DEAD not in net.kinds(i, "n0")


def test_graceful_leave_is_left_not_dead():
    """Extension (not in the papers): a voluntary leave is a Dead(by=self), reported as LEFT."""
    net = Net(4)
    net.bootstrap()
    net.core(2).leave(net.now)
    net.flush()
    net.run(CFG.leave_propagate_s)
    net.down.add(addr(2))
    net.run(CFG.suspicion_max_s + 2)
    for i in (0, 1, 3):
        assert net.core(i).member("n2").state is MemberState.LEFT
        assert net.kinds(i, "n2")[-1] is EventKind.LEFT
        assert EventKind.DEAD not in net.kinds(i, "n2")


def test_restarted_member_rejoins_with_higher_incarnation_swim_4_2():
    """SWIM §4.2: a restarted process learns its old (dead) state and refutes it with a higher incarnation."""
    net = Net(4)
    net.bootstrap()
    net.down.add(addr(3))
    net.run(6.0)
    assert net.core(0).member("n3").state is MemberState.DEAD
    old_inc = net.core(0).member("n3").incarnation
    net.cores[addr(3)] = GossipCore(CFG, "n3", addr(3), random.Random(9), now_s=net.now, meta=b"new")
    net.down.discard(addr(3))
    net.cores[addr(3)].join(net.now, [addr(0)])
    net.flush()
    net.run(3.0)
    for i in range(3):
        rec = net.core(i).member("n3")
        assert rec.state is MemberState.ALIVE and rec.incarnation > old_inc
        assert rec.meta == b"new"
        assert net.kinds(i, "n3")[-1] is EventKind.JOINED


def test_stale_dead_gossip_does_not_kill_a_rejoined_member_swim_4_2():
    """SWIM §4.2: Dead(i) does not override Alive(j) when i < j."""
    net = Net(3)
    net.bootstrap()
    c = net.core(0)
    c.handle_packet(net.now, addr(1), (Alive(7, "n2", addr(2), 0, None),))
    c.handle_packet(net.now, addr(1), (Dead(6, "n2", "n1"),))
    assert c.member("n2").state is MemberState.ALIVE


def test_metadata_change_spreads_with_version():
    """Extension: metadata rides on Alive (SWIM §4.1 dissemination) with its own version."""
    net = Net(5)
    net.bootstrap()
    net.core(1).set_meta(net.now, b'{"grpc":"10.0.0.1:9000"}')
    net.run(2.0)
    for i in range(5):
        rec = net.core(i).member("n1")
        assert rec.meta == b'{"grpc":"10.0.0.1:9000"}' and rec.meta_version == 2
    assert EventKind.UPDATED in net.kinds(3, "n1")
    with pytest.raises(MetadataTooLarge):
        net.core(1).set_meta(net.now, b"x" * (CFG.max_meta_bytes + 1))


def test_dead_members_are_reaped():
    """Extension: dead/left members are forgotten after reap_after_s."""
    cfg = replace(CFG, reap_after_s=3.0)
    net = Net(3, cfg=cfg)
    net.bootstrap()
    c = net.core(0)
    c.handle_packet(net.now, addr(1), (Dead(0, "n2", "n1"),))
    net.down.add(addr(2))
    net.run(2.0)
    assert c.member("n2") is not None
    net.run(2.5)
    assert c.member("n2") is None


def test_join_retries_with_backoff_until_a_seed_answers():
    """Extension: joining is a TCP push-pull to a seed, retried with capped exponential backoff."""
    c = GossipCore(CFG, "j", addr(9), random.Random(1), now_s=0.0)
    c.join(0.0, [addr(1), addr(2)])
    attempts = []
    t = 0.0
    for _ in range(200):
        out = c.take_output()
        for s in out.streams:
            attempts.append(t)
            c.push_pull_done(t, s.request_id, None)
        t = max(t + 0.01, min(c.next_deadline_s(), t + 1.0))
        c.tick(t)
        if len(attempts) >= 10:
            break
    assert not c.joined
    gaps = [b - a for a, b in zip(attempts[::2], attempts[2::2])]  # two seeds per attempt
    assert gaps[0] < gaps[2] < gaps[3] + 1e-9
    assert max(gaps) <= CFG.join_retry_max_s * 1.2 + 0.02
    # A seed answers: joined, no more attempts.
    seed = GossipCore(CFG, "s", addr(1), random.Random(2), now_s=t)
    while not (streams := c.take_output().streams):
        t = c.next_deadline_s()
        c.tick(t)
    s = streams[0]
    c.push_pull_done(t, s.request_id, seed.handle_push_pull(t, s.state))
    assert c.joined and c.member("s").state is MemberState.ALIVE
    assert seed.member("j").state is MemberState.ALIVE


def test_piggyback_fills_packets_within_limit_and_least_sent_first_swim_4_1():
    """SWIM §4.1: updates are piggybacked, least-sent first, and a packet never exceeds the limit."""
    net = Net(2)
    net.bootstrap()
    c = net.core(0)
    for i in range(200):
        c.handle_packet(net.now, addr(1), (Alive(1, f"x{i:03d}", (f"10.1.0.{i % 250}", 7946), 1, b"m" * 40),))
    c.take_output()
    c.handle_packet(net.now, addr(1), (Ping(5, "n0"),))
    pkt = c.take_output().packets[0]
    data = codec.encode_packet(pkt.messages, CFG.max_packet_bytes)
    assert len(data) <= CFG.max_packet_bytes - 29
    assert pkt.messages[0] == Ack(5) and len(pkt.messages) > 10
    first = {m.name for m in pkt.messages[1:]}
    c.handle_packet(net.now, addr(1), (Ping(6, "n0"),))
    second = {m.name for m in c.take_output().packets[0].messages[1:]}
    assert not first & second  # least-transmitted go first


def test_update_sent_at_most_retransmit_limit_times_spread_over_peers_swim_4_1():
    """SWIM §4.1: each update is piggybacked lambda x log(n+1) times, then dropped, and no
    more than its share of those (limit / peers, rounded up) to any one member."""
    net = Net(4)
    net.bootstrap()
    c = net.core(0)
    c.handle_packet(net.now, addr(1), (Alive(4, "zz", ("10.9.9.9", 1), 0, None),))
    c.take_output()
    live = c.live_member_count()
    limit = retransmit_limit(CFG, live)
    per_peer = math.ceil(limit / (live - 1))
    assert 1 < per_peer < limit < per_peer * (live - 1)

    def sends_answering(src: tuple[str, int], pings: int) -> int:
        sends = 0
        for seq in range(pings):
            c.handle_packet(net.now, src, (Ping(seq, "n0"),))
            sends += sum(1 for p in c.take_output().packets for m in p.messages if getattr(m, "name", "") == "zz")
        return sends

    assert sends_answering(addr(1), 50) == per_peer
    others = sum(sends_answering(a, 50) for a in (addr(2), addr(3), ("10.9.9.9", 1)))
    assert per_peer + others == limit


def test_newer_update_invalidates_older_in_queue_swim_4_1():
    """SWIM §4.1/§4.2: a newer update about a member replaces the queued older one."""
    net = Net(2)
    net.bootstrap()
    c = net.core(0)
    c.handle_packet(net.now, addr(1), (Alive(4, "zz", ("10.9.9.9", 1), 0, None), Suspect(4, "zz", "n1")))
    c.take_output()
    c.handle_packet(net.now, addr(1), (Ping(1, "n0"),))
    zz = [m for p in c.take_output().packets for m in p.messages if getattr(m, "name", "") == "zz"]
    assert zz == [Suspect(4, "zz", "n1")]


def test_dead_member_that_pings_us_is_told_and_refutes_swim_4_2():
    """SWIM §4.2: a member wrongly declared dead (partition, stall) refutes as soon as it hears."""
    net = Net(3)
    net.bootstrap()
    c = net.core(0)
    c.handle_packet(net.now, addr(1), (Dead(0, "n2", "n1"),))
    assert c.member("n2").state is MemberState.DEAD
    c.take_output()
    c.handle_packet(net.now, addr(2), (Ping(42, "n0"),))
    reply = c.take_output().packets[0]
    assert reply.addr == addr(2) and Ack(42) in reply.messages and Dead(0, "n2", "n0") in reply.messages
    n2 = net.core(2)
    n2.handle_packet(net.now, addr(0), reply.messages)
    assert n2.incarnation == 1
    net.flush()
    net.run(1.0)
    assert c.member("n2").state is MemberState.ALIVE and net.kinds(0, "n2")[-1] is EventKind.JOINED


def test_partition_heals_through_reconnect_push_pull():
    """After both sides declared each other dead, reconnect push-pulls and refutations merge them."""
    net = Net(6)
    net.bootstrap()
    left = {addr(i) for i in range(3)}
    net.drop = lambda src, dst: (src in left) != (dst in left)
    net.run(CFG.probe_interval_s * 12 + CFG.suspicion_max_s + 3)
    assert net.core(0).member("n4").state is MemberState.DEAD
    assert net.core(4).member("n0").state is MemberState.DEAD
    net.drop = lambda src, dst: False
    net.run(2 * CFG.reconnect_interval_s + CFG.suspicion_max_s)
    for i in range(6):
        states = {m.name: m.state for m in net.core(i).members()}
        assert set(states.values()) == {MemberState.ALIVE}, (i, states)


def test_partition_longer_than_reaping_heals_through_seeds():
    """Extension: after both sides forgot each other (reaped), seeds still reconnect them."""
    cfg = replace(CFG, reap_after_s=4.0)
    net = Net(6, cfg=cfg)
    net.bootstrap()
    left = {addr(i) for i in range(3)}  # n0, the seed, is on this side
    net.drop = lambda src, dst: (src in left) != (dst in left)
    net.run(CFG.probe_interval_s * 12 + CFG.suspicion_max_s + cfg.reap_after_s + 3)
    assert net.core(0).member("n4") is None and net.core(4).member("n0") is None  # reaped
    net.drop = lambda src, dst: False
    net.run(6 * CFG.reconnect_interval_s)
    for i in range(6):
        states = {m.name: m.state for m in net.core(i).members()}
        assert len(states) == 6 and set(states.values()) == {MemberState.ALIVE}, (i, states)


# ------------------------------------------------------------------ numbers a forger may send

_SETTLED: Net | None = None


def settled_net() -> Net:
    """A copy of a bootstrapped 3-member cluster (bootstrapping once keeps the property tests fast)."""
    global _SETTLED
    if _SETTLED is None:
        _SETTLED = Net(3)
        _SETTLED.bootstrap()
    return copy.deepcopy(_SETTLED)


def deliver(net: Net, data: bytes, to: int, src=("10.9.9.9", 4000)) -> codec.DecodedPacket:
    """A datagram from outside the cluster, decoded as the driver does, then handed to core `to`."""
    decoded = net.codec.decode_packet(data)
    net.core(to).handle_packet(net.now, src, decoded.messages)
    return decoded


def assert_everything_sent_is_in_range(net: Net) -> None:
    for src, _, msgs in net.sent:
        assert all(codec.in_range(m) for m in msgs), (src, msgs)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["suspect", "dead", "leave"]), st.integers(0, 2**64 - 1))
@example("dead", 2**63 - 1)  # the forgery that used to expel a member for good
@example("dead", MAX_ACCUSED_INCARNATION)
@example("suspect", MAX_INCARNATION)
def test_a_forged_accusation_at_any_incarnation_never_expels_a_live_member_swim_4_2(kind, incarnation):
    """SWIM §4.2: whatever accusation gets through the codec, its subject refutes it and
    stays (or comes back) alive everywhere; whatever does not get through changes nothing."""
    net = settled_net()
    before = net.core(2).incarnation
    forged = {"suspect": Suspect(incarnation, "n2", "n1"), "dead": Dead(incarnation, "n2", "n1"),
              "leave": Dead(incarnation, "n2", "n2")}[kind]
    data = codec.encode_packet([forged], CFG.max_packet_bytes)
    net.sent.clear()
    for i in range(3):
        decoded = deliver(net, data, i)
        assert decoded.out_of_range == (0 if incarnation <= MAX_ACCUSED_INCARNATION else 1)
    net.flush()
    net.run(CFG.suspicion_max_s + 1.0)
    for i in range(3):
        rec = net.core(i).member("n2")
        assert rec.state is MemberState.ALIVE, (i, rec)
        assert rec.incarnation <= MAX_INCARNATION
    if incarnation <= MAX_ACCUSED_INCARNATION and incarnation >= before:
        assert net.core(2).incarnation == incarnation + 1  # refuted with the next incarnation
    else:
        assert net.core(2).incarnation == before
    assert_everything_sent_is_in_range(net)


def test_an_alive_about_us_at_the_top_is_counted_and_changes_nothing():
    """A forged Alive in our name at MAX_INCARNATION cannot be out-bid: counted, never followed past the range."""
    net = settled_net()
    me = net.core(2)
    before = (me.incarnation, me.member("n2").meta_version, me.member("n2").meta)
    deliver(net, codec.encode_packet([Alive(MAX_INCARNATION, "n2", ("10.6.6.6", 1), MAX_META_VERSION, b"evil")],
                                     CFG.max_packet_bytes), to=2)
    assert me.counters["refutation_impossible"] == 1
    assert (me.incarnation, me.member("n2").meta_version, me.member("n2").meta) == before
    net.flush()
    assert_everything_sent_is_in_range(net)


def test_forged_metadata_in_our_name_is_refuted_and_versions_saturate():
    """A forged Alive at our incarnation carrying other metadata at the highest version:
    we refute with the next incarnation and our own metadata, which every peer takes."""
    net = settled_net()
    me = net.core(2)
    inc = me.incarnation
    deliver(net, codec.encode_packet([Alive(inc, "n2", addr(2), MAX_META_VERSION, b"evil")], CFG.max_packet_bytes), 0)
    net.flush()
    net.run(1.0)
    assert me.incarnation == inc + 1 and me.member("n2").meta_version == MAX_META_VERSION
    for i in range(3):
        rec = net.core(i).member("n2")
        assert (rec.state, rec.meta, rec.incarnation) == (MemberState.ALIVE, b"m2", inc + 1), i
    me.set_meta(net.now, b"later")  # the version cannot rise further; the incarnation still does
    net.flush()
    net.run(1.0)
    assert [net.core(i).member("n2").meta for i in range(3)] == [b"later"] * 3
    assert_everything_sent_is_in_range(net)


def test_probe_sequence_numbers_wrap_inside_their_range():
    c = GossipCore(CFG, "a", addr(1), random.Random(1), now_s=0.0)
    c._seq = MAX_SEQ - 1
    assert [c._next_seq() for _ in range(3)] == [MAX_SEQ, 0, 1]


def test_only_members_get_gossip_swim_4_1():
    """Piggybacking (SWIM §4.1) is for members: a ping from an address no member has is
    answered with a bare ack, so a spoofed source never draws a full packet of gossip."""
    net = Net(3)
    net.bootstrap()
    c = net.core(0)
    for i in range(20):
        c.handle_packet(net.now, addr(1), (Alive(1, f"x{i}", (f"10.1.0.{i + 1}", 7946), 1, b"m" * 40),))
    c.take_output()
    c.handle_packet(net.now, ("10.66.0.1", 4000), (Ping(5, "n0"),))
    c.handle_packet(net.now, ("10.66.0.1", 4000), (IndirectPing(6, "n1", ("10.66.0.2", 9), True),))
    out = c.take_output().packets
    assert [(p.addr, p.messages) for p in out] == [
        (("10.66.0.1", 4000), (Ack(5),)),
        (("10.66.0.2", 9), (Ping(out[1].messages[0].seq, "n1"),)),
    ]
    c.handle_packet(net.now, addr(1), (Ping(7, "n0"),))
    reply = c.take_output().packets[0]
    assert reply.messages[0] == Ack(7) and len(reply.messages) > 5
