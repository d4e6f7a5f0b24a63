"""Raft messages between nodes over gRPC (RaftService in proto/agent/rpc/raft.proto).

Owns: one send loop per peer, each with a bounded queue; batching every queued message
for a peer into one `MessageBatch`; carrying the batches on one long-lived `Stream` call
per peer (or one unary `Send` RPC each, for a peer without `Stream` or when configured);
backoff to a peer that does not answer; message size limits; and the `RaftServicer`,
which decodes what peers send and hands it to the node.

Rules it keeps:
- `send()` never blocks and never raises for a network reason: Raft tolerates lost
  messages, so a full queue drops (and counts) its oldest messages, a failed RPC drops
  its batch, and a message bigger than one RPC may carry is dropped and counted.
- Messages to one peer reach its node in the order they were sent: up to
  `max_rpcs_in_flight` batches may travel at once, numbered per sender; the receiver
  queues them for its node in that order, waiting at most `reorder_wait_s` for a
  missing one (lost batches are fine: Raft tolerates loss, only reordering is wasteful).
- A batch of nothing but commit notices (empty appends) lingers up to `linger_s` for
  the append that usually follows, so both share one RPC and the append does not wait
  behind the notice's round trip.
- `send()` itself hands the queue to a peer's open stream when that stream is idle (a
  free send slot, no backoff, not a lone commit notice): the batch is on its way before
  the caller's next await, and the send loop (which does everything else) is skipped.
- The receiver answers once it has processed a batch, with the messages it produced
  for us meanwhile (its acks); those replies go to `deliver` like any received message.
  On a stream it answers each batch in turn, in order, one `BatchAck` per batch.
- A stream that fails or whose answer is late (`rpc_timeout_s`) is cancelled: its
  unanswered batches count as failed sends (dropped, backoff) and the next batch opens a
  new stream. A peer answering UNIMPLEMENTED gets unary `Send`s from then on.
- Nothing a peer sends crashes the node: a malformed, misaddressed or unknown message
  is counted (`stats`) and dropped; the rest of its batch is still delivered.
- Peers come and go at run time (`add_peer`, `remove_peer`); a peer that moves to a new
  address keeps its queue and batch numbering, and its old channel and loop close.
- Every counter lives in `stats` (a Counter); log lines are `<node> key=value`.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from queue import SimpleQueue

import grpc
import trio

from agent.grpcbridge import Channel, ServerStream, lockstep, server_stream, unary
from agent.grpcbridge.errors import RpcError, Unavailable
from agent.raft.errors import NodeStopped
from agent.raft.messages import AppendEntries, InstallSnapshot, Message
from agent.raft.types import NUMBER_LIMIT
from agent.raft.wire import WireError, decode_message, encode_message
from agent.rpc import raft_pb2, raft_pb2_grpc

__all__ = ["RaftServicer", "RaftTransport", "TransportConfig", "message_size"]

log = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TransportConfig:
    # Messages waiting for one peer. Above it the oldest go: they are the stalest, and
    # the leader re-sends whatever a follower still lacks after its next heartbeat.
    max_queued_messages: int = 8192
    # ... and bytes waiting for one peer: appends carry up to a MiB each.
    max_queued_bytes: int = 64 * MIB
    # Bytes of Raft payload in one Send RPC; below grpc's 4 MiB default receive limit,
    # so a full batch never fails on size.
    max_rpc_bytes: int = 3 * MIB
    # Messages in one Send RPC, either way: a receiver refuses a bigger batch whole, so
    # a hostile peer cannot make it decode millions of tiny messages in one go.
    max_messages_per_rpc: int = 4096
    # A Send returns once the receiver processed the batch (an fsync at most), so a
    # healthy peer answers in milliseconds; a stopped or partitioned one must not hold
    # a send slot longer than this.
    rpc_timeout_s: float = 1.0
    # Carry batches on one long-lived bidi `Stream` call per peer: it saves the setup of
    # a call per batch (about 0.4 ms of a 1 ms loopback round trip, measured). The
    # receiver then handles that peer's batches one at a time, in order; False sends a
    # unary `Send` per batch, whose batches a receiver may process concurrently.
    stream: bool = True
    # Batches in flight to one peer. On loopback and a LAN one is best measured here:
    # each extra RPC costs CPU on both sides and batches only grow while one is out.
    # More pays off on links whose round trip dwarfs that cost.
    max_rpcs_in_flight: int = 1
    # How long a receiver holds a batch that overtook an earlier one of the same sender
    # (threads on both sides may reorder calls by a few hundred microseconds).
    reorder_wait_s: float = 0.02
    # A batch holding only commit notices (empty appends) waits this long for the next
    # append, which usually follows within a few hundred microseconds: one RPC then
    # carries both, and that append is not stuck behind the notice's round trip.
    linger_s: float = 0.002
    # Backoff after a failed Send: doubles from initial to max, with +-20% jitter, so a
    # dead peer costs a few calls per second while a restarted one is found quickly.
    backoff_initial_s: float = 0.02
    backoff_max_s: float = 0.25
    # Messages kept for a peer while backing off from it; older ones are stale by the
    # time it answers again.
    max_queued_while_down: int = 256


# grpc's own reconnect backoff defaults to 1 s growing to 120 s: far too slow to notice
# a restarted peer. Bound it like the send loop's.
# Keepalive pings: a connection whose packets are dropped (a partition, a machine gone
# without a reset) gets no error from TCP; streams opened on it time out one after
# another, and when the path is back TCP resumes only at its next retransmission, whose
# backoff has doubled all through the cut (25 s after a 40 s partition, seen in the
# chaos soak). A ping unanswered for a second closes it instead, and the next stream
# opens a fresh connection. (The gRPC server accepts pings every second.)
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 20),
    ("grpc.max_reconnect_backoff_ms", 250),
    ("grpc.enable_retries", 0),
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)

_ENTRY_OVERHEAD_BYTES = 32  # protobuf framing of one entry, generously


def message_size(msg: Message) -> int:
    """Approximate encoded bytes of one message (payload plus framing)."""
    if type(msg) is AppendEntries:
        return 64 + sum(len(e.data) + _ENTRY_OVERHEAD_BYTES for e in msg.entries)
    if type(msg) is InstallSnapshot:
        return 128 + len(msg.data) + 16 * (len(msg.meta.conf.voters) + len(msg.meta.conf.learners))
    context = getattr(msg, "context", b"")
    return 64 + (len(context) if type(context) is bytes else 0)


class _Peer:
    """The send side of one peer: its address, queue and loop state."""

    __slots__ = (
        "node_id", "address", "queue", "queued_bytes", "wakeup", "failures", "down", "cancel_scope",
        "next_seq", "slots", "resume_at", "stream", "use_stream", "loop_done",
    )

    def __init__(self, node_id: str, address: str, in_flight: int) -> None:
        self.node_id = node_id
        self.address = address
        self.queue: deque[tuple[Message, int]] = deque()
        self.queued_bytes = 0
        self.wakeup = trio.Event()
        self.failures = 0  # consecutive failed Sends
        self.down = False
        self.cancel_scope = trio.CancelScope()  # the send loop's: cancelled to retire the peer
        self.loop_done = trio.Event()  # its send loop ended (channel and stream closed)
        self.next_seq = 1
        self.slots = trio.Semaphore(in_flight)
        self.resume_at = 0.0  # backing off: no new batch before this (trio clock)
        self.stream: _BatchStream | None = None  # the open Stream call, if any
        self.use_stream = True  # False once the peer answered Stream with UNIMPLEMENTED


class RaftTransport:
    """Sends Raft messages to peers. Usage: `await nursery.start(transport.run)`, then
    `transport.send(messages)` from the node's task."""

    def __init__(
        self,
        node_id: str,
        peers: Mapping[str, str],
        config: TransportConfig = TransportConfig(),
        rng: random.Random | None = None,
        deliver: Callable[[list[Message]], Awaitable[None]] | None = None,
    ) -> None:
        self.node_id = node_id
        # Where replies carried back by our RPCs go: the node's `receive`. Set before run().
        self.deliver = deliver
        self.config = config
        self.stats: Counter[str] = Counter()
        self._rng = rng or random.Random()
        # Numbers this process's batches apart from those of an earlier run of the node.
        self.epoch = self._rng.getrandbits(63) | 1
        self._peers: dict[str, _Peer] = {}
        self._nursery: trio.Nursery | None = None
        for peer_id, address in peers.items():
            if peer_id != node_id:
                self._peers[peer_id] = _Peer(peer_id, address, config.max_rpcs_in_flight)

    # -- membership of the peer set -------------------------------------------------
    def peers(self) -> dict[str, str]:
        """Every peer this node sends to, by id: its address."""
        return {p.node_id: p.address for p in self._peers.values()}

    def add_peer(self, node_id: str, address: str) -> None:
        """Send to `node_id` at `address` from now on, whether or not run() is running.

        A peer already known at another address (a node restarted elsewhere) moves: its
        old send loop, stream and channel are closed, and the messages still queued for
        it, with the numbering of its batches, carry over to the new address.
        """
        if node_id == self.node_id:
            return
        old = self._peers.get(node_id)
        if old is not None and old.address == address:
            return
        peer = _Peer(node_id, address, self.config.max_rpcs_in_flight)
        if old is not None:
            self._retire(old)
            peer.queue, peer.queued_bytes, peer.next_seq = old.queue, old.queued_bytes, old.next_seq
            old.queue, old.queued_bytes = deque(), 0
            log.info("%s event=raft_peer_moved peer=%s from=%s to=%s", self.node_id, node_id, old.address, address)
        self._peers[node_id] = peer
        if self._nursery is not None:
            self._nursery.start_soon(self._send_loop, peer)

    def remove_peer(self, node_id: str) -> None:
        """Stop sending to `node_id`: its queue is dropped, its send loop, stream and
        channel closed; messages to it count as dropped_unknown_peer from now on."""
        peer = self._peers.pop(node_id, None)
        if peer is not None:
            self._retire(peer)

    def _retire(self, peer: _Peer) -> None:
        peer.cancel_scope.cancel()  # a loop not started yet never opens its channel
        if self._nursery is None:
            peer.loop_done.set()  # no loop runs, nor will

    # -- sending -------------------------------------------------------------------
    def send(self, messages: list[Message]) -> None:
        """Queue messages for their destinations; never blocks."""
        limit = self.config.max_rpc_bytes
        touched: list[_Peer] = []
        for msg in messages:
            peer = self._peers.get(msg.dst)
            if peer is None:
                self.stats["dropped_unknown_peer"] += 1
                continue
            size = message_size(msg)
            if size > limit:
                self.stats["dropped_oversized"] += 1
                log.warning("%s event=raft_message_oversized to=%s type=%s bytes=%d", self.node_id, msg.dst,
                            type(msg).__name__, size)
                continue
            peer.queue.append((msg, size))
            peer.queued_bytes += size
            touched.append(peer)
        for peer in touched:
            bound = self.config.max_queued_while_down if peer.down else self.config.max_queued_messages
            while len(peer.queue) > bound or (peer.queued_bytes > self.config.max_queued_bytes and peer.queue):
                _, size = peer.queue.popleft()
                peer.queued_bytes -= size
                self.stats["dropped_queue_full"] += 1
            if self._can_submit_now(peer):
                self._submit(peer)  # an idle stream: no trip through the send loop
                self.stats["batches_sent_directly"] += 1
            peer.wakeup.set()

    def _can_submit_now(self, peer: _Peer) -> bool:
        """True when `send` may hand this peer's queue to its open stream itself: a free
        send slot, no backoff, and not a lone commit notice (those linger in the loop)."""
        return (
            peer.stream is not None
            and peer.slots.value > 0
            and bool(peer.queue)
            and trio.current_time() >= peer.resume_at
            and not (self.config.linger_s > 0 and _only_commit_notices(peer.queue))
        )

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run the send loops until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for peer in self._peers.values():
                nursery.start_soon(self._send_loop, peer)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def _take_batch(self, peer: _Peer) -> list[Message]:
        limit = self.config.max_rpc_bytes
        batch: list[Message] = []
        total = 0
        queue = peer.queue
        most = self.config.max_messages_per_rpc
        while queue and len(batch) < most:
            msg, size = queue[0]
            if batch and total + size > limit:
                break
            queue.popleft()
            peer.queued_bytes -= size
            total += size
            batch.append(msg)
        return batch

    async def _send_loop(self, peer: _Peer) -> None:
        try:
            with peer.cancel_scope:
                if not peer.cancel_scope.cancel_called:
                    await self._send_from_channel(peer)
        finally:
            peer.loop_done.set()

    async def _send_from_channel(self, peer: _Peer) -> None:
        """Carry the peer's queue over one channel until cancelled."""
        channel = Channel(peer.address, options=_CHANNEL_OPTIONS).open()
        try:
            stub = channel.stub(raft_pb2_grpc.RaftServiceStub)
            async with trio.open_nursery() as calls:
                while True:
                    while not peer.queue:
                        peer.wakeup = trio.Event()
                        await peer.wakeup.wait()
                    if self.config.linger_s > 0 and _only_commit_notices(peer.queue):
                        await self._linger(peer)  # holding no slot: `send` may go meanwhile
                    await peer.slots.acquire()
                    if trio.current_time() < peer.resume_at:
                        await trio.sleep_until(peer.resume_at)
                    if not peer.queue:  # `send` handed it to the stream meanwhile
                        peer.slots.release()
                        continue
                    if self.config.stream and peer.use_stream:
                        if peer.stream is None:
                            peer.stream = _BatchStream(stub)
                            calls.start_soon(self._read_acks, peer, peer.stream)
                        self._submit(peer, acquired=True)
                    else:
                        request, count = self._next_request(peer)
                        calls.start_soon(self._send_batch, peer, stub, request, count)
        finally:
            if peer.stream is not None:
                peer.stream.close()
                peer.stream = None
            channel.close()

    def _next_request(self, peer: _Peer) -> tuple[raft_pb2.MessageBatch, int]:
        """The next numbered batch for `peer`, encoded from the head of its queue."""
        batch = self._take_batch(peer)
        request = raft_pb2.MessageBatch(src=self.node_id, dst=peer.node_id, epoch=self.epoch, seq=peer.next_seq)
        peer.next_seq += 1
        slots = request.messages
        for msg in batch:
            encode_message(msg, slots.add())
        return request, len(batch)

    def _submit(self, peer: _Peer, *, acquired: bool = False) -> None:
        """Put the next batch on the peer's open stream, taking a send slot unless the
        caller holds one (never blocks: grpc's own thread writes it)."""
        assert peer.stream is not None
        if not acquired:
            peer.slots.acquire_nowait()
        request, count = self._next_request(peer)
        peer.stream.submit(request, count)

    async def _send_batch(self, peer: _Peer, stub, request: raft_pb2.MessageBatch, count: int) -> None:
        try:
            ack = await unary(stub.Send, request, timeout=self.config.rpc_timeout_s)
        except RpcError as exc:
            self._on_send_failed(peer, exc.code, count)
            return
        finally:
            peer.slots.release()
        await self._on_ack(peer, ack, count)

    async def _read_acks(self, peer: _Peer, stream: _BatchStream) -> None:
        """Match the acks of one Stream call to its batches, in order, until it fails."""
        code = grpc.StatusCode.DEADLINE_EXCEEDED
        timeout = self.config.rpc_timeout_s
        try:
            # One scope for the whole call; its deadline follows the oldest unanswered batch.
            with trio.CancelScope() as late:
                while True:
                    late.deadline = math.inf
                    while not stream.unanswered:
                        stream.submitted = trio.Event()
                        await stream.submitted.wait()
                    late.deadline = stream.unanswered[0][1] + timeout
                    ack = await anext(stream.replies)
                    count, _ = stream.unanswered.popleft()
                    peer.slots.release()
                    late.deadline = math.inf  # handing the replies to the node may wait
                    await self._on_ack(peer, ack, count)
            # Only a late answer gets here: code stays DEADLINE_EXCEEDED.
        except StopAsyncIteration:
            code = grpc.StatusCode.UNAVAILABLE  # the receiver ended the call
        except RpcError as exc:
            code = exc.code
        finally:
            stream.close()
            if peer.stream is stream:
                peer.stream = None
        self.stats["streams_failed"] += 1
        # A peer that lacks Stream is not down: its next batches go by Send, at once.
        lacks_stream = code == grpc.StatusCode.UNIMPLEMENTED
        if lacks_stream:
            peer.use_stream = False
            log.info("%s event=raft_stream_unsupported peer=%s fallback=send", self.node_id, peer.node_id)
        unanswered = stream.unanswered
        while unanswered:
            count, _ = unanswered.popleft()
            peer.slots.release()
            if lacks_stream:
                self.stats["dropped_send_failed"] += count
            else:
                self._on_send_failed(peer, code, count)

    def _on_send_failed(self, peer: _Peer, code: grpc.StatusCode, count: int) -> None:
        self.stats["send_failures"] += 1
        self.stats["dropped_send_failed"] += count
        peer.failures += 1
        if not peer.down:
            peer.down = True
            log.info("%s event=raft_peer_unreachable peer=%s address=%s code=%s", self.node_id,
                     peer.node_id, peer.address, code.name)
        peer.resume_at = max(peer.resume_at, trio.current_time() + self._backoff_s(peer.failures))

    async def _on_ack(self, peer: _Peer, ack: raft_pb2.BatchAck, count: int) -> None:
        self.stats["rpcs_sent"] += 1  # batches answered, by Send or on a Stream
        self.stats["messages_sent"] += count
        if peer.down:
            log.info("%s event=raft_peer_reachable peer=%s after_failures=%d", self.node_id, peer.node_id,
                     peer.failures)
            peer.down = False
        peer.failures = 0
        if ack.replies:
            replies = decode_batch(ack.replies, peer.node_id, self.node_id, self.stats)
            if replies and self.deliver is not None:
                self.stats["replies_received"] += len(replies)
                await self.deliver(replies)

    async def _linger(self, peer: _Peer) -> None:
        """Give the append that usually follows a commit notice a moment to join it."""
        deadline = trio.current_time() + self.config.linger_s
        while peer.queue and _only_commit_notices(peer.queue):
            peer.wakeup = trio.Event()
            with trio.move_on_at(deadline):
                await peer.wakeup.wait()
            if trio.current_time() >= deadline:
                return
        self.stats["notices_coalesced"] += 1

    def _backoff_s(self, failures: int) -> float:
        cfg = self.config
        base = min(cfg.backoff_max_s, cfg.backoff_initial_s * (2 ** min(failures - 1, 16)))
        return base * self._rng.uniform(0.8, 1.2)


class _BatchStream:
    """One open `Stream` call to a peer: batches go in through a queue that grpc's own
    thread drains; `unanswered` holds (message count, trio time sent) per batch, oldest
    first, which its acks answer in order."""

    __slots__ = ("requests", "replies", "unanswered", "submitted")

    _END = None

    def __init__(self, stub) -> None:
        self.requests: SimpleQueue[raft_pb2.MessageBatch | None] = SimpleQueue()
        self.replies: ServerStream = server_stream(stub.Stream, iter(self.requests.get, self._END), timeout=None)
        self.unanswered: deque[tuple[int, float]] = deque()
        self.submitted = trio.Event()

    def submit(self, request: raft_pb2.MessageBatch, count: int) -> None:
        self.unanswered.append((count, trio.current_time()))
        self.requests.put(request)
        self.submitted.set()

    def close(self) -> None:
        """Cancel the call and end its request iterator (frees grpc's thread); idempotent."""
        self.replies.cancel()
        self.requests.put(self._END)


def _only_commit_notices(queue: deque[tuple[Message, int]]) -> bool:
    """True when every queued message is an AppendEntries without entries (a commit
    notice or a probe): nothing that anyone waits for right now."""
    for msg, _ in queue:
        if type(msg) is not AppendEntries or msg.entries:
            return False
    return True


def decode_batch(pbs, src: str, dst: str, stats: Counter[str]) -> list[Message]:
    """The well-formed messages from `src` to `dst` among `pbs`; the rest counted in stats."""
    good: list[Message] = []
    for pb in pbs:
        try:
            msg = decode_message(pb)
        except WireError as exc:
            stats["rejected_malformed"] += 1
            stats[f"rejected_{exc.reason}"] += 1
            continue
        if msg.dst != dst or msg.src != src:
            stats["rejected_misaddressed"] += 1
            continue
        good.append(msg)
    return good


class _SenderOrder:
    """Receiving side of one sender's numbered batches: which one its node gets next."""

    __slots__ = ("epoch", "next_seq", "advanced")

    def __init__(self, epoch: int, first_seq: int) -> None:
        self.epoch = epoch
        self.next_seq = first_seq
        self.advanced = trio.Event()

    def queued_callback(self, seq: int) -> Callable[[], None]:
        def queued() -> None:
            if seq >= self.next_seq:
                self.next_seq = seq + 1
                self.advanced.set()
                self.advanced = trio.Event()

        return queued


class RaftServicer:
    """The RaftService handler: decode each message of a batch, hand the good ones over.

    `exchange` is the node's `exchange` coroutine: it returns, once the node processed
    the messages, what the node has for the sender; those go back in the reply. It may
    wait when the node is busy, which slows the sender (its one RPC stays in flight)
    instead of queueing without bound.
    """

    def __init__(
        self,
        node_id: str,
        exchange: Callable[..., Awaitable[list[Message]]],
        stats: Counter[str] | None = None,
        config: TransportConfig = TransportConfig(),
    ) -> None:
        self.node_id = node_id
        self.config = config
        self._exchange = exchange
        self._order: dict[tuple[str, int], _SenderOrder] = {}
        self.stats: Counter[str] = Counter() if stats is None else stats

    async def _wait_turn(self, request: raft_pb2.MessageBatch) -> _SenderOrder:
        """Hold a batch that overtook earlier ones of its sender, for a short while."""
        key = (request.src, request.epoch)
        order = self._order.get(key)
        if order is None:
            # A sender (or a run of it) not seen yet: its batches count from 1. After a
            # restart of this node the first batch waits once for ones that never come.
            order = _SenderOrder(request.epoch, 1)
            if len(self._order) >= 256:  # a few peers, a few runs each: forget the oldest
                del self._order[next(iter(self._order))]
            self._order[key] = order
        if request.seq > order.next_seq:
            self.stats["batches_reordered"] += 1
            with trio.move_on_after(self.config.reorder_wait_s) as wait:
                while request.seq > order.next_seq:
                    await order.advanced.wait()
            if wait.cancelled_caught:
                self.stats["batches_gap_skipped"] += 1
        return order

    async def Send(self, request: raft_pb2.MessageBatch, context) -> raft_pb2.BatchAck:  # noqa: N802 - gRPC name
        return await self._handle_batch(request)

    @lockstep
    async def Stream(self, request: raft_pb2.MessageBatch, context) -> raft_pb2.BatchAck:  # noqa: N802 - gRPC name
        """One sender's batches on one call: each handled in turn, each answered in order."""
        return await self._handle_batch(request)

    async def _handle_batch(self, request: raft_pb2.MessageBatch) -> raft_pb2.BatchAck:
        if len(request.messages) > self.config.max_messages_per_rpc:
            self.stats["rejected_batch_too_long"] += 1
            return raft_pb2.BatchAck(rejected=len(request.messages))
        if request.seq >= NUMBER_LIMIT:  # batch numbers count up from 1: never this far
            self.stats["rejected_batch_out_of_range_seq"] += 1
            return raft_pb2.BatchAck(rejected=len(request.messages))
        good = decode_batch(request.messages, request.src, self.node_id, self.stats)
        rejected = len(request.messages) - len(good)
        if rejected:
            log.warning("%s event=raft_batch_rejected_messages src=%s rejected=%d accepted=%d", self.node_id,
                        request.src[:64], rejected, len(good))
        ack = raft_pb2.BatchAck(accepted=len(good), rejected=rejected)
        if good:
            self.stats["messages_received"] += len(good)
            order = await self._wait_turn(request)
            try:
                replies = await self._exchange(good, order.queued_callback(request.seq))
            except NodeStopped:
                raise Unavailable("node stopped") from None
            slots = ack.replies
            for msg in replies:
                encode_message(msg, slots.add())
            self.stats["replies_sent"] += len(replies)
        return ack
