"""agentd: a node agent and gossip-based mini-orchestrator."""

__version__ = "0.1.0"
