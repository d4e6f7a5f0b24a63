"""The downward API's environment on the real Docker engine: what the container sees."""

from __future__ import annotations

import uuid

import pytest
import trio

from agent.runtime.status import Running
from agent.state.manifest import load_manifests
from tests.integration.conftest import Harness, container_state, in_thread
from tests.unit.test_pod_spec_fields import DAPI_FIELDREF_POD, DAPI_RESOURCE_POD

pytestmark = pytest.mark.docker


async def _first_output(docker_client, container_id: str, lines: int) -> list[str]:
    """The container's first `lines` non-empty log lines."""
    last = ""
    with trio.move_on_after(10):
        while True:
            text = (await in_thread(lambda: docker_client.containers.get(container_id).logs())).decode()
            found = [line for line in text.splitlines() if line.strip()]
            if len(found) >= lines:
                return found[:lines]
            await trio.sleep(0.05)
            last = text
    pytest.fail(f"{lines} lines never came: {last!r}")


# busybox:local has no printenv applet: the examples' shell gets a function of that name.
PRINTENV = 'printenv() { for v; do env | grep "^$v=" | cut -d= -f2-; done; };'


def _with_printenv(text: str) -> str:
    return text.replace("- while true; do", "- " + PRINTENV + " while true; do")


async def test_documented_downward_api_examples(harness: Harness, docker_client) -> None:
    await harness.start()
    (fieldref,) = load_manifests(_with_printenv(DAPI_FIELDREF_POD))
    (resources,) = load_manifests(_with_printenv(DAPI_RESOURCE_POD))
    fieldref = fieldref.with_uid(uuid.uuid4().hex).with_node_name(harness.node_name)
    resources = resources.with_uid(uuid.uuid4().hex)
    harness.source.set_pods([fieldref, resources])
    statuses = []
    for pod in (fieldref, resources):
        statuses.append(await harness.wait_for(pod, lambda s: isinstance(container_state(s, "test-container"),
                                                                         Running), what="running"))
    field_status, resource_status = statuses
    lines = await _first_output(docker_client, field_status.container("test-container").container_id, 5)
    assert lines == [harness.node_name, "dapi-envars-fieldref", "default", field_status.pod_ip, "default"]
    assert field_status.pod_ip
    lines = await _first_output(docker_client, resource_status.container("test-container").container_id, 4)
    assert lines == ["1", "1", str(32 * 2**20), str(64 * 2**20)]
