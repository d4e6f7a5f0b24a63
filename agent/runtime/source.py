"""Where desired Pods come from: the DesiredPodSource interface and two sources.

Owns: the interface the runtime reads its desired Pods through, ManifestDirSource
(static Pods from a directory of YAML manifests, polled like kubelet's static Pod
source) and InMemorySource (set programmatically: tests, benchmarks, and the cluster
state feed until it has its own source). Rules: a source yields the FULL desired set,
keyed by Pod uid, each time it changes; an invalid manifest is logged with its field
path, reported in `errors`, and starts nothing; nothing here raises on bad input.

ManifestDirSource reads only regular files of at most MAX_MANIFEST_BYTES, never
blocking on a FIFO or device (agent.state.manifest.read_manifest_file), and keeps one
Pod per namespace/name (pod_identity.claim_static_pods): a second definition is an
error in `errors` naming both files, and starts nothing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import stat
from dataclasses import dataclass
from typing import AsyncIterator, Mapping, Protocol

import trio

from .pod_identity import Definition, claim_static_pods

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


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_mtime_ns, st.st_size, st.st_ino, stat.S_IFMT(st.st_mode)


@dataclass(frozen=True, slots=True)
class _LoadedFile:
    stamp: tuple[int, int, int, int]  # mtime (ns), size, inode, file type: a change re-reads the file
    pods: tuple[object, ...]
    error: str | None


class ManifestDirSource:
    """Static Pods from the *.yaml / *.yml / *.json files of a directory, polled by mtime."""

    SUFFIXES = (".yaml", ".yml", ".json")

    def __init__(self, directory: str | os.PathLike[str], *, node_name: str, poll_interval_s: float = 1.0) -> None:
        self._dir = os.fspath(directory)
        self._node = node_name
        self._poll_s = poll_interval_s
        self._files: dict[str, _LoadedFile] = {}
        self._owners: Mapping[str, str] = {}  # pod key -> the file that runs it
        self.errors: dict[str, str] = {}  # path -> what is wrong with that file (or the directory)
        self.error_count = 0  # errors found (each counted once, when it appears or changes)

    def _load(self, path: str, st: os.stat_result) -> _LoadedFile:
        from agent.state.manifest import load_manifest_file, manifest_file_problem
        from agent.state.pod import Pod, pod_spec_hash

        stamp = _stamp(st)
        problem = manifest_file_problem(st)
        if problem:  # never opened: a FIFO, a device or an oversized file
            return _LoadedFile(stamp, (), f"{path}: {problem}")
        try:
            pods = [p for p in load_manifest_file(path) if isinstance(p, Pod)]
        except Exception as exc:  # noqa: BLE001 - a bad file must never stop the source
            return _LoadedFile(stamp, (), str(exc))
        out = []
        for pod in pods:
            uid = pod.metadata.uid or static_pod_uid(path, pod.metadata.namespace, pod.metadata.name,
                                                     pod_spec_hash(pod))
            pod = pod.with_uid(uid)
            if not pod.spec.node_name:
                pod = pod.with_node_name(self._node)
            out.append(pod)
        return _LoadedFile(stamp, tuple(out), None)

    def scan(self) -> dict[str, object]:
        """Re-read changed files; returns the full desired set (file I/O that never blocks, small)."""
        errors: dict[str, str] = {}
        try:
            names = sorted(os.listdir(self._dir))
        except OSError as exc:
            errors[self._dir] = str(exc)
            names = []
        present = set()
        for name in names:
            if name.startswith(".") or not name.endswith(self.SUFFIXES):
                continue
            path = os.path.join(self._dir, name)
            try:
                st = os.stat(path)
            except OSError as exc:
                if os.path.lexists(path):  # a dangling symlink, or a target we may not read
                    errors[path] = f"{path}: cannot read: {exc.strerror or exc}"
                continue  # else removed since the listing: not a manifest now
            present.add(path)
            cached = self._files.get(path)
            if cached is None or cached.stamp != _stamp(st):
                self._files[path] = self._load(path, st)
        for path in list(self._files):
            if path not in present:
                del self._files[path]
        definitions = [Definition(path, pod.key, pod.metadata.uid)  # type: ignore[attr-defined]
                       for path in sorted(self._files) for pod in self._files[path].pods]
        claims = claim_static_pods(definitions, self._owners)
        self._owners = claims.owners
        runs = {(d.path, d.uid) for d in claims.runs}
        desired: dict[str, object] = {}
        for path in sorted(self._files):
            loaded = self._files[path]
            problems = ([loaded.error] if loaded.error else []) + list(claims.conflicts.get(path, ()))
            if problems:
                errors[path] = "; ".join(problems)
            for pod in loaded.pods:
                if (path, pod.metadata.uid) in runs:  # type: ignore[attr-defined]
                    desired[pod.metadata.uid] = pod  # type: ignore[attr-defined]
        self._report(errors)
        return desired

    def _report(self, errors: dict[str, str]) -> None:
        """Log and count every error that is new or changed since the last scan."""
        for path, error in errors.items():
            if self.errors.get(path) != error:
                self.error_count += 1
                log.error("%s event=manifest_invalid path=%s error=%r", self._node, path, error)
        self.errors = errors

    async def desired_sets(self) -> AsyncIterator[DesiredPods]:
        last: dict[str, object] | None = None
        while True:
            # Reading and parsing YAML is file I/O and pure-Python parsing: keep it off the
            # Trio thread so a large manifest never stalls the runtime's other tasks.
            desired = await trio.to_thread.run_sync(self.scan, abandon_on_cancel=True)
            if last is None or desired != last:
                last = desired
                yield dict(desired)
            await trio.sleep(self._poll_s if self._poll_s > 0 else math.inf)
