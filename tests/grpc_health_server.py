"""A small grpc.health.v1 server for the gRPC probe's tests, in process or as a script.

Its answer to Check is read from a file for every call (the number of a ServingStatus:
1 SERVING, 2 NOT_SERVING), so a test changes what it says by writing that file. It knows
the services "" and those named on its command line; others get NOT_FOUND, as the
reference health server answers.
Script: python -m tests.grpc_health_server PORT STATUS_FILE [SERVICE...]; prints "ready".
"""

from __future__ import annotations

import sys
from concurrent import futures

import grpc

from agent.runtime.grpc_health import decode_request, encode_response


def serve(port: int, status_file: str, services: tuple[str, ...] = (), host: str = "0.0.0.0") -> grpc.Server:
    known = {"", *services}

    def check(request: bytes, context: grpc.ServicerContext) -> bytes:
        if decode_request(request) not in known:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        with open(status_file) as f:
            return encode_response(int(f.read().strip() or 0))

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server


if __name__ == "__main__":
    srv = serve(int(sys.argv[1]), sys.argv[2], tuple(sys.argv[3:]))
    print("ready", flush=True)
    srv.wait_for_termination()
