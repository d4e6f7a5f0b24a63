"""YAML manifests -> objects: multi-document text or files, rejected whole on any error.

Owns: turning YAML text into parsed objects (today: Pods) and saying where each
problem is. Rules:
- All documents are checked before anything is returned; one bad document rejects
  the whole text, and the ManifestError lists the problems of every document.
- Each FieldError carries a location "<source>:<line> (document N)" so the reader can
  find it: <line> is the line of the field itself (its key, or its item in a list),
  found by walking the composed YAML nodes along the error's field path; a field that
  is absent is told at the line of the deepest part of its path that is there (the
  object it is missing from), the whole document at its first line. YAML syntax errors
  carry "<source>:<line>:<column>".
- A mapping with the same key twice is an error (PyYAML would silently keep the last).
- Empty documents (a bare `---`) are skipped.
- Which parser handles a document is chosen by (apiVersion, kind) in MANIFEST_PARSERS;
  adding Deployment later is one entry there.
- Only the safe YAML loader is used: no arbitrary Python objects. Text over 3 MiB,
  nesting too deep for the parser and alias bombs are errors, never a crash or a hang.
- A manifest file is read only if it is a regular file of at most MAX_MANIFEST_BYTES:
  it is opened without blocking (a FIFO, device or socket can never stall the reader),
  the opened descriptor is checked (fstat) and its size is checked before a byte is read.
  Symlinks are followed, as kubelet follows them in its static Pod directory: the check
  is on what was opened, so swapping the target between a look and the open changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from agent.state.pod import FieldError, ManifestError, Pod, parse_pod

# The pure-Python safe loader, not libyaml's CSafeLoader: on deeply nested input the C
# composer overflows the C stack and kills the process, where this one raises
# RecursionError, which becomes a ManifestError. Manifests are small; speed is moot.
_Loader = yaml.SafeLoader
MAX_MANIFEST_CHARS = 3 * 1024 * 1024  # Kubernetes' own request-size limit is about 3 MiB
MAX_MANIFEST_BYTES = 3 * 1024 * 1024  # the same limit for a file, checked on its size before reading it
_READ_CHUNK_BYTES = 64 * 1024  # os.read allocates what it is asked for: never the whole limit at once
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_FILE_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}

# (apiVersion, kind) -> parser of one decoded document. Append new kinds here.
MANIFEST_PARSERS: dict[tuple[str, str], Callable[[Mapping[str, Any]], Any]] = {
    ("v1", "Pod"): parse_pod,
}


def load_manifests(text: str, *, source: str = "<string>") -> list[Pod]:
    """Every object in a multi-document YAML text, in order. Raises ManifestError."""
    errors: list[FieldError] = []
    objects: list[Any] = []
    for doc, lines in decode_documents_with_lines(text, source=source):
        try:
            objects.append(_parse_document(doc))
        except ManifestError as exc:
            errors.extend(lines.relocate(exc.errors))
    if errors:
        raise ManifestError(errors)
    return objects


# One step of a field path: `.name` or `name`, `[3]`, or `["a.b/c"]` (a map key, JSON-quoted).
_PATH_STEP = re.compile(r'\.?([^.\[\]]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def _path_steps(path: str) -> list[str | int] | None:
    """The steps of a field path ("spec.containers[0].env[\"A\"]"), None if it does not read as one."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _PATH_STEP.match(path, pos)
        if m is None:
            return steps or None
        name, index, quoted = m.groups()
        if name is not None:
            steps.append(name)
        elif index is not None:
            steps.append(int(index))
        else:
            try:
                steps.append(json.loads(quoted))
            except ValueError:
                return steps
        pos = m.end()
    return steps


def field_line(node: yaml.Node, path: str) -> int:
    """The 1-based line of the field at `path` in the composed document `node`: the line
    of its key (or its list item); when part of the path is absent, the line of the
    deepest part that is there; the document's first line for "" or an unreadable path."""
    line = node.start_mark.line
    for step in _path_steps(path) or ():
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            found = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == step), None)
            if found is None:
                break
            line, node = found[0].start_mark.line, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line
        else:
            break
    return line + 1


class DocumentLines:
    """Where one decoded document came from: tells the location of any field in it."""

    def __init__(self, source: str, number: int, node: yaml.Node) -> None:
        self.source, self.number, self.node = source, number, node
        self.location = f"{source}:{node.start_mark.line + 1} (document {number})"
        """The document's own location (its first line)."""

    def of(self, path: str) -> str:
        """"<source>:<line of the field> (document N)"."""
        return f"{self.source}:{field_line(self.node, path)} (document {self.number})"

    def relocate(self, errors: Any) -> list[FieldError]:
        """The errors with their location set to the line of their field."""
        return [FieldError(e.path, e.message, self.of(e.path)) for e in errors]


def decode_documents(text: str, *, source: str = "<string>") -> list[tuple[Any, str]]:
    """The decoded documents of a multi-document YAML text, each with its location
    "<source>:<line> (document N)", empty ones skipped. Raises ManifestError on YAML
    errors and duplicate keys (every document is looked at before raising)."""
    return [(doc, lines.location) for doc, lines in decode_documents_with_lines(text, source=source)]


def decode_documents_with_lines(text: str, *, source: str = "<string>") -> list[tuple[Any, DocumentLines]]:
    """decode_documents, each document with its DocumentLines (the line of any of its fields)."""
    if len(text) > MAX_MANIFEST_CHARS:
        raise ManifestError([FieldError("", f"manifest is larger than {MAX_MANIFEST_CHARS} characters", source)])
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise ManifestError([_yaml_error(exc, source)]) from None
    except RecursionError:
        raise ManifestError([FieldError("", "YAML nested too deeply", source)]) from None
    errors: list[FieldError] = []
    docs: list[tuple[Any, DocumentLines]] = []
    constructor = _Loader("")
    for number, node in enumerate(nodes, start=1):
        if node is None:
            continue
        lines = DocumentLines(source, number, node)
        location = lines.location
        try:
            duplicates = list(_duplicate_keys(node, ""))
            doc = None if duplicates else constructor.construct_document(node)
        except yaml.YAMLError as exc:
            errors.append(_yaml_error(exc, source))
            continue
        except RecursionError:
            errors.append(FieldError("", "YAML nested too deeply", location))
            continue
        if duplicates:
            errors.extend(FieldError(path, message, f"{source}:{line} (document {number})")
                          for path, message, line in duplicates)
            continue
        if doc is not None:
            docs.append((doc, lines))
    if errors:
        raise ManifestError(errors)
    return docs


def manifest_file_problem(st: os.stat_result) -> str | None:
    """Why a file with this stat cannot be a manifest (None if it can): not regular, or too large."""
    if not stat.S_ISREG(st.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        return f"is {kind}, not a regular file"
    if st.st_size > MAX_MANIFEST_BYTES:
        return f"is {st.st_size} bytes, above the limit of {MAX_MANIFEST_BYTES} bytes"
    return None


def read_manifest_file(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of a manifest file, read without blocking; ManifestError if it is not a
    regular file of at most MAX_MANIFEST_BYTES (checked on the opened file, before reading)."""
    source = os.fspath(path)
    try:
        fd = os.open(source, _READ_FLAGS)
    except OSError as exc:
        raise ManifestError([FieldError("", f"cannot read: {exc.strerror or exc}", source)]) from None
    try:
        problem = manifest_file_problem(os.fstat(fd))
        if problem:
            raise ManifestError([FieldError("", problem, source)])
        chunks = []
        size = 0
        while size <= MAX_MANIFEST_BYTES:  # one byte past the limit tells a file that grew while read
            chunk = os.read(fd, min(_READ_CHUNK_BYTES, MAX_MANIFEST_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ManifestError([FieldError("", f"cannot read: {exc.strerror or exc}", source)]) from None
    finally:
        os.close(fd)
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError([FieldError("", f"grew above the limit of {MAX_MANIFEST_BYTES} bytes while read", source)])
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError([FieldError("", f"cannot read: {exc}", source)]) from None


def load_manifest_file(path: str | os.PathLike[str]) -> list[Pod]:
    """load_manifests on a manifest file (read_manifest_file); an unreadable file is a ManifestError too."""
    return load_manifests(read_manifest_file(path), source=os.fspath(path))


def _parse_document(doc: Any) -> Any:
    if not isinstance(doc, Mapping):
        raise ManifestError([FieldError("", f"a manifest must be an object, got {type(doc).__name__}")])
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    parser = MANIFEST_PARSERS.get((api_version, kind))  # type: ignore[arg-type]
    if parser is None:
        known = ", ".join(f"{v}/{k}" for v, k in MANIFEST_PARSERS)
        raise ManifestError(
            [FieldError("kind", f"unsupported apiVersion/kind {api_version!s}/{kind!s} (supported: {known})")]
        )
    return parser(doc)


def _duplicate_keys(node: yaml.Node, path: str, visited: set[int] | None = None):
    """(path, message, line of the second key) for every mapping key written twice, anywhere under node.

    Each node is visited once: YAML aliases make the tree a graph, and walking it
    naively would take exponential time on a "billion laughs" document.
    """
    visited = set() if visited is None else visited
    if id(node) in visited:
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            child = f"{path}.{key}" if path and key is not None else (key or path)
            if key is not None and key != "<<":
                if key in seen:
                    yield child, f"duplicate key (line {key_node.start_mark.line + 1})", key_node.start_mark.line + 1
                seen.add(key)
            yield from _duplicate_keys(value_node, child, visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{path}[{i}]", visited)


def _yaml_error(exc: yaml.YAMLError, source: str) -> FieldError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    location = source if mark is None else f"{source}:{mark.line + 1}:{mark.column + 1}"
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    return FieldError("", message, location)
