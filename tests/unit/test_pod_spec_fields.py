"""Pod fields beyond the basics: initContainers and sidecars, the downward API, lifecycle
hooks, securityContext, and the errors that name what is wrong. Parsing, defaults,
round trips and field-path errors; the pure runtime rules they feed (status words,
environment values, Docker arguments)."""

from __future__ import annotations

import copy

import pytest

from agent.runtime.status import ContainerStatus, Running, Terminated, Waiting, init_status_word
from agent.state.manifest import load_manifests
from agent.state.pod import ManifestError, parse_pod, pod_spec_hash, pod_to_dict


def base(**spec) -> dict:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:local"}]},
    }
    doc["spec"].update(spec)
    return doc


def errors_of(doc: dict) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_pod(doc)
    return [str(e) for e in info.value.errors]


def round_trips(doc: dict):
    pod = parse_pod(doc)
    again = parse_pod(pod_to_dict(pod))
    assert again == pod
    assert pod_spec_hash(again) == pod_spec_hash(pod)
    return pod


# ---------------------------------------------------------------- initContainers

MYAPP_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: myapp-pod
  labels:
    app.kubernetes.io/name: MyApp
spec:
  containers:
  - name: myapp-container
    image: busybox:local
    command: ['sh', '-c', 'echo The app is running! && sleep 3600']
  initContainers:
  - name: init-myservice
    image: busybox:local
    command: ['sh', '-c', "until nslookup myservice.$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace).svc.cluster.local; do echo waiting for myservice; sleep 2; done"]
  - name: init-mydb
    image: busybox:local
    command: ['sh', '-c', "until nslookup mydb.$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace).svc.cluster.local; do echo waiting for mydb; sleep 2; done"]
"""


def test_documented_init_containers_parse_in_order() -> None:
    (pod,) = load_manifests(MYAPP_POD)
    assert [c.name for c in pod.spec.init_containers] == ["init-myservice", "init-mydb"]
    assert all(c.restart_policy is None for c in pod.spec.init_containers)
    assert pod.spec.sidecars() == ()
    assert parse_pod(pod_to_dict(pod)) == pod


def test_sidecar_round_trips_and_counts_in_requests() -> None:
    doc = base(initContainers=[
        {"name": "setup", "image": "busybox:local", "resources": {"requests": {"cpu": "2"}}},
        {"name": "proxy", "image": "busybox:local", "restartPolicy": "Always",
         "resources": {"requests": {"cpu": "100m", "memory": "10Mi"}},
         "startupProbe": {"tcpSocket": {"port": 8080}}},
    ])
    doc["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m", "memory": "20Mi"}}
    pod = round_trips(doc)
    assert [c.name for c in pod.spec.sidecars()] == ["proxy"]
    assert pod_to_dict(pod)["spec"]["initContainers"][1]["restartPolicy"] == "Always"
    # Kubernetes' effective request: max(init peak, sidecars + containers) = max(2000, 600).
    assert pod.spec.cpu_request_millicores() == 2000
    assert pod.spec.memory_request_bytes() == 30 * 1024 * 1024


def test_init_container_errors_carry_their_paths() -> None:
    doc = base(initContainers=[
        {"name": "main", "image": "busybox:local"},
        {"name": "x", "image": "busybox:local", "restartPolicy": "Never"},
        {"name": "y", "image": "busybox:local", "livenessProbe": {"exec": {"command": ["true"]}}},
        {"name": "y", "image": "busybox:local"},
    ])
    errors = errors_of(doc)
    assert 'spec.initContainers[0].name: duplicate name "main" (also in containers)' in errors
    assert 'spec.initContainers[1].restartPolicy: "Never" is not one of "Always"' in errors
    assert ('spec.initContainers[2].livenessProbe: may not be set for init containers without restartPolicy'
            ' "Always"') in errors
    assert 'spec.initContainers[3].name: duplicate name "y"' in errors


def test_restart_policy_is_no_field_of_an_app_container() -> None:
    doc = base()
    doc["spec"]["containers"][0]["restartPolicy"] = "Always"
    assert any(e.startswith("spec.containers[0].restartPolicy:") for e in errors_of(doc))


def _cs(name: str, state, *, started: bool = False) -> ContainerStatus:
    return ContainerStatus(name=name, image="i", state=state, started=started)


def test_init_status_words_as_kubectl_shows_them() -> None:
    done = Terminated(0, "Completed", 1.0, 2.0)
    assert init_status_word([_cs("a", Running(1.0)), _cs("b", Waiting("PodInitializing"))], set()) == "Init:0/2"
    assert init_status_word([_cs("a", done), _cs("b", Running(1.0))], set()) == "Init:1/2"
    assert init_status_word([_cs("a", Terminated(1, "Error", 1.0, 2.0))], set()) == "Init:Error"
    assert init_status_word([_cs("a", Waiting("CrashLoopBackOff", "back-off"))], set()) == "Init:CrashLoopBackOff"
    # A started sidecar is done initializing; one not yet started holds the count.
    assert init_status_word([_cs("s", Running(1.0), started=True), _cs("b", Running(1.0))], {"s"}) == "Init:1/2"
    assert init_status_word([_cs("s", Running(1.0)), _cs("b", Waiting("PodInitializing"))], {"s"}) == "Init:0/2"
    assert init_status_word([_cs("a", done), _cs("s", Running(1.0), started=True)], {"s"}) is None


def test_a_copy_of_a_manifest_is_not_changed_by_parsing() -> None:
    (pod,) = load_manifests(MYAPP_POD)
    doc = pod_to_dict(pod)
    before = copy.deepcopy(doc)
    parse_pod(doc)
    assert doc == before


# ---------------------------------------------------------------- downward API env

DAPI_FIELDREF_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: dapi-envars-fieldref
spec:
  containers:
    - name: test-container
      image: busybox:local
      command: [ "sh", "-c"]
      args:
      - while true; do
          echo -en '\\n';
          printenv MY_NODE_NAME MY_POD_NAME MY_POD_NAMESPACE;
          printenv MY_POD_IP MY_POD_SERVICE_ACCOUNT;
          sleep 10;
        done;
      env:
        - name: MY_NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
        - name: MY_POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: MY_POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: MY_POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        - name: MY_POD_SERVICE_ACCOUNT
          valueFrom:
            fieldRef:
              fieldPath: spec.serviceAccountName
  restartPolicy: Never
"""

DAPI_RESOURCE_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: dapi-envars-resourcefieldref
spec:
  containers:
    - name: test-container
      image: busybox:local
      command: [ "sh", "-c"]
      args:
      - while true; do
          echo -en '\\n';
          printenv MY_CPU_REQUEST MY_CPU_LIMIT;
          printenv MY_MEM_REQUEST MY_MEM_LIMIT;
          sleep 10;
        done;
      resources:
        requests:
          memory: "32Mi"
          cpu: "125m"
        limits:
          memory: "64Mi"
          cpu: "250m"
      env:
        - name: MY_CPU_REQUEST
          valueFrom:
            resourceFieldRef:
              containerName: test-container
              resource: requests.cpu
        - name: MY_CPU_LIMIT
          valueFrom:
            resourceFieldRef:
              containerName: test-container
              resource: limits.cpu
        - name: MY_MEM_REQUEST
          valueFrom:
            resourceFieldRef:
              containerName: test-container
              resource: requests.memory
        - name: MY_MEM_LIMIT
          valueFrom:
            resourceFieldRef:
              containerName: test-container
              resource: limits.memory
  restartPolicy: Never
"""


def _env_of(pod, *, pod_ip="10.0.0.7", host_ip="192.168.1.2", cpu=1900, mem=1000):
    from agent.runtime.env import container_env

    return container_env(pod, pod.spec.containers[0], pod_ip=pod_ip, host_ip=host_ip,
                         node_cpu_millicores=cpu, node_memory_bytes=mem)


def test_documented_field_ref_example_parses_and_resolves() -> None:
    (pod,) = load_manifests(DAPI_FIELDREF_POD)
    pod = pod.with_uid("uid-9").with_node_name("node-4")
    assert parse_pod(pod_to_dict(pod)) == pod
    assert _env_of(pod) == {
        "MY_NODE_NAME": "node-4", "MY_POD_NAME": "dapi-envars-fieldref", "MY_POD_NAMESPACE": "default",
        "MY_POD_IP": "10.0.0.7", "MY_POD_SERVICE_ACCOUNT": "default",
    }


def test_documented_resource_field_ref_example_rounds_up() -> None:
    (pod,) = load_manifests(DAPI_RESOURCE_POD)
    assert parse_pod(pod_to_dict(pod)) == pod
    assert _env_of(pod) == {"MY_CPU_REQUEST": "1", "MY_CPU_LIMIT": "1",
                            "MY_MEM_REQUEST": str(32 * 2**20), "MY_MEM_LIMIT": str(64 * 2**20)}


def test_divisors_unset_limits_and_map_entries() -> None:
    doc = base(serviceAccountName="builder")
    doc["metadata"]["annotations"] = {"example.com/team": "blue"}
    doc["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "250m", "memory": "1500"}}
    doc["spec"]["containers"][0]["env"] = [
        {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        {"name": "MEM_K", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory", "divisor": "1k"}}},
        {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "MEM_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Ki"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['absent']"}}},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['example.com/team']"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "GREETING", "value": "$(APP) in $(TEAM) $$(APP) $(UNSET)"},
    ]
    pod = round_trips(doc)
    assert pod.spec.service_account_name == "builder"
    env = _env_of(pod, cpu=1900, mem=4097)
    assert env == {"CPU_M": "250", "MEM_K": "2", "CPU_LIMIT": "2", "MEM_LIMIT": "5", "APP": "web", "NONE": "",
                   "TEAM": "blue", "UID": "u-1", "HOST": "192.168.1.2", "SA": "builder",
                   "GREETING": "web in blue $(APP) $(UNSET)"}


def test_command_and_args_expand_env() -> None:
    from agent.runtime import containers as plans
    from agent.runtime.config import RuntimeConfig

    doc = base()
    doc["spec"]["containers"][0].update(
        command=["echo", "$(POD)"], args=["$(POD)-$(IP)", "$$(POD)"],
        env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}])
    pod = parse_pod(doc)
    plan = plans.app_plan(pod, pod.spec.containers[0], "n", "h", "i", RuntimeConfig(), restart_count=0,
                          crash_streak=0, started_at=0.0, pod_ip="10.1.2.3")
    assert plan.create_kwargs["entrypoint"] == ["echo", "p"]
    assert plan.create_kwargs["command"] == ["p-10.1.2.3", "$(POD)"]
    assert plan.create_kwargs["environment"] == {"POD": "p", "IP": "10.1.2.3"}


def test_downward_api_errors_name_the_field() -> None:
    doc = base()
    doc["spec"]["containers"][0]["env"] = [
        {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
        {"name": "B", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "2"}}},
        {"name": "D", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage"}}},
        {"name": "E", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "other"}}},
        {"name": "F", "valueFrom": {}},
        {"name": "G", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
        {"name": "H", "valueFrom": {"fieldRef": {}}},
    ]
    errors = errors_of(doc)
    p = "spec.containers[0].env"
    assert any(e.startswith(f'{p}[0].valueFrom.fieldRef.fieldPath: "status.podIPs" is not a supported fieldPath')
               for e in errors), errors
    assert f"{p}[1].valueFrom: may not be set when value is not empty" in errors
    assert any(e.startswith(f'{p}[2].valueFrom.resourceFieldRef.divisor: "2" is not a valid divisor for limits.cpu')
               for e in errors), errors
    assert any(e.startswith(f'{p}[3].valueFrom.resourceFieldRef.resource: "limits.ephemeral-storage" is not one of')
               for e in errors), errors
    assert f'{p}[4].valueFrom.resourceFieldRef.containerName: "other" is not a container of this pod' in errors
    assert f"{p}[5].valueFrom: must have exactly one source of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef (found none)" in errors
    assert any(e.startswith(f'{p}[6].valueFrom.fieldRef.fieldPath: "metadata.labels": name one key') for e in errors)
    assert f"{p}[7].valueFrom.fieldRef.fieldPath: required field is missing" in errors


# ---------------------------------------------------------------- lifecycle hooks

LIFECYCLE_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: lifecycle-demo
spec:
  containers:
  - name: lifecycle-demo-container
    image: busybox:local
    lifecycle:
      postStart:
        exec:
          command: ["/bin/sh", "-c", "echo Hello from the postStart handler > /usr/share/message"]
      preStop:
        exec:
          command: ["/bin/sh","-c","nginx -s quit; while killall -0 nginx; do sleep 1; done"]
"""


def test_documented_lifecycle_hooks_parse_and_round_trip() -> None:
    (pod,) = load_manifests(LIFECYCLE_POD)
    lifecycle = pod.spec.containers[0].lifecycle
    assert lifecycle.post_start.exec.command[0] == "/bin/sh"
    assert lifecycle.pre_stop.exec.command[2].startswith("nginx -s quit")
    assert parse_pod(pod_to_dict(pod)) == pod


def test_http_and_sleep_hooks_round_trip() -> None:
    doc = base()
    doc["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 8080}]
    doc["spec"]["containers"][0]["lifecycle"] = {
        "postStart": {"httpGet": {"port": "http", "path": "/warm", "httpHeaders": [{"name": "X-A", "value": "1"}]}},
        "preStop": {"sleep": {"seconds": 5}},
    }
    pod = round_trips(doc)
    assert pod.spec.containers[0].lifecycle.pre_stop.sleep.seconds == 5
    assert pod.spec.containers[0].lifecycle.post_start.http_get.port == "http"


def test_lifecycle_errors_carry_their_paths() -> None:
    doc = base(initContainers=[{"name": "setup", "image": "busybox:local",
                                "lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}])
    doc["spec"]["containers"][0]["lifecycle"] = {
        "postStart": {},
        "preStop": {"exec": {"command": ["true"]}, "sleep": {"seconds": 1}},
    }
    errors = errors_of(doc)
    p = "spec.containers[0].lifecycle"
    assert f"{p}.postStart: must have exactly one handler of exec, httpGet, sleep (found none)" in errors
    assert f"{p}.preStop: must have exactly one handler of exec, httpGet, sleep (found exec, sleep)" in errors
    assert ('spec.initContainers[0].lifecycle: may not be set for init containers without restartPolicy "Always"'
            in errors)


# ---------------------------------------------------------------- securityContext


def _secure_doc() -> dict:
    doc = base(securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                "supplementalGroups": [4000], "runAsNonRoot": True},
               volumes=[{"name": "sec-ctx-vol", "emptyDir": {}}])
    doc["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsUser": 2000,
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
    }
    return doc


def test_security_context_round_trips_and_maps_to_docker() -> None:
    from agent.runtime import containers as plans
    from agent.runtime.config import RuntimeConfig

    pod = round_trips(_secure_doc())
    sc = pod.spec.containers[0].security_context
    assert (sc.run_as_user, sc.run_as_group, sc.allow_privilege_escalation) == (2000, None, False)
    assert sc.capabilities.drop == ("ALL",)
    assert pod.spec.security_context.fs_group == 2000
    options = plans.security_options(pod, pod.spec.containers[0], RuntimeConfig())
    assert options == {"user": "2000:3000", "read_only": True, "cap_add": ["NET_ADMIN"], "cap_drop": ["ALL"],
                       "security_opt": ["no-new-privileges:true"], "group_add": ["2000", "4000"]}
    assert not plans.needs_image_user(pod, pod.spec.containers[0])
    assert plans.fs_group_command(pod) is not None


def test_run_as_non_root_and_privileged_are_checked_at_start() -> None:
    from agent.runtime import containers as plans
    from agent.runtime.config import RuntimeConfig

    doc = base(securityContext={"runAsNonRoot": True})
    pod = parse_pod(doc)
    c = pod.spec.containers[0]
    assert plans.needs_image_user(pod, c)
    for image_user in ("", "root", "0", "0:0"):
        with pytest.raises(plans.ConfigError, match="image will run as root"):
            plans.security_options(pod, c, RuntimeConfig(), image_user=image_user)
    with pytest.raises(plans.ConfigError, match="non-numeric user"):
        plans.security_options(pod, c, RuntimeConfig(), image_user="nobody")
    assert plans.security_options(pod, c, RuntimeConfig(), image_user="65534") == {}
    # A group alone keeps the image's user.
    grouped = parse_pod(base(securityContext={"runAsGroup": 7}))
    assert plans.security_options(grouped, grouped.spec.containers[0], RuntimeConfig(),
                                  image_user="65534:65534") == {"user": "65534:7"}
    doc = base()
    doc["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    priv = parse_pod(doc)
    with pytest.raises(plans.ConfigError, match="not allowed"):
        plans.security_options(priv, priv.spec.containers[0], RuntimeConfig())
    assert plans.security_options(priv, priv.spec.containers[0],
                                  RuntimeConfig(allow_privileged=True)) == {"privileged": True}


def test_security_context_errors_carry_their_paths() -> None:
    doc = base(securityContext={"runAsUser": 0, "runAsNonRoot": True, "fsGroup": -1, "supplementalGroups": ["x"]})
    doc["spec"]["containers"][0]["securityContext"] = {
        "privileged": True, "allowPrivilegeEscalation": False, "runAsUser": "root",
        "capabilities": {"add": ["NET ADMIN"]}, "readOnlyRootFilesystem": "yes",
    }
    errors = errors_of(doc)
    p = "spec.containers[0].securityContext"
    assert f"{p}.allowPrivilegeEscalation: cannot be false when privileged is true" in errors
    assert f'{p}.runAsUser: must be an integer, got string "root"' in errors
    assert any(e.startswith(f'{p}.capabilities.add[0]: "NET ADMIN" is not a capability name') for e in errors)
    assert f'{p}.readOnlyRootFilesystem: must be a boolean, got string "yes"' in errors
    assert "spec.securityContext.runAsNonRoot: cannot be true when runAsUser is 0" in errors
    assert "spec.securityContext.fsGroup: -1 must be at least 0" in errors
    assert 'spec.securityContext.supplementalGroups[0]: must be an integer, got string "x"' in errors


# ---------------------------------------------------------------- errors a person can act on


def test_one_unsupported_handler_or_source_is_one_error() -> None:
    doc = base(volumes=[{"name": "conf", "projected": {"sources": []}}])
    c = doc["spec"]["containers"][0]
    c["lifecycle"] = {"preStop": {"tcpSocket": {"port": 80}}}
    assert sorted(errors_of(doc)) == sorted([
        "spec.containers[0].lifecycle.preStop.tcpSocket: not supported by agentd",
        "spec.volumes[0].projected: not supported by agentd",
    ])


def test_typos_suggest_the_nearest_field_and_real_fields_say_unsupported() -> None:
    doc = base(hostNetwrk=True, overhead={"cpu": "1"})
    doc["spec"]["containers"][0].update(securityContext={"runAsUsr": 1, "seccompProfile": {"type": "RuntimeDefault"}},
                                        workingDirectory="/x")
    errors = errors_of(doc)
    assert 'spec.hostNetwrk: unknown field, did you mean "hostNetwork"?' in errors
    assert "spec.overhead: not supported by agentd" in errors
    assert 'spec.containers[0].securityContext.runAsUsr: unknown field, did you mean "runAsUser"?' in errors
    assert "spec.containers[0].securityContext.seccompProfile: not supported by agentd" in errors
    assert 'spec.containers[0].workingDirectory: unknown field, did you mean "workingDir"?' in errors
    doc = base(zzz=1)
    assert errors_of(doc) == ["spec.zzz: unknown field"]


# ---------------------------------------------------------------- pod-level settings


def test_process_namespace_names_dns_and_terminal_round_trip() -> None:
    from agent.runtime import containers as plans
    from agent.runtime.config import RuntimeConfig

    doc = base(shareProcessNamespace=True, hostname="web-0", subdomain="web", dnsPolicy="None",
               hostAliases=[{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]}, {"ip": "::1"}],
               activeDeadlineSeconds=60,
               dnsConfig={"nameservers": ["1.2.3.4"], "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
                          "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    doc["spec"]["containers"][0].update(workingDir="/srv", stdin=True, stdinOnce=True, tty=True)
    pod = round_trips(doc)
    assert pod.spec.dns_config.options[1].value is None
    assert pod.spec.active_deadline_seconds == 60
    infra = plans.infra_plan(pod, "n", "h", RuntimeConfig(), started_at=0.0)
    assert infra.create_kwargs["hostname"] == "web-0"
    assert infra.create_kwargs["domainname"] == "web.ns.svc.cluster.local"
    assert infra.host_config_kwargs["dns"] == ["1.2.3.4"]
    assert infra.host_config_kwargs["dns_opt"] == ["ndots:2", "edns0"]
    assert infra.host_config_kwargs["extra_hosts"] == ["foo.local:127.0.0.1", "bar.local:127.0.0.1"]
    app = plans.app_plan(pod, pod.spec.containers[0], "n", "h", "infra1", RuntimeConfig(), restart_count=0,
                         crash_streak=0, started_at=0.0)
    assert app.host_config_kwargs["pid_mode"] == "container:infra1"
    assert (app.create_kwargs["working_dir"], app.create_kwargs["stdin_open"], app.create_kwargs["tty"]) == (
        "/srv", True, True)
    # Defaults are not written, so Pods written before these fields keep their spec hash.
    plain = parse_pod(base())
    assert set(pod_to_dict(plain)["spec"]) == {"containers", "restartPolicy", "terminationGracePeriodSeconds"}
    assert plain.spec.dns_policy == "ClusterFirst" and plain.spec.hostname is None


def test_pod_level_setting_errors() -> None:
    doc = base(hostname="Web_0", dnsPolicy="None", dnsConfig={"nameservers": ["not-an-ip"]},
               hostAliases=[{"ip": "10.0.0.300", "hostnames": ["Bad_Name"]}], activeDeadlineSeconds=0)
    doc["spec"]["containers"][0]["workingDir"] = "relative"
    errors = errors_of(doc)
    assert any(e.startswith('spec.hostname: "Web_0" is not a valid DNS-1123 label') for e in errors)
    assert 'spec.dnsConfig.nameservers[0]: "not-an-ip" is not an IP address' in errors
    assert 'spec.containers[0].workingDir: "relative" must be an absolute path' in errors
    assert 'spec.hostAliases[0].ip: "10.0.0.300" is not an IP address' in errors
    assert "spec.activeDeadlineSeconds: 0 must be at least 1" in errors
    assert any(e.startswith('spec.hostAliases[0].hostnames[0]: "Bad_Name" is not a valid DNS-1123') for e in errors)
    assert 'spec.dnsConfig.nameservers: must provide at least one nameserver when dnsPolicy is "None"' not in errors
    assert errors_of(base(dnsPolicy="None")) == [
        'spec.dnsConfig.nameservers: must provide at least one nameserver when dnsPolicy is "None"']


def test_describe_and_status_word_show_init_containers() -> None:
    from agent.cli.render import describe_pod, pod_status_word
    from agent.runtime.status import PodStatus

    (pod,) = load_manifests(MYAPP_POD)
    status = PodStatus(uid="u", namespace="default", name="myapp-pod", phase="Pending", reason="Init:0/2",
                       container_statuses=(_cs("myapp-container", Waiting("PodInitializing")),),
                       init_container_statuses=(_cs("init-myservice", Running(1.0)),
                                                _cs("init-mydb", Waiting("PodInitializing"))))
    d = status.to_dict()
    assert pod_status_word(d) == "Init:0/2"
    text = describe_pod({**pod_to_dict(pod), "status": d})
    init_at, containers_at = text.index("Init Containers:"), text.index("\nContainers:\n")
    assert init_at < text.index("  init-myservice:") < text.index("  init-mydb:") < containers_at
    assert text.index("  myapp-container:") > containers_at


def test_runtime_refuses_a_built_pod_whose_init_container_shares_a_name() -> None:
    from dataclasses import replace

    from agent.runtime.reconciler import runnable_problem

    pod = parse_pod(base())
    assert runnable_problem(pod) is None
    clash = replace(pod, spec=replace(pod.spec, init_containers=(pod.spec.containers[0],)))
    assert "duplicate container names" in runnable_problem(clash)


def test_init_order_rules() -> None:
    from agent.runtime.init_order import InitProgress, all_done, may_start_app, may_start_init

    regular, sidecar = InitProgress(sidecar=False), InitProgress(sidecar=True)
    fresh = [regular, sidecar, regular]
    assert [may_start_init(fresh, i, initialized=False, failed=False) for i in range(3)] == [True, False, False]
    first_done = [InitProgress(sidecar=False, completed=True), sidecar, regular]
    assert [may_start_init(first_done, i, initialized=False, failed=False) for i in range(3)] == [True, True, False]
    # A sidecar that runs but has not passed its startupProbe holds the next one back.
    side_up = [first_done[0], InitProgress(sidecar=True, started=True), regular]
    assert may_start_init(side_up, 2, initialized=False, failed=False)
    assert not all_done(side_up) and not may_start_app(initialized=False, failed=False)
    done = [side_up[0], side_up[1], InitProgress(sidecar=False, completed=True)]
    assert all_done(done)
    # Initialized: only the sidecar may start again (after a crash); the app containers may start.
    crashed = [done[0], sidecar, done[2]]
    assert [may_start_init(crashed, i, initialized=True, failed=False) for i in range(3)] == [False, True, False]
    assert may_start_app(initialized=True, failed=False)
    assert not may_start_app(initialized=True, failed=True)
    assert not may_start_init(fresh, 0, initialized=False, failed=True)
