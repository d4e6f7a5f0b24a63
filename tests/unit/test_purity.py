"""Pure cores stay pure (DESIGN §3): no I/O, clock or randomness of their own.

Every module named by PURE_MODULES is checked twice:
- its own source (every import statement in the file, inside functions too) names
  none of FORBIDDEN_IMPORTS; an `if TYPE_CHECKING:` block may import `random`, only
  to annotate the random.Random a core is given, and nothing else forbidden;
- importing it in a fresh interpreter loads none of FORBIDDEN_LOADED, whatever it
  pulls in indirectly (its package's __init__, its siblings, third-party libraries).

To cover a new pure module, add its path to PURE_MODULES. An entry may be a glob, and
a directory stands for every .py file under it, so a package that grows new modules
(agent/control) or a module split into several (agent/raft/core*) stays covered
without editing this file. An entry that matches nothing fails the test: a rename
cannot silently drop a module from the check.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PURE_MODULES = [
    # SWIM: the protocol core and the pure parts it is built from
    "agent/gossip/core.py",
    "agent/gossip/awareness.py",
    "agent/gossip/suspicion.py",
    "agent/gossip/broadcast.py",
    "agent/gossip/messages.py",
    "agent/gossip/events.py",
    "agent/gossip/config.py",
    "agent/gossip/codec.py",
    "agent/gossip/errors.py",
    # Raft: the core (one module today, several once split: core.py, core_*.py or a core/
    # package all match) and the plain data it speaks
    "agent/raft/core*",
    "agent/raft/messages.py",
    "agent/raft/types.py",
    "agent/raft/config.py",
    # the runtime's policies
    "agent/runtime/reconciler.py",
    "agent/runtime/restart_policy.py",
    "agent/runtime/backoff.py",
    "agent/runtime/probes.py",
    "agent/runtime/containers.py",
    "agent/runtime/env.py",
    "agent/runtime/config_volumes.py",
    "agent/runtime/init_order.py",
    # the object model
    "agent/state/quantity.py",
    "agent/state/pod",
    "agent/runtime/pod_identity.py",
    # the cluster state machine and everything it is built from
    "agent/state/selectors.py",
    "agent/state/node.py",
    "agent/state/config_kinds.py",
    "agent/state/node_interest.py",
    "agent/state/objects.py",
    "agent/state/history.py",
    "agent/state/sessions.py",
    "agent/state/commands.py",
    "agent/state/pod_lifecycle.py",
    "agent/state/store.py",
    "agent/state/machine.py",
    "agent/state/workloads.py",
    "agent/state/eviction.py",
    # controllers and the scheduler: the whole package is pure by design
    "agent/control",
]

# What a pure module's own source may not import:
#   clocks and randomness: time, random, secrets, uuid (uuid1 reads the clock, uuid4 is random);
#   the operating system and the network: os, socket, select, selectors, signal, subprocess;
#   concurrency: trio, asyncio, threading, concurrent, multiprocessing;
#   drivers of the outside world: grpc, docker, psutil.
FORBIDDEN_IMPORTS = frozenset({
    "time", "random", "secrets", "uuid",
    "os", "socket", "select", "selectors", "signal", "subprocess",
    "trio", "asyncio", "threading", "concurrent", "multiprocessing",
    "grpc", "docker", "psutil",
})
# ... except this, inside `if TYPE_CHECKING:` (never executed): the annotation of an injected random.Random.
ALLOWED_FOR_TYPE_CHECKING = frozenset({"random"})

# What importing a pure module may not load, even indirectly: the event loops and
# sockets (trio, asyncio, socket, ssl, selectors), thread pools and processes
# (concurrent.futures, multiprocessing, subprocess), the drivers of the outside world
# (grpc, docker and the HTTP stack under it, psutil), the keyring's cryptography, and
# random (a core draws only from the random.Random it is given). `threading` is not in
# the list: `logging` imports it for its locks, and a core may log what it decides.
# `os` and `time` are not either: every interpreter has loaded them before any import,
# so only the source check above can see a use of them.
FORBIDDEN_LOADED = frozenset({
    "trio", "asyncio", "socket", "ssl", "selectors",
    "concurrent", "multiprocessing", "subprocess",
    "grpc", "docker", "requests", "urllib3", "psutil",
    "cryptography", "random",
})

# Packages whose __init__ re-exports I/O parts, so that importing any module under them
# loads those parts. Their pure modules are checked with the __init__ bypassed (an
# empty package over the same directory); test_bypassed_package_inits_are_still_heavy
# fails once an __init__ here is made light, so that the entry is then removed.
HEAVY_PACKAGE_INITS = {
    "agent.runtime": "re-exports PodRuntime, DockerApi and NodeResources (trio, docker, psutil)",
}


def _expand(entry: str) -> list[Path]:
    matches = sorted(ROOT.glob(entry))
    files: list[Path] = []
    for m in matches:
        if m.is_dir():
            files += sorted(m.rglob("*.py"))
        elif m.suffix == ".py":
            files.append(m)
    return files


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _pure_files() -> list[Path]:
    files: list[Path] = []
    for entry in PURE_MODULES:
        found = _expand(entry)
        assert found, f"PURE_MODULES entry {entry!r} matches no Python file: update the list"
        files += [f for f in found if f not in files]
    return files


PURE_FILES = _pure_files()


def test_every_entry_matches_a_module_and_the_list_covers_each_core():
    names = {_module_name(f) for f in PURE_FILES}
    for core in ("agent.gossip.core", "agent.raft.core", "agent.runtime.reconciler", "agent.control"):
        assert any(n == core or n.startswith(core + ".") or n.startswith(core + "_") for n in names), core


# ------------------------------------------------------------------ the module's own source

def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[tuple[int, str, bool]]:
    """(line, top-level module, inside TYPE_CHECKING) for every absolute import in the tree."""
    found: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name.split(".")[0], type_checking) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0], type_checking))
        elif isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
        ):
            found.append((node.lineno, "<dynamic import>", type_checking))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_checking)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, type_checking)

    visit(tree, False)
    return found


def _forbidden_in_source(source: str) -> list[str]:
    bad = []
    for line, module, type_checking in _imports(ast.parse(source)):
        if module == "<dynamic import>":
            bad.append(f"line {line}: a dynamic import, which this check cannot follow")
        elif module in FORBIDDEN_IMPORTS and not (type_checking and module in ALLOWED_FOR_TYPE_CHECKING):
            bad.append(f"line {line}: imports {module}" + (" (under TYPE_CHECKING)" if type_checking else ""))
    return bad


@pytest.mark.parametrize("path", PURE_FILES, ids=_module_name)
def test_source_imports_no_io_clock_or_randomness(path: Path):
    bad = _forbidden_in_source(path.read_text())
    assert not bad, f"{path.relative_to(ROOT)}: " + "; ".join(bad)


def test_the_source_check_sees_what_it_must():
    """The check itself: each way of importing a forbidden module is caught, TYPE_CHECKING's random is not."""
    caught = [
        "import time",
        "import os.path",
        "from socket import socket",
        "def f():\n    import random\n    return random.random()",
        "class C:\n    def m(self):\n        from trio import sleep",
        "if TYPE_CHECKING:\n    import trio",
        "import importlib\nmod = importlib.import_module('docker')",
        "mod = __import__('grpc')",
    ]
    for source in caught:
        assert _forbidden_in_source(source), source
    allowed = [
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import random",
        "import typing\nif typing.TYPE_CHECKING:\n    import random\nelse:\n    pass",
        "from . import codec\nfrom .messages import Ping\nimport dataclasses",
    ]
    for source in allowed:
        assert not _forbidden_in_source(source), source
    assert _forbidden_in_source("if TYPE_CHECKING:\n    pass\nelse:\n    import random")


# ------------------------------------------------------------------ what importing it loads

_PROBE = """
import importlib, importlib.util, json, sys, types
name, bypass = sys.argv[1], sys.argv[2:]
for package in bypass:
    spec = importlib.util.find_spec(package)
    stub = types.ModuleType(package)
    stub.__path__ = list(spec.submodule_search_locations)
    sys.modules[package] = stub
before = set(sys.modules)
importlib.import_module(name)
print(json.dumps({"before": sorted(before), "loaded": sorted(set(sys.modules) - before)}))
"""


def _import_fresh(module: str, bypass: list[str]) -> tuple[set[str], set[str]]:
    """Import `module` in a fresh interpreter; (modules present before, modules it loaded)."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module, *bypass],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert out.returncode == 0, f"importing {module} failed:\n{out.stderr[-2000:]}"
    result = json.loads(out.stdout)
    return set(result["before"]), set(result["loaded"])


def _forbidden(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in FORBIDDEN_LOADED}


def _bypass_for(module: str) -> list[str]:
    return [p for p in HEAVY_PACKAGE_INITS if module.startswith(p + ".")]


@pytest.mark.parametrize("path", PURE_FILES, ids=_module_name)
def test_importing_loads_no_io_library(path: Path):
    module = _module_name(path)
    before, loaded = _import_fresh(module, _bypass_for(module))
    assert not _forbidden(before), f"the probe itself loaded {_forbidden(before)}: the check would be blind"
    bad = _forbidden(loaded)
    assert not bad, f"importing {module} loads {sorted({m.split('.')[0] for m in bad})}"


def test_importing_the_gossip_core_loads_neither_trio_nor_socket():
    _, loaded = _import_fresh("agent.gossip.core", [])
    assert not {m.split(".")[0] for m in loaded} & {"trio", "socket", "cryptography"}
    assert "agent.gossip" in loaded  # through its package's real __init__, nothing bypassed


@pytest.mark.parametrize("package", sorted(HEAVY_PACKAGE_INITS))
def test_bypassed_package_inits_are_still_heavy(package: str):
    _, loaded = _import_fresh(package, [])
    assert _forbidden(loaded), (
        f"{package}/__init__.py no longer loads I/O libraries: remove it from HEAVY_PACKAGE_INITS "
        "so its modules are checked through their real package"
    )
