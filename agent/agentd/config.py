"""agentd's own settings: how one agent takes part in the cluster.

Owns: `AgentConfig`, one frozen dataclass of everything an agent's cluster parts need
(identity, addresses, bootstrap, role targets, timings), with units in names and a
reason for each default. The runtime's, Raft's and gossip's settings stay in their own
packages; this holds what ties them together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.raft.node import RaftNode


# A worker cut off from every server (no watch reaching a leader) for this long stops
# the Pods the cluster gave it: by then the leader has placed them elsewhere (SWIM
# declares a silent node dead within ~2 s), so this bounds how long a Pod can run twice.
# Long enough to ride out a leader election and a watch failover (~1-3 s).
DEFAULT_FENCE_AFTER_S = 10.0


# A server counts as in touch with a leader only if it heard from one this recently
# (heartbeats come every 50 ms; an election takes 0.3-0.6 s). A standby (Raft learner)
# never campaigns, so it goes on naming a leader it has been cut off from: the name
# alone proves nothing.
LEADER_CONTACT_S = 2.0


def in_touch_with_leader(node: RaftNode | None) -> bool:
    """Whether this server's Raft node heard from a leader (or is one) within LEADER_CONTACT_S."""
    return node is not None and node.leader_id is not None and node.leader_silent_s() <= LEADER_CONTACT_S


# A server sends a bookmark every second on an idle watch; three missed means the server
# (or the path to it) is gone, even before gossip says so: whoever watches moves on.
WATCH_SILENCE_S = 3.0


# A server (voter or standby) that gossip has declared dead for this long is replaced by
# the leader (agent/control/roles.py). SWIM's verdict takes ~2 s; 30 s more rides out a
# reboot or a brief partition (the member comes back with its log, cheaper than making a
# new one), yet leaves the cluster one failure short for well under a minute.
DEFAULT_REPLACE_DEAD_SERVER_AFTER_S = 30.0


@dataclass(frozen=True, slots=True)
class AgentConfig:
    name: str
    data_dir: str
    # The address this agent listens on and advertises to others (gossip and gRPC).
    bind_address: str = "127.0.0.1"
    api_port: int = 7070
    gossip_port: int = 7946
    join: tuple[tuple[str, int], ...] = ()  # gossip addresses of any members
    # Form the first Raft configuration once this many server candidates see each other.
    bootstrap_expect: int = 0
    server_eligible: bool = True
    voters: int = 3  # the cluster's target number of Raft voters (3 survives 1 failure, 5 survives 2)
    standbys: int = 2  # target number of standby servers (Raft learners)
    replace_dead_server_after_s: float = DEFAULT_REPLACE_DEAD_SERVER_AFTER_S  # see its definition
    labels: Mapping[str, str] = field(default_factory=dict)
    # Capacity overrides (None: what psutil reads), for hollow nodes and tests.
    capacity_cpu_millicores: int | None = None
    capacity_memory_bytes: int | None = None
    max_pods: int = 110  # kubelet's default maxPods
    # How long the bootstrap decision must stay the same before it is acted on: a gossip
    # round trip or two, so an agent that shows up a moment later is counted.
    bootstrap_settle_s: float = 1.0
    fence_after_s: float = DEFAULT_FENCE_AFTER_S  # see DEFAULT_FENCE_AFTER_S
    # Pod statuses are sent to the leader in batches at most this often: one write per
    # interval per node however many Pods change; short enough for `apply -> Running` < 1 s.
    status_report_interval_s: float = 0.1
    # How often the leader's controllers run even when nothing woke them (a safety net:
    # they also run on every state change and gossip event).
    control_interval_s: float = 1.0
    # The leader's gossip view is trusted about members it has NOT heard of only after
    # it has run this long (a fresh agent learns the membership within a second or two).
    gossip_settle_s: float = 5.0
    # Give up on one forwarded or internal call after this long (a healthy cluster answers
    # in milliseconds; a dead peer must not hold a request for long).
    rpc_timeout_s: float = 5.0
    # How the scheduler ranks the nodes a Pod fits on: "LeastAllocated" spreads load
    # (kube-scheduler's default), "MostAllocated" packs nodes full. A cluster setting.
    scheduler_scoring: str = "LeastAllocated"
    # Whether the leader moves Deployment Pods, one at a time within maxUnavailable, onto
    # nodes that hold fewer (a node that joined or came back). Off: moving running Pods is
    # a disruption a cluster opts into. A cluster setting, like scheduler_scoring.
    rebalance: bool = False

    @property
    def api_address(self) -> str:
        return f"{self.bind_address}:{self.api_port}"

    @property
    def raft_dir(self) -> str:
        return f"{self.data_dir}/raft"
