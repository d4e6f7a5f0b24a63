"""Raft across real `python -m agent.raft` processes over real gRPC on loopback.

Faults are real: SIGKILL (crash, nothing flushed), SIGSTOP/SIGCONT (a paused leader that
comes back after being deposed). Every acknowledged write must survive; a deposed
leader must never answer from stale state.
"""

from __future__ import annotations

import os
import threading
import time

import grpc
import pytest

import subprocess
from contextlib import contextmanager

from agent.raft.__main__ import EXIT_NODE_STOPPED, EXIT_STORAGE_UNUSABLE
from agent.raft.messages import AppendEntries, Heartbeat
from agent.raft.types import NUMBER_LIMIT, Entry, EntryKind, HardState
from agent.rpc import raft_pb2 as pb
from tests.integration.raft_cluster import RaftCluster, doctor_hard_state

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cluster3(tmp_path):
    # Pinned as several nodes on one machine should run (agent/affinity.py).
    with RaftCluster(tmp_path, 3, pin_cpus=True) as cluster:
        cluster.start()
        cluster.wait_ready()
        yield cluster


def test_each_pinned_node_runs_all_its_threads_on_one_cpu(cluster3):
    cpus = sorted(os.sched_getaffinity(0))
    for position, node in enumerate(cluster3.nodes.values()):
        expected = {cpus[position % len(cpus)]}
        threads = os.listdir(f"/proc/{node.process.pid}/task")
        assert len(threads) > 3  # grpc's threads are there too
        for thread_id in threads:
            try:
                assert os.sched_getaffinity(int(thread_id)) == expected, (node.node_id, thread_id)
            except ProcessLookupError:
                pass  # a short-lived thread ended meanwhile


class Writer:
    """A client writing key w<seq> = value<seq> one at a time in a thread, recording every
    acknowledged write, until stopped."""

    def __init__(self, cluster: RaftCluster, client_id: str) -> None:
        self.cluster = cluster
        self.client_id = client_id
        self.acked: dict[str, str] = {}
        self.errors: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            seq += 1
            key, value = f"w{seq}", f"value{seq}"
            try:
                self.cluster.put(self.client_id, seq, key, value, timeout=10)
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
                return
            self.acked[key] = value

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=20)

    def wait_acked(self, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"only {len(self.acked)} writes acknowledged"
            time.sleep(0.01)


def assert_all_readable(cluster: RaftCluster, expected: dict[str, str]) -> None:
    for key, value in expected.items():
        assert cluster.get(key) == value, key


def test_three_processes_elect_replicate_read_and_redirect(cluster3):
    leader = cluster3.wait_leader()
    for seq in range(1, 31):
        cluster3.put("client", seq, f"k{seq}", f"v{seq}", start=leader)
    # Linearizable reads through every node, followers included (ReadIndex).
    for node_id in cluster3.nodes:
        reply = cluster3.stub(node_id).Get(pb.GetRequest(key="k30"), timeout=5)
        assert (reply.status, reply.value) == (pb.KV_OK, "v30")
    follower = next(n for n in cluster3.nodes if n != leader)
    reply = cluster3.stub(follower).Put(pb.PutRequest(client_id="other", seq=1, key="x", value="y"), timeout=5)
    assert reply.status == pb.KV_NOT_LEADER
    assert (reply.leader_id, reply.leader_address) == (leader, cluster3.nodes[leader].address)
    # A retried write (same session and seq) is applied once.
    cluster3.put("client", 30, "k30", "replayed", start=leader)
    assert cluster3.get("k30") == "v30"


def test_sigkill_of_two_successive_leaders_of_five_keeps_every_acknowledged_write(tmp_path):
    with RaftCluster(tmp_path, 5) as cluster:
        cluster.start()
        cluster.wait_ready()
        first = cluster.wait_leader()
        with Writer(cluster, "writer") as writer:
            writer.wait_acked(20)
            cluster.kill(first)
            second = cluster.wait_leader(not_in=(first,))
            writer.wait_acked(len(writer.acked) + 20)
            cluster.kill(second)
            third = cluster.wait_leader(not_in=(first, second))
            writer.wait_acked(len(writer.acked) + 20)
        assert not writer.errors, writer.errors
        assert third not in (first, second)
        assert_all_readable(cluster, writer.acked)
        # Both crashed nodes come back from their disks and catch up.
        cluster.start(first, second)
        cluster.wait_ready(first, second)
        commit = cluster.status(third).commit_index
        for node_id in (first, second):
            cluster.wait_applied(node_id, commit)
            last_key = f"w{len(writer.acked)}"
            assert cluster.local_get(node_id, last_key) == writer.acked[last_key]


def _ask_old_leader(cluster: RaftCluster, old: str) -> tuple[list, object]:
    """Start 5 reads of k and one write at `old` (stopped: they wait in its socket)."""
    stub = cluster.stub(old)
    reads = [stub.Get.future(pb.GetRequest(key="k", timeout_s=2), timeout=5) for _ in range(5)]
    write = stub.Put.future(pb.PutRequest(client_id="d", seq=1, key="stale-write", value="x", timeout_s=2),
                            timeout=5)
    time.sleep(0.2)
    return reads, write


def _assert_never_stale(reads, write) -> None:
    for future in reads:
        reply = future.result()
        # Refused, or (once it follows the new leader) answered through ReadIndex with the
        # new value: never "before".
        assert reply.status in (pb.KV_NOT_LEADER, pb.KV_TIMEOUT) or reply.value == "after", reply
    assert write.result().status in (pb.KV_NOT_LEADER, pb.KV_TIMEOUT)


def test_paused_leader_is_deposed_and_never_answers_from_stale_state(cluster3):
    old = cluster3.wait_leader()
    others = tuple(n for n in cluster3.nodes if n != old)
    cluster3.put("c", 1, "k", "before", start=old)
    cluster3.pause(old)
    new = cluster3.wait_leader(among=others)
    cluster3.put("c", 2, "k", "after", start=new)

    # 1. The old leader resumes while nobody else can answer it: it still believes it
    #    leads, with "before" in its state. It must not serve that (ReadIndex needs a
    #    quorum), and CheckQuorum deposes it.
    reads, write = _ask_old_leader(cluster3, old)
    for node_id in others:
        cluster3.pause(node_id)
    cluster3.resume(old)
    try:
        _assert_never_stale(reads, write)
    finally:
        for node_id in others:
            cluster3.resume(node_id)

    # 2. Again, this time resuming into the live cluster, which deposes it by its term.
    cluster3.pause(old)
    reads, write = _ask_old_leader(cluster3, old)
    cluster3.resume(old)
    _assert_never_stale(reads, write)

    assert cluster3.get("stale-write", start=new) is None
    assert cluster3.get("k", start=new) == "after"
    # The old leader rejoins as a follower of the new one and converges.
    deadline = time.monotonic() + 10
    while True:
        st = cluster3.status(old)
        if st is not None and st.role == "follower" and st.leader_id == new:
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.05)
    reply = cluster3.stub(old).Get(pb.GetRequest(key="k"), timeout=5)
    assert (reply.status, reply.value) == (pb.KV_OK, "after")


def test_restarted_node_far_behind_catches_up_through_a_snapshot(tmp_path):
    args = ("--snapshot-every", "300", "--retain", "50", "--no-pack")
    with RaftCluster(tmp_path, 3, extra_args=args) as cluster:
        cluster.start()
        cluster.wait_ready()
        leader = cluster.wait_leader()
        lagging = next(n for n in cluster.nodes if n != leader)
        cluster.put("c", 1, "early", "1", start=leader)
        cluster.kill(lagging)
        # 2,000 commands, one entry each: the leader snapshots and compacts several times.
        reply = cluster.stub(leader).Bench(
            pb.BenchRequest(count=2000, window=32, commands_per_call=1, value_bytes=8, key_prefix="b"), timeout=60
        )
        assert (reply.status, reply.committed) == (pb.KV_OK, 2000)
        cluster.put("c", 2, "late", "2", start=leader)
        st = cluster.status(leader)
        assert st.first_index > 1000, st  # the lagging node's next entry is gone from the leader's log
        cluster.start(lagging)
        cluster.wait_ready(lagging)
        back = cluster.wait_applied(lagging, st.commit_index)
        assert back.counters["snapshots_installed"] >= 1
        assert back.counters.get("snapshots_restored", 0) >= 1
        assert cluster.local_get(lagging, "early") == "1"
        assert cluster.local_get(lagging, "late") == "2"
        assert cluster.local_get(lagging, "b1999") == "v" * 8
        assert back.keys == st.keys


def test_whole_cluster_crash_and_restart_keeps_every_acknowledged_write(cluster3):
    leader = cluster3.wait_leader()
    with Writer(cluster3, "writer") as writer:
        writer.wait_acked(30)
        cluster3.kill(leader)  # a leader crash in a 3-node cluster first
        cluster3.wait_leader(not_in=(leader,))
        writer.wait_acked(len(writer.acked) + 30)
    assert not writer.errors, writer.errors
    bench = cluster3.stub(cluster3.wait_leader()).Bench(
        pb.BenchRequest(count=5000, window=16, commands_per_call=64, value_bytes=4, key_prefix="x"), timeout=60
    )
    assert bench.committed == 5000
    for node_id in cluster3.nodes:
        cluster3.kill(node_id)
    cluster3.start()
    cluster3.wait_ready()
    cluster3.wait_leader()
    assert_all_readable(cluster3, writer.acked)
    assert cluster3.get("x4999") == "vvvv"
    keys = {cluster3.status(n).keys for n in cluster3.nodes if cluster3.status(n) is not None}
    assert len(writer.acked) + 5000 in keys  # writer keys + bench keys, on every node that answered


def test_a_garbage_request_to_the_raft_port_is_refused_and_the_node_keeps_serving(cluster3):
    leader = cluster3.wait_leader()
    channel = grpc.insecure_channel(cluster3.nodes[leader].address)
    send = channel.unary_unary("/agent.rpc.raft.RaftService/Send", request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError):
        send(b"\xff\xff\xff\xff garbage", timeout=5)
    ack = pb.BatchAck.FromString(send(pb.MessageBatch(src="n1", dst=leader, messages=[
        pb.RaftMessage(type=42, src="n1", dst=leader)]).SerializeToString(), timeout=5))
    assert ack.rejected == 1
    # A well-formed but out-of-date message (an old term's heartbeat) is counted and dropped.
    follower = next(n for n in cluster3.nodes if n != leader)
    before = cluster3.status(follower).counters.get("dropped_stale_term", 0)
    follower_channel = grpc.insecure_channel(cluster3.nodes[follower].address)
    stale = pb.MessageBatch(src=leader, dst=follower, messages=[
        pb.RaftMessage(type=5, src=leader, dst=follower, term=0)])
    send = follower_channel.unary_unary("/agent.rpc.raft.RaftService/Send",
                                        request_serializer=pb.MessageBatch.SerializeToString,
                                        response_deserializer=pb.BatchAck.FromString)
    assert send(stale, timeout=5).accepted == 1
    assert cluster3.status(follower).counters["dropped_stale_term"] == before + 1
    follower_channel.close()
    channel.close()
    cluster3.put("c", 1, "still", "fine", start=leader)
    assert cluster3.status(leader).role == "leader"
    assert cluster3.status(follower).leader_id == leader


def test_history_of_concurrent_clients_through_crashes_and_pauses_is_linearizable(cluster3):
    """Reads and writes from 4 clients at random nodes while the leader is SIGKILLed,
    restarted, and a later leader SIGSTOPped and resumed: the history must be
    linearizable (Herlihy & Wing), checked per key by agent.raft.linearizability.
    A write that was not acknowledged counts as unknown (it may or may not apply)."""
    import random

    from agent.raft.linearizability import FAIL, INFO, OK, Operation, check_history

    cluster3.wait_leader()
    history: list[Operation] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(number: int) -> None:
        rng = random.Random(number)
        name = f"lin{number}"
        seq = 0
        leader = None
        while not stop.is_set():
            live = cluster3.live_nodes()
            key = rng.choice(("a", "b", "c"))
            invoke = time.monotonic()
            if rng.random() < 0.5:
                target = leader if leader in live else rng.choice(live)
                seq += 1
                value = f"{name}-{seq}"
                status = INFO  # no answer: it may apply, now or later
                try:
                    reply = cluster3.stub(target).Put(
                        pb.PutRequest(client_id=name, seq=seq, key=key, value=value, timeout_s=0.5), timeout=1.0
                    )
                    if reply.status == pb.KV_OK:
                        status = OK
                    elif reply.status == pb.KV_NOT_LEADER:
                        leader = reply.leader_id or None
                        if reply.not_proposed:
                            status = FAIL
                except grpc.RpcError:
                    leader = None
                complete = time.monotonic() if status == OK else None
                op = Operation(name, "write", key, value, invoke, complete, status)
            else:
                target = rng.choice(live)
                try:
                    reply = cluster3.stub(target).Get(pb.GetRequest(key=key, timeout_s=0.5), timeout=1.0)
                except grpc.RpcError:
                    continue
                if reply.status != pb.KV_OK:
                    continue
                op = Operation(name, "read", key, reply.value if reply.found else None, invoke, time.monotonic())
            with lock:
                history.append(op)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        first = cluster3.wait_leader()
        cluster3.kill(first)
        time.sleep(1.5)
        cluster3.start(first)
        cluster3.wait_ready(first)
        time.sleep(1.0)
        second = cluster3.wait_leader()
        cluster3.pause(second)
        time.sleep(1.2)
        cluster3.resume(second)
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    acknowledged_writes = sum(1 for op in history if op.kind == "write" and op.status == OK)
    unknown_writes = sum(1 for op in history if op.status == INFO)
    reads = sum(1 for op in history if op.kind == "read")
    assert acknowledged_writes > 50 and reads > 50, (acknowledged_writes, reads)
    result = check_history(history)
    assert result.ok, (result.key, result.reason, len(history), unknown_writes)


def _follower_of(cluster: RaftCluster, leader: str) -> str:
    return next(n for n in cluster.nodes if n != leader)


def _election_timeout_s() -> float:
    from agent.raft.config import RaftConfig

    config = RaftConfig()
    return 2 * config.election_timeout_ticks * config.tick_interval_ms / 1000  # the longest draw


def test_a_forged_term_past_the_limit_is_refused_and_every_node_lives_on(cluster3):
    """A forged AppendEntries or Heartbeat with term 2**64-1 (or NUMBER_LIMIT) is refused
    on the wire and counted; nothing is persisted, nobody campaigns past what peers accept."""
    leader = cluster3.wait_leader()
    follower = _follower_of(cluster3, leader)
    term = cluster3.status(follower).term
    forged = [
        AppendEntries(leader, follower, 2**64 - 1, 0, 0, (), 0),
        Heartbeat(leader, follower, 2**64 - 1, 0),
        Heartbeat(leader, follower, NUMBER_LIMIT, 0),
    ]
    for msg in forged:
        ack = cluster3.send_raw(follower, [msg])
        assert (ack.accepted, ack.rejected) == (0, 1)
    counters = cluster3.status(follower).counters
    assert counters["transport_rejected_out_of_range_term"] == len(forged)
    time.sleep(3 * _election_timeout_s())  # what the forged term once did took 2 s: every node died
    assert all(node.alive for node in cluster3.nodes.values()), cluster3.logs()
    assert cluster3.status(follower).term == term
    cluster3.put("c", 1, "after", "forgery", start=leader)
    assert cluster3.get("after") == "forgery"


def test_a_forged_last_usable_term_halts_elections_but_kills_no_node_nor_data_dir(cluster3):
    """What a forger spoofing a member can still do without authentication: push terms to
    NUMBER_LIMIT - 1. No node can campaign past it, so elections stop there; but no
    process dies, and a restarted node starts from its data directory."""
    leader = cluster3.wait_leader()
    follower = _follower_of(cluster3, leader)
    ack = cluster3.send_raw(follower, [Heartbeat(leader, follower, NUMBER_LIMIT - 1, 0)])
    assert ack.accepted == 1
    deadline = time.monotonic() + 20
    while not all(
        (st := cluster3.status(n)) is not None and st.counters.get("campaigns_refused_number_limit", 0) > 0
        for n in cluster3.nodes
    ):
        assert time.monotonic() < deadline, cluster3.logs()
        time.sleep(0.1)
    assert all(node.alive for node in cluster3.nodes.values())
    assert {cluster3.status(n).term for n in cluster3.nodes} == {NUMBER_LIMIT - 1}
    cluster3.kill(follower)
    cluster3.start(follower)
    cluster3.wait_ready(follower)
    assert cluster3.status(follower).term == NUMBER_LIMIT - 1


@pytest.mark.parametrize("term", [NUMBER_LIMIT, 2**64 - 1])
def test_a_node_whose_hard_state_is_past_the_limit_says_so_in_one_line_and_exits(tmp_path, term):
    with RaftCluster(tmp_path, 1) as cluster:
        cluster.start()
        cluster.wait_ready()
        cluster.put("c", 1, "k", "v")
        cluster.kill("n1")
        doctor_hard_state(cluster.nodes["n1"].data_dir, HardState(term, "n1", 0))
        for _ in range(2):  # every restart says the same, and nothing else
            cluster.start("n1")
            assert cluster.wait_exit("n1") == EXIT_STORAGE_UNUSABLE
        lines = cluster.log_lines("n1")
        said = [line for line in lines if "raft_storage_unusable" in line]
        assert len(said) == 2 and all(f"term {term} is at or past the limit" in line for line in said), said
        assert not any("Traceback" in line for line in lines), "\n".join(lines)


@contextmanager
def immutable(path):
    """Make a directory tree immutable (chattr +i, as root on ext4): every write to its
    files fails with EPERM, as on a disk gone bad or read-only. Undone on leaving."""
    subprocess.run(["chattr", "-R", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", str(path)], check=True)


def test_a_follower_whose_storage_fails_stops_in_one_line_and_the_cluster_goes_on(cluster3):
    """Its first failed write comes in a turn taken in an RPC handler's task (an inline
    turn): the node must still stop for good, never stay up as a follower that acks
    nothing and applies nothing."""
    leader = cluster3.wait_leader()
    follower = _follower_of(cluster3, leader)
    cluster3.put("c", 1, "before", "1", start=leader)
    with immutable(cluster3.nodes[follower].data_dir):
        for seq in range(2, 12):
            cluster3.put("c", seq, f"k{seq}", "v", start=leader)
        assert cluster3.wait_exit(follower) == EXIT_NODE_STOPPED
    lines = cluster3.log_lines(follower)
    said = [line for line in lines if "raft_node_failed" in line]
    assert len(said) == 1 and "cause=storage" in said[0] and "PermissionError" in said[0], said
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    cluster3.put("c", 12, "after", "2", start=leader)  # the other two carry on
    assert cluster3.get("after") == "2"


def test_a_config_entry_of_garbage_is_refused_before_anything_is_appended(cluster3):
    """An AppendEntries from the leader's id, in its term, that fits the follower's log
    and carries a CONFIG entry of garbage: refused on the wire, counted; the node lives."""
    leader = cluster3.wait_leader()
    follower = _follower_of(cluster3, leader)
    cluster3.put("c", 1, "k", "v", start=leader)
    before = cluster3.status(follower)
    last, term = before.last_index, before.term
    forged = AppendEntries(leader, follower, term, last, term,
                           (Entry(last + 1, term, EntryKind.CONFIG, b"\x01garbage"),), before.commit_index)
    ack = cluster3.send_raw(follower, [forged])
    assert (ack.accepted, ack.rejected) == (0, 1)
    after = cluster3.status(follower)
    assert after.counters["transport_rejected_bad_config_entry"] == 1
    assert list(after.voters) == sorted(cluster3.nodes) and after.last_index == last
    time.sleep(_election_timeout_s())
    assert all(node.alive for node in cluster3.nodes.values()), cluster3.logs()
    cluster3.put("c", 2, "k", "w", start=leader)
    assert cluster3.get("k", start=follower) == "w"


def test_a_sender_outside_the_configuration_is_refused_and_counted(cluster3):
    """A well-formed batch from 'evil', a node no configuration names: its heartbeat of a
    higher term and its append reach the node and are refused there, changing nothing."""
    leader = cluster3.wait_leader()
    follower = _follower_of(cluster3, leader)
    before = cluster3.status(follower)
    forged = [Heartbeat("evil", follower, before.term + 5, before.commit_index),
              AppendEntries("evil", follower, before.term + 5, before.last_index, before.term, (), 0)]
    ack = cluster3.send_raw(follower, forged, src="evil")
    assert (ack.accepted, ack.rejected) == (2, 0)  # well formed: the core judges the sender
    after = cluster3.status(follower)
    assert after.counters["dropped_not_member"] == 2
    assert (after.term, after.leader_id) == (before.term, leader)
    cluster3.put("c", 1, "still", "led", start=leader)
    assert cluster3.status(leader).role == "leader"
