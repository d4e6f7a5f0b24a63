"""Where desired Pods come from: the DesiredPodSource interface and two sources.

Owns: the interface the runtime reads its desired Pods through, ManifestDirSource
(static Pods from a directory of YAML manifests, polled like kubelet's static Pod
source) and InMemorySource (set programmatically: tests, benchmarks, and the cluster
state feed until it has its own source). Rules: a source yields the FULL desired set,
keyed by Pod uid, each time it changes; an invalid manifest is logged with its field
path, reported in `errors`, and starts nothing; nothing here raises on bad input.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from typing import AsyncIterator, Mapping, Protocol

import trio

log = logging.getLogger("agent.runtime.source")

DesiredPods = Mapping[str, object]  # pod uid -> Pod


class DesiredPodSource(Protocol):
    def desired_sets(self) -> AsyncIterator[DesiredPods]:
        """Yield the full desired set (uid -> Pod) now and after every change."""
        ...


class InMemorySource:
    """A source whose desired set is set by calling `set_pods`."""

    def __init__(self, pods: list[object] | None = None) -> None:
        self._pods: dict[str, object] = {}
        self._version = 0
        self._changed = trio.Event()
        if pods:
            self.set_pods(pods)

    def set_pods(self, pods: list[object]) -> None:
        by_uid = {}
        for pod in pods:
            uid = pod.metadata.uid  # type: ignore[attr-defined]
            if not uid:
                raise ValueError(f"pod {pod.key} has no uid")  # type: ignore[attr-defined]
            by_uid[uid] = pod
        self._pods = by_uid
        self._version += 1
        self._changed.set()
        self._changed = trio.Event()

    def add(self, pod: object) -> None:
        self.set_pods([*self._pods.values(), pod])

    def remove(self, uid: str) -> None:
        self.set_pods([p for u, p in self._pods.items() if u != uid])

    @property
    def pods(self) -> dict[str, object]:
        return dict(self._pods)

    async def desired_sets(self) -> AsyncIterator[DesiredPods]:
        seen = -1
        while True:
            if seen != self._version:
                seen = self._version
                yield dict(self._pods)
            else:
                await self._changed.wait()


def static_pod_uid(source_path: str, namespace: str, name: str, spec_hash: str) -> str:
    """A static Pod's stable uid: the same file, name and spec always give the same uid."""
    digest = hashlib.sha256(f"{source_path}\0{namespace}/{name}\0{spec_hash}".encode()).hexdigest()
    return digest[:32]


class ManifestDirSource:
    """Static Pods from the *.yaml / *.yml / *.json files of a directory, polled by mtime."""

    SUFFIXES = (".yaml", ".yml", ".json")

    def __init__(self, directory: str | os.PathLike[str], *, node_name: str, poll_interval_s: float = 1.0) -> None:
        self._dir = os.fspath(directory)
        self._node = node_name
        self._poll_s = poll_interval_s
        self._files: dict[str, tuple[tuple[float, int], list[object]]] = {}  # path -> (stamp, pods)
        self.errors: dict[str, str] = {}  # path -> the last parse error of that file
        self.error_count = 0

    def _load(self, path: str) -> list[object]:
        from agent.state.manifest import load_manifest_file
        from agent.state.pod import Pod, pod_spec_hash

        try:
            pods = [p for p in load_manifest_file(path) if isinstance(p, Pod)]
        except Exception as exc:  # noqa: BLE001 - a bad file must never stop the source
            self.errors[path] = str(exc)
            self.error_count += 1
            log.error("%s event=manifest_invalid path=%s error=%r", self._node, path, str(exc))
            return []
        self.errors.pop(path, None)
        out = []
        for pod in pods:
            uid = pod.metadata.uid or static_pod_uid(path, pod.metadata.namespace, pod.metadata.name,
                                                     pod_spec_hash(pod))
            pod = pod.with_uid(uid)
            if not pod.spec.node_name:
                pod = pod.with_node_name(self._node)
            out.append(pod)
        return out

    def scan(self) -> dict[str, object]:
        """Re-read changed files; returns the full desired set (blocking file I/O, small)."""
        try:
            names = sorted(os.listdir(self._dir))
        except OSError as exc:
            if self.errors.get(self._dir) != str(exc):
                log.error("%s event=manifest_dir_unreadable dir=%s error=%r", self._node, self._dir, str(exc))
            self.errors[self._dir] = str(exc)
            names = []
        else:
            self.errors.pop(self._dir, None)
        present = set()
        for name in names:
            if name.startswith(".") or not name.endswith(self.SUFFIXES):
                continue
            path = os.path.join(self._dir, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            present.add(path)
            stamp = (st.st_mtime, st.st_size)
            cached = self._files.get(path)
            if cached is None or cached[0] != stamp:
                self._files[path] = (stamp, self._load(path))
        for path in list(self._files):
            if path not in present:
                del self._files[path]
                self.errors.pop(path, None)
        desired: dict[str, object] = {}
        for path in sorted(self._files):
            for pod in self._files[path][1]:
                uid = pod.metadata.uid  # type: ignore[attr-defined]
                if uid in desired:
                    log.error("%s event=manifest_duplicate_uid path=%s uid=%s", self._node, path, uid)
                    continue
                desired[uid] = pod
        return desired

    async def desired_sets(self) -> AsyncIterator[DesiredPods]:
        last: dict[str, object] | None = None
        while True:
            # Reading and parsing YAML is file I/O and pure-Python parsing: keep it off the
            # Trio thread so a large or slow manifest never stalls the runtime's other tasks.
            desired = await trio.to_thread.run_sync(self.scan)
            if last is None or desired != last:
                last = desired
                yield dict(desired)
            await trio.sleep(self._poll_s if self._poll_s > 0 else math.inf)
