"""Running one probe against a container: exec, httpGet, tcpSocket, grpc.

Owns: the I/O of a single probe attempt; returns True (success) or False. Rules: every
attempt is bounded by the probe's timeout; any error (refused, reset, timeout, Docker
failure) is a failed attempt, never an exception to the caller.
  exec       docker exec; success is exit code 0;
  httpGet    HTTP/1.0 GET to <host or pod IP>:<port><path>; success is a 2xx or 3xx status;
             scheme HTTPS speaks TLS without verifying the certificate, as kubelet does;
  tcpSocket  a TCP connection that opens;
  grpc       grpc.health.v1.Health/Check on <pod IP>:<port> (grpc_health.py); success is SERVING.
Lifecycle hooks (postStart, preStop) run the same exec and httpGet handlers, plus sleep,
bounded by the caller's timeout; run_hook returns None on success, else what failed.
"""

from __future__ import annotations

import ssl
from typing import Any

import trio

from . import grpc_health
from .docker_api import DockerApi
from .errors import PodRuntimeError


def _port(container: Any, port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    return container.port_number(port)


def _probe_tls_context() -> ssl.SSLContext:
    # kubelet does not verify the certificate of an HTTPS probe: the probe checks that the
    # server answers, not who it is. So no CA store is loaded either (2.3 MB of agentd's RSS).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_TLS_CONTEXT = _probe_tls_context()


async def _http_get(host: str, port: int, path: str, headers: tuple[tuple[str, str], ...], *,
                    https: bool = False) -> bool:
    stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    if https:
        stream = trio.SSLStream(stream, _TLS_CONTEXT, server_hostname=host)
    async with stream:
        lines = [f"GET {path or '/'} HTTP/1.0", f"Host: {host}:{port}", "User-Agent: agentd-probe", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers]
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = b""
        while b"\r\n" not in head and len(head) < 4096:
            chunk = await stream.receive_some(1024)
            if not chunk:
                break
            head += chunk
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        return False
    return 200 <= int(status_line[1]) < 400


async def run_probe(docker: DockerApi, probe: Any, container: Any, *, container_id: str, pod_ip: str | None) -> bool:
    """One attempt of `probe` (a Probe of the Pod model) against a running container."""
    timeout_s = float(probe.timeout_seconds or 1)
    try:
        with trio.fail_after(timeout_s):
            if probe.exec is not None:
                return await docker.exec(container_id, list(probe.exec.command)) == 0
            if probe.http_get is not None:
                action = probe.http_get
                port = _port(container, action.port)
                host = action.host or pod_ip
                scheme = (action.scheme or "HTTP").upper()
                if port is None or host is None or scheme not in ("HTTP", "HTTPS"):
                    return False
                return await _http_get(host, port, action.path, tuple(action.http_headers),
                                       https=scheme == "HTTPS")
            if probe.tcp_socket is not None:
                action = probe.tcp_socket
                port = _port(container, action.port)
                host = action.host or pod_ip
                if port is None or host is None:
                    return False
                stream = await trio.open_tcp_stream(host, port)
                await stream.aclose()
                return True
            if getattr(probe, "grpc", None) is not None:
                action = probe.grpc
                if pod_ip is None:
                    return False
                # grpcio blocks: a thread, bounded by the call's own deadline (a cancelled
                # wait could not stop the thread, the deadline does).
                return await trio.to_thread.run_sync(grpc_health.check, pod_ip, action.port, action.service,
                                                     timeout_s)
    except (trio.TooSlowError, OSError, PodRuntimeError, trio.BrokenResourceError, ssl.SSLError):
        return False
    return False  # a probe with no handler never succeeds


async def run_hook(docker: DockerApi, handler: Any, container: Any, *, container_id: str, pod_ip: str | None,
                   timeout_s: float) -> str | None:
    """Run one lifecycle hook handler; None if it succeeded, else why it failed."""
    try:
        with trio.fail_after(max(0.001, timeout_s)):
            if handler.exec is not None:
                code = await docker.exec(container_id, list(handler.exec.command))
                return None if code == 0 else f"exec {list(handler.exec.command)!r} exited with {code}"
            if handler.http_get is not None:
                action = handler.http_get
                port = _port(container, action.port)
                host = action.host or pod_ip
                if port is None or host is None:
                    return f"httpGet: no address (port {action.port!r}, host {host!r})"
                ok = await _http_get(host, port, action.path, tuple(action.http_headers),
                                     https=(action.scheme or "HTTP").upper() == "HTTPS")
                return None if ok else f"httpGet {host}:{port}{action.path}: not a 2xx/3xx answer"
            if handler.sleep is not None:
                await trio.sleep(handler.sleep.seconds)
                return None
    except trio.TooSlowError:
        return f"timed out after {timeout_s:g}s"
    except (OSError, PodRuntimeError, trio.BrokenResourceError, ssl.SSLError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no handler"
