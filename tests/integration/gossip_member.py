"""One `python -m agent.gossip` member process, driven over its stdin/stdout JSON lines.

Shared by tests/integration/test_gossip_udp.py and bench/swim_bench.py: starting a member
(optionally inside a network namespace, with keys and metadata), waiting for an event it
prints, sending it commands and waiting for their answers (counters, member lists),
stopping it. Everything waits on a condition with a deadline, never on a bare sleep.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def free_port(host: str) -> int:
    """A port free for both UDP and TCP on `host`."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
                u.bind((host, port))
                t.bind((host, port))
                return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def run_probe_periods(members: Sequence[GossipMember], periods: int, timeout: float) -> None:
    """Wait until every member has started `periods` more probes than now.

    A clock that counts only time the members actually ran: on a busy host it waits longer
    instead of judging early. Used where a test must see that something does NOT happen
    (no false death) within the protocol's own bound, expressed in probe periods.
    """
    start = {m.name: m.stats().get("core_probes", 0) for m in members}
    for m in members:
        done = wait_until(lambda m=m: m.stats().get("core_probes", 0) >= start[m.name] + periods, timeout, 0.1)
        if not done:
            raise RuntimeError(f"{m.name} did not run {periods} probe periods within {timeout} s")


class GossipMember:
    """A member process; every JSON line it prints is kept in `lines` (guarded by `cond`)."""

    def __init__(self, name: str, host: str, port: int, join: Sequence[str], *, profile: str = "test",
                 meta: str = "", keys: Sequence[bytes] = (), netns: str | None = None) -> None:
        self.name = name
        self.host = host
        self.addr = f"{host}:{port}"
        cmd = [sys.executable, "-m", "agent.gossip", "--name", name, "--bind", self.addr, "--profile", profile,
               "--meta", meta]
        for seed in join:
            cmd += ["--join", seed]
        for key in keys:
            cmd += ["--key", base64.b64encode(key).decode()]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.lines: list[dict] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            with self.cond:
                self.lines.append(obj)
                self.cond.notify_all()

    def wait_for(self, pred: Callable[[dict], bool], timeout: float, start: int = 0) -> dict | None:
        """The first line from index `start` on that satisfies `pred`, or None after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for obj in self.lines[start:]:
                    if pred(obj):
                        return obj
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def events(self, kind: str, about: str) -> list[dict]:
        with self.cond:
            return [o for o in self.lines if o.get("event") == kind and o.get("name") == about]

    def send(self, **cmd: object) -> None:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def command(self, answer: str, timeout: float = 10.0, **cmd: object) -> dict:
        """Send a command and return the line of kind `answer` it prints in reply."""
        with self.cond:
            mark = len(self.lines)
        self.send(**cmd)
        got = self.wait_for(lambda o: o.get("event") in (answer, "error"), timeout, start=mark)
        if got is None or got["event"] == "error":
            raise RuntimeError(f"{self.name} did not answer {cmd} within {timeout} s: {got}")
        return got

    def stats(self, timeout: float = 10.0) -> dict:
        return self.command("stats", timeout, cmd="stats")

    def members(self, timeout: float = 10.0) -> dict[str, dict]:
        """This member's view: name -> {"state", "incarnation", "meta_version", "meta"}."""
        return {m["name"]: m for m in self.command("members", timeout, cmd="members")["members"]}

    def since(self, mark: int, kind: str | None = None) -> list[dict]:
        """Lines printed from index `mark` on (of one kind if given)."""
        with self.cond:
            return [o for o in self.lines[mark:] if kind is None or o.get("event") == kind]

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
