"""spec.affinity: parsed with field-path errors, written back, and obeyed by the scheduler
with Kubernetes' Unschedulable wording."""

from __future__ import annotations

import pytest

from agent.state import commands as c
from agent.state.pod import ManifestError, parse_pod, pod_to_dict
from tests.unit.state_helpers import T0, Log, pod
from tests.unit.test_scheduling_adapter import placed, run_pass, scheduled_condition, three_nodes

REQ = "requiredDuringSchedulingIgnoredDuringExecution"
PREF = "preferredDuringSchedulingIgnoredDuringExecution"


def with_affinity(doc: dict, affinity: dict) -> dict:
    doc["spec"]["affinity"] = affinity
    return doc


def node_required(*exprs: dict, fields: tuple = ()) -> dict:
    term: dict = {"matchExpressions": list(exprs)}
    if fields:
        term["matchFields"] = list(fields)
    return {"nodeAffinity": {REQ: {"nodeSelectorTerms": [term]}}}


def anti_hostname(app: str) -> dict:
    return {"podAntiAffinity": {REQ: [{"labelSelector": {"matchLabels": {"app": app}},
                                       "topologyKey": "kubernetes.io/hostname"}]}}


FULL = {
    "nodeAffinity": {
        REQ: {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]},
                                  {"key": "cores", "operator": "Gt", "values": ["4"]},
                                  {"key": "gpu", "operator": "DoesNotExist"}],
             "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n9"]}]}]},
        PREF: [{"weight": 30, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}],
    },
    "podAffinity": {PREF: [{"weight": 5, "podAffinityTerm": {
        "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["cache"]}]},
        "namespaces": ["default", "other"], "topologyKey": "kubernetes.io/hostname"}}]},
    "podAntiAffinity": anti_hostname("web")["podAntiAffinity"],
}


def test_affinity_round_trips():
    p = parse_pod(with_affinity(pod("a"), FULL))
    assert p.spec.affinity is not None
    d = pod_to_dict(p)
    assert d["spec"]["affinity"] == FULL
    assert parse_pod(d) == p


@pytest.mark.parametrize("affinity, path, words", [
    (node_required({"key": "disk", "operator": "Like", "values": ["x"]}),
     f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0].matchExpressions[0].operator", '"Like" is not one of'),
    (node_required({"key": "disk", "operator": "In"}),
     f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0].matchExpressions[0].values", "must be specified"),
    (node_required({"key": "disk", "operator": "Exists", "values": ["a"]}),
     f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0].matchExpressions[0].values", "may not be specified"),
    (node_required({"key": "cores", "operator": "Lt", "values": ["four"]}),
     f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0].matchExpressions[0].values[0]", "must be an integer"),
    (node_required({"key": "cores", "operator": "Gt", "values": ["1", "2"]}),
     f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0].matchExpressions[0].values", "single value"),
    (node_required(fields=({"key": "metadata.uid", "operator": "In", "values": ["n1"]},)),
     f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0].matchFields[0].key", '"metadata.name"'),
    ({"nodeAffinity": {REQ: {"nodeSelectorTerms": []}}},
     f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms", "must not be empty"),
    ({"nodeAffinity": {PREF: [{"weight": 0, "preference": {}}]}},
     f"spec.affinity.nodeAffinity.{PREF}[0].weight", "at least 1"),
    ({"podAntiAffinity": {REQ: [{"labelSelector": {}, "topologyKey": "topology.kubernetes.io/zone"}]}},
     f"spec.affinity.podAntiAffinity.{REQ}[0].topologyKey", "not supported by agentd"),
    ({"podAffinity": {REQ: [{"labelSelector": {}}]}},
     f"spec.affinity.podAffinity.{REQ}[0].topologyKey", "required field is missing"),
    ({"podAffinity": {REQ: [{"labelSelector": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
                             "topologyKey": "kubernetes.io/hostname"}]}},
     f"spec.affinity.podAffinity.{REQ}[0].labelSelector.matchExpressions[0].operator", '"Gt" is not one of'),
    ({"nodeAfinity": {}}, "spec.affinity.nodeAfinity", 'did you mean "nodeAffinity"'),
])
def test_affinity_errors_name_the_field(affinity, path, words):
    with pytest.raises(ManifestError) as err:
        parse_pod(with_affinity(pod("a"), affinity))
    found = [e for e in err.value.errors if e.path == path]
    assert found, [str(e) for e in err.value.errors]
    assert words in found[0].message


def label(log: Log, node: str, labels: dict) -> None:
    log.run(c.patch_object("Node", "", node, {"metadata": {"labels": labels}}, T0))


def test_required_node_affinity_places_on_the_matching_node_or_says_why():
    log = three_nodes()
    label(log, "n1", {"disk": "hdd", "cores": "2"})
    label(log, "n2", {"disk": "ssd", "cores": "8"})
    label(log, "n3", {"disk": "ssd", "cores": "2"})
    fast = with_affinity(pod("fast"), node_required({"key": "disk", "operator": "In", "values": ["ssd"]},
                                                    {"key": "cores", "operator": "Gt", "values": ["4"]}))
    named = with_affinity(pod("named"), node_required(
        fields=({"key": "metadata.name", "operator": "In", "values": ["n3"]},)))
    nowhere = with_affinity(pod("nowhere"), node_required({"key": "disk", "operator": "In", "values": ["nvme"]}))
    log.create(fast, named, nowhere)
    run_pass(log)
    where = placed(log)
    assert (where["fast"], where["named"], where["nowhere"]) == ("n2", "n3", "")
    cond = scheduled_condition(log, "nowhere")
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert cond["message"] == "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."


def test_preferred_node_affinity_weighs_in_the_score():
    log = three_nodes()
    label(log, "n3", {"rack": "r1"})
    label(log, "n2", {"rack": "r2"})
    prefers = {"nodeAffinity": {PREF: [{"weight": 100, "preference": {"matchExpressions": [
        {"key": "rack", "operator": "In", "values": ["r1"]}]}}, {"weight": 10, "preference": {"matchExpressions": [
            {"key": "rack", "operator": "Exists"}]}}]}}
    log.create(with_affinity(pod("p"), prefers))
    run_pass(log)
    assert placed(log)["p"] == "n3"


def test_well_known_node_labels_select():
    log = three_nodes()
    labels = log.machine.get("Node", "", "n1")["metadata"]["labels"]
    assert (labels["kubernetes.io/os"], labels["kubernetes.io/arch"], labels["kubernetes.io/hostname"]) == \
        ("linux", "amd64", "n1")
    log.create(with_affinity(pod("p"), node_required({"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                                                     {"key": "kubernetes.io/hostname", "operator": "NotIn",
                                                      "values": ["n1", "n2"]})))
    run_pass(log)
    assert placed(log)["p"] == "n3"


def test_required_anti_affinity_spreads_and_the_extra_replica_waits():
    log = three_nodes()
    replicas = [with_affinity(pod(f"web-{i}", labels={"app": "web"}), anti_hostname("web")) for i in range(4)]
    log.create(*replicas)
    run_pass(log)
    where = placed(log)
    bound = [n for n in where.values() if n]
    assert sorted(bound) == ["n1", "n2", "n3"]
    waiting = next(name for name, node in where.items() if not node)
    assert scheduled_condition(log, waiting)["message"] == \
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."


def test_required_pod_affinity_joins_its_peer():
    log = three_nodes()
    log.create(pod("cache", labels={"app": "cache"}))
    run_pass(log)
    home = placed(log)["cache"]
    near = {"podAffinity": {REQ: [{"labelSelector": {"matchLabels": {"app": "cache"}},
                                   "topologyKey": "kubernetes.io/hostname"}]}}
    log.create(*(with_affinity(pod(f"w{i}"), near) for i in range(3)))
    run_pass(log)
    assert {placed(log)[f"w{i}"] for i in range(3)} == {home}


def test_preferred_anti_affinity_avoids_a_node():
    log = three_nodes()
    log.create(pod("noisy", labels={"app": "noisy"}, node="n1"))
    avoid = {"podAntiAffinity": {PREF: [{"weight": 100, "podAffinityTerm": {
        "labelSelector": {"matchLabels": {"app": "noisy"}}, "topologyKey": "kubernetes.io/hostname"}}]}}
    log.create(*(with_affinity(pod(f"q{i}", cpu="10m"), avoid) for i in range(2)))
    run_pass(log)
    assert "n1" not in {placed(log)[f"q{i}"] for i in range(2)}


def test_a_deployment_template_keeps_its_affinity_and_names_its_errors():
    from agent.state.workloads import admit_deployment
    from tests.unit.workload_helpers import deployment

    doc = deployment("web")
    doc["spec"]["template"]["spec"]["affinity"] = anti_hostname("web")
    admitted = admit_deployment(doc)
    assert admitted["spec"]["template"]["spec"]["affinity"] == anti_hostname("web")
    doc["spec"]["template"]["spec"]["affinity"] = {"podAntiAffinity": {REQ: [{"topologyKey": "zone"}]}}
    with pytest.raises(ManifestError, match=rf"spec\.template\.spec\.affinity\.podAntiAffinity\.{REQ}\[0\]"
                                            r"\.topologyKey: \"zone\" is not supported"):
        admit_deployment(doc)
