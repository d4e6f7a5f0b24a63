"""The roles controller: which agents are Raft voters, which are standbys, which are workers.

Owns: the plan, from the Raft configuration, the leader's gossip view and the Nodes' role
labels, of the next step toward the targets (`voters`, `standbys`): one label to write, or
one membership change (add a learner, promote one) at a time.

Rules it keeps:
- One membership change at a time (Raft's single-server changes, thesis §4.1), and never
  while a previous one is still uncommitted (the driver waits for each).
- A new standby is announced before it is added: its Node is labelled `standby` first, its
  agent sees the label, starts an empty Raft node and is then added as a learner. A Node
  labelled `standby` that is not in the configuration is such a candidate; if its agent is
  gone it is relabelled `worker`.
- Only live, server-eligible agents are chosen, lowest name first (deterministic).
- A learner is promoted to voter only once it has caught up with the log (the driver says
  which have, from the leader's replication progress): promoting a lagging one would stall
  commitment (thesis §4.2.1).
- Labels follow the configuration: a voter is labelled `voter`, a learner `standby`, and
  every other Node `worker` (unless it is the standby candidate). Labels are written only
  when they differ.
- Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.control.members import MemberView


@dataclass(frozen=True, slots=True)
class RoleTargets:
    # Three voters survive one failure, five survive two (Raft's majority arithmetic).
    voters: int = 3
    # Standbys (Raft learners) hold a current copy of the log, ready to replace a voter
    # without a full catch-up: two cover a second failure during a first replacement.
    standbys: int = 2


@dataclass(frozen=True, slots=True)
class RaftMembership:
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    caught_up: frozenset[str] = frozenset()  # learners whose log is close to the leader's


@dataclass(frozen=True, slots=True)
class RolePlan:
    labels: tuple[tuple[str, str], ...] = ()  # (node, role) labels to write
    add_learner: str | None = None
    promote: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.labels and self.add_learner is None and self.promote is None


def plan_roles(raft: RaftMembership, members: Mapping[str, MemberView], node_roles: Mapping[str, str],
               targets: RoleTargets = RoleTargets()) -> RolePlan:
    voters, learners = set(raft.voters), set(raft.learners)
    members_in_conf = voters | learners

    def usable(name: str) -> bool:
        m = members.get(name)
        return m is not None and m.state == "alive" and m.server_eligible and m.facts is not None

    labels: list[tuple[str, str]] = []
    candidates = sorted(n for n, role in node_roles.items() if role == "standby" and n not in members_in_conf)
    live_candidates = [n for n in candidates if usable(n)]
    for name in sorted(node_roles):
        if name in voters:
            wanted = "voter"
        elif name in learners:
            wanted = "standby"
        elif name in live_candidates[:1]:
            wanted = "standby"
        else:
            wanted = "worker"
        if node_roles[name] != wanted:
            labels.append((name, wanted))

    # One membership change per plan: promotion first (it restores fault tolerance), then
    # growing the standbys.
    if len(voters) < targets.voters:
        ready = sorted(n for n in learners if n in raft.caught_up and usable(n))
        if ready:
            return RolePlan(tuple(labels), promote=ready[0])
    wanted_learners = targets.standbys + max(0, targets.voters - len(voters))
    if len(learners) < wanted_learners:
        if live_candidates and node_roles.get(live_candidates[0]) == "standby":
            return RolePlan(tuple(labels), add_learner=live_candidates[0])
        if not live_candidates:
            fresh = sorted(n for n in node_roles if n not in members_in_conf and usable(n))
            if fresh:
                # Announce it now; it is added once the label is committed (a later plan).
                labels = [(n, r) for n, r in labels if n != fresh[0]] + [(fresh[0], "standby")]
    return RolePlan(tuple(labels))
