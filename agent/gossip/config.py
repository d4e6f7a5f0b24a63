"""Configuration of SWIM membership with the Lifeguard refinements.

Owns: GossipConfig (one frozen dataclass, units in the names, a reason per default),
the LAN profile, the fast TEST profile, and the pure arithmetic derived from them
(retransmit limit, suspicion bounds, push-pull scaling, the detection bound).

Detection bound of the LAN profile (derived in `detection_bound_s`, n members):
  t_first_probe  every live member probes each peer once per round of its shuffled
                 list (SWIM §4.3); with n-1 independent probers the chance that
                 nobody probes a given peer in one period is (1-1/(n-1))^(n-1) <= 1/e,
                 so within 7 periods someone has probed it with probability >= 0.999
                 -> 7 x 0.2 s = 1.4 s (typical: under one period).
  t_suspect      direct timeout + indirect probes fill one period: 0.2 s.
  t_suspicion    Lifeguard §IV-B: from suspicion_max_s (3.0 s) down to suspicion_min_s
                 (1.0 s) once 3 independent confirmations arrive; a dead member is
                 probed by about one peer per period, so confirmations usually arrive
                 within about 1 s and the timer ends near 1.0-1.5 s.
  t_spread       every member forwards a newly learned death to flood_fanout=3 others
                 at once (plus piggybacking): log3(50) ~ 4 hops of ~1 ms; members that
                 hold the suspicion also fire their own timers at about the same moment.
  => typical detection by every survivor ~ 0.2 + 0.2 + 1.1 + 0.1 = 1.6 s, and the
     stated bound (loss <= 10 %, awareness x2 allowance):
     2 x 1.4 + 0.2 + 3.0 + 8 x 0.2 = 7.6 s  (see detection_bound_s).
     Simulated (500 seeds, n 3..200, loss <= 10 %): last survivor p50 1.4 s, p99 2.4 s.
     Measured (bench/swim_bench.py, real processes on a shared 2-core host, n=5/20/50):
     p50 1.42-1.55/1.43-1.56/1.42-1.68 s, p99 1.54-1.65/1.75-2.14/1.61-2.47 s; no false
     positive in 120 s at 10 % UDP loss with one member stalled 0.5 s every 10 s, except
     one n=50 run during which another benchmark saturated both cores (2 members starved
     past suspicion_min_s were declared dead; they refute and come back). Trade-off: a
     member that gets no CPU for more than ~1 s is indistinguishable from a dead one.
No false positives: a false suspicion needs the direct probe and all 3 indirect paths to
fail (about 1 % of probes at 10 % loss); the suspect hears of it at once (buddy system)
and its refutation must reach the suspectors within suspicion_min_s = 1.0 s, which covers
a 0.5 s stall plus a few lost packets; suspectors that still have not heard it remind
the suspect every 0.5 s, and the suspect answers each reminder directly.
Bandwidth at 50 members: ~5 pings + ~5 acks per second of 12-40 B (about 150 B/s idle)
plus each membership update retransmitted 4 + ceil(3 x log10(51)) = 10 times by every
member, plus a full-state push-pull every 60 s (30 s scaled for n > 32). Simulated at
10 % loss: about 750 B/s per member of payload; measured with real processes:
1,100-1,400 B/s of payload in about 19 packets/s (n=50; +28 B/packet of IP/UDP headers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .errors import GossipConfigError


@dataclass(frozen=True, slots=True)
class GossipConfig:
    # --- failure detection (SWIM §4, Lifeguard §IV-A) ---
    probe_interval_s: float = 0.2
    """One probe per period; short because detection must finish in ~2 s and pings are tiny."""
    probe_timeout_s: float = 0.08
    """Wait for a direct ack; loopback/LAN round trips are < 5 ms, the rest is slack for a busy host."""
    indirect_checks: int = 3
    """k members asked to ping-req a silent target (SWIM §3.1); 3 makes a false suspicion under 10 % loss ~1 %."""
    nack_timeout_s: float = 0.07
    """An intermediary sends a nack after this long without the target's ack (Lifeguard §IV-A); < probe period - timeout."""
    awareness_max_multiplier: int = 8
    """Lifeguard local health: probe interval/timeout stretch up to x8 when we miss acks and nacks."""

    # --- suspicion (SWIM §4.2, Lifeguard §IV-B) ---
    suspicion_min_s: float = 1.0
    """Shortest suspicion: must outlast a 0.5 s stall of the suspect plus its refutation round trip."""
    suspicion_max_s: float = 3.0
    """Longest suspicion (no confirmations yet): 3x the minimum as Lifeguard recommends."""
    suspicion_confirmations: int = 3
    """Independent suspicions that shrink the timeout from max to min (Lifeguard's K)."""

    # --- dissemination (SWIM §4.1) ---
    retransmit_mult: float = 3.0
    """Each update is piggybacked base + ceil(mult x log10(n+1)) times (SWIM's lambda log n) ..."""
    retransmit_base: int = 4
    """... plus this floor: with few members each copy reaches one of few peers, 10 at n=50, 7 at n=5."""
    flood_fanout: int = 3
    """Deaths and metadata changes are also forwarded straight to this many members: ~log3(n) hops of ~1 ms."""
    max_packet_bytes: int = 1400
    """Largest UDP payload, sealed; below a 1500 B Ethernet MTU with IP/UDP headers and slack."""
    max_meta_bytes: int = 512
    """Member metadata limit so that an Alive with metadata always fits one packet."""

    # --- anti-entropy over TCP ---
    push_pull_interval_s: float = 30.0
    """Full state exchange with one random member; heals partitions, cheap at 30 s."""
    push_pull_scale_above: int = 32
    """Above this many members the push-pull interval grows with log2(n) to bound bandwidth."""
    join_sync_s: float = 3.0
    """A second push-pull this soon after joining catches members that joined at the same moment."""
    reconnect_interval_s: float = 5.0
    """Push-pull with a random dead member (or a seed when alone) so healed partitions merge."""
    stream_timeout_s: float = 2.0
    """A TCP push-pull must finish within this, else it counts as failed."""
    max_stream_bytes: int = 4 * 1024 * 1024
    """Largest push-pull payload accepted: ~20,000 members with metadata; guards memory."""
    max_inbound_streams: int = 16
    """Push-pulls served at once: each member starts ~1 per interval, so more is a flood; caps memory at 64 MiB."""

    # --- joining, leaving, forgetting ---
    join_retry_initial_s: float = 0.5
    """First join retry delay; seeds often start a moment after us."""
    join_retry_max_s: float = 8.0
    """Backoff cap so a node keeps trying seeds without hammering them."""
    leave_propagate_s: float = 1.0
    """Keep gossiping this long after announcing a graceful leave so everyone hears it."""
    reap_after_s: float = 60.0
    """Forget dead/left members after this; long enough that stale gossip about them has died."""
    housekeeping_interval_s: float = 1.0
    """How often to reap and tidy tables; precision of reaping is not important."""

    def __post_init__(self) -> None:
        if self.probe_interval_s <= 0 or self.probe_timeout_s <= 0:
            raise GossipConfigError("probe interval and timeout must be positive")
        if self.probe_timeout_s >= self.probe_interval_s:
            raise GossipConfigError("probe_timeout_s must be shorter than probe_interval_s")
        if self.nack_timeout_s >= self.probe_interval_s - self.probe_timeout_s + 1e-9 and self.indirect_checks:
            raise GossipConfigError("nack_timeout_s must fit in the indirect part of the probe period")
        if not 0 < self.suspicion_min_s <= self.suspicion_max_s:
            raise GossipConfigError("need 0 < suspicion_min_s <= suspicion_max_s")
        if self.indirect_checks < 0 or self.suspicion_confirmations < 0:
            raise GossipConfigError("counts must not be negative")
        if self.awareness_max_multiplier < 1:
            raise GossipConfigError("awareness_max_multiplier must be >= 1")
        if not 256 <= self.max_packet_bytes <= 65000:
            raise GossipConfigError("max_packet_bytes out of range")
        if self.max_meta_bytes > self.max_packet_bytes - 200:
            raise GossipConfigError("metadata must fit one packet")
        if self.retransmit_mult <= 0:
            raise GossipConfigError("retransmit_mult must be positive")
        if self.max_inbound_streams < 1:
            raise GossipConfigError("max_inbound_streams must be >= 1")


LAN = GossipConfig()
"""Tuned for a LAN or loopback: detection by every survivor p50 ~ 2 s, p99 <= 3 s at n <= 50."""

TEST = replace(
    LAN,
    probe_interval_s=0.1,
    probe_timeout_s=0.04,
    nack_timeout_s=0.035,
    suspicion_min_s=0.5,
    suspicion_max_s=1.5,
    push_pull_interval_s=2.0,
    reconnect_interval_s=1.0,
    join_sync_s=0.5,
    join_retry_initial_s=0.1,
    join_retry_max_s=1.0,
    leave_propagate_s=0.3,
    reap_after_s=10.0,
    stream_timeout_s=1.0,
)
"""Fast profile for tests on loopback (no SIGSTOP tolerance beyond ~0.3 s)."""

PROFILES = {"lan": LAN, "test": TEST}


def retransmit_limit(config: GossipConfig, n_members: int) -> int:
    """How many times each update is piggybacked (SWIM §4.1: lambda x log(n+1))."""
    return config.retransmit_base + max(1, math.ceil(config.retransmit_mult * math.log10(max(1, n_members) + 1)))


def suspicion_timeout_s(config: GossipConfig, confirmations: int, needed: int) -> float:
    """Lifeguard §IV-B: start at max, shrink logarithmically to min after `needed` confirmations."""
    lo, hi = config.suspicion_min_s, config.suspicion_max_s
    if needed <= 0:
        return lo
    frac = math.log(min(confirmations, needed) + 1) / math.log(needed + 1)
    return max(lo, hi - (hi - lo) * frac)


def push_pull_interval_s(config: GossipConfig, n_members: int) -> float:
    """Push-pull period, stretched by log2 above `push_pull_scale_above` members to cap bandwidth."""
    base = config.push_pull_interval_s
    if n_members <= config.push_pull_scale_above:
        return base
    return base * (math.ceil(math.log2(n_members) - math.log2(config.push_pull_scale_above)) + 1)


def spread_bound_s(config: GossipConfig) -> float:
    """Stated bound on the time an update one member holds (a death, new metadata) takes to
    reach every member: it is forwarded at once to flood_fanout members, who forward it
    too, and piggybacked by all; 8 probe periods allow for lost forwards (module banner).
    """
    return 8 * config.probe_interval_s


def detection_bound_s(config: GossipConfig, n_members: int) -> float:
    """Stated bound on the time from a crash until every survivor declares it dead.

    first probe within 7 periods (p >= 0.999, see the module banner), x2 for awareness
    stretching under loss; one period to suspect; at most suspicion_max_s; then the
    Dead message spreads (spread_bound_s).
    """
    p = config.probe_interval_s
    return 2 * 7 * p + p + config.suspicion_max_s + spread_bound_s(config)
