"""What a failed test or bench shows of the cluster it ran on: the lines of each node's
agentd log that explain most failures, before the cluster (and its logs) are removed.

Owns: `digest(run_dir)`, the last lines per node that are warnings or errors, or events
of placement, fencing, Raft leadership and container life. Read-only.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

# Besides every warning and error: the events that tell where Pods went and why.
TELLING = re.compile(
    r"level=(warning|error)|event=(desired_applied|container_(started|died)|sandbox_died|adopting|terminat\w+"
    r"|\w+_failed|fenced|fence_lifted|assignments_\w+|raft_leader_changed|raft_started|raft_removed\w*"
    r"|member_(dead|suspect)|pod_\w+)\b")


def digest(run_dir: Path, *, lines_per_node: int = 25, pattern: str = "*/agentd.log") -> str:
    """The telling lines of each node's agentd log under `run_dir` (`pattern`), the newest last."""
    parts = []
    for log in sorted(Path(run_dir).glob(pattern)):
        kept: deque[str] = deque(maxlen=lines_per_node)
        try:
            with log.open(errors="replace") as f:
                for line in f:
                    if TELLING.search(line):
                        kept.append(line.rstrip()[:300])
        except OSError as exc:
            kept.append(f"(cannot read {log}: {exc})")
        node = log.parent.name if log.name == "agentd.log" else log.stem
        parts.append(f"--- {node}: the last {len(kept)} telling lines of {log.name}")
        parts.extend(kept)
    return "\n".join(parts)
