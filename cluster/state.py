"""The cluster's state file, its lock, and its journal of faults.

Rules:
- <run dir>/state.json is the record of a cluster: its layout (name, octet, node count),
  its roles, which nodes the tool turned off, and the faults in force. It is written
  atomically (temporary file, then rename) and only under the cluster's lock.
- The lock is an flock on the run directory itself, held for the whole of every command
  that changes the cluster, so commands from several processes (a test, a timed pause's
  helper, a person's shell) apply one at a time and always to the latest state.
- Every fault and every heal (and `up`, kill, stop, start) is appended to
  <run dir>/faults.jsonl with the wall-clock time it was done by (a command that takes a
  while also says how long, took_s), so a test can print a timeline; the journal is
  only ever appended to.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from .errors import ClusterError
from .faults import FaultState
from .layout import ClusterLayout, NodeLayout

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class ClusterState:
    layout: ClusterLayout
    servers: int
    agents: int  # the first `agents` nodes run an agentd the tool starts; the others only their dockerd
    complete: bool = False  # `up` finished; until then the cluster is leftovers to clean
    off: frozenset[str] = frozenset()  # nodes the tool killed or stopped
    faults: FaultState = field(default_factory=FaultState)

    @property
    def agent(self) -> bool:
        return self.agents > 0

    def runs_agent(self, node: NodeLayout) -> bool:
        """True if the tool starts (and restarts) this node's agentd."""
        return node.number <= self.agents

    def with_off(self, node: str, off: bool) -> "ClusterState":
        return replace(self, off=(self.off | {node}) if off else (self.off - {node}))

    def to_json(self) -> dict[str, Any]:
        lay = self.layout
        return {"version": STATE_VERSION, "name": lay.name, "octet": lay.octet, "nodes": lay.node_count,
                "servers": self.servers, "agent": self.agent, "agents": self.agents, "complete": self.complete,
                "off": sorted(self.off), "faults": self.faults.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any], run_dir: Path) -> "ClusterState":
        if data.get("version") != STATE_VERSION:
            raise ClusterError(f"state file of version {data.get('version')!r}, expected {STATE_VERSION}")
        layout = ClusterLayout(data["name"], int(data["octet"]), int(data["nodes"]), run_dir)
        # "agents" came later: a state file without it had agents on every node or on none.
        agents = int(data["agents"]) if "agents" in data else (layout.node_count if data["agent"] else 0)
        return cls(layout, int(data["servers"]), agents, bool(data["complete"]),
                   frozenset(data["off"]), FaultState.from_json(data["faults"]))


def load(run_dir: Path) -> ClusterState | None:
    try:
        data = json.loads((run_dir / "state.json").read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise ClusterError(f"{run_dir / 'state.json'} is not valid JSON ({exc}); `down` removes the cluster") from None
    return ClusterState.from_json(data, run_dir)


def save(state: ClusterState) -> None:
    path = state.layout.state_file
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(run_dir: Path, *, create: bool = False) -> Iterator[bool]:
    """Hold the cluster's lock; yields False (and holds nothing) if the run directory does not exist."""
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield run_dir.is_dir()  # false if a `down` removed it while we waited
    finally:
        os.close(fd)


def record(run_dir: Path, event: str, **details: Any) -> dict[str, Any]:
    """Append one fault or heal to the journal; returns the entry written."""
    entry = {"t": round(time.time(), 6), "event": event, **details}
    with open(run_dir / "faults.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


def journal(run_dir: Path) -> list[dict[str, Any]]:
    try:
        lines = (run_dir / "faults.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]
