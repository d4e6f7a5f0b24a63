"""Run one Raft node with the key-value state machine: `python -m agent.raft ...`.

Owns: the command line, wiring storage + core driver + transport + gRPC server in one
Trio nursery, and `KvServicer`, the small client service (Put/Get/Status, plus Bench,
Transfer and ChangeMember) that the process tests and the benchmark use.

    python -m agent.raft --id n1 --data-dir /tmp/n1 --listen 127.0.0.1:7001 \
        --peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003

Rules: a brand-new data directory is bootstrapped with the voters named by --peers
(unless --join); a used one always recovers what it holds. SIGTERM/SIGINT stop the node
cleanly (exit 0); SIGKILL is what the tests use to crash it. A data directory the node
cannot run from (damaged, unusable, or open in another process) is named in one log
line and the process exits with EXIT_STORAGE_UNUSABLE, before serving anything; a node
that stops while running (its storage failed) has said why in one line and the
process exits with EXIT_NODE_STOPPED, never staying up half alive. Client
errors travel as a KvStatus in the reply, with the leader's id and address when this
node is not the leader.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import uuid
from dataclasses import replace

import trio

from agent.affinity import parse_cpu, pin_to_cpu
from agent.grpcbridge import TrioGrpcServer
from agent.grpcbridge.errors import InvalidArgument
from agent.logsetup import configure_logging
from agent.raft.errors import NodeStopped, NotLeader, RaftError, TransferInProgress
from agent.raft.kv import KvError, KvStore, encode_put
from agent.raft.config import RaftConfig
from agent.raft.node import NodeConfig, RaftNode, bootstrap_storage
from agent.raft.storage import RaftStorage, StorageConfig, StorageError
from agent.raft.transport import RaftServicer, RaftTransport, TransportConfig
from agent.rpc import raft_pb2 as pb
from agent.rpc import raft_pb2_grpc as pb_grpc

log = logging.getLogger("agent.raft.main")

# The timeout a client request gets when it does not name one.
DEFAULT_REQUEST_TIMEOUT_S = 2.0
# Keys the Bench RPC cycles over, so a long benchmark does not grow the store without bound.
BENCH_KEYSPACE = 10_000
# The data directory cannot be used: nothing was served, restarting will not help.
EXIT_STORAGE_UNUSABLE = 3
# The node stopped while running (its storage failed, or a bug): see its last log line.
EXIT_NODE_STOPPED = 4


def parse_peers(text: str) -> dict[str, str]:
    """'n1=127.0.0.1:7001,n2=...' -> {'n1': '127.0.0.1:7001', ...}."""
    peers: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        node_id, sep, address = item.partition("=")
        if not sep or not node_id or not address:
            raise ValueError(f"bad peer {item!r}: expected id=host:port")
        if node_id in peers:
            raise ValueError(f"peer {node_id} named twice")
        peers[node_id] = address
    return peers


class KvServicer:
    """The client service of a test/bench node: the KvStore behind Raft."""

    def __init__(self, node: RaftNode, store: KvStore, transport: RaftTransport, addresses: dict[str, str]) -> None:
        self.node = node
        self.addresses = addresses
        self.store = store
        self.transport = transport
        self._bench_running = False

    def _leader(self) -> tuple[str, str]:
        leader = self.node.leader_id or ""
        return leader, self.addresses.get(leader, "")

    @staticmethod
    def _timeout(value: float) -> float:
        return value if value > 0 else DEFAULT_REQUEST_TIMEOUT_S

    async def Put(self, request: pb.PutRequest, context) -> pb.PutReply:  # noqa: N802 - gRPC name
        if not request.client_id or request.seq == 0:
            raise InvalidArgument("client_id and seq (from 1) are required")
        command = encode_put(request.client_id, request.seq, request.key, request.value)
        reply = pb.PutReply()
        if not self.node.is_leader():
            reply.status = pb.KV_NOT_LEADER
            reply.not_proposed = True
            reply.leader_id, reply.leader_address = self._leader()
            return reply
        with trio.move_on_after(self._timeout(request.timeout_s)) as scope:
            try:
                result = await self.node.propose(command)
            except (NotLeader, TransferInProgress):
                reply.status = pb.KV_NOT_LEADER
            except RaftError as exc:
                reply.status = pb.KV_ERROR
                reply.error = type(exc).__name__
            else:
                if isinstance(result, KvError):
                    reply.status = pb.KV_ERROR
                    reply.error = result.reason
                else:
                    reply.status = pb.KV_OK
                    reply.index = self.store.applied_index
        if scope.cancelled_caught:
            reply.status = pb.KV_TIMEOUT
        if reply.status != pb.KV_OK:
            reply.leader_id, reply.leader_address = self._leader()
        return reply

    async def Get(self, request: pb.GetRequest, context) -> pb.GetReply:  # noqa: N802
        reply = pb.GetReply()
        key = request.key
        if request.local:
            value = self.store.get(key)
        else:
            value = None
            with trio.move_on_after(self._timeout(request.timeout_s)) as scope:
                try:
                    value = await self.node.read(lambda store: store.get(key))
                except NotLeader:
                    reply.status = pb.KV_NOT_LEADER
                except RaftError as exc:
                    reply.status = pb.KV_ERROR
                    reply.error = type(exc).__name__
            if scope.cancelled_caught:
                reply.status = pb.KV_TIMEOUT
        if reply.status == pb.KV_OK:
            reply.found = value is not None
            reply.value = value or ""
        else:
            reply.leader_id, reply.leader_address = self._leader()
        return reply

    async def Status(self, request: pb.StatusRequest, context) -> pb.StatusReply:  # noqa: N802
        status = self.node.status()
        counters = {k: int(v) for k, v in status["counters"].items() if v >= 0}
        counters.update({f"transport_{k}": int(v) for k, v in self.transport.stats.items() if v >= 0})
        counters["leader_changes"] = self.node.leader_changes
        return pb.StatusReply(
            node_id=status["node_id"],
            term=status["term"],
            role=status["role"],
            leader_id=status["leader_id"] or "",
            commit_index=status["commit_index"],
            applied_index=status["applied_index"],
            last_index=status["last_index"],
            first_index=status["first_index"],
            snapshot_index=status["snapshot_index"],
            counters=counters,
            keys=len(self.store.data),
            voters=status["voters"],
            learners=status["learners"],
        )

    async def Bench(self, request: pb.BenchRequest, context) -> pb.BenchReply:  # noqa: N802
        """Propose `count` puts from inside this (leader) process, `window` callers at once."""
        if not self.node.is_leader():
            leader, _ = self._leader()
            return pb.BenchReply(status=pb.KV_NOT_LEADER, leader_id=leader)
        if self._bench_running:
            raise InvalidArgument("a benchmark is already running")
        count = request.count
        window = max(1, request.window)
        per_call = max(1, request.commands_per_call)
        value = "v" * request.value_bytes
        prefix = request.key_prefix or "bench-"
        run_id = uuid.uuid4().hex[:8]
        next_number = 0
        committed = 0
        failed = 0
        latencies: list[float] = []

        async def caller(worker: int) -> None:
            nonlocal next_number, committed, failed
            client_id = f"bench-{run_id}-{worker}"
            seq = 0
            while next_number < count:
                take = min(per_call, count - next_number)
                first = next_number
                next_number += take
                commands = []
                for number in range(first, first + take):
                    seq += 1
                    commands.append(encode_put(client_id, seq, f"{prefix}{number % BENCH_KEYSPACE}", value))
                started = trio.current_time()
                try:
                    results = await self.node.propose_many(commands)
                    latencies.append(trio.current_time() - started)
                except RaftError:
                    failed += take
                    return
                succeeded = results.count(None)  # a put's result is None, or a KvError
                committed += succeeded
                failed += len(results) - succeeded

        self._bench_running = True
        try:
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                for worker in range(window):
                    nursery.start_soon(caller, worker)
            elapsed = trio.current_time() - start
        finally:
            self._bench_running = False
        latencies.sort()
        reply = pb.BenchReply(status=pb.KV_OK, leader_id=self.node.id, committed=committed, elapsed_s=elapsed,
                              failed=failed)
        if latencies:
            reply.latency_p50_ms = 1000 * latencies[(len(latencies) - 1) // 2]
            reply.latency_p99_ms = 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        return reply

    async def Transfer(self, request: pb.TransferRequest, context) -> pb.TransferReply:  # noqa: N802
        try:
            done = await self.node.transfer_leadership(request.target)
        except NotLeader:
            return pb.TransferReply(status=pb.KV_NOT_LEADER, leader_id=self._leader()[0])
        except RaftError as exc:
            return pb.TransferReply(status=pb.KV_ERROR, error=str(exc))
        if not done:
            return pb.TransferReply(status=pb.KV_TIMEOUT, leader_id=self._leader()[0])
        return pb.TransferReply(status=pb.KV_OK, leader_id=request.target)

    async def ChangeMember(self, request: pb.MemberRequest, context) -> pb.MemberReply:  # noqa: N802
        actions = {"add_learner": self.node.add_learner, "promote": self.node.promote, "remove": self.node.remove}
        action = actions.get(request.action)
        if action is None or not request.node_id:
            raise InvalidArgument(f"unknown action {request.action!r} or empty node_id")
        with trio.move_on_after(DEFAULT_REQUEST_TIMEOUT_S) as scope:
            try:
                index = await action(request.node_id)
            except NotLeader:
                return pb.MemberReply(status=pb.KV_NOT_LEADER, leader_id=self._leader()[0])
            except RaftError as exc:
                return pb.MemberReply(status=pb.KV_ERROR, error=f"{type(exc).__name__}: {exc}")
        if scope.cancelled_caught:
            return pb.MemberReply(status=pb.KV_TIMEOUT, leader_id=self._leader()[0])
        return pb.MemberReply(status=pb.KV_OK, leader_id=self._leader()[0], index=index)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent.raft", description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", required=True, help="this node's id (must appear in --peers)")
    parser.add_argument("--data-dir", required=True, help="directory of this node's Raft storage")
    parser.add_argument("--listen", required=True, help="host:port for RaftService and KvService")
    parser.add_argument("--peers", required=True, help="id=host:port,... of every node, this one included")
    parser.add_argument("--join", action="store_true", help="do not bootstrap: wait to be added as a learner")
    parser.add_argument("--tick-ms", type=int, default=RaftConfig().tick_interval_ms)
    parser.add_argument("--election-ticks", type=int, default=RaftConfig().election_timeout_ticks)
    parser.add_argument("--heartbeat-ticks", type=int, default=RaftConfig().heartbeat_interval_ticks)
    parser.add_argument("--snapshot-every", type=int, default=NodeConfig().snapshot_every_entries,
                        help="entries applied between state-machine snapshots")
    parser.add_argument("--retain", type=int, default=NodeConfig().compaction_retain_entries,
                        help="entries kept behind a snapshot when compacting")
    parser.add_argument("--no-pack", action="store_true", help="one log entry per command (no batch entries)")
    parser.add_argument("--cpu", type=parse_cpu, default=None,
                        help="run every thread of this process on this one CPU (see agent/affinity.py)")
    parser.add_argument("--log-level", default="info")
    return parser


async def serve(args: argparse.Namespace) -> int:
    """Run the node until a signal or a failure stops it; the process's exit status."""
    peers = parse_peers(args.peers)
    if args.id not in peers:
        raise SystemExit(f"--id {args.id} is not among --peers")
    raft_config = replace(
        RaftConfig(),
        tick_interval_ms=args.tick_ms,
        election_timeout_ticks=args.election_ticks,
        heartbeat_interval_ticks=args.heartbeat_ticks,
    )
    node_config = replace(
        NodeConfig(), snapshot_every_entries=args.snapshot_every, compaction_retain_entries=args.retain,
        pack_commands=not args.no_pack,
    )
    store = KvStore()

    def open_storage() -> RaftStorage:
        storage = RaftStorage.open(args.data_dir, StorageConfig(node_id=args.id))
        if not args.join and bootstrap_storage(storage, sorted(peers), store.snapshot()):
            log.info("%s event=raft_bootstrapped voters=%s", args.id, ",".join(sorted(peers)))
        return storage

    try:  # recovery reads the whole log: not on the Trio thread
        storage = await trio.to_thread.run_sync(open_storage)
    except StorageError as exc:
        log.error("%s event=raft_storage_unusable error=%s: %s", args.id, type(exc).__name__, exc)
        return EXIT_STORAGE_UNUSABLE
    try:
        transport_config = TransportConfig()
        transport = RaftTransport(args.id, peers, transport_config)
        node = RaftNode(args.id, storage, store, transport.send, raft_config, node_config)
        transport.deliver = node.receive
        server = TrioGrpcServer(node_id=args.id)
        servicer = RaftServicer(args.id, node.exchange, transport.stats, transport_config)
        server.add_service(pb_grpc.add_RaftServiceServicer_to_server, servicer)
        server.add_service(pb_grpc.add_KvServiceServicer_to_server, KvServicer(node, store, transport, peers))
        stopped = False
        try:
            await _serve_node(args, node, transport, server)
        except* NodeStopped:
            stopped = True  # the node logged why, in one line
    finally:
        storage.close()
    return EXIT_NODE_STOPPED if stopped else 0


async def _serve_node(args: argparse.Namespace, node: RaftNode, transport: RaftTransport,
                      server: TrioGrpcServer) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run)
        await nursery.start(node.run)
        port = await nursery.start(server.run, args.listen)
        log.info("%s event=raft_process_ready listen=%s port=%d", args.id, args.listen, port)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("%s event=raft_process_stopping signal=%d", args.id, signum)
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cpu is not None:
        pin_to_cpu(args.cpu)
    configure_logging(args.id, args.log_level)
    return trio.run(serve, args)


if __name__ == "__main__":
    sys.exit(main())
