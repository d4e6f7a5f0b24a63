"""Syntax rules of a Pod manifest's strings, and how values are quoted in messages.

Owns: the checks of names and values Kubernetes constrains (DNS-1123 labels and
subdomains, qualified names, label values, port names, environment variable and HTTP
header names, absolute paths, image references), each returning the problem as text
or None, and `quote` / `type_name`, which write values into messages.

Rules: pure functions of one string; a message never carries more than a bounded cut of
the value, so hostile input cannot bloat it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_HTTP_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")


_MESSAGE_VALUE_CHARS = 100  # longer values are cut in messages, so hostile input cannot bloat them


def quote(value: Any) -> str:
    """A value as it appears in messages: JSON text ("12Q", 3, true); containers only by kind."""
    if isinstance(value, str) and len(value) > _MESSAGE_VALUE_CHARS:
        return json.dumps(value[:_MESSAGE_VALUE_CHARS], ensure_ascii=False)[:-1] + '..."'
    if value is None or isinstance(value, (str, int, float, bool)):
        return json.dumps(value, ensure_ascii=False)
    return f"<{type_name(value)}>"


def dns_label_problem(value: str) -> str | None:
    if len(value) > 63:
        return f"{quote(value)} must be at most 63 characters"
    if not _DNS_LABEL.fullmatch(value):
        return (
            f"{quote(value)} is not a valid DNS-1123 label "
            "(lowercase letters, digits and '-', starting and ending with a letter or digit)"
        )
    return None


def dns_subdomain_problem(value: str) -> str | None:
    if len(value) > 253:
        return f"{quote(value)} must be at most 253 characters"
    if not _DNS_SUBDOMAIN.fullmatch(value):
        return (
            f"{quote(value)} is not a valid DNS-1123 subdomain "
            "(lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit)"
        )
    return None


def qualified_name_problem(value: str) -> str | None:
    """A label / annotation key: optional "<DNS subdomain>/" prefix, then a name of at most 63 characters."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix:
            return f"{quote(value)}: the prefix before '/' must not be empty"
        problem = dns_subdomain_problem(prefix)
        if problem:
            return f"{quote(value)}: prefix {problem}"
    if not name:
        return f"{quote(value)}: the name part must not be empty"
    if len(name) > 63:
        return f"{quote(value)}: the name part must be at most 63 characters"
    if not _QUALIFIED_NAME.fullmatch(name):
        return (
            f"{quote(value)} is not a valid qualified name "
            "(letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"
        )
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63:
        return f"{quote(value)} must be at most 63 characters"
    if value and not _QUALIFIED_NAME.fullmatch(value):
        return (
            f"{quote(value)} is not a valid label value "
            "(empty, or letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"
        )
    return None


def port_name_problem(value: str) -> str | None:
    """Kubernetes' IANA_SVC_NAME: at most 15 of [a-z0-9-], a letter somewhere, no "--", no '-' at either end."""
    if len(value) > 15:
        return f"{quote(value)} must be at most 15 characters"
    if not _PORT_NAME.fullmatch(value) or "--" in value:
        return f"{quote(value)} is not a valid port name (lowercase letters, digits and single '-' inside)"
    if not re.search(r"[a-z]", value):
        return f"{quote(value)} is not a valid port name (must contain a letter)"
    return None


def env_name_problem(value: str) -> str | None:
    if not _ENV_VAR_NAME.fullmatch(value):
        return f"{quote(value)} is not a valid environment variable name (must match [-._a-zA-Z][-._a-zA-Z0-9]*)"
    return None


def header_name_problem(value: str) -> str | None:
    if not _HTTP_TOKEN.fullmatch(value):
        return f"{quote(value)} is not a valid HTTP header name"
    return None


def absolute_path_problem(value: str) -> str | None:
    if not value.startswith("/"):
        return f"{quote(value)} must be an absolute path"
    return None


def relative_path_problem(value: str) -> str | None:
    """A path inside a volume (items[].path, subPath): relative, no '..' element."""
    if value.startswith("/"):
        return f"{quote(value)} must be a relative path"
    if ".." in value.split("/"):
        return f"{quote(value)} must not contain '..'"
    if value.startswith(".."):
        return f"{quote(value)} must not start with '..'"
    return None


_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
MAX_CONFIG_KEY_LENGTH = 253


def config_key_problem(key: str) -> str | None:
    """Kubernetes' IsConfigMapKey (the keys of a ConfigMap or Secret), as text; None when valid."""
    if not key:
        return "must not be empty"
    if len(key) > MAX_CONFIG_KEY_LENGTH:
        return f"must be no more than {MAX_CONFIG_KEY_LENGTH} characters"
    if not _CONFIG_KEY.fullmatch(key):
        return "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
    if key in (".", ".."):
        return f"must not be {quote(key)}"
    if key.startswith(".."):
        return "must not start with '..'"
    return None


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def image_problem(value: str) -> str | None:
    if not value or value != value.strip() or any(ch.isspace() for ch in value):
        return f"{quote(value)} is not a valid image reference (must be non-empty, without spaces)"
    return None


_MAP_FIELD_PATH = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")


def field_path_problem(value: str) -> str | None:
    """A downward API fieldPath agentd can give a container's environment."""
    from agent.state.pod.model import FIELD_PATHS, FIELD_PATH_MAPS

    if value in FIELD_PATHS:
        return None
    m = _MAP_FIELD_PATH.fullmatch(value)
    if m:
        problem = qualified_name_problem(m.group(2))
        return f"{quote(value)}: key {problem}" if problem else None
    if value in FIELD_PATH_MAPS:
        return f"{quote(value)}: name one key, e.g. {value}['app'] (the whole map is only for volumes)"
    supported = ", ".join([*FIELD_PATHS, *(f"{p}['<key>']" for p in FIELD_PATH_MAPS)])
    return f"{quote(value)} is not a supported fieldPath (supported: {supported})"


_CPU_DIVISORS = ("1m", "1")
_MEMORY_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")


def divisor_problem(resource: str, divisor: Any) -> str | None:
    """Kubernetes' rule: cpu divides by 1m or 1; memory by 1 or a power of 1000 or 1024."""
    from agent.state.quantity import parse_quantity

    allowed = _CPU_DIVISORS if resource.endswith("cpu") else _MEMORY_DIVISORS
    if any(divisor.value == parse_quantity(a).value for a in allowed):
        return None
    return f"{quote(divisor.text)} is not a valid divisor for {resource} (one of {', '.join(allowed)})"


_CAPABILITY = re.compile(r"[A-Za-z_]+")


def capability_problem(value: str) -> str | None:
    """A Linux capability name: NET_ADMIN, CAP_NET_ADMIN, or ALL."""
    if not _CAPABILITY.fullmatch(value):
        return f"{quote(value)} is not a capability name (e.g. NET_ADMIN, CHOWN or ALL)"
    return None


def ip_problem(value: str) -> str | None:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"{quote(value)} is not an IP address"
    return None
