"""Real member processes (python -m agent.gossip) over real UDP/TCP on loopback addresses.

Covers join, kill -9 detection, graceful leave, metadata update, garbage sent to the
port, forged numbers built with the project's own codec, encryption (a node without the
key cannot join) and key rotation, and 10 % random UDP loss made with iptables inside a
private network namespace. Every bound is computed from the profile's configuration;
where a test must see that something does NOT happen (no false death), it waits for the
members to run the protocol's own bound in probe periods (run_probe_periods).
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import signal
import socket
import subprocess
import time
import uuid

import msgpack
import pytest

from agent.gossip import codec
from agent.gossip.config import LAN, TEST, GossipConfig, detection_bound_s, spread_bound_s
from agent.gossip.messages import (
    MAX_ACCUSED_INCARNATION,
    MAX_INCARNATION,
    MAX_META_VERSION,
    Ack,
    Alive,
    Dead,
    Ping,
    Suspect,
)
from tests.integration.gossip_member import GossipMember, free_port, run_probe_periods, wait_until

# Metadata as the agent will announce it (gRPC address, role, capacity, labels, version): ~400 B.
AGENT_META = json.dumps({
    "grpc": "10.20.30.40:7070", "role": "worker", "version": "0.1.0",
    "capacity": {"cpu_milli": 16000, "memory_bytes": 68719476736, "pods": 110, "ephemeral_storage_bytes": 107374182400},
    "labels": {"topology.kubernetes.io/zone": "eu-west-1a", "topology.kubernetes.io/region": "eu-west-1",
               "node.kubernetes.io/instance-type": "m5.4xlarge", "kubernetes.io/arch": "amd64",
               "kubernetes.io/os": "linux", "team": "payments", "tier": "backend"},
}, separators=(",", ":"))


def periods_in(config: GossipConfig, seconds: float) -> int:
    return math.ceil(seconds / config.probe_interval_s)


@pytest.fixture
def cluster():
    members: list[GossipMember] = []
    yield members
    for m in members:
        m.stop()


def start_cluster(members: list[GossipMember], names_hosts: list[tuple[str, str]], **kw) -> list[GossipMember]:
    """Start members (added to `members`, which the fixture stops) and return them as a new list."""
    port = free_port(names_hosts[0][1])
    seed = f"{names_hosts[0][1]}:{port}"
    for name, host in names_hosts:
        members.append(GossipMember(name, host, port, [seed] if members else [], **kw))
    for m in members:
        assert m.wait_for(lambda o: o.get("event") == "ready", 10), f"{m.name} did not start"
    return list(members)


def wait_all_joined(members: list[GossipMember], timeout: float = 10.0) -> None:
    for m in members:
        for other in members:
            if other is not m:
                got = m.wait_for(lambda o, n=other.name: o.get("event") == "joined" and o.get("name") == n, timeout)
                assert got, f"{m.name} never saw {other.name} join"


MEMBER_EVENTS = ("joined", "alive", "suspect", "dead", "left", "updated")


def deaths(m: GossipMember, except_: tuple[str, ...] = ()) -> list[dict]:
    return [o for o in m.since(0, "dead") if o.get("name") not in except_]


def test_join_kill_detection_leave_and_metadata(cluster):
    ms = start_cluster(cluster, [(f"n{i}", f"127.0.0.{11 + i}") for i in range(5)], meta="v0")
    wait_all_joined(ms)
    # Agent-sized metadata reaches every member within the spread bound.
    t_set = time.monotonic()
    ms[1].send(cmd="set_meta", meta=AGENT_META)
    for m in ms[:1] + ms[2:]:
        got = m.wait_for(lambda o: o.get("event") == "updated" and o.get("name") == "n1"
                         and o.get("meta") == AGENT_META, 5)
        assert got, f"{m.name} missed n1's metadata"
        assert got["mono"] - t_set <= spread_bound_s(TEST), (m.name, got["mono"] - t_set)
    # kill -9: every survivor declares n2 dead within the stated detection bound.
    bound = detection_bound_s(TEST, 5)
    t_kill = time.monotonic()
    ms[2].proc.send_signal(signal.SIGKILL)
    survivors = [ms[0], ms[1], ms[3], ms[4]]
    for m in survivors:
        got = m.wait_for(lambda o: o.get("event") == "dead" and o.get("name") == "n2", 2 * bound)
        assert got, f"{m.name} did not declare n2 dead"
        assert got["mono"] - t_kill <= bound, (m.name, got["mono"] - t_kill, bound)
    # Graceful leave (SIGTERM): "left", never "dead", even after a whole detection bound.
    ms[4].proc.send_signal(signal.SIGTERM)
    assert ms[4].proc.wait(10) == 0
    rest = [ms[0], ms[1], ms[3]]
    for m in rest:
        assert m.wait_for(lambda o: o.get("event") == "left" and o.get("name") == "n4", 5), m.name
    run_probe_periods(rest, periods_in(TEST, bound), timeout=30)
    for m in rest:
        assert not deaths(m, except_=("n2",)), m.name


def test_restarted_member_rejoins_under_the_same_name(cluster):
    ms = start_cluster(cluster, [(f"r{i}", f"127.0.0.{31 + i}") for i in range(3)])
    wait_all_joined(ms)
    bound = detection_bound_s(TEST, 3)
    ms[2].proc.send_signal(signal.SIGKILL)
    assert ms[0].wait_for(lambda o: o.get("event") == "dead" and o.get("name") == "r2", 2 * bound)
    host, port = ms[2].addr.rsplit(":", 1)
    back = GossipMember("r2", host, int(port), [ms[0].addr], meta="second-life")
    cluster.append(back)
    for m in ms[:2]:
        got = m.wait_for(lambda o: o.get("event") == "joined" and o.get("name") == "r2"
                         and o.get("meta") == "second-life", 10)
        assert got and got["incarnation"] > 0, f"{m.name} did not see r2 come back"
    marks = {m.name: m.mark() for m in ms[:2]}
    run_probe_periods([ms[0], ms[1], back], periods_in(TEST, bound), timeout=30)
    for m in ms[:2]:
        assert not [o for o in m.since(marks[m.name], "dead") if o["name"] == "r2"], f"{m.name} killed r2 again"
        assert m.members()["r2"]["state"] == "alive"


def test_garbage_to_the_gossip_port_is_dropped_and_counted(cluster):
    ms = start_cluster(cluster, [(f"g{i}", f"127.0.0.{41 + i}") for i in range(3)])
    wait_all_joined(ms)
    host, port = ms[1].addr.rsplit(":", 1)
    target = (host, int(port))
    rnd = random.Random(7)

    def udp_drops() -> int:
        st = ms[1].stats()
        return sum(v for k, v in st.items() if k.startswith("drop_") and not k.startswith("drop_stream_"))

    first = udp_drops()
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for burst in range(6):  # in bursts the socket buffer holds, each one counted before the next
            for i in range(100):
                kind = i % 4
                if kind == 0:
                    data = rnd.randbytes(rnd.randrange(1, 1400))
                elif kind == 1:
                    data = msgpack.packb([1, [[rnd.randrange(0, 20), rnd.random(), "x" * rnd.randrange(300)]]])
                elif kind == 2:
                    data = msgpack.packb([1, [[5, 1, "evil", ["1.2.3.4", 99999], 0, None]]])
                else:
                    data = b"\x00" * 3000  # oversized
                s.sendto(data, target)
                sent += 1
            assert wait_until(lambda: udp_drops() - first >= sent, 10), (sent, ms[1].stats())
    assert udp_drops() - first == sent  # each bad datagram counted exactly once
    for _ in range(20):  # and junk on the TCP push-pull port
        with socket.create_connection(target, timeout=2) as t:
            t.sendall(rnd.randbytes(rnd.randrange(1, 200)))
    with socket.create_connection(target, timeout=2) as t:
        t.sendall(b"\xff\xff\xff\xff")  # absurd frame length
    assert wait_until(lambda: ms[1].stats().get("drop_stream_oversized", 0) >= 1, 10), ms[1].stats()
    assert ms[1].proc.poll() is None, "the member crashed on garbage"
    # Still a working member: it sees a metadata change from a peer.
    ms[0].send(cmd="set_meta", meta="after-garbage")
    assert ms[1].wait_for(lambda o: o.get("event") == "updated" and o.get("meta") == "after-garbage", 5)
    for m in (ms[0], ms[2]):
        assert not m.events("dead", "g1") and not m.events("joined", "evil")


def test_forged_numbers_never_expel_a_live_member(cluster):
    """A forged Dead at incarnation 2^63-1 used to expel its victim for good: the refutation
    needed an incarnation the codec refused. Forged packets built with the project's own
    codec, sent to real members: what is out of range is dropped and counted by each; an
    accusation at the highest accepted incarnation is refuted and the victim stays alive."""
    ms = start_cluster(cluster, [(f"f{i}", f"127.0.0.{71 + i}") for i in range(3)])
    wait_all_joined(ms)
    victim = ms[2]
    v_host, v_port = victim.addr.rsplit(":", 1)
    before = {m.name: m.members()["f2"] for m in ms}
    marks = {m.name: m.mark() for m in ms}
    forged = [
        [Dead(2**63 - 1, "f2", "f0")],
        [Dead(2**64 - 1, "f2", "f2")],  # a forged graceful leave
        [Suspect(MAX_INCARNATION, "f2", "f1")],  # one past the highest refutable accusation
        [Alive(2**63 - 1, "f2", ("127.0.0.99", int(v_port)), 0, b"evil")],  # a takeover of f2's name
        [Alive(1, "f2", (v_host, int(v_port)), MAX_META_VERSION + 1, b"evil")],
        [Ping(2**40, "f0"), Ack(2**63 - 1)],  # sequence numbers outside their 31 bits
    ]
    out_of_range = sum(len(p) for p in forged)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for packet in forged:
            data = codec.encode_packet(packet, LAN.max_packet_bytes)
            for m in ms:
                host, port = m.addr.rsplit(":", 1)
                s.sendto(data, (host, int(port)))
    for m in ms:
        assert wait_until(lambda m=m: m.stats().get("drop_out_of_range", 0) >= out_of_range, 10), m.stats()
        assert m.stats()["drop_out_of_range"] == out_of_range
    for m in ms:
        assert m.members()["f2"] == before[m.name], m.name  # nothing about f2 changed anywhere
        assert not [o for o in m.since(marks[m.name]) if o.get("event") in MEMBER_EVENTS and o["name"] == "f2"]

    # The highest accusation the codec accepts: f2 refutes it with MAX_INCARNATION, which all accept.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        data = codec.encode_packet([Dead(MAX_ACCUSED_INCARNATION, "f2", "f0")], LAN.max_packet_bytes)
        for m in ms:
            host, port = m.addr.rsplit(":", 1)
            s.sendto(data, (host, int(port)))

    def alive_at_the_top_everywhere() -> bool:
        views = [m.members()["f2"] for m in ms]
        return all(v["state"] == "alive" and v["incarnation"] == MAX_INCARNATION for v in views)

    assert wait_until(alive_at_the_top_everywhere, 10), [m.members()["f2"] for m in ms]
    # At the top of the range f2 still publishes metadata (a newer version of the same incarnation).
    victim.send(cmd="set_meta", meta="still-here")
    for m in ms[:2]:
        assert m.wait_for(lambda o: o.get("event") == "updated" and o.get("meta") == "still-here", 5), m.name
    assert all(m.proc.poll() is None for m in ms)


def test_encrypted_cluster_rejects_a_member_without_the_key(cluster):
    key, other = os.urandom(32), os.urandom(32)
    ms = start_cluster(cluster, [(f"e{i}", f"127.0.0.{51 + i}") for i in range(3)], keys=[key])
    wait_all_joined(ms)
    port = ms[0].addr.rsplit(":", 1)[1]
    intruder = GossipMember("intruder", "127.0.0.59", int(port), [ms[0].addr], keys=[other])
    plain = GossipMember("plain", "127.0.0.58", int(port), [ms[0].addr])
    cluster += [intruder, plain]
    for outsider in (intruder, plain):
        assert outsider.wait_for(lambda o: o.get("event") == "ready", 10)
        # Several join attempts, each refused by the seed.
        assert wait_until(lambda o=outsider: o.stats().get("core_join_failed", 0) >= 3, 15), outsider.stats()
    st = ms[0].stats()
    assert st.get("drop_stream_no_key", 0) >= 3 and st.get("drop_stream_not_sealed", 0) >= 3, st
    for m in ms:
        assert not m.events("joined", "intruder") and not m.events("joined", "plain")
    assert not intruder.events("joined", "e0") and not plain.events("joined", "e0")
    # Rotation at run time: install a new key everywhere, make it primary, drop the old one.
    new = base64.b64encode(os.urandom(32)).decode()
    old = base64.b64encode(key).decode()
    for op, k, keys in (("install_key", new, 2), ("use_key", new, 2), ("remove_key", old, 1)):
        for m in ms:
            got = m.command("keyring", cmd=op, key=k)
            assert (got["op"], got["keys"]) == (op, keys), got
    ms[2].send(cmd="set_meta", meta="rotated")
    for m in ms[:2]:
        assert m.wait_for(lambda o: o.get("event") == "updated" and o.get("meta") == "rotated", 5)
    run_probe_periods(ms, periods_in(TEST, detection_bound_s(TEST, 3)), timeout=30)
    for m in ms:
        assert not deaths(m), m.name
        assert {n: v["state"] for n, v in m.members().items()} == {"e0": "alive", "e1": "alive", "e2": "alive"}


def _netns(name: str, *cmd: str) -> None:
    subprocess.run(["ip", "netns", "exec", name, *cmd], check=True, capture_output=True)


def test_ten_percent_udp_loss_in_a_network_namespace(cluster):
    """iptables drops 10 % of UDP at random; the LAN profile must not declare anyone dead,
    every suspicion must be refuted, and a kill -9 is still detected within the bound."""
    ns = f"gossip-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        _netns(ns, "ip", "link", "set", "lo", "up")
        _netns(ns, "iptables", "-A", "INPUT", "-p", "udp", "-m", "statistic", "--mode", "random",
               "--probability", "0.1", "-j", "DROP")
        n = 6
        ms = start_cluster(cluster, [(f"l{i}", f"127.0.0.{i + 1}") for i in range(n)], profile="lan", netns=ns)
        wait_all_joined(ms, timeout=15)
        bound = detection_bound_s(LAN, n)
        # Two stalls of one member (SIGSTOP 0.5 s, the fault itself), 20 probe periods apart.
        for _ in range(2):
            run_probe_periods(ms, 20, timeout=30)
            ms[3].proc.send_signal(signal.SIGSTOP)
            time.sleep(0.5)
            ms[3].proc.send_signal(signal.SIGCONT)
        run_probe_periods(ms, periods_in(LAN, bound), timeout=60)
        for m in ms:
            assert not deaths(m), f"false positive at {m.name}"
        # Every suspicion raised so far ends refuted ("alive"), none in death.
        cutoff = {m.name: m.mark() for m in ms}

        def unrefuted(m: GossipMember) -> list[dict]:
            lines = m.since(0)
            return [o for i, o in enumerate(lines[:cutoff[m.name]]) if o.get("event") == "suspect"
                    and not any(x.get("event") == "alive" and x.get("name") == o["name"] for x in lines[i + 1:])]

        assert wait_until(lambda: not any(unrefuted(m) for m in ms), LAN.suspicion_max_s + 5), \
            {m.name: unrefuted(m) for m in ms}
        suspects = sum(1 for m in ms for o in m.since(0)[:cutoff[m.name]] if o.get("event") == "suspect")
        t_kill = time.monotonic()
        ms[5].proc.send_signal(signal.SIGKILL)
        for m in ms[:5]:
            got = m.wait_for(lambda o: o.get("event") == "dead" and o.get("name") == "l5", 2 * bound)
            assert got, f"{m.name} did not detect l5 under loss"
            assert got["mono"] - t_kill <= bound, (m.name, got["mono"] - t_kill, bound)
        rules = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-L", "INPUT", "-v", "-n", "-x"],
                               check=True, capture_output=True, text=True).stdout
        dropped = int(next(line.split()[0] for line in rules.splitlines() if "statistic" in line))
        sent = sum(m.stats()["udp_out_packets"] for m in ms[:5])
        assert 0.05 * sent < dropped < 0.2 * sent, (dropped, sent)  # the loss really happened
        print(f"udp packets sent={sent} dropped={dropped} suspect events (all refuted)={suspects}")
    finally:
        for m in cluster:
            m.stop()
        subprocess.run(["ip", "netns", "del", ns], check=False)


async def test_in_process_nodes_deliver_events_through_the_channel(nursery):
    """The driver API the agent uses: GossipNode.run in a nursery, set_meta() with agent-sized
    metadata, MemberEvents on node.events, members()."""
    import trio

    from agent.gossip import EventKind, MemberState
    from agent.gossip.driver import GossipNode

    port = free_port("127.0.0.61")
    a = GossipNode(TEST, "a", ("127.0.0.61", port))
    await nursery.start(a.run)
    b = GossipNode(TEST, "b", ("127.0.0.62", port), seeds=[("127.0.0.61", port)], meta=b"mb")
    await nursery.start(b.run)
    with trio.fail_after(5):
        ev = await a.events.receive()
    assert (ev.kind, ev.name, ev.meta, ev.addr) == (EventKind.JOINED, "b", b"mb", ("127.0.0.62", port))
    meta = AGENT_META.encode()
    assert len(meta) <= TEST.max_meta_bytes
    b.set_meta(meta)
    with trio.fail_after(spread_bound_s(TEST)):
        ev = await a.events.receive()
    assert (ev.kind, ev.meta, ev.meta_version) == (EventKind.UPDATED, meta, 2)
    assert {m.name: m.meta for m in a.members()}["b"] == meta
    await b.leave()
    assert b.stopped.is_set()
    with trio.fail_after(5):
        ev = await a.events.receive()
    assert ev.kind is EventKind.LEFT and ev.name == "b"
    assert {m.name: m.state for m in a.members()} == {"a": MemberState.ALIVE, "b": MemberState.LEFT}
    a.stop()
    with trio.fail_after(2):
        await a.stopped.wait()


async def test_a_flood_of_push_pull_connections_is_refused_past_the_cap(nursery):
    """Connections that never send their frame hold a served push-pull each until
    stream_timeout_s; past max_inbound_streams they are closed at once and counted, and
    a member joins as soon as the flood is gone."""
    import trio

    from agent.gossip import EventKind
    from agent.gossip.driver import GossipNode

    port = free_port("127.0.0.63")
    a = GossipNode(TEST, "a", ("127.0.0.63", port))
    await nursery.start(a.run)
    extra = 3
    flood = [await trio.open_tcp_stream("127.0.0.63", port) for _ in range(TEST.max_inbound_streams + extra)]
    with trio.fail_after(5):
        while a.counters["tcp_refused_busy"] < extra:
            await trio.sleep(0.01)
    assert a.counters["tcp_refused_busy"] == extra
    for stream in flood:
        await stream.aclose()
    b = GossipNode(TEST, "b", ("127.0.0.64", port), seeds=[("127.0.0.63", port)])
    await nursery.start(b.run)
    with trio.fail_after(TEST.stream_timeout_s + 5):
        ev = await a.events.receive()
    assert (ev.kind, ev.name) == (EventKind.JOINED, "b")
    a.stop()
    b.stop()


def test_a_member_refuses_an_address_peers_would_reject():
    from agent.gossip.driver import GossipNode
    from agent.gossip.errors import GossipConfigError

    for bind, advertise in ((("0.0.0.0", 7946), None), (("localhost", 7946), None),
                            (("0.0.0.0", 7946), ("node1.example", 7946))):
        with pytest.raises(GossipConfigError):
            GossipNode(TEST, "x", bind, advertise=advertise)
    GossipNode(TEST, "x", ("0.0.0.0", 7946), advertise=("10.0.0.5", 7946))  # bind all, advertise one
