"""Desired-Pod sources: static Pods from a manifest directory, and the in-memory source.

The directory tests use real files in a real directory: FIFOs, sparse files, symlinks."""

from __future__ import annotations

import os
import tracemalloc

import pytest
import trio

from agent.runtime.source import InMemorySource, ManifestDirSource, static_pod_uid
from agent.state.manifest import MAX_MANIFEST_BYTES, load_manifest_file
from agent.state.pod import Container, ManifestError, ObjectMeta, Pod, PodSpec, pod_spec_hash

# How long a scan of a few small files may take before it counts as blocked. A blocked
# scan never returns, so this bounds only how long the test waits to say so.
BLOCKED_AFTER_S = 10.0

GOOD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - {{name: main, image: busybox:local, command: [sleep, "1000"]}}
"""

WITH_UID = """\
apiVersion: v1
kind: Pod
metadata: {name: pinned, uid: my-own-uid}
spec:
  containers:
  - {name: main, image: busybox:local}
"""

BAD = """\
apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  restartPolicy: Sometimes
  containers:
  - {name: main, image: busybox:local}
"""


def test_manifest_dir_static_pod_uids_and_node(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.format(name="a"))
    (tmp_path / "pinned.yml").write_text(WITH_UID)
    source = ManifestDirSource(tmp_path, node_name="n1")
    desired = source.scan()
    by_name = {p.metadata.name: p for p in desired.values()}
    assert set(by_name) == {"a", "pinned"}
    a = by_name["a"]
    assert a.metadata.uid == static_pod_uid(str(tmp_path / "a.yaml"), "default", "a", pod_spec_hash(a))
    assert a.spec.node_name == "n1"
    assert by_name["pinned"].metadata.uid == "my-own-uid"
    assert source.scan() == desired  # unchanged files: same set, same uids


def test_invalid_manifest_starts_nothing_and_is_reported_with_its_field(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "garbage.yaml").write_text("::: not yaml :::\n  - [")
    source = ManifestDirSource(tmp_path, node_name="n1")
    assert source.scan() == {}
    assert "restartPolicy" in source.errors[str(tmp_path / "bad.yaml")]
    assert str(tmp_path / "garbage.yaml") in source.errors
    # A good file that turns bad drops its Pods (no "last good" copy is kept).
    (tmp_path / "ok.yaml").write_text(GOOD.format(name="ok"))
    assert len(source.scan()) == 1
    (tmp_path / "ok.yaml").write_text(BAD)
    os.utime(tmp_path / "ok.yaml", (1, 1))  # make sure the stamp differs even on a coarse clock
    assert source.scan() == {}


def test_missing_manifest_dir_is_reported_not_raised(tmp_path) -> None:
    source = ManifestDirSource(tmp_path / "nope", node_name="n1")
    assert source.scan() == {}
    assert str(tmp_path / "nope") in source.errors


async def test_in_memory_source_yields_full_sets_on_change() -> None:
    pod = Pod(metadata=ObjectMeta(name="a", uid="u1"), spec=PodSpec(containers=(Container("c", "i"),)))
    source = InMemorySource()
    sets = []
    got = trio.Event()

    async def consume() -> None:
        nonlocal got
        async for desired in source.desired_sets():
            sets.append(dict(desired))
            got.set()
            got = trio.Event()

    async def next_set(count: int) -> None:
        with trio.fail_after(5):
            while len(sets) < count:
                await got.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await next_set(1)
        source.add(pod)
        await next_set(2)
        source.remove("u1")
        await next_set(3)
        nursery.cancel_scope.cancel()
    assert sets == [{}, {"u1": pod}, {}]


# -- files that are not manifests -------------------------------------------------------------


async def scan_in_thread(source: ManifestDirSource) -> dict[str, object]:
    """source.scan() in a thread; fails the test if it blocks."""
    with trio.move_on_after(BLOCKED_AFTER_S) as scope:
        return await trio.to_thread.run_sync(source.scan, abandon_on_cancel=True)
    assert not scope.cancelled_caught, "scan blocked"
    raise AssertionError("unreachable")


def release_fifo_readers(path) -> None:
    """Open the FIFO's write end once, so a reader blocked in open() (a regression) is let go."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader waiting: nothing to release
        pass


async def test_a_fifo_named_like_a_manifest_never_blocks_the_scan(tmp_path) -> None:
    fifo = tmp_path / "x.yaml"
    os.mkfifo(fifo)
    (tmp_path / "good.yaml").write_text(GOOD.format(name="good"))
    source = ManifestDirSource(tmp_path, node_name="n1")
    try:
        desired = await scan_in_thread(source)
    finally:
        release_fifo_readers(fifo)
    assert [p.metadata.name for p in desired.values()] == ["good"]
    assert "is a FIFO, not a regular file" in source.errors[str(fifo)]
    errors_before = source.error_count
    await scan_in_thread(source)  # the same FIFO is reported once, not at every poll
    assert source.error_count == errors_before


async def test_reading_a_fifo_as_a_manifest_fails_at_once(tmp_path) -> None:
    """The path a scan takes when a regular file is swapped for a FIFO after it was looked at."""
    fifo = tmp_path / "swapped.yaml"
    os.mkfifo(fifo)
    try:
        with trio.fail_after(BLOCKED_AFTER_S):
            with pytest.raises(ManifestError, match="is a FIFO, not a regular file"):
                await trio.to_thread.run_sync(load_manifest_file, fifo, abandon_on_cancel=True)
    finally:
        release_fifo_readers(fifo)


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path) -> None:
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as f:
        f.truncate(100 * MAX_MANIFEST_BYTES)  # sparse: costs no disk, but reading it whole would
    (tmp_path / "good.yaml").write_text(GOOD.format(name="good"))
    source = ManifestDirSource(tmp_path, node_name="n1")
    tracemalloc.start()
    try:
        desired = source.scan()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [p.metadata.name for p in desired.values()] == ["good"]
    assert f"above the limit of {MAX_MANIFEST_BYTES} bytes" in source.errors[str(huge)]
    assert peak < MAX_MANIFEST_BYTES, peak  # the file was never read into memory
    with pytest.raises(ManifestError, match=f"is {100 * MAX_MANIFEST_BYTES} bytes"):
        load_manifest_file(huge)


def test_a_directory_named_like_a_manifest_is_reported(tmp_path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    source = ManifestDirSource(tmp_path, node_name="n1")
    assert source.scan() == {}
    assert "is a directory" in source.errors[str(tmp_path / "dir.yaml")]


def test_a_dangling_symlink_is_reported(tmp_path) -> None:
    os.symlink(tmp_path / "gone.yaml", tmp_path / "link.yaml")
    source = ManifestDirSource(tmp_path, node_name="n1")
    assert source.scan() == {}
    assert "No such file" in source.errors[str(tmp_path / "link.yaml")]


def test_a_symlink_to_a_manifest_is_followed(tmp_path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "pod.yaml").write_text(GOOD.format(name="linked"))
    (tmp_path / "manifests").mkdir()
    os.symlink(tmp_path / "real" / "pod.yaml", tmp_path / "manifests" / "pod.yaml")
    source = ManifestDirSource(tmp_path / "manifests", node_name="n1")
    assert [p.metadata.name for p in source.scan().values()] == ["linked"]


# -- one Pod per namespace/name ---------------------------------------------------------------------


def static_uid_of(path, name: str, pod_text: str) -> str:
    from agent.state.manifest import load_manifests

    (pod,) = load_manifests(pod_text)
    return static_pod_uid(str(path), "default", name, pod_spec_hash(pod))


def test_two_files_defining_one_pod_run_it_once_and_report_both_files(tmp_path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(GOOD.format(name="web"))
    b.write_text(GOOD.format(name="web").replace('"1000"', '"2000"'))
    source = ManifestDirSource(tmp_path, node_name="n1")
    desired = source.scan()
    assert [p.key for p in desired.values()] == ["default/web"]
    (web,) = desired.values()
    assert web.metadata.uid == static_uid_of(a, "web", GOOD.format(name="web"))  # the first by file name
    assert str(a) in source.errors[str(b)] and "default/web" in source.errors[str(b)]
    assert str(a) not in source.errors

    # Editing the file that does not run the Pod changes nothing.
    b.write_text(GOOD.format(name="web").replace('"1000"', '"3000"'))
    os.utime(b, ns=(1, 1))
    assert source.scan() == desired
    # A new file that sorts first does not take the running Pod over...
    first = tmp_path / "0.yaml"
    first.write_text(GOOD.format(name="web").replace('"1000"', '"4000"'))
    assert source.scan() == desired
    assert str(a) in source.errors[str(first)]
    # ... and when the running file goes, the first remaining file by name runs the Pod.
    a.unlink()
    (web,) = source.scan().values()
    assert web.metadata.uid == static_uid_of(first, "web", GOOD.format(name="web").replace('"1000"', '"4000"'))
    assert str(first) in source.errors[str(b)] and str(first) not in source.errors


def test_one_file_defining_a_pod_twice_runs_the_first(tmp_path) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text(GOOD.format(name="web") + "---\n" + GOOD.format(name="web").replace('"1000"', '"2000"'))
    source = ManifestDirSource(tmp_path, node_name="n1")
    (web,) = source.scan().values()
    assert web.spec.containers[0].command == ("sleep", "1000")
    assert "defined twice in this file" in source.errors[str(twice)]


def test_the_same_name_in_two_namespaces_is_two_pods(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.format(name="web"))
    (tmp_path / "b.yaml").write_text(GOOD.format(name="web").replace("{name: web}", "{name: web, namespace: other}"))
    source = ManifestDirSource(tmp_path, node_name="n1")
    assert sorted(p.key for p in source.scan().values()) == ["default/web", "other/web"]
    assert source.errors == {}
