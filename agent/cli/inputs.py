"""What `agentctl apply -f` and `delete -f` read: files, directories and stdin, checked
before anything is sent.

Owns: turning `-f FILE|DIR|-` arguments into decoded documents with their locations
("<file>:<line> (document N)"), and checking each as the cluster will (agent.state.objects
.admit: the same field-path errors), so that a bad manifest is reported with its file
and line and nothing is sent.

Rules: a directory contributes its *.yaml, *.yml and *.json files, sorted, not its
subdirectories; files are read with the manifest reader's limits (regular files only,
size checked first); every problem of every document is reported at once.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from agent.state.manifest import decode_documents_with_lines, read_manifest_file
from agent.state.objects import admit
from agent.state.pod import FieldError, ManifestError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def manifest_paths(argument: str) -> list[str]:
    """The files one -f argument stands for ("-" is stdin)."""
    if argument == "-" or not os.path.isdir(argument):
        return [argument]
    names = sorted(n for n in os.listdir(argument) if n.endswith(MANIFEST_SUFFIXES))
    return [os.path.join(argument, n) for n in names if os.path.isfile(os.path.join(argument, n))]


def read_documents(arguments: list[str]) -> list[tuple[dict[str, Any], str]]:
    """Every document of every -f argument, each checked; (document, location) pairs.
    Raises ManifestError naming every problem (unreadable files included)."""
    errors: list[FieldError] = []
    out: list[tuple[dict[str, Any], str]] = []
    for argument in arguments:
        paths = manifest_paths(argument)
        if not paths:
            raise ManifestError([FieldError("", "no .yaml, .yml or .json files here", argument)])
        for path in paths:
            try:
                text = sys.stdin.read() if path == "-" else read_manifest_file(path)
                documents = decode_documents_with_lines(text, source="<stdin>" if path == "-" else path)
            except ManifestError as exc:
                errors.extend(exc.errors)
                continue
            for doc, lines in documents:
                try:
                    admit(doc, location=lines.location)
                except ManifestError as exc:
                    errors.extend(lines.relocate(exc.errors))  # each at the line of its field
                    continue
                out.append((doc, lines.location))
    if errors:
        raise ManifestError(errors)
    return out
