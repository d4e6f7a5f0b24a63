"""Raft's exceptions.

Owns: the one base exception of the `agent.raft` package and the refusals the core
hands back to its caller. Rules: a refusal (not leader, busy transferring, bad request)
is an ordinary exception the caller may catch and act on; a broken internal invariant
raises `RaftInvariantError` and must never be caught and ignored.
"""

from __future__ import annotations


class RaftError(Exception):
    """Base of every exception raised by agent.raft."""


class NotLeader(RaftError):
    """The request needs the leader and this node is not (or is no longer) the leader.

    `leader_hint` is the node believed to lead now, or None when unknown.
    """

    def __init__(self, leader_hint: str | None = None) -> None:
        super().__init__(f"not leader; leader_hint={leader_hint}")
        self.leader_hint = leader_hint


class TransferInProgress(RaftError):
    """A leadership transfer is under way; new proposals are refused until it ends (thesis §3.10)."""


class ConfChangeRejected(RaftError):
    """A membership change was refused (one already pending, node unknown, learner not caught up...)."""


class SnapshotUnavailable(RaftError):
    """Storage cannot produce the requested snapshot or entries (they were compacted)."""


class NodeStopped(RaftError):
    """The node stopped for good: its storage failed, or an invariant broke. `RaftNode.run`
    raises it (the cause chained), and every caller still waiting gets it."""


class RaftInvariantError(RaftError):
    """An internal invariant of the algorithm broke: a bug, never a peer's fault."""
