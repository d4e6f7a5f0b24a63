"""The runtime's internal boundaries: a pod worker reaches its host only through PodHost,
the runtime implements all of PodHost, and the worker does not import the runtime."""

from __future__ import annotations

import ast
import inspect
import pathlib

from agent.runtime import RuntimeConfig, pod_worker
from agent.runtime.pod_host import PodHost
from agent.runtime.pod_runtime import PodRuntime

WORKER_SOURCE = pathlib.Path(inspect.getfile(pod_worker)).read_text()


def _protocol_members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


def test_the_worker_uses_only_members_of_PodHost() -> None:
    used = {node.attr for node in ast.walk(ast.parse(WORKER_SOURCE))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "host" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    assert used, "the worker reaches its host through self.host"
    assert used <= _protocol_members(PodHost), used - _protocol_members(PodHost)


def test_the_runtime_implements_every_member_of_PodHost() -> None:
    runtime = PodRuntime(node_name="n1", config=RuntimeConfig(), host_ip="10.0.0.1")
    missing = {name for name in _protocol_members(PodHost) if not hasattr(runtime, name)}
    assert not missing


def test_the_worker_does_not_import_the_runtime() -> None:
    imported = set()
    for node in ast.walk(ast.parse(WORKER_SOURCE)):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert not any(name.endswith("pod_runtime") for name in imported), imported
