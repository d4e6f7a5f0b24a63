"""The SWIM + Lifeguard membership protocol as a pure state machine.

Owns: this node's view of the cluster (members, incarnations, states, metadata), the
probe cycle, suspicion timers, the piggyback queue and the join/push-pull schedule.

Rules it keeps:
- Pure: no sockets, clock or randomness of its own. Time comes in as `now_s` (seconds,
  monotonic), randomness from the injected random.Random; every effect is data read
  with `take_output()` (packets to addresses, TCP push-pull requests, events) and the
  caller wakes the core with `tick(now_s)` no later than `next_deadline_s()`.
- Each probe period has exactly one target, taken round-robin from a shuffled list
  (SWIM §4.3); no ack by the timeout -> ping-req through k members, who nack if the
  target stays silent (Lifeguard §IV-A); no ack by the end of the period -> suspect.
- State precedence (SWIM §4.2): Alive(i) overrides Suspect/Dead(j) only if i > j;
  Suspect(i) overrides Alive(j) if i >= j; Dead(i) overrides Alive/Suspect(j) if i >= j.
  Only a member itself raises its incarnation, to refute a suspicion or a death.
- Numbers stay in their ranges (messages.py): the codec accepts accusations only up
  to MAX_ACCUSED_INCARNATION, so every one it lets in is refuted at most at
  MAX_INCARNATION; an Alive about us at the very top (only a forger gets there) cannot
  be out-bid and is counted, never followed past the range. Metadata versions
  saturate at MAX_META_VERSION: the incarnation, which always rises with them, decides.
- Every accepted change is re-gossiped (piggybacked); messages about an unknown or
  staler state are ignored, never an error. Bad input never raises; a broken internal
  rule raises GossipInvariantError.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import codec
from .awareness import Awareness
from .broadcast import BroadcastQueue
from .config import GossipConfig, push_pull_interval_s, retransmit_limit
from .errors import GossipInvariantError, MetadataTooLarge
from .events import EventKind, MemberEvent
from .messages import (
    MAX_INCARNATION,
    MAX_META_VERSION,
    MAX_SEQ,
    Ack,
    Addr,
    Alive,
    Dead,
    IndirectPing,
    MemberRecord,
    MemberState,
    Message,
    Nack,
    Ping,
    PushPull,
    Suspect,
)
from .suspicion import Suspicion

if TYPE_CHECKING:  # the core only uses the Random it is given; it never creates one
    import random

_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
_GONE = (MemberState.DEAD, MemberState.LEFT)
_INF = float("inf")


@dataclass(slots=True)
class Member:
    name: str
    addr: Addr
    incarnation: int
    state: MemberState
    state_since_s: float
    meta_version: int
    meta: bytes

    def record(self) -> MemberRecord:
        return MemberRecord(self.name, self.addr, self.incarnation, self.state, self.meta_version, self.meta)


@dataclass(frozen=True, slots=True)
class OutPacket:
    """Send these messages as one UDP packet to `addr`."""

    addr: Addr
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """Exchange `state` over TCP with `addr`; report with push_pull_done(request_id, reply-or-None)."""

    request_id: int
    addr: Addr
    state: PushPull


@dataclass(slots=True)
class Output:
    packets: list[OutPacket] = field(default_factory=list)
    streams: list[StreamRequest] = field(default_factory=list)
    events: list[MemberEvent] = field(default_factory=list)


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    addr: Addr
    indirect_at_s: float
    end_s: float
    acked: bool = False
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _Relay:
    """An indirect probe we run for a requester (SWIM §3.1 ping-req)."""

    requester_addr: Addr
    requester_seq: int
    nack_at_s: float  # inf once nacked or when no nack is wanted
    expire_s: float


@dataclass(slots=True)
class _Join:
    seeds: tuple[Addr, ...]
    next_attempt_s: float
    backoff_s: float
    inflight: set[int] = field(default_factory=set)
    attempts: int = 0


class GossipCore:
    def __init__(
        self,
        config: GossipConfig,
        name: str,
        addr: Addr,
        rng: random.Random,
        *,
        now_s: float,
        meta: bytes = b"",
        incarnation: int = 0,
    ) -> None:
        if len(meta) > config.max_meta_bytes:
            raise MetadataTooLarge(f"metadata of {len(meta)} B exceeds {config.max_meta_bytes} B")
        self.config = config
        self.name = name
        self.addr = addr
        self._rng = rng
        self._now = now_s
        self._me = Member(name, addr, incarnation, MemberState.ALIVE, now_s, 1 if meta else 0, meta)
        self._members: dict[str, Member] = {name: self._me}
        self._by_addr: dict[Addr, str] = {}  # peer address -> member name (for replies to the dead)
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._in_order: set[str] = set()
        self._seq = rng.randrange(1 << 30)
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._broadcasts = BroadcastQueue()
        self._suspicions: dict[str, Suspicion] = {}
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._join: _Join | None = None
        self._streams: dict[int, str] = {}  # request id -> "join" | "push_pull" | "reconnect" | "meta_sync"
        self._meta_fetches: dict[int, str] = {}  # request id -> member whose metadata we are pulling
        self._seeds: tuple[Addr, ...] = ()
        self._leaving = False
        self.joined = False
        self.counters: collections.Counter[str] = collections.Counter()
        self._out = Output()
        # Stagger the first timers so members started together do not probe in lockstep.
        self._next_probe_s = now_s + rng.uniform(0, config.probe_interval_s)
        self._next_push_pull_s = now_s + rng.uniform(0.5, 1.0) * config.push_pull_interval_s
        self._next_reconnect_s = now_s + rng.uniform(0.5, 1.0) * config.reconnect_interval_s
        self._next_housekeeping_s = now_s + config.housekeeping_interval_s
        self._broadcasts.queue(self._alive_of_me(with_meta=True))

    # ------------------------------------------------------------ public API

    @property
    def incarnation(self) -> int:
        return self._me.incarnation

    @property
    def awareness_multiplier(self) -> int:
        return self._awareness.multiplier

    @property
    def leaving(self) -> bool:
        return self._leaving

    def members(self) -> list[MemberRecord]:
        """Every member this node knows, itself included, dead and left ones until reaped."""
        return [m.record() for m in self._members.values()]

    def member(self, name: str) -> MemberRecord | None:
        m = self._members.get(name)
        return m.record() if m else None

    def live_member_count(self) -> int:
        return sum(1 for m in self._members.values() if m.state in _LIVE)

    def take_output(self) -> Output:
        out, self._out = self._out, Output()
        return out

    def join(self, now_s: float, seeds: list[Addr] | tuple[Addr, ...]) -> None:
        """Join through any of `seeds` (TCP push-pull), retrying with backoff until one answers."""
        self._now = now_s
        self._seeds = tuple(s for s in seeds if tuple(s) != tuple(self.addr))
        if not self._seeds:
            self.joined = True
            return
        self._join = _Join(self._seeds, now_s, self.config.join_retry_initial_s)
        self._tick_join()

    def leave(self, now_s: float) -> None:
        """Graceful leave: announce Dead(by=self), tell every live peer directly, stop probing."""
        self._now = now_s
        if self._leaving:
            return
        self._leaving = True
        self._me.state = MemberState.LEFT
        self._me.state_since_s = now_s
        msg = Dead(self._me.incarnation, self.name, self.name)
        self._broadcasts.queue(msg)
        for m in self._members.values():
            if m is not self._me and m.state in _LIVE:
                self._send(m.addr, [msg])
        self._probe = None
        self._join = None

    def set_meta(self, now_s: float, meta: bytes) -> None:
        """Publish new metadata: bump the meta version and incarnation, gossip an Alive carrying it."""
        self._now = now_s
        if len(meta) > self.config.max_meta_bytes:
            raise MetadataTooLarge(f"metadata of {len(meta)} B exceeds {self.config.max_meta_bytes} B")
        self._me.meta = meta
        self._me.meta_version = min(MAX_META_VERSION, self._me.meta_version + 1)
        # At the top of the range (only a forger puts us there) the Alive keeps its
        # incarnation and spreads as a newer metadata version of it.
        self._me.incarnation = min(MAX_INCARNATION, self._me.incarnation + 1)
        msg = self._alive_of_me(with_meta=True)
        self._broadcasts.queue(msg)
        self._flood(msg)

    def handle_packet(self, now_s: float, from_addr: Addr, messages: tuple[Message, ...]) -> None:
        self._now = now_s
        for msg in messages:
            self._dispatch(from_addr, msg)

    def handle_push_pull(self, now_s: float, remote: PushPull) -> PushPull:
        """Server side of a push-pull: reply with our state (as it was), then merge theirs."""
        self._now = now_s
        reply = self._local_state(join=False)
        self.counters["push_pull_served"] += 1
        self._merge(remote)
        return reply

    def push_pull_done(self, now_s: float, request_id: int, remote: PushPull | None) -> None:
        """Client side result of a StreamRequest: the peer's state, or None if it failed."""
        self._now = now_s
        kind = self._streams.pop(request_id, None)
        self._meta_fetches.pop(request_id, None)
        if kind is None:
            raise GossipInvariantError(f"unknown stream request {request_id}")
        if remote is not None:
            self.counters[f"{kind}_ok"] += 1
            self._merge(remote)
        else:
            self.counters[f"{kind}_failed"] += 1
        if kind == "join" and self._join is not None:
            self._join.inflight.discard(request_id)
            if remote is not None:
                self._join = None
                self.joined = True
                # Members that joined at the same moment as us may have missed our gossip and we
                # theirs: a second full exchange soon after joining closes that gap.
                self._next_push_pull_s = min(
                    self._next_push_pull_s, now_s + self._rng.uniform(0.5, 1.0) * self.config.join_sync_s
                )
            elif not self._join.inflight:
                j = self._join
                j.next_attempt_s = now_s + j.backoff_s * self._rng.uniform(0.8, 1.2)
                j.backoff_s = min(self.config.join_retry_max_s, j.backoff_s * 2)

    def tick(self, now_s: float) -> None:
        """Advance every timer that is due at `now_s`."""
        self._now = now_s
        self._tick_join()
        if not self._leaving:
            p = self._probe
            if p is not None and not p.acked and not p.indirect_sent and now_s >= p.indirect_at_s:
                self._send_indirect(p)
            if now_s >= self._next_probe_s:
                self._finish_probe()
                self._start_probe()
        for seq, r in list(self._relays.items()):
            if now_s >= r.nack_at_s:
                r.nack_at_s = _INF
                self._send(r.requester_addr, [Nack(r.requester_seq)])
            if now_s >= r.expire_s:
                del self._relays[seq]
        for name, s in list(self._suspicions.items()):
            if now_s >= s.deadline_s:
                self._declare_dead(name)
            elif now_s >= s.nudge_at_s:
                s.nudged()
                self._nudge(name)
        if now_s >= self._next_push_pull_s:
            self._next_push_pull_s = now_s + push_pull_interval_s(self.config, self.live_member_count())
            if not self._leaving:
                self._push_pull_with_random_member()
        if now_s >= self._next_reconnect_s:
            self._next_reconnect_s = now_s + self.config.reconnect_interval_s * self._rng.uniform(0.8, 1.2)
            if not self._leaving:
                self._reconnect()
        if now_s >= self._next_housekeeping_s:
            self._next_housekeeping_s = now_s + self.config.housekeeping_interval_s
            self._reap()

    def next_deadline_s(self) -> float:
        t = min(self._next_push_pull_s, self._next_reconnect_s, self._next_housekeeping_s)
        if not self._leaving:
            t = min(t, self._next_probe_s)
            p = self._probe
            if p is not None and not p.acked and not p.indirect_sent:
                t = min(t, p.indirect_at_s)
        if self._join is not None and not self._join.inflight:
            t = min(t, self._join.next_attempt_s)
        for r in self._relays.values():
            t = min(t, r.nack_at_s, r.expire_s)
        for s in self._suspicions.values():
            t = min(t, s.deadline_s, s.nudge_at_s)
        return t

    # ------------------------------------------------------------ sending

    def _send(self, addr: Addr, msgs: list[Message]) -> None:
        """Queue a packet, filling its spare room with piggybacked updates (SWIM §4.1).

        Only a member's address gets gossip: an answer to anyone else (a ping or a ping-req
        with a forged source, a relayed probe to an address a requester named) carries just
        the answer, so a small spoofed packet never draws a full one and no membership leaks.
        """
        if addr not in self._by_addr:
            self._out.packets.append(OutPacket(addr, tuple(msgs)))
            self.counters["packets_out_to_strangers"] += 1
            return
        budget = (
            self.config.max_packet_bytes
            - codec.PACKET_OVERHEAD_BYTES
            - codec.SEAL_OVERHEAD_BYTES
            - sum(codec.encoded_size(m) for m in msgs)
        )
        for name in self._suspicions:
            m = self._members[name]
            if m.addr == addr and not any(isinstance(x, Suspect) and x.name == name for x in msgs):
                # Lifeguard buddy system: anything we send a suspect tells it that it is suspected.
                nudge = Suspect(m.incarnation, name, self.name)
                msgs = [nudge, *msgs]
                budget -= codec.encoded_size(nudge)
                break
        live = self.live_member_count()
        limit = retransmit_limit(self.config, live)
        per_peer = -(-limit // max(1, live - 1))  # spread the transmissions over every peer
        extra = self._broadcasts.take(addr, budget, limit, per_peer, carried=msgs)
        self._out.packets.append(OutPacket(addr, tuple(msgs) + tuple(extra)))
        self.counters["packets_out"] += 1

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & MAX_SEQ
        return self._seq

    def _alive_of_me(self, with_meta: bool) -> Alive:
        me = self._me
        return Alive(me.incarnation, me.name, me.addr, me.meta_version, me.meta if with_meta else None)

    def _emit(self, kind: EventKind, m: Member) -> None:
        self._out.events.append(
            MemberEvent(kind, m.name, m.addr, m.incarnation, m.meta_version, m.meta, self._now)
        )

    # ------------------------------------------------------------ probing (SWIM §3.1, §4.3)

    def _next_probe_target(self) -> Member | None:
        order = self._probe_order
        for _ in range(len(order) + 1):
            if self._probe_index >= len(order):
                order[:] = [n for n in order if n in self._members]
                self._in_order = set(order)
                self._rng.shuffle(order)
                self._probe_index = 0
                if not order:
                    return None
            name = order[self._probe_index]
            self._probe_index += 1
            m = self._members.get(name)
            if m is not None and m is not self._me and m.state in _LIVE:
                return m
        return None

    def _add_to_probe_order(self, name: str) -> None:
        """New members go to a random position so each still gets probed once per round (SWIM §4.3)."""
        if name in self._in_order:
            return
        self._in_order.add(name)
        self._probe_order.insert(self._rng.randint(0, len(self._probe_order)), name)

    def _start_probe(self) -> None:
        now = self._now
        interval = self._awareness.scale(self.config.probe_interval_s)
        self._next_probe_s = now + interval
        target = self._next_probe_target()
        if target is None:
            self._probe = None
            return
        seq = self._next_seq()
        msgs: list[Message] = [Ping(seq, target.name)]  # _send adds the Suspect if target is suspect
        self._probe = _Probe(
            seq, target.name, target.addr, now + self._awareness.scale(self.config.probe_timeout_s), now + interval
        )
        self.counters["probes"] += 1
        self._send(target.addr, msgs)

    def _send_indirect(self, p: _Probe) -> None:
        p.indirect_sent = True
        helpers = [
            m for m in self._members.values()
            if m.state is MemberState.ALIVE and m is not self._me and m.name != p.target
        ]
        k = min(self.config.indirect_checks, len(helpers))
        chosen = self._rng.sample(helpers, k) if k else []
        p.expected_nacks = k
        self.counters["indirect_probes"] += k
        for h in chosen:
            self._send(h.addr, [IndirectPing(p.seq, p.target, p.addr, True)])

    def _finish_probe(self) -> None:
        p = self._probe
        self._probe = None
        if p is None or p.acked:
            return
        # Lifeguard §IV-A: missed nacks mean our own links or host are the likely problem.
        if p.expected_nacks > 0:
            self._awareness.apply(max(0, p.expected_nacks - p.nacks))
        else:
            self._awareness.apply(1)
        self.counters["probe_failures"] += 1
        m = self._members.get(p.target)
        if m is None or m.state not in _LIVE:
            return
        self._apply_suspect(Suspect(m.incarnation, m.name, self.name))

    # ------------------------------------------------------------ receiving

    def _dispatch(self, from_addr: Addr, msg: Message) -> None:
        if isinstance(msg, Ping):
            if msg.target != self.name:
                self.counters["ping_misdirected"] += 1
                return
            reply: list[Message] = [Ack(msg.seq)]
            sender = self._members.get(self._by_addr.get(from_addr, ""))
            if sender is not None and sender.state is MemberState.DEAD:
                # A member we declared dead is talking to us (a healed partition, a long
                # stall): tell it, so it refutes now instead of at the next push-pull.
                reply.append(Dead(sender.incarnation, sender.name, self.name))
            self._send(from_addr, reply)
        elif isinstance(msg, IndirectPing):
            if msg.target == self.name:
                self._send(from_addr, [Ack(msg.seq)])
                return
            seq = self._next_seq()
            nack_at = self._now + self.config.nack_timeout_s if msg.want_nack else _INF
            self._relays[seq] = _Relay(from_addr, msg.seq, nack_at, self._now + self.config.probe_interval_s * 2)
            self._send(msg.target_addr, [Ping(seq, msg.target)])
        elif isinstance(msg, Ack):
            p = self._probe
            if p is not None and msg.seq == p.seq:
                if not p.acked:
                    p.acked = True
                    self._awareness.apply(-1)
                return
            r = self._relays.pop(msg.seq, None)
            if r is not None:
                self._send(r.requester_addr, [Ack(r.requester_seq)])
        elif isinstance(msg, Nack):
            p = self._probe
            if p is not None and msg.seq == p.seq:
                p.nacks += 1
        elif isinstance(msg, Alive):
            self._apply_alive(msg)
        elif isinstance(msg, (Suspect, Dead)):
            if msg.name == self.name and msg.incarnation < self._me.incarnation and not self._leaving:
                # The sender still gossips an old accusation of us: our refutation missed it.
                # Answer it directly instead of waiting for gossip to get there.
                self.counters["stale_accusation_answered"] += 1
                self._send(from_addr, [self._alive_of_me(with_meta=False)])
            elif isinstance(msg, Suspect):
                self._apply_suspect(msg)
            else:
                self._apply_dead(msg)
        else:
            self.counters["unexpected_message"] += 1

    # ------------------------------------------------------------ state changes (SWIM §4.2)

    def _refute(
        self, seen_incarnation: int, reply_to: str | None, with_meta: bool, other_meta_version: int | None = None
    ) -> None:
        """Raise our incarnation above what was said about us and tell everyone (SWIM §4.2).

        `other_meta_version`: the version of metadata unlike ours that was said about us
        (an earlier life's); ours moves above it, so meta versions keep rising across restarts.
        """
        incarnation = max(self._me.incarnation, seen_incarnation) + 1
        if incarnation > MAX_INCARNATION:
            # Only an Alive about us at MAX_INCARNATION gets here (the codec accepts no
            # accusation that high): a forgery no incarnation can out-bid.
            self.counters["refutation_impossible"] += 1
            return
        self._me.incarnation = incarnation
        if other_meta_version is not None and other_meta_version >= self._me.meta_version:
            self._me.meta_version = min(MAX_META_VERSION, other_meta_version + 1)
        self._awareness.apply(1)  # Lifeguard: being suspected hints that we are the slow one
        self.counters["refutations"] += 1
        msg = self._alive_of_me(with_meta)
        self._broadcasts.queue(msg)
        peer = self._members.get(reply_to) if reply_to else None
        if peer is not None and peer is not self._me and peer.state in _LIVE:
            self._send(peer.addr, [msg])

    def _apply_alive(self, msg: Alive, forward: bool = True) -> None:
        if msg.name == self.name:
            me = self._me
            if self._leaving or msg.incarnation < me.incarnation:
                return
            conflict = msg.addr != me.addr or (msg.meta is not None and msg.meta != me.meta)
            if msg.incarnation > me.incarnation or conflict:
                # An earlier life of ours (a restart), or someone holds a stale picture of us.
                other = msg.meta_version if msg.meta is not None and msg.meta != me.meta else None
                self._refute(msg.incarnation, None, with_meta=True, other_meta_version=other)
            return
        m = self._members.get(msg.name)
        if m is None:
            m = Member(
                msg.name, msg.addr, msg.incarnation, MemberState.ALIVE, self._now,
                msg.meta_version if msg.meta is not None else 0, msg.meta or b"",
            )
            self._members[msg.name] = m
            self._by_addr[m.addr] = m.name
            self._add_to_probe_order(msg.name)
            self._broadcasts.queue(msg)
            self._emit(EventKind.JOINED, m)
            return
        if msg.meta is None and msg.meta_version > m.meta_version:
            self._fetch_meta(msg)
        newer_meta = msg.meta is not None and msg.meta_version > m.meta_version
        if msg.incarnation <= m.incarnation:
            if newer_meta and msg.incarnation == m.incarnation and m.state in _LIVE:
                m.meta, m.meta_version = msg.meta, msg.meta_version
                self._broadcasts.queue(msg)
                self._emit(EventKind.UPDATED, m)
                if forward:
                    self._flood(msg)
            else:
                self.counters["stale_alive"] += 1
            return
        old = m.state
        m.incarnation = msg.incarnation
        if m.addr != msg.addr:
            self._by_addr.pop(m.addr, None)
            m.addr = msg.addr
            self._by_addr[m.addr] = m.name
        m.state = MemberState.ALIVE
        if old is not MemberState.ALIVE:
            m.state_since_s = self._now
        # Metadata carried by a newer incarnation is authoritative (versions restart with a process).
        newer_meta = msg.meta is not None and (msg.meta_version != m.meta_version or msg.meta != m.meta)
        if newer_meta:
            m.meta, m.meta_version = msg.meta, msg.meta_version
        self._suspicions.pop(msg.name, None)
        self._add_to_probe_order(msg.name)
        self._broadcasts.queue(msg)
        if old is MemberState.SUSPECT:
            self._emit(EventKind.ALIVE, m)
        elif old in _GONE:
            self._emit(EventKind.JOINED, m)
        elif newer_meta:
            self._emit(EventKind.UPDATED, m)
        if newer_meta and forward:
            self._flood(msg)

    def _suspicion_needed(self) -> int:
        """Lifeguard's K, reduced in small clusters where fewer independent suspectors exist."""
        return max(0, min(self.config.suspicion_confirmations, self.live_member_count() - 2))

    def _apply_suspect(self, msg: Suspect) -> None:
        if msg.name == self.name:
            if msg.incarnation >= self._me.incarnation and not self._leaving:
                self._refute(msg.incarnation, msg.by, with_meta=False)
            return
        m = self._members.get(msg.name)
        if m is None or msg.incarnation < m.incarnation or m.state in _GONE:
            return
        mine = msg.by == self.name
        if m.state is MemberState.SUSPECT and msg.incarnation == m.incarnation:
            s = self._suspicions.get(m.name)
            if s is None:
                raise GossipInvariantError(f"suspect member {m.name} has no suspicion timer")
            if s.confirm(msg.by):
                self._broadcasts.queue(msg)
                if mine:
                    self._send(m.addr, [msg])
            return
        m.state = MemberState.SUSPECT
        m.incarnation = msg.incarnation
        m.state_since_s = self._now
        self._suspicions[m.name] = Suspicion(self.config, self._now, msg.by, self._suspicion_needed())
        self._broadcasts.queue(msg)
        self._emit(EventKind.SUSPECT, m)
        if mine:
            self.counters["suspicions_raised"] += 1
            self._send(m.addr, [msg])  # buddy system: the suspect hears it first

    def _apply_dead(self, msg: Dead, forward: bool = True) -> None:
        if msg.name == self.name:
            if msg.incarnation >= self._me.incarnation and not self._leaving:
                self._refute(msg.incarnation, None if msg.is_leave else msg.by, with_meta=True)
            return
        m = self._members.get(msg.name)
        if m is None or msg.incarnation < m.incarnation or m.state in _GONE:
            return
        m.state = MemberState.LEFT if msg.is_leave else MemberState.DEAD
        m.incarnation = msg.incarnation
        m.state_since_s = self._now
        self._suspicions.pop(m.name, None)
        self._broadcasts.queue(msg)
        self._emit(EventKind.LEFT if msg.is_leave else EventKind.DEAD, m)
        if forward:
            self._flood(msg)

    def _flood(self, msg: Alive | Dead) -> None:
        """Forward a death or a metadata change at once to a few random members.

        These are the updates the agent acts on (rescheduling, placement). Besides
        piggybacking, whoever first learns one forwards it to flood_fanout members, so it
        covers the cluster in a few milliseconds instead of one probe period per hop. Each
        member forwards only on its own state change: a flood costs n x flood_fanout packets.
        """
        peers = [p for p in self._members.values() if p.state is MemberState.ALIVE and p is not self._me]
        for p in self._rng.sample(peers, min(self.config.flood_fanout, len(peers))):
            self._send(p.addr, [msg])

    def _nudge(self, name: str) -> None:
        """Still suspecting after half the minimum timeout: the refutation may have missed us.

        Tell the suspect directly; it answers straight back with its current Alive (a live
        member either refutes now or, if it already did, re-sends that refutation to us).
        """
        m = self._members[name]
        self.counters["suspect_nudges"] += 1
        self._send(m.addr, [Suspect(m.incarnation, m.name, self.name)])

    def _declare_dead(self, name: str) -> None:
        m = self._members[name]
        if m.state is not MemberState.SUSPECT:
            raise GossipInvariantError(f"suspicion timer fired for {name} in state {m.state.name}")
        self.counters["dead_declared"] += 1
        self._apply_dead(Dead(m.incarnation, name, self.name))

    # ------------------------------------------------------------ anti-entropy, join, reaping

    def _local_state(self, join: bool) -> PushPull:
        return PushPull(join, self.name, tuple(m.record() for m in self._members.values()))

    def _request_stream(self, addr: Addr, kind: str) -> int:
        rid = self._next_seq()
        self._streams[rid] = kind
        self._out.streams.append(StreamRequest(rid, addr, self._local_state(join=kind == "join")))
        return rid

    def _merge(self, remote: PushPull) -> None:
        """Merge a peer's full state. A peer's Dead becomes our Suspect (the member may refute)."""
        for r in remote.members:
            if r.name == self.name:
                self._merge_own_record(r)
            elif r.state is MemberState.ALIVE:
                self._apply_alive(Alive(r.incarnation, r.name, r.addr, r.meta_version, r.meta), forward=False)
            elif r.state is MemberState.LEFT:
                self._apply_dead(Dead(r.incarnation, r.name, r.name), forward=False)
            else:
                if r.name not in self._members and r.state is MemberState.SUSPECT:
                    self._apply_alive(Alive(r.incarnation, r.name, r.addr, r.meta_version, r.meta), forward=False)
                self._apply_suspect(Suspect(r.incarnation, r.name, remote.sender))

    def _fetch_meta(self, msg: Alive) -> None:
        """An Alive without metadata names a newer meta version than ours: pull it (one at a time)."""
        if msg.name in self._meta_fetches.values() or self._leaving:
            return
        self.counters["meta_fetches"] += 1
        rid = self._request_stream(msg.addr, "meta_sync")
        self._meta_fetches[rid] = msg.name

    def _merge_own_record(self, r: MemberRecord) -> None:
        """A peer's record of us: refute anything but our current self, carrying our metadata."""
        me = self._me
        if r.state is MemberState.ALIVE:
            self._apply_alive(Alive(r.incarnation, r.name, r.addr, r.meta_version, r.meta))
        elif r.incarnation >= me.incarnation and not self._leaving:
            other = r.meta_version if r.meta != me.meta else None
            self._refute(r.incarnation, None, with_meta=True, other_meta_version=other)

    def _tick_join(self) -> None:
        j = self._join
        if j is None or j.inflight or self._now < j.next_attempt_s:
            return
        j.attempts += 1
        self.counters["join_attempts"] += 1
        for seed in j.seeds:
            j.inflight.add(self._request_stream(seed, "join"))

    def _push_pull_with_random_member(self) -> None:
        peers = [m for m in self._members.values() if m.state is MemberState.ALIVE and m is not self._me]
        if peers:
            self._request_stream(self._rng.choice(peers).addr, "push_pull")

    def _reconnect(self) -> None:
        """Push-pull with one dead member, so a healed partition merges.

        Once the other side has been reaped (a partition longer than reap_after_s) there
        is no dead member left to try: then the seeds are tried instead, by about one
        member of the cluster per interval (probability 1/live), so seeds are not flooded.
        """
        if self._join is not None:
            return
        candidates = [m.addr for m in self._members.values() if m.state is MemberState.DEAD]
        if not candidates and self._seeds:
            live_peers = sum(1 for m in self._members.values() if m.state in _LIVE and m is not self._me)
            if self._rng.random() < 1.0 / (live_peers + 1):
                candidates = list(self._seeds)
        if candidates:
            self._request_stream(self._rng.choice(candidates), "reconnect")

    def _reap(self) -> None:
        horizon = self._now - self.config.reap_after_s
        for name in [n for n, m in self._members.items() if m.state in _GONE and m.state_since_s <= horizon]:
            if name != self.name:
                m = self._members.pop(name)
                if self._by_addr.get(m.addr) == name:
                    del self._by_addr[m.addr]
                self._suspicions.pop(name, None)
