"""Trio driver: runs one GossipCore over real UDP (probes, gossip) and TCP (push-pull).

Owns: the UDP and TCP sockets on one port, the clock, the randomness, the keyring and
the event channel. Rules: one trio thread owns the core and every call into it is
synchronous, so no two calls interleave; after each call the output is flushed at once
(UDP sends are non-blocking; a full socket buffer drops and counts). Anything that
arrives from outside is checked (size, seal, codec) and dropped and counted when bad,
never raised; at most max_inbound_streams push-pulls are served at once, and a
connection past them is closed and counted, so a flood of them cannot exhaust memory.
Before timers run, datagrams already waiting in the socket are handled,
so a process resumed after a stall first reads the acks it missed. Log lines start
with the node name and are key=value.
"""

from __future__ import annotations

import collections
import errno
import logging
import random
import socket
import struct
import trio

from . import codec
from .config import GossipConfig
from .core import GossipCore, Output, StreamRequest
from .errors import CodecError, GossipConfigError, KeyringError
from .events import MemberEvent
from .keyring import Keyring
from .messages import Addr, MemberRecord, PushPull

log = logging.getLogger("agent.gossip")

UDP_AAD = b"agentd-gossip-udp-1"
TCP_AAD = b"agentd-gossip-tcp-1"
_FRAME = struct.Struct(">I")
_RECV_BATCH = 256


class GossipNode:
    """One cluster member. Start with `await nursery.start(node.run)`; read `node.events`."""

    def __init__(
        self,
        config: GossipConfig,
        name: str,
        bind: Addr,
        *,
        seeds: list[Addr] | tuple[Addr, ...] = (),
        meta: bytes = b"",
        keyring: Keyring | None = None,
        advertise: Addr | None = None,
        rng: random.Random | None = None,
        event_buffer: int = 10_000,
    ) -> None:
        host = (advertise or bind)[0]
        if not codec.is_member_host(host):
            raise GossipConfigError(
                f"{name}: peers accept only an IP address they can reach, not {host!r}: bind to one or advertise one"
            )
        self.config = config
        self.name = name
        self.bind = bind
        self.seeds = tuple(seeds)
        self.keyring = keyring
        self._advertise = advertise
        self._meta = meta
        self._rng = rng or random.Random()
        self._events_send, self.events = trio.open_memory_channel[MemberEvent](event_buffer)
        self.counters: collections.Counter[str] = collections.Counter()
        self._codec = codec.Codec(config.max_packet_bytes, config.max_meta_bytes, config.max_stream_bytes)
        self._udp: socket.socket | None = None
        self.core: GossipCore | None = None
        self._wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.addr: Addr | None = None
        self.stopped = trio.Event()
        self._inbound_streams = 0

    # ------------------------------------------------------------ public API

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Bind, join the seeds (retrying in the background) and run until cancelled or left."""
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        udp.bind(self.bind)
        port = udp.getsockname()[1]
        listener = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            await listener.bind((self.bind[0], port))
            listener.listen(128)
        except BaseException:
            udp.close()
            listener.close()
            raise
        self._udp = udp
        self.addr = self._advertise or (self.bind[0], port)
        now = trio.current_time()
        self.core = GossipCore(self.config, self.name, self.addr, self._rng, now_s=now, meta=self._meta)
        self.core.join(now, self.seeds)
        log.info("%s event=start addr=%s:%d seeds=%d encrypted=%s", self.name, *self.addr, len(self.seeds),
                 self.keyring is not None)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._flush()
                nursery.start_soon(self._receive_loop)
                nursery.start_soon(self._timer_loop)
                nursery.start_soon(self._serve_tcp, listener)
                task_status.started(self)
        finally:
            udp.close()
            listener.close()
            self._events_send.close()
            self.stopped.set()

    async def leave(self) -> None:
        """Graceful leave: announce it, keep gossiping for leave_propagate_s, then stop `run`."""
        core = self._require_core()
        core.leave(trio.current_time())
        self._flush()
        await trio.sleep(self.config.leave_propagate_s)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        await self.stopped.wait()

    def stop(self) -> None:
        """Stop without telling anyone (peers will detect us as failed)."""
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def set_meta(self, meta: bytes) -> None:
        self._require_core().set_meta(trio.current_time(), meta)
        self._flush()

    def members(self) -> list[MemberRecord]:
        return self._require_core().members()

    def stats(self) -> dict[str, int]:
        """Traffic and drop counters (bytes are UDP/TCP payload, without IP headers) and core counters."""
        out = dict(self.counters)
        if self.core is not None:
            out.update({f"core_{k}": v for k, v in self.core.counters.items()})
            out["awareness"] = self.core.awareness_multiplier
            out["incarnation"] = self.core.incarnation
        return out

    # ------------------------------------------------------------ internals

    def _require_core(self) -> GossipCore:
        if self.core is None:
            raise RuntimeError("node is not running")
        return self.core

    def _flush(self) -> None:
        core = self.core
        if core is None:
            return
        out: Output = core.take_output()
        limit = self.config.max_packet_bytes - (codec.SEAL_OVERHEAD_BYTES if self.keyring else 0)
        for pkt in out.packets:
            data = codec.encode_packet(pkt.messages, limit)
            if self.keyring is not None:
                data = self.keyring.seal(data, UDP_AAD)
            try:
                self._udp.sendto(data, pkt.addr)
                self.counters["udp_out_packets"] += 1
                self.counters["udp_out_bytes"] += len(data)
            except (BlockingIOError, InterruptedError):
                self.counters["udp_send_dropped"] += 1
            except OSError as exc:
                self.counters["udp_send_error"] += 1
                log.debug("%s event=send_error to=%s err=%s", self.name, pkt.addr, exc.errno)
        for req in out.streams:
            self._nursery.start_soon(self._push_pull_client, req)
        for ev in out.events:
            log.info("%s event=member_%s member=%s inc=%d", self.name, ev.kind.value, ev.name, ev.incarnation)
            try:
                self._events_send.send_nowait(ev)
            except trio.WouldBlock:
                self.counters["events_dropped"] += 1
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass
        self._wakeup.set()

    def _drain_udp(self) -> None:
        """Handle every datagram already waiting, without blocking."""
        core = self._require_core()
        for _ in range(_RECV_BATCH):
            try:
                data, src = self._udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ECONNREFUSED left by an earlier send to a dead peer
                self.counters["udp_recv_error"] += 1
                if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue
                log.warning("%s event=recv_error errno=%s", self.name, exc.errno)
                break
            self.counters["udp_in_packets"] += 1
            self.counters["udp_in_bytes"] += len(data)
            msgs = self._decode_datagram(data)
            if msgs is not None:
                core.handle_packet(trio.current_time(), (src[0], src[1]), msgs)
        self._flush()

    def _decode_datagram(self, data: bytes):
        if len(data) > self.config.max_packet_bytes:
            self.counters["drop_oversized"] += 1
            return None
        if self.keyring is not None:
            try:
                data = self.keyring.open(data, UDP_AAD)
            except KeyringError as e:
                self.counters[f"drop_keyring_{e.reason}"] += 1
                return None
        try:
            decoded = self._codec.decode_packet(data)
        except CodecError as e:
            self.counters[f"drop_{e.reason}"] += 1
            return None
        if decoded.unknown_types:
            self.counters["drop_unknown_type"] += decoded.unknown_types
        if decoded.out_of_range:
            self._count_out_of_range(decoded.out_of_range, "packet")
        return decoded.messages

    def _count_out_of_range(self, n: int, where: str) -> None:
        self.counters["drop_out_of_range"] += n
        log.info("%s event=out_of_range_dropped where=%s count=%d", self.name, where, n)

    async def _receive_loop(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self._udp)
            self._drain_udp()

    async def _timer_loop(self) -> None:
        core = self._require_core()
        while True:
            with trio.move_on_at(core.next_deadline_s()):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            now = trio.current_time()
            if now >= core.next_deadline_s():
                self._drain_udp()  # after a stall, read what arrived before judging timeouts
                core.tick(trio.current_time())
                self._flush()

    # ------------------------------------------------------------ push-pull over TCP

    def _seal_stream(self, payload: bytes) -> bytes:
        return self.keyring.seal(payload, TCP_AAD) if self.keyring is not None else payload

    def _open_stream(self, data: bytes) -> PushPull:
        if self.keyring is not None:
            data = self.keyring.open(data, TCP_AAD)
        decoded = self._codec.decode_stream(data)
        if decoded.out_of_range:
            self._count_out_of_range(decoded.out_of_range, "stream")
        return decoded.state

    async def _read_frame(self, stream: trio.SocketStream) -> bytes:
        header = await _receive_exactly(stream, _FRAME.size)
        (length,) = _FRAME.unpack(header)
        if length > self.config.max_stream_bytes + codec.SEAL_OVERHEAD_BYTES:
            raise CodecError("oversized", f"stream frame of {length} B")
        return await _receive_exactly(stream, length)

    async def _write_frame(self, stream: trio.SocketStream, payload: bytes) -> None:
        await stream.send_all(_FRAME.pack(len(payload)) + payload)

    async def _push_pull_client(self, req: StreamRequest) -> None:
        core = self._require_core()
        reply: PushPull | None = None
        with trio.move_on_after(self.config.stream_timeout_s):
            try:
                stream = await trio.open_tcp_stream(*req.addr)
                async with stream:
                    payload = self._seal_stream(codec.encode_stream(req.state))
                    await self._write_frame(stream, payload)
                    self.counters["tcp_out_bytes"] += len(payload) + _FRAME.size
                    data = await self._read_frame(stream)
                    self.counters["tcp_in_bytes"] += len(data) + _FRAME.size
                    reply = self._open_stream(data)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError) as exc:
                self.counters["push_pull_io_error"] += 1
                log.debug("%s event=push_pull_failed peer=%s:%d err=%r", self.name, *req.addr, exc)
            except (CodecError, KeyringError) as exc:
                self.counters[f"drop_stream_{exc.reason}"] += 1
                log.info("%s event=push_pull_rejected peer=%s:%d reason=%s", self.name, *req.addr, exc.reason)
        if reply is None:
            self.counters["push_pull_failed"] += 1
        core.push_pull_done(trio.current_time(), req.request_id, reply)
        self._flush()

    async def _serve_tcp(self, listener) -> None:
        while True:
            try:
                conn, _ = await listener.accept()
            except OSError as exc:  # e.g. EMFILE under a connection flood: back off, keep serving
                self.counters["tcp_accept_error"] += 1
                log.warning("%s event=accept_error errno=%s", self.name, exc.errno)
                await trio.sleep(0.1)
                continue
            if self._inbound_streams >= self.config.max_inbound_streams:
                self.counters["tcp_refused_busy"] += 1  # more push-pulls at once than members make
                conn.close()
                continue
            self._inbound_streams += 1
            self._nursery.start_soon(self._serve_one, trio.SocketStream(conn))

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        try:
            await self._serve_push_pull(stream)
        finally:
            self._inbound_streams -= 1

    async def _serve_push_pull(self, stream: trio.SocketStream) -> None:
        core = self._require_core()
        async with stream:
            with trio.move_on_after(self.config.stream_timeout_s):
                try:
                    data = await self._read_frame(stream)
                    self.counters["tcp_in_bytes"] += len(data) + _FRAME.size
                    remote = self._open_stream(data)
                    reply = core.handle_push_pull(trio.current_time(), remote)
                    self._flush()
                    payload = self._seal_stream(codec.encode_stream(reply))
                    await self._write_frame(stream, payload)
                    self.counters["tcp_out_bytes"] += len(payload) + _FRAME.size
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
                    self.counters["push_pull_io_error"] += 1
                except (CodecError, KeyringError) as exc:
                    self.counters[f"drop_stream_{exc.reason}"] += 1


async def _receive_exactly(stream: trio.SocketStream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(min(65536, n - len(buf)))
        if not chunk:
            raise EOFError("peer closed the stream")
        buf += chunk
    return bytes(buf)
