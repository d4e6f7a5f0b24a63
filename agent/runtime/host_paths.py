"""hostPath volume types: the checks (and creations) Kubernetes does before mounting.

Owns: making a hostPath ready for a bind mount. Rules: the agent and the Docker engine
share this host's filesystem; a path that does not fit its declared type is a problem
(returned as text, shown in the container's waiting state and retried), never an
exception. Type "" checks nothing (Docker then creates a missing path as a directory).
"""

from __future__ import annotations

import os
import stat


def prepare_host_path(path: str, kind: str) -> str | None:
    """Check (or create) `path` for hostPath type `kind`; None when it is ready, else the problem."""
    try:
        if kind == "":
            return None
        if kind == "DirectoryOrCreate":
            os.makedirs(path, mode=0o755, exist_ok=True)
            return None if os.path.isdir(path) else f"hostPath {path}: exists and is not a directory"
        if kind == "FileOrCreate":
            if not os.path.exists(path):
                os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
                with open(path, "a"):
                    pass
            return None if os.path.isfile(path) else f"hostPath {path}: exists and is not a file"
        checks = {
            "Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
            "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK,
        }
        check = checks.get(kind)
        if check is None:
            return f"hostPath {path}: unknown type {kind!r}"
        mode = os.stat(path).st_mode
        return None if check(mode) else f"hostPath {path}: is not a {kind}"
    except OSError as exc:
        return f"hostPath {path} (type {kind}): {exc.strerror or exc}"


def host_path_problems(pod: object) -> list[str]:
    """Every problem of the Pod's hostPath volumes (creating the *OrCreate ones)."""
    problems = []
    for vol in pod.spec.volumes:  # type: ignore[attr-defined]
        if vol.host_path is not None:
            problem = prepare_host_path(vol.host_path.path, vol.host_path.type or "")
            if problem:
                problems.append(f"spec.volumes[{vol.name}].hostPath: {problem}")
    return problems
