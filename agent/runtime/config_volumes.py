"""The files of a Pod's configMap and secret volumes (pure).

Owns: what a configMap or secret volume holds for the current object: which files, at
which paths, with which bytes and mode; and where a config volume lives on the host.

Rules:
- Without `items`, every key of the object is a file named after it; with `items`, only
  the keys listed, each at its `path` (which may have directories). A file's mode is its
  item's `mode`, else the volume's `defaultMode` (0644 unless said).
- A missing object is an error unless the volume is `optional` (then the volume is
  empty); a listed key the object lacks is an error unless the volume is `optional`
  (then that file is left out). Errors name the volume, the object and the key, never
  a value (kubelet's "MountVolume.SetUp failed for volume ..." wording).
- With the Pod's securityContext.fsGroup, every file belongs to that group and is
  readable by it (mode | 0440), as kubelet sets a volume's ownership; without one,
  files are root's.
- The plan is a value: two plans are equal exactly when the files on disk would be, so
  the driver rewrites a volume only when its plan changed.
- Pure: the object's entries come in as bytes; writing them is projected_dir.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .env import Lookup

__all__ = ["FileSpec", "VolumeFilesError", "config_volume_dir", "config_volumes", "volume_files"]


@dataclass(frozen=True, slots=True)
class FileSpec:
    path: str  # relative to the volume
    data: bytes
    mode: int
    gid: int | None = None  # the Pod's fsGroup; None: root's group


class VolumeFilesError(ValueError):
    """A config volume cannot be set up now (its object or a key is missing)."""


def source_of(volume: Any) -> tuple[str, Any] | None:
    """("ConfigMap" | "Secret", the volume source) for a config volume, else None."""
    if getattr(volume, "config_map", None) is not None:
        return "ConfigMap", volume.config_map
    if getattr(volume, "secret", None) is not None:
        return "Secret", volume.secret
    return None


def config_volumes(pod: Any) -> list[Any]:
    """The Pod's configMap and secret volumes."""
    return [v for v in pod.spec.volumes if source_of(v) is not None]


def volume_files(volume: Any, namespace: str, lookup: Lookup, *, fs_group: int | None = None) -> tuple[FileSpec, ...]:
    """The files of one configMap or secret volume, sorted by path. Raises VolumeFilesError."""
    found = source_of(volume)
    if found is None:
        raise ValueError(f"volume {volume.name} is not a configMap or secret volume")
    kind, source = found
    entries: Mapping[str, bytes] | None = lookup(kind, namespace, source.name)
    where = f'MountVolume.SetUp failed for volume "{volume.name}"'
    if entries is None:
        if source.optional:
            return ()
        raise VolumeFilesError(f'{where}: {kind.lower()} "{source.name}" not found')
    files = []
    if not source.items:
        for key in sorted(entries):
            files.append(FileSpec(key, bytes(entries[key]), source.default_mode))
    else:
        for item in source.items:
            if item.key not in entries:
                if source.optional:
                    continue
                raise VolumeFilesError(f"{where}: configuration key {item.key!r} not found in "
                                       f"{kind} {namespace}/{source.name}")
            mode = item.mode if item.mode is not None else source.default_mode
            files.append(FileSpec(item.path, bytes(entries[item.key]), mode))
    if fs_group is not None:
        files = [FileSpec(f.path, f.data, f.mode | 0o440, fs_group or None) for f in files]
    return tuple(sorted(files, key=lambda f: f.path))


def config_volume_dir(base_dir: str, node_name: str, pod_uid: str, volume: str) -> str:
    """Where a Pod's config volume lives on the host (under the runtime's tmpfs directory)."""
    safe: Callable[[str], str] = lambda part: "".join(c if c.isalnum() or c in "-_." else "-" for c in part) or "x"
    return "/".join((base_dir.rstrip("/"), safe(node_name), safe(pod_uid), safe(volume)))


def pod_volumes_dir(base_dir: str, node_name: str, pod_uid: str) -> str:
    return config_volume_dir(base_dir, node_name, pod_uid, "x").rsplit("/", 1)[0]
