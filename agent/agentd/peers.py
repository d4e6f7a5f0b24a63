"""gRPC channels from this agent to the others, one per address, kept open.

Owns: the channel pool (`Peers`) that forwarded writes, worker watches, status reports
and log streams use, and the order in which servers are tried.

Rules it keeps: a channel is opened on first use and reused (grpc reconnects it by
itself, with a short backoff so a restarted peer is found quickly); `prune` closes the
channels of addresses no longer in use; every channel is closed when the agent stops.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.grpcbridge import Channel
from agent.rpc import cluster_pb2_grpc, node_pb2_grpc

# grpc's default reconnect backoff starts at 1 s and grows to 120 s: far too slow to notice
# a restarted server. Bound it the way the Raft transport does.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.enable_retries", 0),
    ("grpc.keepalive_time_ms", 2000),  # see agent/raft/transport.py: a dropped path is noticed
    ("grpc.keepalive_timeout_ms", 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)


class Peers:
    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}

    def channel(self, address: str) -> Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = Channel(address, options=CHANNEL_OPTIONS).open()
            self._channels[address] = channel
        return channel

    def cluster(self, address: str) -> Any:
        return self.channel(address).stub(cluster_pb2_grpc.ClusterServiceStub)

    def node(self, address: str) -> Any:
        return self.channel(address).stub(node_pb2_grpc.NodeServiceStub)

    def prune(self, keep: Iterable[str]) -> None:
        wanted = set(keep)
        for address in [a for a in self._channels if a not in wanted]:
            self._channels.pop(address).close()

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
