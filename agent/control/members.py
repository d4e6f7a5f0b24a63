"""How the leader's controllers see the cluster's members: plain data from gossip.

Owns: `MemberView`, one agent as the leader's gossip shows it (its SWIM state, the facts
its agent advertises, whether it may serve), built by the driver from SWIM's member list.

Rules: plain frozen data; `facts` is None for a member whose metadata is not an agent's
(it is then ignored by every controller).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ALIVE = "alive"
SUSPECT = "suspect"
DEAD = "dead"
LEFT = "left"


@dataclass(frozen=True, slots=True)
class MemberView:
    name: str
    state: str  # alive | suspect | dead | left
    facts: Mapping[str, Any] | None = None  # node_upsert facts (AgentMeta.node_facts())
    role: str = "joining"  # what the agent itself advertises
    server_eligible: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        """Alive or merely suspected: not (yet) declared gone."""
        return self.state in (ALIVE, SUSPECT)
