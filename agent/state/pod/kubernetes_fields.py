"""The fields Kubernetes' core/v1 Pod has, object by object (as of Kubernetes 1.31).

Owns: KUBERNETES_FIELDS, which the parser uses to tell a real Kubernetes field that
agentd does not support ("spec.overhead: not supported by agentd") from a typo
("spec.hostNetwrk: unknown field, did you mean "hostNetwork"?").

Rules: pure data. A kind lists every field Kubernetes accepts in that object, the
supported ones included; which of them agentd reads is the parser's business.
"""

from __future__ import annotations

KUBERNETES_FIELDS: dict[str, frozenset[str]] = {
    "Pod": frozenset({"apiVersion", "kind", "metadata", "spec", "status"}),
    "ObjectMeta": frozenset({
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
        "ownerReferences", "finalizers", "managedFields",
    }),
    "PodSpec": frozenset({
        "volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
        "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
        "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName", "hostNetwork",
        "hostPID", "hostIPC", "shareProcessNamespace", "securityContext", "imagePullSecrets", "hostname",
        "subdomain", "affinity", "schedulerName", "tolerations", "hostAliases", "priorityClassName", "priority",
        "dnsConfig", "readinessGates", "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "overhead",
        "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates", "resourceClaims",
        "resources",
    }),
    "Container": frozenset({
        "name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources", "resizePolicy",
        "restartPolicy", "volumeMounts", "volumeDevices", "livenessProbe", "readinessProbe", "startupProbe",
        "lifecycle", "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy", "securityContext",
        "stdin", "stdinOnce", "tty",
    }),
    "ContainerPort": frozenset({"name", "hostPort", "containerPort", "protocol", "hostIP"}),
    "EnvVar": frozenset({"name", "value", "valueFrom"}),
    "EnvVarSource": frozenset({"fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef"}),
    "ObjectFieldSelector": frozenset({"apiVersion", "fieldPath"}),
    "ConfigMapKeySelector": frozenset({"name", "key", "optional"}),
    "SecretKeySelector": frozenset({"name", "key", "optional"}),
    "EnvFromSource": frozenset({"prefix", "configMapRef", "secretRef"}),
    "ConfigMapEnvSource": frozenset({"name", "optional"}),
    "SecretEnvSource": frozenset({"name", "optional"}),
    "ConfigMapVolumeSource": frozenset({"name", "items", "defaultMode", "optional"}),
    "SecretVolumeSource": frozenset({"secretName", "items", "defaultMode", "optional"}),
    "KeyToPath": frozenset({"key", "path", "mode"}),
    "ResourceFieldSelector": frozenset({"containerName", "resource", "divisor"}),
    "ResourceRequirements": frozenset({"limits", "requests", "claims"}),
    "ResourceList": frozenset({"cpu", "memory", "ephemeral-storage"}),
    "VolumeMount": frozenset({
        "name", "readOnly", "recursiveReadOnly", "mountPath", "subPath", "mountPropagation", "subPathExpr",
    }),
    "Probe": frozenset({
        "exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "timeoutSeconds", "periodSeconds",
        "successThreshold", "failureThreshold", "terminationGracePeriodSeconds",
    }),
    "Lifecycle": frozenset({"postStart", "preStop", "stopSignal"}),
    "LifecycleHandler": frozenset({"exec", "httpGet", "tcpSocket", "sleep"}),
    "SleepAction": frozenset({"seconds"}),
    "ExecAction": frozenset({"command"}),
    "HTTPGetAction": frozenset({"path", "port", "host", "scheme", "httpHeaders"}),
    "HTTPHeader": frozenset({"name", "value"}),
    "TCPSocketAction": frozenset({"port", "host"}),
    "Volume": frozenset({
        "name", "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
        "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
        "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
        "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
    }),
    "EmptyDirVolumeSource": frozenset({"medium", "sizeLimit"}),
    "HostPathVolumeSource": frozenset({"path", "type"}),
    "Toleration": frozenset({"key", "operator", "value", "effect", "tolerationSeconds"}),
    "SecurityContext": frozenset({
        "capabilities", "privileged", "seLinuxOptions", "windowsOptions", "runAsUser", "runAsGroup",
        "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation", "procMount", "seccompProfile",
        "appArmorProfile",
    }),
    "PodSecurityContext": frozenset({
        "seLinuxOptions", "windowsOptions", "runAsUser", "runAsGroup", "runAsNonRoot", "supplementalGroups",
        "supplementalGroupsPolicy", "fsGroup", "sysctls", "fsGroupChangePolicy", "seccompProfile",
        "appArmorProfile", "seLinuxChangePolicy",
    }),
    "Capabilities": frozenset({"add", "drop"}),
    "HostAlias": frozenset({"ip", "hostnames"}),
    "PodDNSConfig": frozenset({"nameservers", "searches", "options"}),
    "PodDNSConfigOption": frozenset({"name", "value"}),
}
