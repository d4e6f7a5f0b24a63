"""A cluster of network-namespace "machines" on one host, each with its own dockerd and agentd.

`python -m cluster up --nodes 3` on the command line; `Cluster.up(...)`, `Cluster(name)`
and `down(name)` from Python (the tests, the benchmarks and the demo). Modules:
layout (names and addresses, pure), faults (faults as data and their iptables rules,
pure), state (state file, lock, fault journal), system (commands, detached daemons),
network, cgroups, engines (dockerd), agents (agentd), cluster (the whole), cli.
"""

from .cluster import Cluster, NodeStatus, down
from .errors import ClusterError
from .layout import ClusterLayout, NodeLayout

__all__ = ["Cluster", "ClusterError", "ClusterLayout", "NodeLayout", "NodeStatus", "down"]
