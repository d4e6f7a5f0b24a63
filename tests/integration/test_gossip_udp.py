"""Real member processes (python -m agent.gossip) over real UDP/TCP on loopback addresses.

Covers join, kill -9 detection, graceful leave, metadata update, garbage sent to the
port, encryption (a node without the key cannot join), and 10 % random UDP loss made
with iptables inside a private network namespace.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import socket
import subprocess
import time
import uuid

import msgpack
import pytest

from tests.integration.gossip_member import GossipMember, free_port

# TEST profile: probe 0.1 s, suspicion 0.5..1.5 s; detection bound ~3.8 s (config.detection_bound_s).
DETECT_WAIT_S = 8.0


@pytest.fixture
def cluster():
    members: list[GossipMember] = []
    yield members
    for m in members:
        m.stop()


def start_cluster(members: list[GossipMember], names_hosts: list[tuple[str, str]], **kw) -> list[GossipMember]:
    port = free_port(names_hosts[0][1])
    seed = f"{names_hosts[0][1]}:{port}"
    for name, host in names_hosts:
        members.append(GossipMember(name, host, port, [seed] if members else [], **kw))
    for m in members:
        assert m.wait_for(lambda o: o.get("event") == "ready", 10), f"{m.name} did not start"
    return members


def wait_all_joined(members: list[GossipMember], timeout: float = 10.0) -> None:
    for m in members:
        for other in members:
            if other is not m:
                got = m.wait_for(lambda o, n=other.name: o.get("event") == "joined" and o.get("name") == n, timeout)
                assert got, f"{m.name} never saw {other.name} join"


def test_join_kill_detection_leave_and_metadata(cluster):
    ms = start_cluster(cluster, [(f"n{i}", f"127.0.0.{11 + i}") for i in range(5)], meta="v0")
    wait_all_joined(ms)
    # Metadata update reaches every member.
    ms[1].send(cmd="set_meta", meta='{"grpc":"127.0.0.12:9000"}')
    for m in ms[:1] + ms[2:]:
        got = m.wait_for(lambda o: o.get("event") == "updated" and o.get("name") == "n1"
                         and o.get("meta") == '{"grpc":"127.0.0.12:9000"}', 5)
        assert got, f"{m.name} missed n1's metadata"
    # kill -9: every survivor declares n2 dead.
    t_kill = time.monotonic()
    ms[2].proc.send_signal(signal.SIGKILL)
    survivors = [ms[0], ms[1], ms[3], ms[4]]
    for m in survivors:
        got = m.wait_for(lambda o: o.get("event") == "dead" and o.get("name") == "n2", DETECT_WAIT_S)
        assert got, f"{m.name} did not declare n2 dead"
        assert got["mono"] - t_kill < DETECT_WAIT_S
    # Graceful leave (SIGTERM): "left", never "dead".
    ms[4].proc.send_signal(signal.SIGTERM)
    assert ms[4].proc.wait(10) == 0
    for m in (ms[0], ms[1], ms[3]):
        assert m.wait_for(lambda o: o.get("event") == "left" and o.get("name") == "n4", 5), m.name
    time.sleep(2.0)
    for m in (ms[0], ms[1], ms[3]):
        assert not m.events("dead", "n4")
        assert not [o for o in m.lines if o.get("event") == "dead" and o.get("name") not in ("n2",)]


def test_restarted_member_rejoins_under_the_same_name(cluster):
    ms = start_cluster(cluster, [(f"r{i}", f"127.0.0.{31 + i}") for i in range(3)])
    wait_all_joined(ms)
    ms[2].proc.send_signal(signal.SIGKILL)
    assert ms[0].wait_for(lambda o: o.get("event") == "dead" and o.get("name") == "r2", DETECT_WAIT_S)
    host, port = ms[2].addr.rsplit(":", 1)
    back = GossipMember("r2", host, int(port), [ms[0].addr], meta="second-life")
    cluster.append(back)
    for m in ms[:2]:
        got = m.wait_for(lambda o: o.get("event") == "joined" and o.get("name") == "r2"
                         and o.get("meta") == "second-life", 10)
        assert got and got["incarnation"] > 0, f"{m.name} did not see r2 come back"
    time.sleep(1.5)
    assert ms[0].events("dead", "r2")[-1]["mono"] < ms[0].events("joined", "r2")[-1]["mono"]


def test_garbage_to_the_gossip_port_is_dropped_and_counted(cluster):
    ms = start_cluster(cluster, [(f"g{i}", f"127.0.0.{41 + i}") for i in range(3)])
    wait_all_joined(ms)
    host, port = ms[1].addr.rsplit(":", 1)
    target = (host, int(port))
    rnd = random.Random(7)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(600):
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
    for _ in range(20):  # and junk on the TCP push-pull port
        with socket.create_connection(target, timeout=2) as t:
            t.sendall(rnd.randbytes(rnd.randrange(1, 200)))
    with socket.create_connection(target, timeout=2) as t:
        t.sendall(b"\xff\xff\xff\xff")  # absurd frame length
    time.sleep(2.0)
    assert ms[1].proc.poll() is None, "the member crashed on garbage"
    st = ms[1].stats()
    dropped = sum(v for k, v in st.items() if k.startswith("drop_"))
    assert dropped >= 400, st
    for m in (ms[0], ms[2]):
        assert not m.events("dead", "g1") and not m.events("suspect", "evil")
    # Still a working member: it sees a metadata change from a peer.
    ms[0].send(cmd="set_meta", meta="after-garbage")
    assert ms[1].wait_for(lambda o: o.get("event") == "updated" and o.get("meta") == "after-garbage", 5)


def test_encrypted_cluster_rejects_a_member_without_the_key(cluster):
    key, other = os.urandom(32), os.urandom(32)
    ms = start_cluster(cluster, [(f"e{i}", f"127.0.0.{51 + i}") for i in range(3)], keys=[key])
    wait_all_joined(ms)
    port = ms[0].addr.rsplit(":", 1)[1]
    intruder = GossipMember("intruder", "127.0.0.59", int(port), [ms[0].addr], keys=[other])
    plain = GossipMember("plain", "127.0.0.58", int(port), [ms[0].addr])
    cluster += [intruder, plain]
    time.sleep(4.0)
    for m in ms:
        assert not m.events("joined", "intruder") and not m.events("joined", "plain")
    assert not intruder.events("joined", "e0") and not plain.events("joined", "e0")
    st = ms[0].stats()
    assert sum(v for k, v in st.items() if k.startswith("drop_stream_") or k.startswith("drop_keyring")) > 0, st
    # Rotation at run time: install a new key everywhere, make it primary, drop the old one.
    new = base64.b64encode(os.urandom(32)).decode()
    for m in ms:
        m.send(cmd="install_key", key=new)
    for m in ms:
        m.send(cmd="use_key", key=new)
    for m in ms:
        m.send(cmd="remove_key", key=base64.b64encode(key).decode())
    time.sleep(1.0)
    ms[2].send(cmd="set_meta", meta="rotated")
    for m in ms[:2]:
        assert m.wait_for(lambda o: o.get("event") == "updated" and o.get("meta") == "rotated", 5)
    time.sleep(2.0)
    for m in ms:
        assert not [o for o in m.lines if o.get("event") == "dead"]


def _netns(name: str, *cmd: str) -> None:
    subprocess.run(["ip", "netns", "exec", name, *cmd], check=True, capture_output=True)


def test_ten_percent_udp_loss_in_a_network_namespace(cluster):
    """iptables drops 10 % of UDP at random; the LAN profile must not declare anyone dead
    and must still detect a kill -9."""
    ns = f"gossip-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        _netns(ns, "ip", "link", "set", "lo", "up")
        _netns(ns, "iptables", "-A", "INPUT", "-p", "udp", "-m", "statistic", "--mode", "random",
               "--probability", "0.1", "-j", "DROP")
        ms = start_cluster(cluster, [(f"l{i}", f"127.0.0.{i + 1}") for i in range(6)], profile="lan", netns=ns)
        wait_all_joined(ms, timeout=15)
        # SIGSTOP one member for 0.5 s twice during the soak.
        for _ in range(2):
            time.sleep(4.0)
            ms[3].proc.send_signal(signal.SIGSTOP)
            time.sleep(0.5)
            ms[3].proc.send_signal(signal.SIGCONT)
        time.sleep(3.0)
        for m in ms:
            assert not [o for o in m.lines if o.get("event") == "dead"], f"false positive at {m.name}"
        suspects = sum(len([o for o in m.lines if o.get("event") == "suspect"]) for m in ms)
        t_kill = time.monotonic()
        ms[5].proc.send_signal(signal.SIGKILL)
        for m in ms[:5]:
            got = m.wait_for(lambda o: o.get("event") == "dead" and o.get("name") == "l5", 10)
            assert got, f"{m.name} did not detect l5 under loss"
            assert got["mono"] - t_kill < 7.6  # config.detection_bound_s(LAN)
        rules = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-L", "INPUT", "-v", "-n", "-x"],
                               check=True, capture_output=True, text=True).stdout
        dropped = int(next(line.split()[0] for line in rules.splitlines() if "statistic" in line))
        sent = sum(m.stats()["udp_out_packets"] for m in ms[:5])
        assert 0.05 * sent < dropped < 0.2 * sent, (dropped, sent)  # the loss really happened
        print(f"udp packets sent={sent} dropped={dropped} suspect events={suspects}")
    finally:
        for m in cluster:
            m.stop()
        subprocess.run(["ip", "netns", "del", ns], check=False)


async def test_in_process_nodes_deliver_events_through_the_channel(nursery):
    """The driver API the agent uses: GossipNode.run in a nursery, MemberEvents on node.events."""
    import trio

    from agent.gossip import TEST, EventKind, MemberState
    from agent.gossip.driver import GossipNode

    port = free_port("127.0.0.61")
    a = GossipNode(TEST, "a", ("127.0.0.61", port))
    await nursery.start(a.run)
    b = GossipNode(TEST, "b", ("127.0.0.62", port), seeds=[("127.0.0.61", port)], meta=b"mb")
    await nursery.start(b.run)
    with trio.fail_after(5):
        ev = await a.events.receive()
    assert (ev.kind, ev.name, ev.meta, ev.addr) == (EventKind.JOINED, "b", b"mb", ("127.0.0.62", port))
    b.set_meta(b"capacity=4")
    with trio.fail_after(5):
        ev = await a.events.receive()
    assert (ev.kind, ev.meta, ev.meta_version) == (EventKind.UPDATED, b"capacity=4", 2)
    await b.leave()
    assert b.stopped.is_set()
    with trio.fail_after(5):
        ev = await a.events.receive()
    assert ev.kind is EventKind.LEFT and ev.name == "b"
    assert {m.name: m.state for m in a.members()} == {"a": MemberState.ALIVE, "b": MemberState.LEFT}
    a.stop()
    with trio.fail_after(2):
        await a.stopped.wait()
