"""The wheel and the sdist that `python -m build` makes from the repository.

Built once for the module, as a person would (`python -m build`: the sdist first, then the
wheel from the sdist, in an isolated environment with setuptools from the package index).
What is proven here: the wheel holds every module of the package byte for byte, the
generated protobuf modules and their stubs among them, and nothing else; it declares
both commands and exactly the dependencies of pyproject.toml. That the wheel installs with
those dependencies and both commands run is proven by test_provisioning.py, which installs
agentd as a machine of the Vagrant cluster does.
"""

from __future__ import annotations

import configparser
import email.parser
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATED = ("cluster", "node", "raft")  # the services' modules generated from proto/


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, f"python -m build failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    wheels, sdists = sorted(out.glob("agent-*.whl")), sorted(out.glob("agent-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return wheels[0], sdists[0]


def package_files() -> dict[str, bytes]:
    """Every module and stub of the package in the source tree, by its path in a wheel."""
    return {str(p.relative_to(REPO)): p.read_bytes() for p in sorted((REPO / "agent").rglob("*"))
            if p.suffix in (".py", ".pyi") and "__pycache__" not in p.parts}


def project() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def test_the_wheel_holds_every_module_of_the_package_and_nothing_else(dist):
    wheel, _ = dist
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        packaged = {n: z.read(n) for n in names if n.startswith("agent/")}
    source = package_files()
    assert sorted(packaged) == sorted(source)
    assert [n for n in packaged if packaged[n] != source[n]] == []
    for stem in GENERATED:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert f"agent/rpc/{stem}{suffix}" in packaged
    others = [n for n in names if not n.startswith(("agent/", "agent-"))]
    assert others == [], f"the wheel holds more than the package: {others}"


def test_the_wheel_declares_both_commands_and_the_dependencies(dist):
    wheel, _ = dist
    with zipfile.ZipFile(wheel) as z:
        info = next(n.split("/")[0] for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        entry_points = z.read(f"{info}/entry_points.txt").decode()
        metadata = email.parser.Parser().parsestr(z.read(f"{info}/METADATA").decode())
    scripts = configparser.ConfigParser()
    scripts.read_string(entry_points)
    assert dict(scripts["console_scripts"]) == {"agentd": "agent.daemon:main", "agentctl": "agent.cli.main:main"}
    required = [r for r in metadata.get_all("Requires-Dist") or () if "extra ==" not in r]
    wanted = project()["dependencies"]
    assert sorted(r.replace(" ", "") for r in required) == sorted(d.replace(" ", "") for d in wanted)
    assert metadata["Requires-Python"] == project()["requires-python"]


def test_the_sdist_holds_what_the_wheel_is_built_from(dist):
    _, sdist = dist
    with tarfile.open(sdist) as t:
        root = t.getnames()[0].split("/")[0]
        names = {n.removeprefix(root + "/") for n in t.getnames()}
    assert {"pyproject.toml", "README.md"} <= names
    assert set(package_files()) <= names
