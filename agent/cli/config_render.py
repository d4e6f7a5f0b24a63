"""agentctl's printing of ConfigMaps and Secrets, as kubectl prints them.

Owns: the CONFIGMAP (NAME DATA AGE) and SECRET (NAME TYPE DATA AGE) table columns and
`describe configmap|secret`.

Rules it keeps:
- A Secret's values are never printed by a table or by describe: describe shows each
  key's size in bytes, as kubectl does; only `-o yaml|json` shows the (base64) data.
- A ConfigMap's describe shows its data, as kubectl does (a ConfigMap is not secret),
  and the sizes of its binaryData.
- Pure: documents and `now` in, text out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from agent.cli import render
from agent.state.config_kinds import entry_sizes

CONFIGMAP_HEADER = ["NAME", "DATA", "AGE"]
SECRET_HEADER = ["NAME", "TYPE", "DATA", "AGE"]


def _age(meta: Mapping, now: dt.datetime) -> str:
    created = render.parse_time(meta.get("creationTimestamp"))
    return render.human_duration((now - created).total_seconds()) if created else "<unknown>"


def configmap_row(doc: Mapping, now: dt.datetime) -> list[str]:
    count = len(doc.get("data") or {}) + len(doc.get("binaryData") or {})
    return [doc["metadata"]["name"], str(count), _age(doc["metadata"], now)]


def secret_row(doc: Mapping, now: dt.datetime) -> list[str]:
    return [doc["metadata"]["name"], str(doc.get("type") or "Opaque"), str(len(doc.get("data") or {})),
            _age(doc["metadata"], now)]


def _head(doc: Mapping) -> list[str]:
    meta = doc.get("metadata") or {}
    lines: list[str] = []
    render._kv(lines, "Name", meta.get("name", ""))
    render._kv(lines, "Namespace", meta.get("namespace", "default"))
    render._map_lines(lines, "Labels", meta.get("labels"))
    render._map_lines(lines, "Annotations", meta.get("annotations"))
    return lines


def describe_configmap(doc: Mapping) -> str:
    lines = _head(doc)
    lines += ["", "Data", "===="]
    for key, value in sorted((doc.get("data") or {}).items()):
        lines += [f"{key}:", "----", str(value), ""]
    lines += ["", "BinaryData", "===="]
    binary = {k: v for k, v in entry_sizes(doc).items() if k in (doc.get("binaryData") or {})}
    for key, size in binary.items():
        lines.append(f"{key}: {size} bytes")
    if doc.get("immutable"):
        lines += ["", "Immutable: true"]
    return "\n".join(lines)


def describe_secret(doc: Mapping) -> str:
    lines = _head(doc)
    lines += ["", f"Type:  {doc.get('type') or 'Opaque'}", "", "Data", "===="]
    sizes = entry_sizes(doc)
    width = max((len(k) for k in sizes), default=0) + 1
    for key, size in sizes.items():
        lines.append(f"{(key + ':').ljust(width)}  {size} bytes")
    if doc.get("immutable"):
        lines += ["", "Immutable: true"]
    return "\n".join(lines)
