"""The small pure pieces: suspicion maths, awareness, the broadcast queue, config checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.gossip.awareness import Awareness
from agent.gossip.broadcast import BroadcastQueue
from agent.gossip.config import LAN, TEST, detection_bound_s, push_pull_interval_s, retransmit_limit, suspicion_timeout_s
from agent.gossip.errors import GossipConfigError
from agent.gossip.messages import Alive, Dead, Suspect
from agent.gossip.suspicion import Suspicion


def test_suspicion_timeout_is_logarithmic_between_max_and_min_lifeguard_4b():
    """Lifeguard §IV-B: timeout = max - (max-min) * log(C+1)/log(K+1), floored at min."""
    values = [suspicion_timeout_s(LAN, c, 3) for c in range(6)]
    assert values[0] == LAN.suspicion_max_s
    assert values[3] == values[4] == values[5] == LAN.suspicion_min_s
    assert values[0] > values[1] > values[2] > values[3]
    # Logarithmic: the first confirmation buys more than the second.
    assert values[0] - values[1] > values[1] - values[2]
    assert suspicion_timeout_s(LAN, 0, 0) == LAN.suspicion_min_s  # K = 0 in tiny clusters


def test_suspicion_counts_distinct_confirmers_only_lifeguard_4b():
    s = Suspicion(LAN, 10.0, "a", needed=2)
    assert s.deadline_s == 10.0 + LAN.suspicion_max_s
    assert not s.confirm("a")
    assert s.confirm("b") and not s.confirm("b")
    assert s.confirmations == 1
    assert s.confirm("c") and s.deadline_s == pytest.approx(10.0 + LAN.suspicion_min_s)


def test_awareness_is_bounded_and_scales_time_lifeguard_4a():
    a = Awareness(8)
    a.apply(-3)
    assert a.multiplier == 1
    a.apply(100)
    assert a.multiplier == 8
    assert a.scale(0.2) == pytest.approx(1.6)
    a.apply(-1)
    assert a.multiplier == 7


TO = ("10.0.0.9", 7946)


def test_broadcast_queue_orders_invalidates_and_retires_swim_4_1():
    q = BroadcastQueue()
    q.queue(Alive(1, "a", ("h", 1), 0, None))
    q.queue(Alive(1, "b", ("h", 2), 0, None))
    first = q.take(TO, 10_000, limit=3, per_peer=3)
    assert [m.name for m in first] == ["b", "a"]  # newest first among equals
    q.queue(Suspect(1, "c", "x"))
    assert [m.name for m in q.take(TO, 10_000, limit=3, per_peer=3)][0] == "c"  # least sent first
    q.queue(Dead(1, "a", "x"))  # invalidates the Alive about a
    assert Dead(1, "a", "x") in q.pending() and all(getattr(m, "incarnation", 0) == 1 for m in q.pending())
    assert len([m for m in q.pending() if m.name == "a"]) == 1
    for _ in range(5):
        q.take(TO, 10_000, limit=3, per_peer=3)
    assert len(q) == 0
    q.queue(Alive(1, "big", ("h", 1), 0, b"x" * 300))
    assert q.take(TO, 100, limit=3, per_peer=3) == []  # does not fit: stays queued
    assert len(q) == 1


def test_broadcast_queue_spreads_an_update_over_peers_swim_4_1():
    """An update goes at most per_peer times to one member; one the packet already carries is
    recorded as sent there, not taken again (a forwarded update is not wasted)."""
    q = BroadcastQueue()
    update = Alive(2, "a", ("h", 1), 1, b"meta")
    q.queue(update)
    assert q.take(TO, 10_000, limit=4, per_peer=2, carried=[update]) == []  # forwarded to TO already
    assert q.take(TO, 10_000, limit=4, per_peer=2) == [update]
    assert q.take(TO, 10_000, limit=4, per_peer=2) == []  # TO has had its share
    others = [("10.0.0.%d" % i, 7946) for i in range(1, 5)]
    assert [len(q.take(o, 10_000, limit=4, per_peer=2)) for o in others] == [1, 1, 1, 0]  # limit reached
    assert len(q) == 0


def test_retransmit_limit_grows_with_log_n_swim_4_1():
    limits = [retransmit_limit(LAN, n) for n in (1, 5, 50, 500)]
    assert limits == sorted(limits) and limits[0] >= 1 and limits[-1] < 20


def test_push_pull_interval_scales_above_threshold():
    assert push_pull_interval_s(LAN, 10) == LAN.push_pull_interval_s
    assert push_pull_interval_s(LAN, 64) == 2 * LAN.push_pull_interval_s


def test_config_rejects_inconsistent_values():
    with pytest.raises(GossipConfigError):
        replace(LAN, probe_timeout_s=LAN.probe_interval_s)
    with pytest.raises(GossipConfigError):
        replace(LAN, suspicion_min_s=5.0, suspicion_max_s=1.0)
    with pytest.raises(GossipConfigError):
        replace(LAN, max_meta_bytes=LAN.max_packet_bytes)
    assert TEST.probe_interval_s < LAN.probe_interval_s


def test_lan_detection_bound_is_stated():
    assert detection_bound_s(LAN, 50) == pytest.approx(7.6)
