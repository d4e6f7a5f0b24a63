"""What keeps one Pod from hurting its node (real Docker): rotated logs, a process limit;
and the engine and network the runtime is told to use."""

from __future__ import annotations

import os
import pathlib

import pytest
import trio

from agent.runtime import containers as plans
from agent.runtime.status import Running
from tests.integration.conftest import Harness, container_state, in_thread, make_pod, sh, wait_until

pytestmark = pytest.mark.docker


def running(name: str = "main"):
    return lambda s: isinstance(container_state(s, name), Running)


async def collect(lines) -> list[str]:
    return [line async for line in lines]


def log_files(docker_client, container_id: str) -> dict[str, int]:
    """The json-file logs of a container on disk (the current file and its rotations): name -> bytes."""
    log_path = pathlib.Path(docker_client.api.inspect_container(container_id)["LogPath"])
    return {p.name: p.stat().st_size for p in log_path.parent.iterdir() if p.name.startswith(log_path.name)}


LINE_BYTES = 1000


async def test_container_logs_rotate_and_stay_bounded_on_disk(nursery, node_name: str, docker_client) -> None:
    harness = Harness(nursery, node_name, container_log_max_size_bytes=256 * 1024, container_log_max_files=3)
    runtime = await harness.start()
    bound = harness.config.container_log_max_size_bytes * harness.config.container_log_max_files
    lines = 12 * bound // LINE_BYTES  # twelve times what the disk may keep
    script = (f"awk 'BEGIN {{ pad = sprintf(\"%{LINE_BYTES - 8}s\", \"\");"
              f" for (i = 1; i <= {lines}; i++) printf \"%06d %sx\\n\", i, pad }}'; echo finished; sleep 1000")
    pod = make_pod("chatty", sh("main", script))
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, running(), what="running")
    uid, container_id = pod.metadata.uid, status.container("main").container_id
    await wait_until(lambda: collect(runtime.logs(uid, "main", tail=1)), what="a first line")
    await wait_until(lambda: _last_line_is(runtime, uid, "finished"), timeout_s=60, what="all lines written")

    files = await in_thread(log_files, docker_client, container_id)
    assert len(files) == harness.config.container_log_max_files, files  # rotated, as often as allowed
    assert sum(files.values()) <= bound, files
    # `logs` still reads what the files keep: the newest lines, the oldest rotated away.
    kept = await collect(runtime.logs(uid, "main"))
    assert kept[-2].startswith(f"{lines:06d} ") and kept[-1] == "finished"
    assert int(kept[0].split()[0]) > 1
    numbers = [int(line.split()[0]) for line in kept[:-1]]
    assert numbers == list(range(numbers[0], lines + 1))  # nothing lost between rotations but the oldest
    infra = await in_thread(lambda: docker_client.containers.list(
        filters={"label": [f"{plans.LABEL_NODE}={node_name}", "agentd.role=infra"]}))
    assert infra[0].attrs["HostConfig"]["LogConfig"] == {
        "Type": "json-file", "Config": {"max-size": str(256 * 1024), "max-file": "3"}}


async def _last_line_is(runtime, uid: str, text: str) -> bool:
    return await collect(runtime.logs(uid, "main", tail=1)) == [text]


def pids_cgroup(docker_client, container_id: str) -> pathlib.Path:
    """The container's directory in the cgroup v1 pids hierarchy, found through its main process."""
    pid = docker_client.api.inspect_container(container_id)["State"]["Pid"]
    for line in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            return pathlib.Path("/sys/fs/cgroup/pids") / path.lstrip("/")
    raise AssertionError(f"no pids cgroup for container {container_id[:12]}")


def refused_forks(cgroup: pathlib.Path) -> int:
    """How many forks the pids limit refused in this cgroup (pids.events: "max N")."""
    return int((cgroup / "pids.events").read_text().split()[1])


FORKS_TRIED = 300


async def test_a_fork_bomb_is_bounded_by_the_pod_pids_limit(nursery, node_name: str, docker_client) -> None:
    harness = Harness(nursery, node_name, pod_pids_limit=64)
    runtime = await harness.start()
    # Each container forks FORKS_TRIED sleepers (a bomb that stops by itself if nothing stops it).
    bomb = (f"( i=0; while [ $i -lt {FORKS_TRIED} ]; do sleep 600 & i=$((i+1)); done ) 2>/dev/null;"
            " echo tried; exec sleep 600")
    pod = make_pod("bomb", sh("one", bomb), sh("two", bomb))
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: running("one")(s) and running("two")(s), what="running")
    uid = pod.metadata.uid
    for name in ("one", "two"):
        await wait_until(lambda: _logged(runtime, uid, name, "tried"), timeout_s=30, what=f"{name} done forking")
    infra_limit, per_app = plans.pids_limits(pod, harness.config)
    total = 0
    for name in ("one", "two"):
        cgroup = await in_thread(pids_cgroup, docker_client, status.container(name).container_id)
        current = int((cgroup / "pids.current").read_text())
        assert current <= per_app < FORKS_TRIED, (name, current)
        assert (cgroup / "pids.max").read_text().strip() == str(per_app)
        assert refused_forks(cgroup) > 0  # the bomb did hit the limit
        total += current
    infra_id = (await in_thread(lambda: docker_client.containers.list(
        filters={"label": [f"{plans.LABEL_NODE}={node_name}", "agentd.role=infra"]})))[0].id
    total += int((await in_thread(pids_cgroup, docker_client, infra_id) / "pids.current").read_text())
    assert total <= harness.config.pod_pids_limit, total
    # The node is unharmed: another Pod still starts.
    calm = make_pod("calm", sh("main", "sleep 1000"))
    harness.source.set_pods([pod, calm])
    await harness.wait_for(calm, running(), what="another Pod runs")


async def _logged(runtime, uid: str, container: str, text: str) -> bool:
    return text in await collect(runtime.logs(uid, container))
