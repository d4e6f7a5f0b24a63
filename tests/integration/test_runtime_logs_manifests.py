"""Container logs (tail, follow) and static Pods from a manifest directory (real Docker)."""

from __future__ import annotations

import os

import pytest
import trio

from agent.runtime import ManifestDirSource, PodRuntime, static_pod_uid, quick_profile
from agent.runtime.containers import LABEL_NODE
from agent.runtime.status import Running
from tests.integration.conftest import Harness, container_state, in_thread, make_pod, sh, wait_until

pytestmark = pytest.mark.docker


async def collect(lines) -> list[str]:
    """Every line of a (non-following) log iterator."""
    return [line async for line in lines]


async def test_logs_tail_and_follow(harness: Harness) -> None:
    runtime = await harness.start()
    fixed = make_pod("fixed", sh("main", "for i in 1 2 3 4 5; do echo line$i; done; sleep 0.3; echo err >&2; sleep 1000"))
    ticker = make_pod("ticker", sh("main", "i=0; while :; do echo tick$i; i=$((i+1)); sleep 0.2; done"))
    harness.source.set_pods([fixed, ticker])
    for pod in (fixed, ticker):
        await harness.wait_for(pod, lambda s: isinstance(container_state(s, "main"), Running), what="running")
    uid = fixed.metadata.uid
    with trio.fail_after(10):
        while "err" not in await collect(runtime.logs(uid, "main", tail=None, follow=False)):
            await trio.sleep(0.1)
    assert await collect(runtime.logs(uid, "main", tail=None, follow=False)) == [
        "line1", "line2", "line3", "line4", "line5", "err"]
    assert await collect(runtime.logs(uid, "main", tail=2, follow=False)) == ["line5", "err"]
    followed: list[str] = []
    with trio.fail_after(10):
        async for line in runtime.logs(ticker.metadata.uid, "main", tail=1, follow=True):
            followed.append(line)
            if len(followed) == 4:
                break
    numbers = [int(line.removeprefix("tick")) for line in followed]
    assert numbers == list(range(numbers[0], numbers[0] + 4))  # consecutive lines, as they come
    with pytest.raises(KeyError):
        await collect(runtime.logs(uid, "no-such-container"))


async def test_logs_of_the_previous_instance(harness: Harness) -> None:
    from agent.state.pod import EmptyDirVolumeSource, Volume, VolumeMount

    runtime = await harness.start()
    script = ("n=$(cat /d/n 2>/dev/null || echo 0); echo run$n; echo $((n+1)) > /d/n;"
              " if [ $n -ge 1 ]; then sleep 1000; fi; exit 1")
    pod = make_pod("twice", sh("main", script, volume_mounts=(VolumeMount(name="d", mount_path="/d"),)),
                   volumes=(Volume(name="d", empty_dir=EmptyDirVolumeSource()),))
    harness.source.set_pods([pod])
    await harness.wait_for(pod, lambda s: isinstance(container_state(s, "main"), Running)
                           and s.container("main").restart_count == 1, what="running after one restart")
    uid = pod.metadata.uid
    with trio.fail_after(10):
        while not (current := await collect(runtime.logs(uid, "main"))):
            await trio.sleep(0.05)
    assert current == ["run1"]
    assert await collect(runtime.logs(uid, "main", previous=True)) == ["run0"]


POD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: static
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:local
    command: ["sleep", "1000"]
"""

BAD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: broken
spec:
  containers:
  - name: main
    command: ["sleep", "1000"]
"""


async def test_manifest_dir_static_pods(nursery, node_name: str, docker_client, tmp_path) -> None:
    (tmp_path / "good.yaml").write_text(POD_YAML.format(name="good"))
    (tmp_path / "bad.yaml").write_text(BAD_YAML)
    (tmp_path / "notes.txt").write_text("not a manifest")
    source = ManifestDirSource(tmp_path, node_name=node_name, poll_interval_s=0.1)
    runtime = PodRuntime(node_name=node_name, config=quick_profile())
    await nursery.start(runtime.run, source)

    with trio.fail_after(15):
        while (found := runtime.find("static", "good")) is None or found[1].phase != "Running":
            await trio.sleep(0.05)
    pod, status = found
    assert pod.metadata.uid == static_pod_uid(str(tmp_path / "good.yaml"), "static", "good",
                                              __import__("agent.state.pod", fromlist=["x"]).pod_spec_hash(pod))
    assert pod.spec.node_name == node_name
    # The invalid manifest started nothing and its error names the field.
    assert str(tmp_path / "bad.yaml") in source.errors
    assert "image" in source.errors[str(tmp_path / "bad.yaml")]
    assert runtime.find("default", "broken") is None
    ours = await in_thread(lambda: docker_client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node_name}"}))
    assert {c.labels["agentd.pod.name"] for c in ours} == {"good"}

    # Fixing the file starts the Pod; deleting the good one removes it.
    (tmp_path / "bad.yaml").write_text(POD_YAML.format(name="fixed"))
    (tmp_path / "good.yaml").unlink()
    with trio.fail_after(15):
        while (found := runtime.find("static", "fixed")) is None or found[1].phase != "Running":
            await trio.sleep(0.05)
        while runtime.find("static", "good") is not None:
            await trio.sleep(0.05)
    assert source.errors == {}
    ours = await in_thread(lambda: docker_client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node_name}"}))
    assert {c.labels["agentd.pod.name"] for c in ours} == {"fixed"}


ECHO_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: static
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:local
    command: ["sh", "-c", "echo {says}; sleep 1000"]
"""


async def test_a_fifo_and_a_duplicate_pod_in_the_manifest_dir(nursery, node_name: str, docker_client,
                                                               tmp_path) -> None:
    """A FIFO named like a manifest blocks nothing; a Pod defined by two files runs once, from the
    first file by name, and its status and logs are those of that one definition."""
    os.mkfifo(tmp_path / "x.yaml")
    (tmp_path / "a.yaml").write_text(ECHO_YAML.format(name="web", says="from-a"))
    (tmp_path / "b.yaml").write_text(ECHO_YAML.format(name="web", says="from-b"))
    source = ManifestDirSource(tmp_path, node_name=node_name, poll_interval_s=0.1)
    runtime = PodRuntime(node_name=node_name, config=quick_profile())
    try:
        async with trio.open_nursery() as inner:
            await inner.start(runtime.run, source)
            found = await wait_until(lambda: (f := runtime.find("static", "web")) and f[1].phase == "Running" and f,
                                     what="static/web Running")
            pod, _ = found
            assert await wait_until(lambda: collect(runtime.logs(pod.metadata.uid, "main")),
                                    what="its log") == ["from-a"]
            assert "is a FIFO" in source.errors[str(tmp_path / "x.yaml")]
            assert str(tmp_path / "a.yaml") in source.errors[str(tmp_path / "b.yaml")]
            ours = await in_thread(lambda: docker_client.containers.list(
                all=True, filters={"label": [f"{LABEL_NODE}={node_name}", "agentd.role=app"]}))
            assert [c.labels["agentd.pod.uid"] for c in ours] == [pod.metadata.uid]  # one Pod, not two
            t0 = trio.current_time()
            inner.cancel_scope.cancel()
        assert trio.current_time() - t0 < quick_profile().docker_call_timeout_s / 10  # stopping never hangs
    finally:
        release_fifo_readers(tmp_path / "x.yaml")


def release_fifo_readers(path) -> None:
    """Open the FIFO's write end once, so a reader blocked in open() (a regression) fails instead of hanging."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader waiting
        pass
