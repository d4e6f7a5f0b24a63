"""The Vagrant cluster's files, checked without VMs (none can boot on these machines).

- The Vagrantfile validates with vagrant from Debian's packages and its libvirt provider,
  for the default 3 VMs and for AGENTD_NODES=5; a wrong libvirt setting fails the same
  validation (so it does check them). VirtualBox's settings are read but cannot be
  validated: VirtualBox is not installed here (Debian 12 does not package it).
- A bad setting is refused, naming the variable to fix.
- The layout: the first three VMs are servers with --bootstrap-expect 3, joining one
  another; later VMs join the servers; agentctl is pointed at the servers. The
  Vagrantfile, loaded with a stand-in for Vagrant that records its settings, gives each VM
  its name, address and those provisioning arguments.
- The provisioning scripts pass shellcheck; provision.sh refuses bad arguments, and a
  run by a user other than root, before it writes anything.
The unit provision.sh writes is verified by systemd-analyze in test_provisioning.py, where
agentd is installed for real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "vagrant" / "provision.sh"
# Loads a Vagrantfile with a stand-in for Vagrant that records every setting made, and
# prints them as JSON: [{"path": "vm.define.node1.vm.provision", "args": [...], "options": {...}}].
RECORD_SETTINGS = """
require "json"
CALLS = []
class Recorder
  def initialize(path) = (@path = path)
  def method_missing(name, *args, **options, &block)
    name = name.to_s.delete_suffix("=")
    child = Recorder.new(@path + [name] + (%w[define provider].include?(name) ? [args.first.to_s] : []))
    CALLS << { "path" => (@path + [name]).join("."), "args" => args, "options" => options } unless args.empty?
    block&.call(child)
    child
  end
  def respond_to_missing?(*) = true
end
module Vagrant
  def self.configure(_version) = yield(Recorder.new([]))
end
load File.join(ARGV[0], "Vagrantfile")
puts JSON.generate(CALLS)
"""


@pytest.fixture(scope="module")
def vagrant_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """vagrant's state (its home, the machines' dot directory) in a temporary directory, not in ~ or the checkout."""
    home = tmp_path_factory.mktemp("vagrant")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTD_")}
    return {**env, "VAGRANT_HOME": str(home / "home"), "VAGRANT_DOTFILE_PATH": str(home / "machines"),
            "VAGRANT_CHECKPOINT_DISABLE": "1"}


def validate(env: dict[str, str], cwd: Path = REPO, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(["vagrant", "validate"], cwd=cwd, env={**env, **settings}, capture_output=True, text=True,
                          timeout=120)


def layout(count: int, subnet: str = "192.168.56") -> list[dict]:
    out = subprocess.run(["ruby", "-r", str(REPO / "vagrant" / "layout.rb"), "-e",
                          f"puts AgentdLayout.to_json({count}, {json.dumps(subnet)})"],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def test_the_vagrantfile_validates_with_the_libvirt_provider(vagrant_env):
    plugins = subprocess.run(["vagrant", "plugin", "list"], env=vagrant_env, capture_output=True, text=True,
                             timeout=60)
    assert "vagrant-libvirt" in plugins.stdout, plugins.stdout + plugins.stderr
    for settings in ({}, {"AGENTD_NODES": "5"}):  # unset: 3 VMs
        done = validate(vagrant_env, **settings)
        assert done.returncode == 0 and "validated successfully" in done.stdout, done.stdout + done.stderr


def test_a_wrong_provider_setting_fails_validation(vagrant_env, tmp_path):
    shutil.copytree(REPO / "vagrant", tmp_path / "vagrant")
    text = (REPO / "Vagrantfile").read_text()
    assert "lv.cpus = CPUS" in text
    (tmp_path / "Vagrantfile").write_text(text.replace("lv.cpus = CPUS", "lv.cpuz = CPUS"))
    done = validate(vagrant_env, cwd=tmp_path)
    assert done.returncode != 0 and "cpuz" in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("AGENTD_NODES", "three", 'AGENTD_NODES="three": expected a whole number from 1 to 200'),
    ("AGENTD_WHEEL", "dist/none.whl", 'AGENTD_WHEEL="dist/none.whl": expected a .whl file below'),
])
def test_a_bad_setting_stops_vagrant_naming_it(vagrant_env, setting, value, message):
    done = validate(vagrant_env, **{setting: value})
    assert done.returncode != 0 and message in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize(("expression", "message"), [
    ('AgentdLayout.number("AGENTD_NODES", "0", 1, 200)', 'AGENTD_NODES="0": expected a whole number from 1 to 200'),
    ('AgentdLayout.number("AGENTD_CPUS", "2.5", 1, 256)', 'AGENTD_CPUS="2.5": expected a whole number'),
    ('AgentdLayout.number("AGENTD_MEMORY_MB", "", 512, 1024)', 'AGENTD_MEMORY_MB="": expected a whole number'),
    ('AgentdLayout.subnet("10.1")', 'AGENTD_SUBNET="10.1": expected the first three octets'),
    ('AgentdLayout.subnet("10.1.256")', 'AGENTD_SUBNET="10.1.256": expected the first three octets'),
])
def test_the_layout_refuses_bad_settings_by_name(expression, message):
    done = subprocess.run(["ruby", "-r", str(REPO / "vagrant" / "layout.rb"), "-e",
                           f"begin; {expression}; rescue AgentdLayout::Error => e; puts e.message; exit 3; end"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and message in done.stdout, done.stdout + done.stderr


def test_the_first_three_vms_are_servers_and_the_others_join_them():
    nodes = layout(5, "10.9.8")
    servers = ["10.9.8.11", "10.9.8.12", "10.9.8.13"]
    assert [(n["name"], n["ip"], n["server"]) for n in nodes] == [
        ("node1", "10.9.8.11", True), ("node2", "10.9.8.12", True), ("node3", "10.9.8.13", True),
        ("node4", "10.9.8.14", False), ("node5", "10.9.8.15", False)]
    for n in nodes:
        args = n["args"]
        assert option(args, "--name") == [n["name"]] and option(args, "--address") == [n["ip"]]
        assert option(args, "--join") == [f"{s}:7946" for s in servers if s != n["ip"]]
        assert option(args, "--bootstrap-expect") == (["3"] if n["server"] else [])
        assert option(args, "--agentctl-server") == [",".join(f"{s}:7070" for s in servers)]
    two = layout(2)
    assert [option(n["args"], "--bootstrap-expect") for n in two] == [["2"], ["2"]]
    assert option(two[0]["args"], "--join") == ["192.168.56.12:7946"]


def vagrantfile_settings(directory: Path, **settings: str) -> dict[str, dict]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AGENTD_")}, **settings}
    out = subprocess.run(["ruby", "-e", RECORD_SETTINGS, str(directory)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return {c["path"]: c for c in json.loads(out.stdout)}  # settings below a define or provider are named by it


def test_the_vagrantfile_gives_each_vm_its_place_in_the_layout(tmp_path):
    settings = vagrantfile_settings(REPO, AGENTD_NODES="4", AGENTD_MEMORY_MB="2048")
    assert settings["vm.box"]["args"] == ["debian/bookworm64"]
    synced = settings["vm.synced_folder"]
    assert synced["args"] == [".", "/vagrant"] and synced["options"]["type"] == "rsync"
    assert {".git/", ".venv/", "run/"} <= set(synced["options"]["rsync__exclude"])
    for provider in ("virtualbox", "libvirt"):
        assert settings[f"vm.provider.{provider}.memory"]["args"] == [2048]
        assert settings[f"vm.provider.{provider}.cpus"]["args"] == [2]
    for node in layout(4):
        vm = f"vm.define.{node['name']}.vm"
        assert settings[f"{vm}.hostname"]["args"] == [node["name"]]
        assert settings[f"{vm}.network"]["args"] == ["private_network"]
        assert settings[f"{vm}.network"]["options"] == {"ip": node["ip"]}
        provision = settings[f"{vm}.provision"]["options"]
        assert provision["type"] == "shell" and provision["path"] == "vagrant/provision.sh"
        assert provision["args"] == node["args"] + ["--source", "/vagrant"]
    assert "vm.define.node5" not in settings
    # With AGENTD_WHEEL, each VM installs that wheel, as the synced folder has it.
    shutil.copytree(REPO / "vagrant", tmp_path / "vagrant")
    shutil.copy(REPO / "Vagrantfile", tmp_path)
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "agent-0.1.0-py3-none-any.whl").touch()
    settings = vagrantfile_settings(tmp_path, AGENTD_WHEEL="dist/agent-0.1.0-py3-none-any.whl")
    assert settings["vm.define.node3.vm.provision"]["options"]["args"][-2:] == [
        "--wheel", "/vagrant/dist/agent-0.1.0-py3-none-any.whl"]


def test_the_provisioning_scripts_pass_shellcheck():
    scripts = sorted((REPO / "vagrant").glob("*.sh"))
    assert PROVISION in scripts
    done = subprocess.run(["shellcheck", "--severity=style", *map(str, scripts)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("args", "message"), [
    ([], "--name is required"),
    (["--name", "Node_1", "--address", "10.0.0.1", "--source", str(REPO)], "--name 'Node_1'"),
    (["--name", "n1", "--source", str(REPO)], "--address is required"),
    (["--name", "n1", "--address", "10.0.0.300", "--source", str(REPO)], "--address '10.0.0.300'"),
    (["--name", "n1", "--address", "10.0.0.1", "--join", "10.0.0.2", "--source", str(REPO)],
     "--join '10.0.0.2': expected HOST:PORT"),
    (["--name", "n1", "--address", "10.0.0.1", "--bootstrap-expect", "three", "--source", str(REPO)],
     "--bootstrap-expect 'three'"),
    (["--name", "n1", "--address", "10.0.0.1", "--label", "zone", "--source", str(REPO)],
     "--label 'zone': expected KEY=VALUE"),
    (["--name", "n1", "--address", "10.0.0.1"], "--source DIR or --wheel FILE is required"),
    (["--name", "n1", "--address", "10.0.0.1", "--source", "/nonexistent"], "--source '/nonexistent': not agentd's source tree"),
    (["--name", "n1", "--address", "10.0.0.1", "--wheel", "/nonexistent.whl"], "--wheel '/nonexistent.whl': no such wheel file"),
    (["--name", "n1", "--address", "10.0.0.1", "--source", str(REPO), "--docker-url", "unix:///a b"],
     "--docker-url 'unix:///a b': blanks or quotes"),
    (["--name", "n1", "--address", "10.0.0.1", "--source", str(REPO), "--bogus"], "unknown argument '--bogus'"),
    (["--name"], "--name needs a value"),
])
def test_provision_refuses_bad_arguments_before_writing_anything(tmp_path, args, message):
    root = tmp_path / "root"
    done = subprocess.run(["bash", str(PROVISION), "--root", str(root), "--no-systemd", *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and f"provision: error: {message}" in done.stderr, done.stderr
    assert not root.exists()


def test_provision_writes_below_a_root_only_without_systemd(tmp_path):
    root = tmp_path / "root"
    done = subprocess.run(["bash", str(PROVISION), "--name", "n1", "--address", "10.0.0.1", "--source", str(REPO),
                           "--root", str(root)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--root needs --no-systemd" in done.stderr, done.stderr
    assert not root.exists()


def test_provision_must_run_as_root_to_write_the_system():
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(PROVISION),
                           "--name", "n1", "--address", "10.0.0.1", "--source", str(REPO)],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 2 and "must run as root" in done.stderr, done.stderr
