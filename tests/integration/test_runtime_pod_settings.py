"""Pod-level settings on the real Docker engine: shared process namespace, hostname and
subdomain, hostAliases, dnsConfig, workingDir and tty, seen from inside the containers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.runtime.status import Terminated
from agent.state.pod import HostAlias, PodDNSConfig, PodDNSConfigOption
from tests.integration.conftest import Harness, container_state, make_pod, sh

pytestmark = pytest.mark.docker


async def test_pod_settings_seen_from_inside(harness: Harness) -> None:
    await harness.start()
    other = sh("other", "exec sleep 1234")
    looker = sh("looker",
                "for i in $(seq 100); do ps | grep -q '[s]leep 1234' && break; sleep 0.05; done;"
                " ps | grep -q '[s]leep 1234' || exit 3;"
                ' test "$(hostname)" = web-0 || exit 4;'
                ' test "$(hostname -d)" = web.default.svc.cluster.local || exit 5;'
                " grep -q '^nameserver 10.20.30.40' /etc/resolv.conf || exit 6;"
                " grep -q 'ndots:2' /etc/resolv.conf || exit 7;"
                ' test "$(pwd)" = /tmp || exit 8;'
                " test -t 0 || exit 9;"
                " grep -Eq '^10.1.2.3[[:space:]]+foo.local' /etc/hosts || exit 10",
                working_dir="/tmp", tty=True, stdin=True)
    pod = make_pod("settings", other, looker, restart_policy="Never", grace_s=1)
    pod = replace(pod, spec=replace(
        pod.spec, share_process_namespace=True, hostname="web-0", subdomain="web", dns_policy="None",
        dns_config=PodDNSConfig(nameservers=("10.20.30.40",), searches=("example.com",),
                                options=(PodDNSConfigOption("ndots", "2"),)),
        host_aliases=(HostAlias(ip="10.1.2.3", hostnames=("foo.local", "bar.local")),)))
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: isinstance(container_state(s, "looker"), Terminated),
                                    what="looker done")
    assert container_state(status, "looker").exit_code == 0, container_state(status, "looker")


async def test_active_deadline_stops_and_fails_the_pod(harness: Harness) -> None:
    await harness.start()
    pod = make_pod("deadline", sh("main", "trap 'exit 0' TERM; while :; do sleep 0.1; done"), grace_s=1)
    pod = replace(pod, spec=replace(pod.spec, active_deadline_seconds=2))
    harness.source.set_pods([pod])
    status = await harness.wait_for(pod, lambda s: s.phase == "Failed"
                                    and isinstance(container_state(s, "main"), Terminated), timeout_s=15,
                                    what="Failed, its container stopped")
    assert status.reason == "DeadlineExceeded"
    assert status.message == "Pod was active on the node longer than the specified deadline"
    assert 1.5 <= container_state(status, "main").finished_at - status.start_time < 6
    await harness.holds(pod, lambda s: s.phase == "Failed" and s.container("main").restart_count == 0
                        and isinstance(container_state(s, "main"), Terminated), for_s=1.0, what="stays stopped")
