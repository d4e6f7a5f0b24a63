"""Writing a config volume's files so a reader never sees half of an update (driver).

Owns: the on-disk layout of a configMap or secret volume, as kubelet's atomic writer
lays it out:

    <dir>/..2026_12_04_05_01_02.123456789   the files of one version (a fresh directory)
    <dir>/..data -> ..2026_12_04_...        the current version
    <dir>/<top> -> ..data/<top>             one link per top-level file or directory

Rules:
- An update writes the new version into a fresh directory, then swaps `..data` with
  one rename (atomic), then fixes the top-level links: a reader sees the old files or
  the new ones, never a partial file. The version just replaced is kept until the next
  update (a reader that resolved `..data` to it just before the swap still finds its
  files); older ones are removed.
- Nothing is rewritten when the files already match (same paths, bytes and modes).
- A subPath mount binds one resolved file of one version: it keeps that version, as in
  Kubernetes (only the directory mount follows updates).
- Blocking file I/O: callers run it on a worker thread.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Sequence

from .config_volumes import FileSpec

DATA_LINK = "..data"


def current_files(target: str) -> tuple[FileSpec, ...] | None:
    """The files the volume holds now, or None if it was never written."""
    data_dir = os.path.join(target, DATA_LINK)
    if not os.path.islink(data_dir):
        return None
    base = os.path.realpath(data_dir)
    out = []
    for root, _dirs, names in os.walk(base):
        for name in names:
            path = os.path.join(root, name)
            st = os.lstat(path)
            with open(path, "rb") as f:
                out.append(FileSpec(os.path.relpath(path, base), f.read(), stat.S_IMODE(st.st_mode),
                                    st.st_gid if st.st_gid != 0 else None))
    return tuple(sorted(out, key=lambda f: f.path))


def write_files(target: str, files: Sequence[FileSpec]) -> bool:
    """Make `target` hold exactly `files`; True if anything changed."""
    files = tuple(sorted(files, key=lambda f: f.path))
    os.makedirs(target, mode=0o755, exist_ok=True)
    if current_files(target) == files:
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}"
    version_dir = os.path.join(target, stamp)
    os.mkdir(version_dir, 0o755)
    for spec in files:
        path = os.path.join(version_dir, spec.path)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(spec.data)
        if spec.gid is not None:
            os.chown(path, -1, spec.gid)
        os.chmod(path, spec.mode)
    data_link = os.path.join(target, DATA_LINK)
    old_version = os.readlink(data_link) if os.path.islink(data_link) else None
    tmp_link = os.path.join(target, "..data_tmp")
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(stamp, tmp_link)
    os.rename(tmp_link, data_link)  # the swap: readers now see the new version whole
    tops = {spec.path.split("/", 1)[0] for spec in files}
    for top in tops:
        link = os.path.join(target, top)
        if not os.path.islink(link):
            os.symlink(os.path.join(DATA_LINK, top), link)
    for name in os.listdir(target):
        if name.startswith(".."):
            continue
        if name not in tops and os.path.islink(os.path.join(target, name)):
            os.unlink(os.path.join(target, name))
    # The version just replaced stays until the next update: a reader that resolved `..data`
    # to it a moment ago still finds its files. Older ones go.
    for name in os.listdir(target):
        path = os.path.join(target, name)
        if name.startswith("..") and name not in (DATA_LINK, stamp, old_version) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
    return True


def remove_tree(path: str) -> None:
    """Remove a Pod's config volumes, and the node's directory above them once it is empty."""
    shutil.rmtree(path, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(path.rstrip("/")))
    except OSError:
        pass  # other Pods' volumes are there
