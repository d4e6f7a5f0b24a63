"""A node's watch: its Pods and Node, and exactly the ConfigMaps and Secrets they use."""

from __future__ import annotations

from agent.state import commands as c
from agent.state.node_interest import NodeInterest

from tests.unit.state_helpers import T0, Log, pod


def cm(name: str, value: str = "v") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}}


def secret(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": "hidden"}}


def using(name: str, node: str, config_map: str) -> dict:
    doc = pod(name, node=node)
    doc["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": config_map}}]
    return doc


def names(events):
    return [(t, d["kind"], d["metadata"]["name"]) for t, d in events]


def test_interest_follows_the_pods_references():
    log = Log()
    log.ready_node("n1")
    log.create(cm("used"), cm("unused"), secret("s"))
    log.create(using("a", "n1", "used"))
    state = log.machine
    interest = NodeInterest("n1")
    listed = interest.initial(state.store.pods_on("n1"), state.list("Node"), state.get)
    assert [(d["kind"], d["metadata"]["name"]) for d in listed] == [("Node", "n1"), ("Pod", "a"), ("ConfigMap", "used")]
    version = state.applied_index

    log.create(cm("used", "2"), cm("unused", "2"))  # only the used one reaches the node
    log.create(using("b", "n2", "unused"))  # another node's Pod: nothing
    changes = state.changes_since(version)
    version = state.applied_index
    assert names(interest.events(changes, state.get)) == [("MODIFIED", "ConfigMap", "used")]

    doc = using("c", "n1", "unused")  # a second Pod here starts to use "unused": sent as it is now
    doc["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "s"}}]
    doc["spec"]["containers"][0]["volumeMounts"] = [{"name": "s", "mountPath": "/s"}]
    log.create(doc)
    events = interest.events(state.changes_since(version), state.get)
    version = state.applied_index
    assert names(events) == [("ADDED", "Pod", "c"), ("ADDED", "ConfigMap", "unused"), ("ADDED", "Secret", "s")]

    log.run(c.delete_object("Pod", "default", "a", T0))  # the last user leaves: DELETED for this node
    events = interest.events(state.changes_since(version), state.get)
    assert names(events) == [("DELETED", "Pod", "a"), ("DELETED", "ConfigMap", "used")]
    assert not interest.wants(("ConfigMap", "default", "used"))
    assert interest.wants(("Secret", "default", "s"))
