"""Generated protobuf code is committed; these tests fail when it is stale.

Fix a failure of test_committed_generated_code_is_fresh with:
    .venv/bin/python scripts/gen_proto.py
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "gen_proto.py"

SMALL_PROTO = """
syntax = "proto3";
package agent.rpc.sample;
message Ping { string text = 1; }
service Sampler { rpc Call(Ping) returns (Ping); }
"""


def load_gen_proto():
    spec = importlib.util.spec_from_file_location("gen_proto", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def gen_proto():
    return load_gen_proto()


@pytest.fixture
def sample_repo(tmp_path):
    (tmp_path / "proto" / "agent" / "rpc").mkdir(parents=True)
    (tmp_path / "proto" / "agent" / "rpc" / "sample.proto").write_text(SMALL_PROTO)
    return tmp_path


def test_committed_generated_code_is_fresh():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    assert result.returncode == 0, (
        f"generated code differs from proto/ sources; run scripts/gen_proto.py\n{result.stdout}{result.stderr}"
    )


def test_bridge_test_module_imports_from_the_package():
    from agent.rpc import bridge_test_pb2, bridge_test_pb2_grpc

    assert bridge_test_pb2.EchoRequest(text="x").text == "x"
    assert hasattr(bridge_test_pb2_grpc, "add_BridgeTestServicer_to_server")


def test_write_then_check_is_clean_and_modules_land_in_the_package(gen_proto, sample_repo):
    assert gen_proto.main(["--root", str(sample_repo)]) == 0
    names = sorted(p.name for p in (sample_repo / "agent" / "rpc").iterdir())
    assert names == ["sample_pb2.py", "sample_pb2.pyi", "sample_pb2_grpc.py"]
    grpc_module = (sample_repo / "agent" / "rpc" / "sample_pb2_grpc.py").read_text()
    assert "from agent.rpc import sample_pb2" in grpc_module
    assert gen_proto.main(["--check", "--root", str(sample_repo)]) == 0


def test_check_lists_stale_missing_and_extra_files(gen_proto, sample_repo, capsys):
    gen_proto.main(["--root", str(sample_repo)])
    package = sample_repo / "agent" / "rpc"
    (package / "sample_pb2.py").write_text("# edited by hand\n")
    (package / "sample_pb2.pyi").unlink()
    (package / "gone_pb2_grpc.py").write_text("# its source was deleted\n")
    capsys.readouterr()
    assert gen_proto.main(["--check", "--root", str(sample_repo)]) == 1
    report = capsys.readouterr().out.splitlines()
    assert report == [
        "extra (no source): agent/rpc/gone_pb2_grpc.py",
        "stale: agent/rpc/sample_pb2.py",
        "missing: agent/rpc/sample_pb2.pyi",
    ]
    # Write mode repairs all three.
    assert gen_proto.main(["--root", str(sample_repo)]) == 0
    assert gen_proto.main(["--check", "--root", str(sample_repo)]) == 0
    assert not (package / "gone_pb2_grpc.py").exists()


def test_generation_is_deterministic(gen_proto, tmp_path):
    proto_root = REPO_ROOT / "proto"
    sources = gen_proto.find_sources(proto_root)
    assert sources == sorted(sources)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    gen_proto.generate_into(first, sources, proto_root)
    gen_proto.generate_into(second, sources, proto_root)
    assert gen_proto.read_tree(first) == gen_proto.read_tree(second)
    assert gen_proto.read_tree(first)


def test_sources_outside_the_package_are_refused(gen_proto, tmp_path):
    (tmp_path / "proto" / "other").mkdir(parents=True)
    (tmp_path / "proto" / "other" / "x.proto").write_text(SMALL_PROTO)
    assert gen_proto.main(["--check", "--root", str(tmp_path)]) == 2


def test_protoc_errors_are_reported(gen_proto, sample_repo, capsys):
    (sample_repo / "proto" / "agent" / "rpc" / "broken.proto").write_text("syntax = 'proto3'; message {")
    assert gen_proto.main(["--root", str(sample_repo)]) == 2
    assert "protoc failed" in capsys.readouterr().err
