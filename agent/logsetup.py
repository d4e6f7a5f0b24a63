"""Log set-up shared by agentd and the tools: one line per event, node id first, key=value.

Every module logs through `logging.getLogger(__name__)`; this installs the one formatter
that puts the node id at the start of every line, as `node=<id> level=... logger=... msg`.
"""

from __future__ import annotations

import logging
import sys


class _NodeFormatter(logging.Formatter):
    def __init__(self, node_id: str) -> None:
        super().__init__()
        self._node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        ts = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        message = record.getMessage()
        if message.startswith(self._node_id + " "):  # modules that name the node themselves
            message = message[len(self._node_id) + 1 :]
        line = (
            f"node={self._node_id} ts={ts}.{int(record.msecs):03d} level={record.levelname.lower()} "
            f"logger={record.name} {message}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(node_id: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_NodeFormatter(node_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Docker SDK's HTTP pool is chatty at debug level.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("docker").setLevel(logging.WARNING)
