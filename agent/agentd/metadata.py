"""What an agent tells every other agent about itself through gossip.

Owns: `AgentMeta` (the gRPC address, role, bootstrap expectation, capacity and
allocatable, labels, version) and its compact encoding into SWIM member metadata.

Rules it keeps:
- The encoding is a msgpack map with short keys and a format number, and must fit in
  the gossip metadata limit (`agent.gossip` config `max_meta_bytes`); `encode` raises
  MetadataTooLarge rather than send something peers would drop (too many labels, say).
- `decode` never raises: metadata from a peer that is not ours, or damaged, is None,
  and the member is then treated as a stranger (not a server, not a Node).
- Roles: "voter" and "standby" are servers (they hold the Raft log); "worker" is not;
  "joining" is an agent that has not yet learnt its role.
- Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack

FORMAT = 1
ROLES = ("joining", "voter", "standby", "worker")
SERVER_ROLES = ("voter", "standby")


class MetadataTooLarge(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AgentMeta:
    api_address: str  # host:port of ClusterService / NodeService / RaftService
    role: str = "joining"
    bootstrap_expect: int = 0  # 0: never bootstraps a cluster itself
    formed: bool = False  # this agent belongs to a cluster that has (had) a leader
    server_eligible: bool = True  # may be made a voter or a standby
    cpu_millicores: int = 0
    memory_bytes: int = 0
    alloc_cpu_millicores: int = 0
    alloc_memory_bytes: int = 0
    max_pods: int = 110
    labels: Mapping[str, str] = field(default_factory=dict)
    version: str = ""
    os: str = "linux"
    arch: str = "amd64"

    @property
    def is_server(self) -> bool:
        return self.role in SERVER_ROLES

    def with_role(self, role: str, *, formed: bool | None = None) -> AgentMeta:
        return replace(self, role=role, formed=self.formed if formed is None else formed)

    def node_facts(self) -> dict[str, Any]:
        """The facts of a node_upsert command (agent.state.commands.upsert_node)."""
        host, _, port = self.api_address.rpartition(":")
        return {
            "address": host, "api_port": int(port) if port.isdigit() else 0,
            "cpu": self.cpu_millicores, "memory": self.memory_bytes,
            "alloc_cpu": self.alloc_cpu_millicores, "alloc_memory": self.alloc_memory_bytes,
            "max_pods": self.max_pods, "labels": dict(self.labels), "version": self.version,
            "os": self.os, "arch": self.arch,
        }


_KEYS = {
    "a": ("api_address", str), "r": ("role", str), "b": ("bootstrap_expect", int), "f": ("formed", bool),
    "e": ("server_eligible", bool), "c": ("cpu_millicores", int), "m": ("memory_bytes", int),
    "ac": ("alloc_cpu_millicores", int), "am": ("alloc_memory_bytes", int), "p": ("max_pods", int),
    "l": ("labels", dict), "v": ("version", str), "o": ("os", str), "h": ("arch", str),
}


def encode(meta: AgentMeta, *, max_bytes: int) -> bytes:
    body: dict[str, Any] = {"_": FORMAT}
    for short, (name, _kind) in _KEYS.items():
        value = getattr(meta, name)
        body[short] = dict(value) if isinstance(value, Mapping) else value
    data = msgpack.packb(body, use_bin_type=True)
    if len(data) > max_bytes:
        raise MetadataTooLarge(f"agent metadata is {len(data)} bytes, above the gossip limit of {max_bytes} "
                               f"(fewer or shorter --label values?)")
    return data


def decode(data: bytes) -> AgentMeta | None:
    try:
        body = msgpack.unpackb(data, raw=False)
    except Exception:  # noqa: BLE001 - not ours, or damaged
        return None
    if not isinstance(body, dict) or body.get("_") != FORMAT:
        return None
    values: dict[str, Any] = {}
    for short, (name, kind) in _KEYS.items():
        value = body.get(short)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return None
        values[name] = value
    if values["role"] not in ROLES or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values["labels"].items()
    ):
        return None
    return AgentMeta(**values)
