"""Raft core configuration.

Owns: `RaftConfig`, the one frozen settings object of the Raft core, whose defaults are
what real nodes run with, and TEST_PROFILE, the small and fast profile of the simulator
and unit tests. Rules: time is counted in ticks (the driver calls `RaftCore.tick()`
every `tick_interval_ms`); every default carries the reason it was chosen; profiles are
derived with `dataclasses.replace`, never by mutating.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class RaftConfig:
    # How often the driver ticks the core: 50 ms keeps timers coarse and cheap, yet
    # lets a dead leader be replaced well within a second.
    tick_interval_ms: int = 50
    # A follower that hears no leader for this many ticks starts an election; the real
    # timeout is drawn uniformly from [T, 2T) (Raft §5.2): 6 ticks = 300-600 ms of
    # silence, far above a loopback or LAN round trip and a loaded loop turn.
    election_timeout_ticks: int = 6
    # The leader sends heartbeats this often; must be well below the election timeout.
    heartbeat_interval_ticks: int = 1
    # Upper bounds of one AppendEntries message: the transport does about 6,000 msgs/s,
    # so throughput comes from batching many entries per message.
    max_entries_per_msg: int = 4096
    max_bytes_per_msg: int = 1 << 20
    # How many AppendEntries may be in flight to one follower in the replicate state
    # (pipelining); bounds the memory and the work wasted after a loss.
    max_inflight_msgs: int = 256
    # Leader steps down when it has not heard from a majority within an election
    # timeout (thesis §6.2); also lets followers ignore disruptive vote requests.
    check_quorum: bool = True
    # Run a PreVote round before raising the term (thesis §9.6): a node rejoining after
    # a partition cannot depose a healthy leader.
    pre_vote: bool = True
    # Bytes of snapshot data per InstallSnapshot chunk: bounded like an append.
    snapshot_chunk_bytes: int = 1 << 20
    # Upper bound of committed entries handed out in one Ready: 128 KiB is about 10 ms
    # of small commands to apply, so every loop turn stays far below a tick.
    max_committed_bytes_per_ready: int = 128 * 1024


# Small and fast so simulations exercise elections, pipelining limits and chunking.
TEST_PROFILE = replace(
    RaftConfig(),
    tick_interval_ms=10,
    election_timeout_ticks=10,
    heartbeat_interval_ticks=1,
    max_entries_per_msg=8,
    max_bytes_per_msg=4096,
    max_inflight_msgs=4,
    snapshot_chunk_bytes=64,
    max_committed_bytes_per_ready=4096,
)
