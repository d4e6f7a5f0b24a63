"""The protocol core stays pure: no I/O, clock or randomness of its own (DESIGN §3)."""

from __future__ import annotations

import ast
from pathlib import Path

import agent.gossip

PURE = ["core", "awareness", "suspicion", "broadcast", "codec", "messages", "config", "events", "errors"]
FORBIDDEN = {"trio", "socket", "time", "random", "os", "asyncio", "threading", "grpc", "docker"}


def test_pure_modules_import_no_io_clock_or_randomness():
    root = Path(agent.gossip.__file__).parent
    for name in PURE:
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in tree.body:  # top level only: a TYPE_CHECKING block is not executed
            if isinstance(node, ast.Import):
                mods = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not mods & FORBIDDEN, f"{name}.py imports {mods & FORBIDDEN}"
