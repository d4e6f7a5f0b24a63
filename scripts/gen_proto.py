#!/usr/bin/env python3
"""Generate the Python protobuf and gRPC modules from proto/**/*.proto.

Owns: turning every .proto under proto/ into committed Python modules inside the
`agent` package, and checking that the committed modules are up to date.

Rules it keeps:
- A source at proto/agent/rpc/x.proto becomes agent/rpc/x_pb2.py, x_pb2_grpc.py and
  x_pb2.pyi, importable as `agent.rpc.x_pb2`. Sources import each other as
  `import "agent/rpc/other.proto";`, so generated imports read `from agent.rpc import ...`.
- Output is deterministic: sources are compiled in sorted order by one protoc run, into a
  temporary directory, and only then copied over the tree. The same grpcio-tools version
  always produces the same bytes (its version is written into each file's header).
- Generated files that no longer have a source are removed (write mode) or reported
  (--check mode). A generated file is any *_pb2.py, *_pb2_grpc.py or *_pb2.pyi under agent/.

Usage:
    python scripts/gen_proto.py            regenerate everything in place
    python scripts/gen_proto.py --check    exit 1, listing stale/missing/extra files
"""

from __future__ import annotations

import argparse
import importlib.resources
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")


class GenerationError(Exception):
    """protoc failed or the sources are laid out wrongly."""


def find_sources(proto_root: Path) -> list[Path]:
    """Every .proto under proto_root, relative to it, sorted for determinism."""
    return sorted(p.relative_to(proto_root) for p in proto_root.rglob("*.proto"))


def generate_into(out_dir: Path, sources: list[Path], proto_root: Path) -> None:
    """Run protoc once over all sources, writing modules under out_dir."""
    if not sources:
        return
    for source in sources:
        if source.parts[0] != "agent":
            raise GenerationError(f"{source}: sources must live under proto/agent/ so modules land in the package")
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *(str(s) for s in sources),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GenerationError(f"protoc failed (exit {result.returncode}):\n{result.stderr.strip()}")


def read_tree(root: Path) -> dict[str, bytes]:
    """Generated files under root/agent, keyed by path relative to root."""
    package = root / "agent"
    if not package.is_dir():
        return {}
    files = {}
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.name.endswith(GENERATED_SUFFIXES):
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def compare(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    """Human-readable problems: files that are stale, missing or have no source."""
    problems = []
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            problems.append(f"missing: {name}")
        elif name not in expected:
            problems.append(f"extra (no source): {name}")
        elif expected[name] != actual[name]:
            problems.append(f"stale: {name}")
    return problems


def expected_files(repo_root: Path) -> dict[str, bytes]:
    """What the tree should hold, generated fresh into a temporary directory."""
    proto_root = repo_root / "proto"
    with tempfile.TemporaryDirectory(prefix="gen_proto_") as tmp:
        generate_into(Path(tmp), find_sources(proto_root), proto_root)
        return read_tree(Path(tmp))


def write(repo_root: Path, expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    """Bring the tree in line with expected; returns the files changed."""
    changed = []
    for name, content in expected.items():
        if actual.get(name) != content:
            target = repo_root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            changed.append(f"wrote: {name}")
    for name in sorted(actual.keys() - expected.keys()):
        (repo_root / name).unlink()
        changed.append(f"removed (no source): {name}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale/missing/extra files")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        expected = expected_files(args.root)
    except GenerationError as exc:
        print(f"gen_proto: {exc}", file=sys.stderr)
        return 2
    actual = read_tree(args.root)
    if args.check:
        problems = compare(expected, actual)
        for line in problems:
            print(line)
        if problems:
            print("gen_proto: generated code is out of date; run: python scripts/gen_proto.py", file=sys.stderr)
            return 1
        return 0
    for line in write(args.root, expected, actual):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
