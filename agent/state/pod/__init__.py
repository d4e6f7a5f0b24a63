"""The Pod: Kubernetes-style Pod manifests, parsed, strictly validated and written back.

  model.py      the frozen Pod dataclasses, FrozenMap, the allowed values of enumerated fields
  syntax.py     syntax rules of names and values (DNS labels, qualified names, ...), quoting in messages
  kubernetes_fields.py  the fields Kubernetes has in each object (supported or not)
  errors.py     FieldError and ManifestError: every problem of a rejected manifest, by field path
  parser.py     parse_pod: a decoded manifest -> Pod, Kubernetes defaults applied, all errors collected
  serialize.py  pod_to_dict (Pod -> Kubernetes-shaped dict) and pod_spec_hash

Every name the rest of agentd uses is importable from here (`from agent.state.pod import Pod`).
Pure: no I/O, no clock. YAML text is agent.state.manifest's business.
"""

from agent.state.pod.errors import FieldError, ManifestError
from agent.state.pod.model import (
    API_VERSION,
    EMPTY_DIR_MEDIA,
    HOST_PATH_TYPES,
    HTTP_SCHEMES,
    KIND,
    MAX_ANNOTATIONS_BYTES,
    PROTOCOLS,
    PULL_POLICIES,
    RESOURCE_NAMES,
    RESTART_POLICIES,
    TAINT_EFFECTS,
    TOLERATION_OPERATORS,
    Capabilities,
    Container,
    ContainerPort,
    EmptyDirVolumeSource,
    EnvVar,
    EnvVarSource,
    ExecAction,
    FrozenMap,
    HostAlias,
    HostPathVolumeSource,
    HTTPGetAction,
    Lifecycle,
    LifecycleHandler,
    ObjectFieldSelector,
    ObjectMeta,
    OwnerReference,
    Pod,
    ResourceFieldSelector,
    PodDNSConfig,
    PodDNSConfigOption,
    PodSecurityContext,
    PodSpec,
    SecurityContext,
    Toleration,
    Probe,
    ResourceRequirements,
    SleepAction,
    TCPSocketAction,
    Volume,
    VolumeMount,
    default_pull_policy,
)
from agent.state.pod.parser import parse_pod
from agent.state.pod.serialize import owner_reference_to_dict, pod_spec_hash, pod_to_dict
from agent.state.pod.syntax import (
    dns_label_problem,
    dns_subdomain_problem,
    label_value_problem,
    port_name_problem,
    qualified_name_problem,
)

__all__ = [
    "API_VERSION", "EMPTY_DIR_MEDIA", "HOST_PATH_TYPES", "HTTP_SCHEMES", "KIND", "MAX_ANNOTATIONS_BYTES",
    "PROTOCOLS", "PULL_POLICIES", "RESOURCE_NAMES", "RESTART_POLICIES", "TAINT_EFFECTS", "TOLERATION_OPERATORS",
    "Capabilities", "Container", "ContainerPort", "EmptyDirVolumeSource", "EnvVar", "EnvVarSource", "ExecAction",
    "FieldError", "FrozenMap", "HostAlias", "HostPathVolumeSource", "HTTPGetAction", "Lifecycle", "LifecycleHandler",
    "ManifestError", "ObjectFieldSelector", "ObjectMeta", "OwnerReference", "Pod", "PodDNSConfig", "PodDNSConfigOption",
    "PodSecurityContext", "PodSpec", "Probe", "ResourceFieldSelector", "SecurityContext", "SleepAction",
    "ResourceRequirements", "TCPSocketAction", "Toleration", "Volume", "VolumeMount",
    "default_pull_policy", "dns_label_problem", "dns_subdomain_problem", "label_value_problem", "parse_pod",
    "owner_reference_to_dict", "pod_spec_hash", "pod_to_dict", "port_name_problem", "qualified_name_problem",
]
