"""The cluster's network: a hub namespace with a bridge, a namespace per node, the host's link.

Layout (addresses from layout.py):

    host ── acnet<o> 10.<o>.0.254/24 ══ v-host ┐
                                              br0 (in namespace ac-<name>-hub)
    ac-<name>-nK: eth0 10.<o>.0.K/24 ══ v-nK ─┘
                  docker0 10.<o>.K.1/24 (made by the node's dockerd)

Rules:
- The bridge lives in a namespace of its own: a bridge in the host's namespace would have
  its frames filtered by the host's iptables (bridge-nf-call-iptables=1, FORWARD DROP).
- Containers' subnets are routed, never NATed: each node routes 10.<o>.J.0/24 through
  node J, and the host routes every node's container subnet through it, so a container's
  address is reachable from every node and from the host, and a node sees the true source.
- The host link's alias ("agentcluster <name> <run dir>") says which cluster, and which
  checkout, owns it; its name carries the octet, so two clusters cannot take one subnet.
- Faults are the content of one iptables chain per node, AC-FAULTS, called first from
  INPUT, OUTPUT and FORWARD; it is replaced as a whole (iptables-restore --noflush), so
  a node's rules always equal what faults.py computes from the recorded faults.
- Nothing here touches the host's iptables: every rule lives inside a node's namespace
  and disappears with it.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Sequence

from .errors import ClusterError
from .layout import (HOST_LINK_ALIAS_TAG, HOST_LINK_PREFIX, HUB_BRIDGE, HUB_HOST_PORT, NODE_LINK, ClusterLayout,
                     NodeLayout, is_netns_of)
from .system import in_netns, run

FAULT_CHAIN = "AC-FAULTS"
NETNS_DIR = Path("/run/netns")


def _ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    return run(argv, check=check).stdout


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host routes to or has an address in (all routing tables)."""
    nets = []
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        try:
            nets.append(ipaddress.IPv4Network(route.get("dst", ""), strict=False))
        except ValueError:
            continue  # "default", or not an address
    return nets


def taken_octets() -> set[int]:
    """Octets held by a cluster's host link on this host (whatever checkout made it)."""
    taken = set()
    for link in json.loads(_ip("-j", "link", "show") or "[]"):
        name = link.get("ifname", "")
        if name.startswith(HOST_LINK_PREFIX) and name[len(HOST_LINK_PREFIX):].isdigit():
            taken.add(int(name[len(HOST_LINK_PREFIX):]))
    return taken


def host_link_of(cluster: str) -> tuple[str, str] | None:
    """(link name, alias) of the host link some checkout made for `cluster`, if any."""
    for link in json.loads(_ip("-j", "-d", "link", "show") or "[]"):
        alias = link.get("ifalias", "")
        parts = alias.split(" ", 2)
        if len(parts) == 3 and parts[0] == HOST_LINK_ALIAS_TAG and parts[1] == cluster:
            return link["ifname"], alias
    return None


def namespaces_of(cluster: str) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if is_netns_of(cluster, p.name))


def claim_name(layout: ClusterLayout) -> bool:
    """Make the hub namespace, which claims the cluster's name on this host; False if it exists already."""
    made = run(["ip", "netns", "add", layout.hub_netns], check=False)
    if made.returncode != 0 and "exists" not in made.stderr:
        raise ClusterError(f"could not create namespace {layout.hub_netns}: {made.stderr.strip()}")
    return made.returncode == 0


def create_hub(layout: ClusterLayout) -> None:
    """The bridge in the (claimed) hub namespace."""
    hub = layout.hub_netns
    _ip("link", "set", "lo", "up", netns=hub)
    _ip("link", "add", HUB_BRIDGE, "type", "bridge", netns=hub)
    _ip("link", "set", HUB_BRIDGE, "up", netns=hub)


def claim_host_link(layout: ClusterLayout) -> bool:
    """The host's link into the hub, with its address; False if another cluster holds the octet."""
    hub = layout.hub_netns
    made = run(["ip", "link", "add", layout.host_link, "type", "veth", "peer", "name", HUB_HOST_PORT, "netns", hub],
               check=False)
    if made.returncode != 0:
        if "exists" in made.stderr:
            return False
        raise ClusterError(f"could not create the host link {layout.host_link}: {made.stderr.strip()}")
    _ip("link", "set", layout.host_link, "alias", layout.host_link_alias)
    _ip("link", "set", HUB_HOST_PORT, "master", HUB_BRIDGE, "up", netns=hub)
    _ip("addr", "add", f"{layout.host_ip}/24", "dev", layout.host_link)
    _ip("link", "set", layout.host_link, "up")
    return True


def create_node(layout: ClusterLayout, node: NodeLayout) -> None:
    """The node's namespace, its link to the hub, its address and routes, and its (empty) fault chain."""
    hub = layout.hub_netns
    _ip("netns", "add", node.netns)
    _ip("link", "set", "lo", "up", netns=node.netns)
    _ip("link", "add", node.hub_port, "type", "veth", "peer", "name", NODE_LINK, "netns", node.netns, netns=hub)
    _ip("link", "set", node.hub_port, "master", HUB_BRIDGE, "up", netns=hub)
    _ip("addr", "add", f"{node.ip}/24", "dev", NODE_LINK, netns=node.netns)
    _ip("link", "set", NODE_LINK, "up", netns=node.netns)
    _ip("route", "add", "default", "via", layout.host_ip, netns=node.netns)
    for other in layout.nodes:
        if other.name != node.name:
            _ip("route", "add", other.pod_cidr, "via", other.ip, netns=node.netns)
    _ip("route", "add", node.pod_cidr, "via", node.ip, "dev", layout.host_link)
    rules = "\n".join(["*filter", f":{FAULT_CHAIN} - [0:0]",
                       *(f"-I {hook} 1 -j {FAULT_CHAIN}" for hook in ("INPUT", "OUTPUT", "FORWARD")),
                       "COMMIT", ""])
    run(in_netns(node.netns_path, ["iptables-restore", "--noflush"]), input=rules)


def set_fault_rules(node: NodeLayout, rules: Sequence[str]) -> None:
    """Replace the node's fault chain with `rules` (iptables rule specs without the chain), atomically."""
    text = "\n".join(["*filter", f":{FAULT_CHAIN} - [0:0]", *(f"-A {FAULT_CHAIN} {r}" for r in rules), "COMMIT", ""])
    run(in_netns(node.netns_path, ["iptables-restore", "--noflush"]), input=text)


def set_node_link(layout: ClusterLayout, node: NodeLayout, up: bool) -> None:
    """Plug or unplug the node from the hub (a machine that is off answers nothing, not even ARP)."""
    _ip("link", "set", node.hub_port, "up" if up else "down", netns=layout.hub_netns)


def node_link_up(layout: ClusterLayout, node: NodeLayout) -> bool:
    out = _ip("-j", "link", "show", node.hub_port, netns=layout.hub_netns, check=False)
    links = json.loads(out or "[]")
    return bool(links) and "UP" in links[0].get("flags", [])


def destroy(cluster: str, host_link: str | None) -> None:
    """Remove the host link and every namespace of `cluster`. Tolerates any part being gone already."""
    if host_link:
        _ip("link", "del", host_link, check=False)
    for ns in namespaces_of(cluster):
        _ip("netns", "del", ns, check=False)
