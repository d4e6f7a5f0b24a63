"""Forming the first Raft configuration from `--bootstrap-expect N`, as Consul and Nomad do.

Owns: the decision "which agents are the first voters", from what gossip shows.

Rules it keeps:
- No agent is special: every agent started with `--bootstrap-expect N` waits until it
  sees, through gossip, N server-eligible agents that expect the same N and none that
  already belongs to a formed cluster. Then the first voters are the N lowest names among
  them: every agent that sees the same members decides the same, without talking.
- If any agent it sees belongs to a formed cluster, nobody bootstraps: the new agent
  joins that cluster (its leader registers it).
- The decision must have been the same for `settle_s` seconds of gossip before it is
  acted on (the driver's part), so an agent that appears a moment later is not cut out by
  a hasty choice. The remaining risk, documented in the README: two groups of N that never
  see each other during start-up (a partitioned start) form two clusters.
- Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.agentd.metadata import AgentMeta


def first_voters(me: str, expect: int, alive: Mapping[str, AgentMeta]) -> tuple[str, ...] | None:
    """The first configuration's voters, or None while there is nothing to decide yet (too
    few candidates) or nothing to decide ever (a formed cluster is in sight)."""
    if expect <= 0:
        return None
    if any(meta.formed for meta in alive.values()):
        return None
    candidates = sorted(
        name for name, meta in alive.items()
        if meta.server_eligible and meta.bootstrap_expect == expect and not meta.is_server
    )
    if me not in alive or len(candidates) < expect:
        return None
    return tuple(candidates[:expect])
