"""securityContext on the real Docker engine, seen from inside the container."""

from __future__ import annotations

import pytest

from agent.runtime.status import Terminated, Waiting
from agent.state.pod import (
    Capabilities, EmptyDirVolumeSource, PodSecurityContext, SecurityContext, Volume, VolumeMount,
)
from tests.integration.conftest import Harness, container_state, make_pod, sh

pytestmark = pytest.mark.docker


def done(name: str):
    return lambda s: isinstance(container_state(s, name), Terminated)


async def test_identity_read_only_root_and_dropped_capability(harness: Harness) -> None:
    from dataclasses import replace

    await harness.start()
    mount = (VolumeMount(name="scratch", mount_path="/scratch"),)
    who = sh("who", 'test "$(id -u):$(id -g)" = 1234:2345 || { id; exit 3; };'
                    ' id -G | tr " " "\\n" | grep -qx 3456 || { id; exit 4; };'
                    ' touch /scratch/f || exit 5; test "$(stat -c %g /scratch/f)" = 3456 || exit 6;'
                    ' touch /rootfile 2>/dev/null && exit 7; exit 0',
             volume_mounts=mount,
             security_context=SecurityContext(run_as_user=1234, run_as_group=2345, read_only_root_filesystem=True,
                                              allow_privilege_escalation=False))
    nochown = sh("nochown", "touch /tmp/f && chown 1:1 /tmp/f 2>/dev/null && exit 8; exit 0",
                 security_context=SecurityContext(run_as_user=0, capabilities=Capabilities(drop=("CHOWN",))))
    readonly = sh("readonly", "touch /rootfile 2>/dev/null && exit 9; exit 0",
                  security_context=SecurityContext(run_as_user=0, read_only_root_filesystem=True))
    writable = sh("writable", "touch /rootfile", security_context=SecurityContext(run_as_user=0))
    canchown = sh("canchown", "touch /tmp/f && chown 1:1 /tmp/f", security_context=SecurityContext(run_as_user=0))
    pod = make_pod("secure", who, nochown, canchown, readonly, writable, restart_policy="Never",
                   volumes=(Volume(name="scratch", empty_dir=EmptyDirVolumeSource()),))
    pod = replace(pod, spec=replace(pod.spec, security_context=PodSecurityContext(fs_group=3456, run_as_user=99)))
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: all(done(n)(s) for n in ("who", "nochown", "canchown", "readonly", "writable")),
                                    what="all done")
    for name in ("who", "nochown", "canchown", "readonly", "writable"):
        assert container_state(status, name).exit_code == 0, (name, container_state(status, name))


async def test_run_as_non_root_refuses_a_root_image(harness: Harness) -> None:
    await harness.start()
    root = sh("root", "sleep 1000", security_context=SecurityContext(run_as_non_root=True))
    pod = make_pod("nonroot", root)
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: isinstance(container_state(s, "root"), Waiting)
                                    and container_state(s, "root").reason == "CreateContainerConfigError",
                                    what="refused")
    assert container_state(status, "root").message == "container has runAsNonRoot and image will run as root"


async def test_privileged_is_refused_unless_the_node_allows_it(harness: Harness) -> None:
    await harness.start()
    pod = make_pod("priv", sh("p", "sleep 1000", security_context=SecurityContext(privileged=True)))
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: isinstance(container_state(s, "p"), Waiting)
                                    and container_state(s, "p").reason == "CreateContainerConfigError",
                                    what="refused")
    assert "privileged containers are not allowed" in container_state(status, "p").message
