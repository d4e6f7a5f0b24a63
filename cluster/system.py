"""Running things on the host: commands, detached daemons, processes, mounts.

Rules:
- Every external command goes through `run`, which turns a failure into a ClusterError
  carrying the command and its stderr; callers that expect a failure say so (`check=False`).
- A daemon of a node is started by `spawn_detached`: a launcher shell joins the node's
  cgroups, writes its pid, then execs the command, so the daemon is in the node's cgroups
  before its first instruction and all its children inherit them. `setsid -f` detaches it
  (new session, reparented away from us), so neither the CLI nor a test process keeps it
  as a child or a zombie.
- Commands that belong inside a node run through `nsenter --net=<netns file>` and never
  `ip netns exec` (which remounts /sys, and dockerd then fails to find the devices cgroup).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence

from .errors import ClusterError

# The Debian package that installs each tool the cluster uses.
PACKAGES = {
    "ip": "iproute2",
    "iptables-restore": "iptables",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "setsid": "util-linux",
    "umount": "mount",
    "dockerd": "docker.io",
    "docker": "docker.io",
}
# The launcher: join every cgroup directory given before "--", record the pid, exec the rest.
_LAUNCHER = (
    'set -e; pidfile=$1; shift; '
    'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs"; shift; done; shift; '
    'echo $$ > "$pidfile.tmp"; mv "$pidfile.tmp" "$pidfile"; exec "$@"'
)
# The same without a pidfile, for a command run in the foreground (its exit status is the command's).
_JOINER = 'set -e; while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs"; shift; done; shift; exec "$@"'
# How long a launcher may take to record the pid of what it starts.
_PIDFILE_WAIT_S = 10.0


def require_root() -> None:
    if os.geteuid() != 0:
        raise ClusterError("the cluster tool must run as root: it creates network namespaces, cgroups and "
                           "iptables rules, and starts dockerd")


def require_tools(tools: Sequence[str]) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        hints = ", ".join(f"{t} (package {PACKAGES[t]})" for t in missing)
        raise ClusterError(f"missing tools: {hints}")


def run(argv: Sequence[str], *, check: bool = True, input: str | bytes | None = None,
        timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    text = not isinstance(input, bytes)
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, text=text, timeout=timeout_s)
    except FileNotFoundError as exc:
        raise ClusterError(f"missing tool {argv[0]!r}: {exc}") from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"timed out after {timeout_s:.0f}s: {' '.join(argv)}") from None
    if check and proc.returncode != 0:
        err = proc.stderr if text else proc.stderr.decode(errors="replace")
        raise ClusterError(f"command failed ({proc.returncode}): {' '.join(argv)}\n{err.strip()}")
    return proc


def in_netns(netns_path: str, argv: Sequence[str]) -> list[str]:
    """`argv` run inside a network namespace (and nothing else of the node: mounts stay the host's)."""
    return ["nsenter", f"--net={netns_path}", *argv]


def in_cgroups(cgroup_dirs: Sequence[Path], argv: Sequence[str]) -> list[str]:
    """`argv` run inside `cgroup_dirs` (joined before it starts, so its children are in them too)."""
    return ["sh", "-c", _JOINER, "joiner", *map(str, cgroup_dirs), "--", *argv]


def spawn_detached(argv: Sequence[str], *, cgroup_dirs: Sequence[Path], pidfile: Path, log: Path,
                   cwd: Path | None = None) -> int:
    """Start `argv` detached, inside `cgroup_dirs`, logging to `log`; return its pid."""
    pidfile.unlink(missing_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        launcher = subprocess.run(
            ["setsid", "-f", "sh", "-c", _LAUNCHER, "launcher", str(pidfile), *map(str, cgroup_dirs), "--", *argv],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=cwd, timeout=30)
    if launcher.returncode != 0:
        raise ClusterError(f"could not launch {argv[0]} (see {log})")
    deadline = time.monotonic() + _PIDFILE_WAIT_S
    while time.monotonic() < deadline:
        pid = read_pid(pidfile)
        if pid is not None:
            return pid
        time.sleep(0.01)
    raise ClusterError(f"{argv[0]} did not start within {_PIDFILE_WAIT_S:.0f}s (see {log})")


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def stopped(pid: int) -> bool:
    """True if `pid` is stopped by a signal (SIGSTOP)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"
    except (FileNotFoundError, IndexError):
        return False


def signal_pid(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def wait_gone(pids: Sequence[int], timeout_s: float) -> list[int]:
    """Wait until none of `pids` is alive; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def log_tail(log: Path, lines: int = 15) -> str:
    """The last lines of a daemon's log, to quote in an error (the log may be removed with the cluster)."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log at {log})"
    return "\n".join(text[-lines:])


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` in the host's mount namespace, deepest first."""
    prefix = str(root).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=len, reverse=True)


def unmount_under(root: Path) -> None:
    for point in mounts_under(root):
        run(["umount", "-l", point], check=False)
