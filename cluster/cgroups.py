"""A node's cgroups (v1): membership, freezing, killing everything, removal.

Rules:
- A node's daemons join the same path, /agentcluster/<cluster>/<node>, in the freezer,
  pids and memory hierarchies (`PLACED`); its dockerd gets that path as --cgroup-parent,
  so runc puts every container of the node below it, in every hierarchy (the others too).
  The freezer tree is the list of the node's processes: dockerd, containerd, the shims,
  docker-proxy, agentd and every container process.
- Killing is done frozen: freeze the tree, SIGKILL every process in it, thaw every
  cgroup of the tree (a container paused on its own would stay frozen and never die),
  repeat until the tree is empty. Nothing can fork while frozen, so nothing escapes.
- Removal walks every mounted cgroup hierarchy (v1 and the v2 "unified" one, where runc
  also creates container cgroups) and removes the cluster's tree bottom-up.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from .errors import ClusterError
from .system import alive, signal_pid

MOUNT_ROOT = Path("/sys/fs/cgroup")
# Hierarchies a node's daemons join: freezer to pause and list, pids to count, memory to measure.
PLACED = ("freezer", "pids", "memory")
# How long a freeze may stay FREEZING before it is reported as failed.
_FREEZE_WAIT_S = 5.0
# How long killing a node's tree may take before it is reported as failed.
_KILL_WAIT_S = 15.0
# How long removing a tree may wait for its killed processes to be reaped.
_REMOVE_WAIT_S = 10.0


def check_hierarchies() -> None:
    missing = [h for h in PLACED if not (MOUNT_ROOT / h / "cgroup.procs").exists()]
    if missing:
        raise ClusterError(f"cgroup v1 hierarchies not mounted under {MOUNT_ROOT}: {', '.join(missing)} "
                           f"(a node needs {', '.join(PLACED)} to be listed, frozen and killed as one)")


def placed_dirs(path: str) -> list[Path]:
    return [MOUNT_ROOT / h / path.lstrip("/") for h in PLACED]


def create(path: str) -> list[Path]:
    dirs = placed_dirs(path)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def _freezer(path: str) -> Path:
    return MOUNT_ROOT / "freezer" / path.lstrip("/")


def _tree(root: Path) -> list[Path]:
    """`root` and every cgroup below it, parents first."""
    if not root.is_dir():
        return []
    return [root] + sorted((Path(d) / s for d, subs, _ in os.walk(root) for s in subs), key=lambda p: len(p.parts))


def pids(path: str) -> list[int]:
    """Every live process in the freezer tree at `path` (a zombie is dead: only its parent's wait is missing)."""
    found: set[int] = set()
    for cg in _tree(_freezer(path)):
        try:
            found.update(int(x) for x in (cg / "cgroup.procs").read_text().split())
        except FileNotFoundError:
            continue  # a container's cgroup removed while we walked
    return sorted(p for p in found if alive(p))


def task_count(path: str) -> int | None:
    """Threads charged to the tree (pids.current)."""
    try:
        return int((MOUNT_ROOT / "pids" / path.lstrip("/") / "pids.current").read_text())
    except FileNotFoundError:
        return None


def rss_bytes(path: str) -> int | None:
    """Resident anonymous memory of the whole tree (memory.stat total_rss)."""
    try:
        for line in (MOUNT_ROOT / "memory" / path.lstrip("/") / "memory.stat").read_text().splitlines():
            key, value = line.split()
            if key == "total_rss":
                return int(value)
    except FileNotFoundError:
        return None
    return None


def frozen(path: str) -> bool:
    try:
        return (_freezer(path) / "freezer.state").read_text().strip() != "THAWED"
    except FileNotFoundError:
        return False


def freeze(path: str) -> None:
    state = _freezer(path) / "freezer.state"
    state.write_text("FROZEN")
    deadline = time.monotonic() + _FREEZE_WAIT_S
    while state.read_text().strip() != "FROZEN":
        if time.monotonic() > deadline:
            raise ClusterError(f"cgroup {path} is still freezing after {_FREEZE_WAIT_S:.0f}s")
        time.sleep(0.01)


def thaw(path: str) -> None:
    """Thaw the tree, every cgroup of it (including containers frozen on their own)."""
    for cg in _tree(_freezer(path)):
        try:
            (cg / "freezer.state").write_text("THAWED")
        except FileNotFoundError:
            continue


def kill_all(path: str) -> None:
    """SIGKILL every process of the tree at `path`, frozen so that none escapes; wait until it is empty."""
    deadline = time.monotonic() + _KILL_WAIT_S
    while True:
        if not _freezer(path).is_dir():
            return
        try:
            freeze(path)
        except ClusterError:
            pass  # a task stuck in the kernel: kill what is there and thaw, then look again
        for pid in pids(path):
            signal_pid(pid, signal.SIGKILL)
        thaw(path)
        end = time.monotonic() + 1.0
        while pids(path) and time.monotonic() < end:
            time.sleep(0.01)
        if not pids(path):
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"processes still in cgroup {path} after SIGKILL: {pids(path)}")


def hierarchy_roots() -> list[Path]:
    """The mount point of every cgroup hierarchy, v1 and v2."""
    roots = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                roots.append(Path(fields[4]))
    return roots


def remove_tree(path: str) -> list[Path]:
    """Remove the tree at `path` in every hierarchy; return the directories that could not be removed.

    A cgroup is busy until its last task is reaped, so a killed process not yet waited for
    by its new parent (init) delays the removal a moment; that is waited for, within limits.
    """
    deadline = time.monotonic() + _REMOVE_WAIT_S
    while True:
        left = []
        for root in hierarchy_roots():
            for cg in reversed(_tree(root / path.lstrip("/"))):
                try:
                    cg.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(cg)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def remove_if_empty(path: str) -> None:
    """Remove `path` in every hierarchy if nothing is left below it (another cluster may still use it)."""
    for root in hierarchy_roots():
        try:
            (root / path.lstrip("/")).rmdir()
        except OSError:
            pass


def exists_anywhere(path: str) -> list[Path]:
    return [root / path.lstrip("/") for root in hierarchy_roots() if (root / path.lstrip("/")).is_dir()]
