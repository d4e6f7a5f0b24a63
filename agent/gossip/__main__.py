"""A runnable member process, for tests and benchmarks.

    python -m agent.gossip --name n1 --bind 127.0.0.2:7946 --join 127.0.0.1:7946 [--profile lan|test]
        [--meta '{"grpc": "127.0.0.2:9000"}'] [--key BASE64 ...]

Prints one JSON object per line on stdout: {"event": "ready", ...} once listening, then
every membership event ("joined", "alive", "suspect", "dead", "left", "updated"), each
with "mono" (CLOCK_MONOTONIC seconds, comparable across processes on one host).
Reads JSON commands on stdin, one per line: {"cmd": "leave"}, {"cmd": "set_meta",
"meta": "..."}, {"cmd": "stats"}, {"cmd": "members"}, {"cmd": "install_key"|"use_key"|
"remove_key", "key": BASE64}. SIGTERM/SIGINT leave gracefully, then exit 0.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import sys
import time

import trio

from .config import PROFILES
from .driver import GossipNode
from .errors import GossipError
from .keyring import Keyring


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host, int(port))


def _print(obj: dict) -> None:
    obj["mono"] = round(time.monotonic(), 6)
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _commands(node: GossipNode, done: trio.Event) -> None:
    stream = trio.lowlevel.FdStream(os.dup(0))
    buf = b""
    while True:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                await _command(node, line, done)


async def _command(node: GossipNode, line: bytes, done: trio.Event) -> None:
    try:
        cmd = json.loads(line)
        kind = cmd["cmd"]
        if kind == "leave":
            await node.leave()
            done.set()
        elif kind == "set_meta":
            node.set_meta(cmd["meta"].encode())
        elif kind == "stats":
            _print({"event": "stats", "name": node.name, **node.stats()})
        elif kind == "members":
            _print({"event": "members", "name": node.name, "members": [
                {"name": m.name, "state": m.state.name.lower(), "incarnation": m.incarnation,
                 "meta_version": m.meta_version, "meta": m.meta.decode("utf-8", "replace")}
                for m in node.members()]})
        elif kind in ("install_key", "use_key", "remove_key"):
            if node.keyring is None:
                raise GossipError("no keyring: start with --key")
            getattr(node.keyring, kind.split("_")[0])(base64.b64decode(cmd["key"]))
            _print({"event": "keyring", "name": node.name, "op": kind, "keys": len(node.keyring.keys)})
        else:
            raise ValueError(f"unknown command {kind!r}")
    except (ValueError, KeyError, TypeError, GossipError) as exc:
        _print({"event": "error", "name": node.name, "error": str(exc)})


async def _main(args: argparse.Namespace) -> int:
    config = PROFILES[args.profile]
    keyring = Keyring([base64.b64decode(k) for k in args.key]) if args.key else None
    seeds = [_addr(s) for item in args.join for s in item.split(",") if s]
    node = GossipNode(config, args.name, _addr(args.bind), seeds=seeds, meta=args.meta.encode(), keyring=keyring)
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        _print({"event": "ready", "name": node.name, "addr": f"{node.addr[0]}:{node.addr[1]}"})

        async def pump_events() -> None:
            async for ev in node.events:
                _print(ev.as_dict())

        async def on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    await node.leave()
                    done.set()
                    return

        async def watch_node() -> None:
            await node.stopped.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(pump_events)
        nursery.start_soon(on_signal)
        nursery.start_soon(_commands, node, done)
        nursery.start_soon(watch_node)
    _print({"event": "exit", "name": node.name})
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agent.gossip", description="run one gossip member")
    ap.add_argument("--name", required=True)
    ap.add_argument("--bind", required=True, help="host:port for UDP and TCP")
    ap.add_argument("--join", action="append", default=[], help="seed host:port (repeat or comma-separate)")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="lan")
    ap.add_argument("--meta", default="", help="metadata string (e.g. JSON), at most max_meta_bytes")
    ap.add_argument("--key", action="append", default=[], help="base64 AES key; the first is primary")
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(message)s")
    return trio.run(_main, args)


if __name__ == "__main__":
    sys.exit(main())
