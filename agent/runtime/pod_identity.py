"""A Pod's identity on a node is namespace/name: which of several definitions of one Pod runs (pure).

Owns: the two rules that keep one Pod per namespace/name.
  - Static Pods (claim_static_pods): the manifest files of a directory, in file-name
    order, may define the same Pod twice. The file that runs a Pod keeps it as long as it
    defines it (editing another file never takes a running Pod over); a Pod no file ran
    yet goes to the first definition by file name, then document order. Every other
    definition is a conflict, reported naming both files, and starts nothing.
  - Desired sets (choose_by_key): a source may hand the runtime two uids with one
    namespace/name. The uid that already runs keeps it; otherwise the smallest uid wins.
Rules: pure functions of their arguments; no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Definition:
    """One Pod defined by one document of a manifest file."""

    path: str
    key: str  # namespace/name
    uid: str


@dataclass(frozen=True, slots=True)
class Claims:
    owners: Mapping[str, str]  # key -> the file whose definition runs
    runs: tuple[Definition, ...]  # the definitions that run, one per key and per uid
    conflicts: Mapping[str, tuple[str, ...]]  # path -> why some of its definitions do not run


def claim_static_pods(definitions: Sequence[Definition], previous_owners: Mapping[str, str]) -> Claims:
    """`definitions` in file-name order, then document order; `previous_owners` from the last claim."""
    paths_by_key: dict[str, list[str]] = {}
    for d in definitions:
        paths_by_key.setdefault(d.key, []).append(d.path)
    owners = {key: previous_owners[key] if previous_owners.get(key) in paths else paths[0]
              for key, paths in paths_by_key.items()}
    runs: list[Definition] = []
    running_keys: set[str] = set()
    uid_of: dict[str, Definition] = {}
    conflicts: dict[str, list[str]] = {}
    for d in definitions:
        owner = owners[d.key]
        if d.path != owner:
            problem = f"pod {d.key} is already defined by {owner}; this definition is ignored"
        elif d.key in running_keys:
            problem = f"pod {d.key} is defined twice in this file; only the first definition runs"
        elif d.uid in uid_of:
            other = uid_of[d.uid]
            problem = f"pod {d.key}: uid {d.uid} is already used by pod {other.key} of {other.path}; ignored"
        else:
            runs.append(d)
            running_keys.add(d.key)
            uid_of[d.uid] = d
            continue
        conflicts.setdefault(d.path, []).append(problem)
    return Claims(owners={k: owners[k] for k in running_keys}, runs=tuple(runs),
                  conflicts={path: tuple(problems) for path, problems in conflicts.items()})


def choose_by_key(desired: Mapping[str, str], running: Collection[str]) -> tuple[set[str], dict[str, str]]:
    """`desired` maps uid -> key. Returns the uids to keep, and uid -> why it is rejected."""
    by_key: dict[str, list[str]] = {}
    for uid, key in desired.items():
        by_key.setdefault(key, []).append(uid)
    keep: set[str] = set()
    rejected: dict[str, str] = {}
    for key, uids in by_key.items():
        incumbent = [u for u in uids if u in running]
        winner = incumbent[0] if incumbent else min(uids)
        keep.add(winner)
        for uid in uids:
            if uid != winner:
                rejected[uid] = f"pod {key} is already desired with uid {winner}; a Pod's identity is namespace/name"
    return keep, rejected
