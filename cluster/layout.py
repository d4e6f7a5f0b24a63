"""Names, addresses and paths of a cluster: a pure function of (name, octet, node count).

Rules:
- No I/O here. Everything the other modules create on the host is named by this module,
  so that `down` can find all of it again from the name and the octet alone.
- A cluster owns the subnet 10.<octet>.0.0/16: node nK is 10.<octet>.0.K/24 on the hub's
  bridge, the host's end of the hub link is 10.<octet>.0.254, and nK's containers live on
  10.<octet>.K.0/24 (the docker0 bridge inside nK), routed through nK's address.
- Host-wide names carry the cluster's name (namespaces "ac-<name>-hub", "ac-<name>-nK",
  cgroups /agentcluster/<name>/...) or its octet (the host link "acnet<octet>"), so two
  clusters never share anything and a taken octet or name fails to be created twice.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ClusterError

# Octets a cluster may take for its 10.<octet>.0.0/16; a range rarely routed on a host.
OCTET_RANGE = range(200, 255)
# The host's address on a cluster's hub, last of the node subnet.
HOST_HOST_PART = 254
# Node numbers are host parts of the node /24 and third octets of their container /24.
MAX_NODES = 253
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
CGROUP_ROOT = "agentcluster"
NETNS_PREFIX = "ac-"
HOST_LINK_PREFIX = "acnet"
# Inside the hub: the bridge and the hub's end of the host link.
HUB_BRIDGE = "br0"
HUB_HOST_PORT = "v-host"
# Inside a node: its end of the link to the hub.
NODE_LINK = "eth0"
# The alias of the host link starts with this, then the cluster's name and its run dir.
HOST_LINK_ALIAS_TAG = "agentcluster"
# Ports agentd listens on in every node.
AGENT_API_PORT = 7070
AGENT_GOSSIP_PORT = 7946
# A unix socket path is at most 107 bytes; containerd's is the deepest under a node dir.
UNIX_PATH_MAX = 107


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ClusterError(f"bad cluster name {name!r}: use 1-20 of a-z, 0-9 and '-', starting with a letter or digit")
    return name


def node_names(count: int) -> tuple[str, ...]:
    return tuple(f"n{k}" for k in range(1, count + 1))


def choose_octet(host_networks: list[ipaddress.IPv4Network], taken: set[int]) -> int | None:
    """The first octet whose /16 overlaps no host network and no other cluster's; None if none is free."""
    for octet in OCTET_RANGE:
        if octet in taken:
            continue
        mine = ipaddress.IPv4Network(f"10.{octet}.0.0/16")
        if not any(mine.overlaps(net) for net in host_networks):
            return octet
    return None


@dataclass(frozen=True, slots=True)
class NodeLayout:
    cluster: str
    name: str
    number: int
    octet: int
    dir: Path

    @property
    def ip(self) -> str:
        return f"10.{self.octet}.0.{self.number}"

    @property
    def pod_cidr(self) -> str:
        return f"10.{self.octet}.{self.number}.0/24"

    @property
    def docker_bip(self) -> str:
        """docker0's address and prefix inside the node (gateway of its containers)."""
        return f"10.{self.octet}.{self.number}.1/24"

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.cluster}-{self.name}"

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def hub_port(self) -> str:
        """The hub's end of this node's link."""
        return f"v-{self.name}"

    @property
    def cgroup(self) -> str:
        """The node's cgroup path, the same in every hierarchy (also dockerd's --cgroup-parent)."""
        return f"/{CGROUP_ROOT}/{self.cluster}/{self.name}"

    @property
    def docker_socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def docker_url(self) -> str:
        return f"unix://{self.docker_socket}"

    @property
    def data_root(self) -> Path:
        return data_root_of(self.dir)

    @property
    def exec_root(self) -> Path:
        return self.dir / "exec"

    @property
    def containerd_socket(self) -> Path:
        return containerd_socket_of(self.dir)

    @property
    def agent_dir(self) -> Path:
        return self.dir / "agentd"

    @property
    def api_address(self) -> str:
        return f"{self.ip}:{AGENT_API_PORT}"

    @property
    def gossip_address(self) -> str:
        return f"{self.ip}:{AGENT_GOSSIP_PORT}"


@dataclass(frozen=True, slots=True)
class ClusterLayout:
    name: str
    octet: int
    node_count: int
    run_dir: Path

    @property
    def subnet(self) -> str:
        return f"10.{self.octet}.0.0/16"

    @property
    def hub_netns(self) -> str:
        return f"{NETNS_PREFIX}{self.name}-hub"

    @property
    def host_link(self) -> str:
        return f"{HOST_LINK_PREFIX}{self.octet}"

    @property
    def host_ip(self) -> str:
        return f"10.{self.octet}.0.{HOST_HOST_PART}"

    @property
    def host_link_alias(self) -> str:
        return host_link_alias(self.name, self.run_dir)

    @property
    def cgroup(self) -> str:
        return f"/{CGROUP_ROOT}/{self.name}"

    @property
    def timers_cgroup(self) -> str:
        """Where the helpers that end timed pauses run, so that `down` finds them."""
        return f"{self.cgroup}/timers"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def nodes(self) -> tuple[NodeLayout, ...]:
        return tuple(NodeLayout(self.name, n, k, self.octet, self.run_dir / n)
                     for k, n in enumerate(node_names(self.node_count), start=1))

    def node(self, name: str) -> NodeLayout:
        for n in self.nodes:
            if n.name == name:
                return n
        names = ", ".join(n.name for n in self.nodes)
        raise ClusterError(f"unknown node {name!r}: cluster {self.name} has {names}")


def host_link_alias(name: str, run_dir: Path) -> str:
    return f"{HOST_LINK_ALIAS_TAG} {name} {run_dir}"


def data_root_of(node_dir: Path) -> Path:
    """dockerd's --data-root in a node's directory."""
    return node_dir / "docker"


def containerd_socket_of(node_dir: Path) -> Path:
    """Where the node's dockerd-managed containerd listens (its shims' socket names hash it)."""
    return node_dir / "exec" / "containerd" / "containerd.sock"


def is_netns_of(cluster: str, netns: str) -> bool:
    """True for the hub and node namespaces of `cluster` (not those of a cluster "<cluster>-x")."""
    return re.fullmatch(rf"{re.escape(NETNS_PREFIX + cluster)}-(hub|n\d+)", netns) is not None
