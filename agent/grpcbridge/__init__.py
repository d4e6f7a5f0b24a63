"""The Trio <-> grpcio bridge and the RPC error family: the floor every gRPC user of
agentd stands on (the Raft transport, the API servicers, agentctl). It imports nothing
else of agentd, so nothing above it can make an import cycle through it.

  server.py   TrioGrpcServer: grpcio's thread-pool server with Trio handlers
  client.py   unary / server_stream / Channel: grpcio client calls awaited from Trio
  errors.py   RpcError and its subclasses: gRPC status codes as exceptions, both ends
"""

from agent.grpcbridge.client import Channel, ServerStream, server_stream, unary
from agent.grpcbridge.errors import BridgeError, RpcError
from agent.grpcbridge.server import GrpcServerConfig, TrioGrpcServer, lockstep, status_for

__all__ = [
    "BridgeError",
    "Channel",
    "GrpcServerConfig",
    "RpcError",
    "ServerStream",
    "TrioGrpcServer",
    "lockstep",
    "server_stream",
    "status_for",
    "unary",
]
