"""A cluster of real `python -m agent.raft` processes on loopback, for tests and bench/.

Owns: choosing free ports, starting, crashing (SIGKILL), pausing (SIGSTOP/SIGCONT) and
restarting node processes, a small blocking client of their KvService that follows
leader hints, and the means of forging what a node reads: gRPC batches built with the
project's own codecs (`send_raw`) and a hard state written into a stopped node's log
(`doctor_hard_state`). Every process is killed when the cluster is closed, whatever
happened.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from agent.affinity import available_cpus
from agent.raft import wal_codec
from agent.raft.messages import Message
from agent.raft.storage import RaftStorage
from agent.raft.types import HardState
from agent.raft.wire import encode_message
from agent.rpc import raft_pb2 as pb
from agent.rpc import raft_pb2_grpc as pb_grpc

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now (bound then released)."""
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def doctor_hard_state(data_dir: Path, hard_state: HardState) -> None:
    """Append a STATE record holding `hard_state` to a stopped node's log, checksum and
    all, as a bug or a careless hand could: the node reads it as its durable hard state."""
    with RaftStorage.open(data_dir) as storage:
        first, last = storage.first_index(), storage.last_index()
        prev_term = storage.term_at(first - 1)
    segment = sorted((data_dir / "log").glob("*.seg"))[-1]
    buf = segment.read_bytes()
    end = 0
    while (record := wal_codec.decode_at(buf, end)) is not None:
        end += record.size
    state = wal_codec.LogState(hard_state, first, prev_term, last)
    with open(segment, "r+b") as file:
        file.seek(end)
        file.write(wal_codec.encode_state(state, write_start=True))
        file.flush()
        os.fsync(file.fileno())


class ClusterError(Exception):
    """The cluster did not reach the state a test waited for."""


@dataclass
class NodeProcess:
    node_id: str
    address: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen | None = None
    stopped: bool = False  # SIGSTOPped

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class RaftCluster:
    """N node processes. Use as a context manager; `start()` launches them all."""

    root: Path
    size: int = 3
    extra_args: tuple[str, ...] = ()
    # Pin node k to one CPU (`--cpu`), round-robin over the CPUs this process may use.
    pin_cpus: bool = False
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = free_ports(self.size)
        for k, port in enumerate(ports, start=1):
            node_id = f"n{k}"
            self.nodes[node_id] = NodeProcess(
                node_id, f"127.0.0.1:{port}", self.root / node_id, self.root / f"{node_id}.log"
            )

    # -- processes ------------------------------------------------------------------
    @property
    def peers_arg(self) -> str:
        return ",".join(f"{n.node_id}={n.address}" for n in self.nodes.values())

    def start(self, *node_ids: str) -> None:
        cpus = available_cpus()
        for node_id in node_ids or tuple(self.nodes):
            node = self.nodes[node_id]
            if node.alive:
                raise ClusterError(f"{node_id} is already running")
            command = [
                sys.executable, "-m", "agent.raft", "--id", node_id, "--data-dir", str(node.data_dir),
                "--listen", node.address, "--peers", self.peers_arg, *self.extra_args,
            ]
            if self.pin_cpus:
                position = list(self.nodes).index(node_id)
                command += ["--cpu", str(cpus[position % len(cpus)])]
            log_file = open(node.log_path, "ab")
            node.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
            log_file.close()
            node.stopped = False

    def kill(self, node_id: str) -> None:
        """Crash a node: SIGKILL, nothing flushed."""
        node = self.nodes[node_id]
        if node.process is not None:
            if node.stopped:
                node.process.send_signal(signal.SIGCONT)
            node.process.kill()
            node.process.wait(timeout=10)
        node.stopped = False
        # The client channel stays open (another thread may be using it); grpc reconnects
        # to the restarted process by itself.

    def set_cpus(self, node_id: str, cpus: set[int]) -> None:
        """Let every thread of a running node use exactly `cpus` (undoes or changes `--cpu`)."""
        task_dir = Path(f"/proc/{self.nodes[node_id].process.pid}/task")
        for thread_id in task_dir.iterdir():
            try:
                os.sched_setaffinity(int(thread_id.name), cpus)
            except ProcessLookupError:
                pass  # the thread ended meanwhile

    def pause(self, node_id: str) -> None:
        self.nodes[node_id].process.send_signal(signal.SIGSTOP)
        self.nodes[node_id].stopped = True

    def resume(self, node_id: str) -> None:
        self.nodes[node_id].process.send_signal(signal.SIGCONT)
        self.nodes[node_id].stopped = False

    def close(self) -> None:
        for node_id in self.nodes:
            try:
                self.kill(node_id)
            except Exception:  # noqa: BLE001 - best effort: every process must go
                pass
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def __enter__(self) -> RaftCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def wait_exit(self, node_id: str, timeout: float = 20.0) -> int:
        """Wait for a node's process to end on its own; its exit status."""
        try:
            return self.nodes[node_id].process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"{node_id} still runs after {timeout}s\n{self.logs()}") from None

    def log_lines(self, node_id: str) -> list[str]:
        return self.nodes[node_id].log_path.read_text(errors="replace").splitlines()

    def logs(self) -> str:
        parts = []
        for node in self.nodes.values():
            if node.log_path.exists():
                text = node.log_path.read_text(errors="replace").splitlines()[-40:]
                parts.append(f"--- {node.node_id} ---\n" + "\n".join(text))
        return "\n".join(parts)

    # -- client ---------------------------------------------------------------------
    def _channel(self, node_id: str) -> grpc.Channel:
        channel = self._channels.get(node_id)
        if channel is None:
            channel = grpc.insecure_channel(
                self.nodes[node_id].address,
                options=[("grpc.initial_reconnect_backoff_ms", 20), ("grpc.max_reconnect_backoff_ms", 200)],
            )
            self._channels[node_id] = channel
        return channel

    def stub(self, node_id: str) -> pb_grpc.KvServiceStub:
        return pb_grpc.KvServiceStub(self._channel(node_id))

    def send_raw(self, node_id: str, messages: list[Message] | list[pb.RaftMessage], src: str | None = None,
                 seq: int = 0) -> pb.BatchAck:
        """One RaftService.Send to `node_id`, as any peer (or forger) could send it: core
        messages go through the project's own encoder, protobufs as they are."""
        slots = [m if isinstance(m, pb.RaftMessage) else encode_message(m) for m in messages]
        batch = pb.MessageBatch(src=src if src is not None else slots[0].src, dst=node_id, messages=slots, seq=seq)
        send = self._channel(node_id).unary_unary("/agent.rpc.raft.RaftService/Send",
                                   request_serializer=pb.MessageBatch.SerializeToString,
                                   response_deserializer=pb.BatchAck.FromString)
        return send(batch, timeout=5)

    def status(self, node_id: str, timeout: float = 1.0) -> pb.StatusReply | None:
        try:
            return self.stub(node_id).Status(pb.StatusRequest(), timeout=timeout)
        except grpc.RpcError:
            return None

    def wait_ready(self, *node_ids: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for node_id in node_ids or tuple(self.nodes):
            while self.status(node_id, timeout=0.5) is None:
                if time.monotonic() > deadline:
                    raise ClusterError(f"{node_id} did not start\n{self.logs()}")
                time.sleep(0.05)

    def leader(self, among: tuple[str, ...] | None = None) -> str | None:
        """The leader every answering node of `among` agrees on (and that says it leads)."""
        seen: set[str] = set()
        for node_id in among or tuple(self.nodes):
            node = self.nodes[node_id]
            if not node.alive or node.stopped:
                continue
            st = self.status(node_id, timeout=0.5)
            if st is None:
                continue
            if st.role == "leader":
                seen.add(node_id)
        return seen.pop() if len(seen) == 1 else None

    def wait_leader(self, among: tuple[str, ...] | None = None, timeout: float = 15.0,
                    not_in: tuple[str, ...] = ()) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader(among)
            if leader is not None and leader not in not_in:
                return leader
            time.sleep(0.02)
        raise ClusterError(f"no single leader among {among or tuple(self.nodes)}\n{self.logs()}")

    def live_nodes(self) -> list[str]:
        return [n.node_id for n in self.nodes.values() if n.alive and not n.stopped]

    def put(self, client_id: str, seq: int, key: str, value: str, timeout: float = 10.0,
            start: str | None = None) -> pb.PutReply:
        """Write through whichever node leads, following hints and retrying with the same
        (client_id, seq); returns the OK reply or raises ClusterError."""
        deadline = time.monotonic() + timeout
        candidates = self.live_nodes()
        target = start or (candidates[0] if candidates else None)
        last = None
        while time.monotonic() < deadline:
            if target is None or target not in self.live_nodes():
                target = self.live_nodes()[0]
            try:
                last = self.stub(target).Put(
                    pb.PutRequest(client_id=client_id, seq=seq, key=key, value=value, timeout_s=1.0), timeout=2.0
                )
            except grpc.RpcError as exc:
                last = exc
                target = self._next(target)
                time.sleep(0.01)
                continue
            if last.status == pb.KV_OK:
                return last
            if last.status == pb.KV_ERROR:
                raise ClusterError(f"put {key} refused: {last.error}")
            hint = last.leader_id
            target = hint if hint and hint in self.live_nodes() and hint != target else self._next(target)
            time.sleep(0.005)
        raise ClusterError(f"put {key} not acknowledged in {timeout}s: {last}\n{self.logs()}")

    def get(self, key: str, timeout: float = 10.0, start: str | None = None) -> str | None:
        """Linearizable read through any live node; None when the key is absent."""
        deadline = time.monotonic() + timeout
        target = start or self.live_nodes()[0]
        last = None
        while time.monotonic() < deadline:
            if target not in self.live_nodes():
                target = self.live_nodes()[0]
            try:
                last = self.stub(target).Get(pb.GetRequest(key=key, timeout_s=1.0), timeout=2.0)
            except grpc.RpcError as exc:
                last = exc
                target = self._next(target)
                time.sleep(0.01)
                continue
            if last.status == pb.KV_OK:
                return last.value if last.found else None
            target = self._next(target)
            time.sleep(0.01)
        raise ClusterError(f"get {key} failed for {timeout}s: {last}\n{self.logs()}")

    def local_get(self, node_id: str, key: str) -> str | None:
        reply = self.stub(node_id).Get(pb.GetRequest(key=key, local=True), timeout=2.0)
        return reply.value if reply.found else None

    def _next(self, node_id: str) -> str:
        live = self.live_nodes()
        if node_id not in live:
            return live[0]
        return live[(live.index(node_id) + 1) % len(live)]

    def wait_applied(self, node_id: str, index: int, timeout: float = 15.0) -> pb.StatusReply:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status(node_id, timeout=0.5)
            if st is not None and st.applied_index >= index:
                return st
            time.sleep(0.05)
        raise ClusterError(f"{node_id} did not apply {index}: {self.status(node_id)}\n{self.logs()}")

