"""The roles controller: which agents are Raft voters, which are standbys, which are workers,
and which dead servers are replaced.

Owns: the plan, from the Raft configuration, the leader's gossip view, the Nodes' role
labels and how long each server has been down, of the next step toward the targets
(`voters`, `standbys`): labels to write, or one membership change (add a learner, promote
one, remove a dead member) at a time.

Rules it keeps:
- One membership change at a time (Raft's single-server changes, thesis §4.1), and none
  while a previous one is still uncommitted (`RaftMembership.change_pending`): then the
  plan is empty, labels included, so a label never announces a configuration that a new
  leader might still truncate.
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
  when they differ. A server removed from the configuration is therefore labelled
  `worker`: that label is how its agent, restarted with an old log, learns it was removed.
  It is never made a voter again directly: only as a new standby, announced, added as a
  learner and promoted once caught up, like any other worker.
- Dead servers are replaced. A member of the configuration is *overdue* when gossip says
  it is down (dead, left, or absent from a settled view) and has been for at least
  `replace_dead_server_after_s`; the time comes in as data (`now`, and `down_since`, when
  the driver first saw each one down), so a flapping member is never replaced. A member
  gossip sees up again is never overdue, whatever `down_since` says.
- The order: promote first, then remove. While the voters not overdue are fewer than the
  target, a caught-up live standby is promoted, but only while the configuration holds at
  most `voters` voters (never more than one above the target). Then an overdue voter is
  removed. The arithmetic, single-server steps (quorum = n // 2 + 1): 5 voters, one dead
  (4 live, quorum 3: one more failure tolerated); promote: 6 voters, 5 live, quorum 4
  (still one); remove: 5 voters, 5 live, quorum 3 (two). Removing first goes 5 -> 4
  voters, 4 live, quorum 3 (one) -> 5 (two): the same margin on the way. With 3 voters
  both orders pass through a step that tolerates no further failure (4 voters, 3 live,
  quorum 3; or 2 voters, 2 live, quorum 2). So the margin does not choose; what does is
  that promoting first never leaves the configuration below its target, and the voter
  removed may come back (a long partition) without the voter set ever having shrunk.
- Removing an overdue voter never lowers the failures the cluster tolerates (n voters, d
  dead: (n-d) - (n//2+1) failures; one fewer voter, a quorum the same or one smaller), so
  an overdue voter is removed even when no standby is ready to replace it -- but never
  below a majority of the target (3 of 5, 2 of 3): a leader cut off with a bare majority
  must not shrink the cluster to itself and its side of the partition.
- A dead standby (learner) is removed the same way, after the same time, so the top-up
  below makes a new one. Removals come after promotions, voters before learners.
- Standbys are topped up from healthy server-eligible workers: the target, plus one for
  each voter missing from the target, counting neither overdue voters nor overdue learners.
- A server's own view against the leader's (`own_raft_data_verdict`): its Raft data is
  to be deleted when the leader names it nowhere, or a standby while its own log says
  voter (a removed member's old log), unless its Node is labelled `voter` (labels are
  written from committed configurations only, so that label means it may still be one).
  A server whose log is merely behind the leader's configuration keeps it and catches up.
- Pure: no I/O, no clock.
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
    # A server down this long is replaced. SWIM declares a silent member dead within about
    # 2 s; 30 s more rides out a reboot or a short partition (whose member comes back with
    # its log, cheaper than a new one) yet leaves the cluster one failure short for well
    # under a minute.
    replace_dead_server_after_s: float = 30.0


@dataclass(frozen=True, slots=True)
class RaftMembership:
    voters: tuple[str, ...]
    learners: tuple[str, ...]
    caught_up: frozenset[str] = frozenset()  # learners whose log is close to the leader's
    change_pending: bool = False  # the newest configuration entry is not committed yet


@dataclass(frozen=True, slots=True)
class RolePlan:
    labels: tuple[tuple[str, str], ...] = ()  # (node, role) labels to write
    add_learner: str | None = None
    promote: str | None = None
    remove: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.labels and self.add_learner is None and self.promote is None and self.remove is None


def quorum(voters: int) -> int:
    return voters // 2 + 1


def is_down(name: str, members: Mapping[str, MemberView]) -> bool:
    """Gossip has declared `name` gone (dead or left), or does not know it at all."""
    m = members.get(name)
    return m is None or not m.up


def overdue(names, members: Mapping[str, MemberView], down_since: Mapping[str, float], now: float,
            after_s: float) -> list[str]:
    """The members of `names` down for at least `after_s` (by `down_since`), sorted."""
    return sorted(n for n in names
                  if is_down(n, members) and n in down_since and now - down_since[n] >= after_s)


def plan_roles(raft: RaftMembership, members: Mapping[str, MemberView], node_roles: Mapping[str, str],
               targets: RoleTargets = RoleTargets(), *, now: float = 0.0,
               down_since: Mapping[str, float] | None = None) -> RolePlan:
    if raft.change_pending:
        return RolePlan(notes=("a membership change is uncommitted: waiting",))
    voters, learners = set(raft.voters), set(raft.learners)
    members_in_conf = voters | learners
    down_since = down_since or {}

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

    after_s = targets.replace_dead_server_after_s
    dead_voters = overdue(voters, members, down_since, now, after_s)
    dead_learners = overdue(learners, members, down_since, now, after_s)
    voters_left = len(voters) - len(dead_voters)
    learners_left = len(learners) - len(dead_learners)

    # One membership change per plan: a promotion first (it restores fault tolerance),
    # then the removal of the dead, then growing the standbys.
    if voters_left < targets.voters and len(voters) <= targets.voters:
        ready = sorted(n for n in learners if n in raft.caught_up and usable(n))
        if ready:
            note = f"replacing {dead_voters[0]}" if dead_voters else "voters below target"
            return RolePlan(tuple(labels), promote=ready[0], notes=(note,))
    if dead_voters and len(voters) - 1 >= quorum(targets.voters):
        return RolePlan(tuple(labels), remove=dead_voters[0],
                        notes=(f"{dead_voters[0]} down for {now - down_since[dead_voters[0]]:.0f}s",))
    if dead_learners:
        return RolePlan(tuple(labels), remove=dead_learners[0],
                        notes=(f"{dead_learners[0]} down for {now - down_since[dead_learners[0]]:.0f}s",))
    wanted_learners = targets.standbys + max(0, targets.voters - voters_left)
    if learners_left < wanted_learners:
        if live_candidates and node_roles.get(live_candidates[0]) == "standby":
            return RolePlan(tuple(labels), add_learner=live_candidates[0])
        if not live_candidates:
            fresh = sorted(n for n in node_roles if n not in members_in_conf and usable(n))
            if fresh:
                # Announce it now; it is added once the label is committed (a later plan).
                labels = [(n, r) for n, r in labels if n != fresh[0]] + [(fresh[0], "standby")]
    return RolePlan(tuple(labels))


MEMBER, STALE, WAIT = "member", "stale", "wait"


def own_raft_data_verdict(own_role: str, leader_role: str, node_label: str | None) -> str:
    """What a server does with its Raft data, from the role its own log gives it
    (`voter`, `standby` or ""), the role the leader's configuration gives it, and its
    Node's role label (a linearizable read; None when not read): MEMBER (the leader
    agrees), WAIT (its log is behind, or nothing is known yet) or STALE (delete it)."""
    if own_role == leader_role:
        if own_role:
            return MEMBER
        # Named nowhere, by itself and by the leader: an empty server waiting to be added
        # (labelled standby) waits; one the cluster let go of (labelled worker) is stale.
        return STALE if node_label == "worker" else WAIT
    if leader_role == "voter" or (leader_role == "standby" and not own_role):
        return WAIT  # behind the leader's configuration: the log catches up
    # The leader names it nowhere, or a standby while its old log says voter.
    if node_label is None or node_label == "voter":
        return WAIT
    return STALE
