"""Fixtures for the runtime's tests against the real Docker engine.

The engine must be reachable: `docker_client` FAILS the test (it never skips) when it is
not. Every test gets its own node name; every container and volume labelled with it is
removed after the test, whatever the outcome.

Also `client` and `view`: the API of a namespace cluster, for any module that has a
`cluster` fixture (one cluster shared by the module's tests).
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

import docker
import pytest
import trio

from agent.client import ClusterClient, ClusterView
from agent.runtime import InMemorySource, PodRuntime, PodStatus, quick_profile
from agent.runtime.containers import LABEL_NODE
from agent.state.pod import Container, ObjectMeta, Pod, PodSpec

TEST_IMAGE = "busybox:local"
POLL_S = 0.02  # how often a waiting test looks at the state again


async def wait_until(predicate: Callable[[], Any], *, timeout_s: float = 20.0, what: str = "") -> Any:
    """Poll `predicate` (sync or async) until it returns something true; fail after `timeout_s`."""
    with trio.move_on_after(timeout_s):
        while True:
            value = predicate()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return value
            await trio.sleep(POLL_S)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what or predicate}")


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - turned into a loud failure
        pytest.fail(f"the Docker engine is unreachable ({exc!r}); these tests need it running", pytrace=False)
    try:
        client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {TEST_IMAGE} is missing: build it from busybox-static (see the CI setup)", pytrace=False)
    return client


_NODES_USED: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def sweep_test_nodes_at_the_end() -> Any:
    """Clean every test node once more when the session ends: a Docker call a stopped runtime
    abandoned (it never waits on one) may still have created a container after its test's cleanup."""
    yield
    if _NODES_USED:
        client = docker.from_env(timeout=60)
        for node in sorted(_NODES_USED):
            cleanup_node(client, node)


@pytest.fixture
def node_name(docker_client: docker.DockerClient) -> Any:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    cleanup_node(docker_client, name)


def cleanup_node(client: docker.DockerClient, node: str) -> None:
    """Remove every container and volume labelled with `node` (tolerating objects that go meanwhile)."""
    _NODES_USED.add(node)
    label = f"{LABEL_NODE}={node}"
    for c in client.api.containers(all=True, filters={"label": label}):
        try:
            client.api.remove_container(c["Id"], force=True)
        except docker.errors.APIError:  # already gone, or its removal is in progress
            pass
    for v in client.api.volumes(filters={"label": label}).get("Volumes") or ():
        try:
            client.api.remove_volume(v["Name"], force=True)
        except docker.errors.APIError:
            pass


def make_pod(name: str, *containers: Container, restart_policy: str = "Always", uid: str | None = None,
             grace_s: int = 2, volumes: tuple = (), namespace: str = "default") -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace=namespace, uid=uid or uuid.uuid4().hex),
        spec=PodSpec(containers=tuple(containers), restart_policy=restart_policy, volumes=volumes,
                     termination_grace_period_seconds=grace_s),
    )


def sh(name: str, script: str, **kwargs: Any) -> Container:
    """A busybox:local container running a shell script."""
    return Container(name=name, image=TEST_IMAGE, command=("sh", "-c", script), **kwargs)


class Harness:
    """A runtime running in the test's nursery, fed by an InMemorySource."""

    def __init__(self, nursery: trio.Nursery, node_name: str, **config: Any) -> None:
        self.nursery = nursery
        self.node_name = node_name
        self.config = quick_profile(**config)
        self.source = InMemorySource()
        self.runtime: PodRuntime | None = None
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    async def start(self, **kwargs: Any) -> PodRuntime:
        self.runtime = PodRuntime(node_name=self.node_name, config=self.config, **kwargs)
        scope = trio.CancelScope()
        self._scope = scope
        runtime = self.runtime
        stopped = self._stopped

        async def run(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with scope:
                    await runtime.run(self.source, task_status=task_status)
            finally:
                stopped.set()

        await self.nursery.start(run)
        return runtime

    async def stop(self) -> None:
        """Cancel the runtime (as if the agent died) and wait until it has ended; containers are left as they are."""
        assert self._scope is not None
        self._scope.cancel()
        with trio.fail_after(10):
            await self._stopped.wait()

    def status(self, pod: Pod) -> PodStatus | None:
        assert self.runtime is not None
        return self.runtime.statuses().get(pod.metadata.uid)

    async def wait_for(self, pod: Pod, check: Callable[[PodStatus], bool], *, timeout_s: float = 20.0,
                       what: str = "") -> PodStatus:
        """Wait until the pod's status satisfies `check`; fail with the last status if it never does."""
        last = None
        with trio.move_on_after(timeout_s):
            while True:
                last = self.status(pod)
                if last is not None and check(last):
                    return last
                await trio.sleep(POLL_S)
        pytest.fail(f"timed out after {timeout_s}s waiting for {what or check}: last status {last!r}")

    async def holds(self, pod: Pod, check: Callable[[PodStatus], bool], *, for_s: float, what: str = "") -> PodStatus:
        """Check the pod's status all along a window of `for_s` seconds (a property that must
        keep holding, such as "nothing restarts"); fail at the first status that breaks it."""
        deadline = trio.current_time() + for_s
        while True:
            status = self.status(pod)
            assert status is not None and check(status), f"{what or check} stopped holding: {status!r}"
            if trio.current_time() >= deadline:
                return status
            await trio.sleep(POLL_S)


@pytest.fixture
async def harness(nursery: trio.Nursery, node_name: str) -> Harness:
    return Harness(nursery, node_name)


def container_state(status: PodStatus, name: str) -> Any:
    cs = status.container(name)
    assert cs is not None, f"no status for container {name}"
    return cs.state


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await trio.to_thread.run_sync(fn, *args)


# -- a namespace cluster's API, for the modules that have a `cluster` fixture ---------------


@pytest.fixture
async def client(cluster):
    """A ClusterClient to every node of the module's cluster."""
    async with ClusterClient([n.api_address for n in cluster.nodes], timeout_s=5) as c:
        yield c


@pytest.fixture
async def view(client, nursery):
    """A ClusterView of the module's cluster, followed for the test's length."""
    v = ClusterView(client)
    await nursery.start(v.run)
    return v
