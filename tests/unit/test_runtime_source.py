"""Desired-Pod sources: static Pods from a manifest directory, and the in-memory source."""

from __future__ import annotations

import os

import trio

from agent.runtime.source import InMemorySource, ManifestDirSource, static_pod_uid
from agent.state.pod import Container, ObjectMeta, Pod, PodSpec, pod_spec_hash

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
    async with trio.open_nursery() as nursery:
        async def consume() -> None:
            async for desired in source.desired_sets():
                sets.append(dict(desired))
                if len(sets) == 3:
                    return
        nursery.start_soon(consume)
        await trio.sleep(0.01)
        source.add(pod)
        await trio.sleep(0.01)
        source.remove("u1")
    assert sets == [{}, {"u1": pod}, {}]
