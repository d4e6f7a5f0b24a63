"""plan_placements: the scheduler run over the cluster state, its answer applied as commands."""

from __future__ import annotations

import random

import pytest

from agent.control.placement import SchedulerConfig, ScoringStrategy
from agent.control.scheduling import BINDINGS_PER_COMMAND, plan_placements
from agent.state import commands as c
from agent.state.machine import is_error
from tests.unit.state_helpers import T0, Log, pod


def placed(log: Log) -> dict[str, str]:
    return {d["metadata"]["name"]: d["spec"].get("nodeName", "") for d in log.machine.list("Pod")}


def run_pass(log: Log, now: float = T0, config: SchedulerConfig = SchedulerConfig()) -> list[object]:
    results = []
    for data in plan_placements(log.machine, now=now, config=config):
        result = log.run(data)
        assert not is_error(result), result
        results.append((c.decode(data).op, result))
    return results


def scheduled_condition(log: Log, name: str) -> dict:
    conditions = log.machine.get("Pod", "default", name)["status"]["conditions"]
    return next(cond for cond in conditions if cond["type"] == "PodScheduled")


def three_nodes(cpu: int = 1000) -> Log:
    log = Log()
    for name in ("n1", "n2", "n3"):
        log.ready_node(name, cpu=cpu)
    return log


def test_pods_of_one_app_spread_over_the_nodes():
    log = three_nodes()
    log.create(*(pod(f"web-{i}", labels={"app": "web"}) for i in range(6)))
    results = run_pass(log)
    assert [op for op, _ in results] == ["bind"]
    assert results[0][1]["bound"] == 6
    nodes = list(placed(log).values())
    assert sorted(nodes.count(n) for n in ("n1", "n2", "n3")) == [2, 2, 2]
    assert scheduled_condition(log, "web-0")["status"] == "True"
    assert log.machine.get("Pod", "default", "web-0")["status"]["phase"] == "Pending"  # until its node reports
    assert plan_placements(log.machine, now=T0) == []  # nothing left to do


def test_binpack_fills_one_node_first():
    log = three_nodes()
    log.create(*(pod(f"p{i}", cpu="200m") for i in range(3)))
    run_pass(log, config=SchedulerConfig(scoring_strategy=ScoringStrategy.MOST_ALLOCATED))
    assert len(set(placed(log).values())) == 1


def test_a_pod_that_fits_nowhere_says_why_in_kubernetes_words_once():
    log = three_nodes(cpu=1000)
    log.run(c.patch_object("Node", "", "n3", {"spec": {"unschedulable": True}}, T0))
    log.create(pod("big", cpu="1500m"))
    results = run_pass(log)
    assert [op for op, _ in results] == ["unschedulable"]
    cond = scheduled_condition(log, "big")
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    # kube-scheduler sorts the "<count> <reason>" strings, and so do we
    assert cond["message"] == "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
    assert placed(log)["big"] == ""
    version = log.machine.applied_index
    assert plan_placements(log.machine, now=T0 + 5) == []  # same message: no write
    assert log.machine.applied_index == version


def test_a_pending_pod_is_placed_when_capacity_frees_or_a_node_joins():
    log = Log()
    log.ready_node("n1", cpu=1000)
    log.create(pod("a", cpu="800m"), pod("b", cpu="800m"))
    run_pass(log)
    first = placed(log)
    assert sorted(first.values()) == ["", "n1"]
    waiting = next(name for name, node in first.items() if not node)
    assert "1 Insufficient cpu" in scheduled_condition(log, waiting)["message"]
    log.ready_node("n2", cpu=1000)
    run_pass(log, T0 + 1)
    assert placed(log)[waiting] == "n2"
    assert scheduled_condition(log, waiting)["status"] == "True"


def test_capacity_freed_by_a_deleted_pod_is_used():
    log = Log()
    log.ready_node("n1", cpu=1000)
    log.create(pod("a", cpu="800m"))
    run_pass(log)
    log.create(pod("b", cpu="800m"))
    run_pass(log)
    assert placed(log)["b"] == ""
    log.run(c.delete_object("Pod", "default", "a", T0))
    run_pass(log)
    assert placed(log)["b"] == "n1"


def test_taints_keep_pods_off_unless_tolerated():
    log = three_nodes()
    for name in ("n1", "n2"):
        log.run(c.patch_object("Node", "", name, {"spec": {"taints": [{"key": "dedicated", "value": "db",
                                                                          "effect": "NoSchedule"}]}}, T0))
    plain = pod("plain")
    tolerant = pod("tolerant")
    tolerant["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Equal", "value": "db",
                                        "effect": "NoSchedule"}]
    tolerant["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "n1"}
    log.create(plain, tolerant)
    run_pass(log)
    assert placed(log) == {"plain": "n3", "tolerant": "n1"}


def test_node_selector_and_not_ready_nodes():
    log = three_nodes()
    log.run(c.set_node_ready("n1", "False", "NodeDead", "dead", T0))
    log.run(c.patch_object("Node", "", "n2", {"metadata": {"labels": {"disk": "ssd"}}}, T0))
    log.run(c.patch_object("Node", "", "n1", {"metadata": {"labels": {"disk": "ssd"}}}, T0))
    wants_ssd = pod("db")
    wants_ssd["spec"]["nodeSelector"] = {"disk": "ssd"}
    log.create(wants_ssd, *(pod(f"w{i}") for i in range(4)))
    run_pass(log)
    where = placed(log)
    assert where["db"] == "n2"
    assert "n1" not in where.values()


def test_host_ports_are_not_given_twice_on_one_node():
    log = Log()
    log.ready_node("n1")
    log.create(pod("a", host_port=8080), pod("b", host_port=8080))
    run_pass(log)
    assert sorted(placed(log).values()) == ["", "n1"]
    waiting = next(name for name, node in placed(log).items() if not node)
    assert "didn't have free ports" in scheduled_condition(log, waiting)["message"]


def test_mirror_and_finished_pods_are_never_scheduled():
    log = Log()
    log.ready_node("n1")
    log.run(c.sync_mirror_pods("n1", [pod("static")], ["uid-static"], T0))
    log.create(pod("done"))
    log.run(c.bind_pods([("default", "done", "uid-done", "n1")], T0))
    log.run(c.report_pod_statuses("n1", [("default", "done", "uid-done", 1, {"phase": "Succeeded"})], T0))
    assert plan_placements(log.machine, now=T0) == []


def test_a_large_backlog_goes_out_in_bounded_commands():
    log = Log()
    for i in range(4):
        log.ready_node(f"n{i}", cpu=64_000, memory=256 << 30, pods=1000)
    count = BINDINGS_PER_COMMAND * 2 + 10
    log.create(*(pod(f"p{i}", cpu="10m", memory="1Mi") for i in range(count)))
    results = run_pass(log)
    assert [op for op, _ in results] == ["bind", "bind", "bind"]
    assert sum(r["bound"] for _, r in results) == count


@pytest.mark.parametrize("seed", range(40))
def test_never_overcommitted_and_every_binding_accepted(seed):
    """Random nodes and Pods, several passes with Pods deleted and nodes dying between
    them: every binding the adapter proposes is accepted by the state machine's own
    check, and no node's requests ever exceed its allocatable."""
    rng = random.Random(seed)
    log = Log()
    nodes = [f"n{i}" for i in range(rng.randint(1, 5))]
    for name in nodes:
        log.ready_node(name, cpu=rng.choice([500, 1000, 2000]), memory=rng.choice([256, 512, 1024]) << 20,
                       pods=rng.randint(1, 8))
    counter = 0
    for step in range(6):
        batch = []
        for _ in range(rng.randint(1, 10)):
            counter += 1
            batch.append(pod(f"p{counter}", cpu=f"{rng.choice([0, 50, 100, 300, 700])}m",
                             memory=f"{rng.choice([0, 16, 64, 200])}Mi", labels={"app": rng.choice("ab")},
                             host_port=rng.choice([None, None, 8080])))
        log.create(*batch)
        if step == 3 and len(nodes) > 1:
            log.run(c.set_node_ready(nodes[0], "False", "NodeDead", "dead", T0))
        for op, result in run_pass(log, T0 + step):
            if op == "bind":
                assert all(r == "" for r in result["refused"]), result
        for name in nodes:
            usage, alloc = log.machine.store.usage(name), log.machine.store.allocatable(name)
            assert usage.cpu_millicores <= alloc.cpu_millicores
            assert usage.memory_bytes <= alloc.memory_bytes
            assert usage.pods <= alloc.pods
            assert all(n == 1 for n in usage.host_ports.values())
        doomed = [d["metadata"]["name"] for d in log.machine.list("Pod") if rng.random() < 0.2]
        for name in doomed:
            log.run(c.delete_object("Pod", "default", name, T0))
