"""What a cluster leaves on the host: after `down`, every list here must be empty.

Owns: looking for every kind of thing cluster/ creates for a cluster (see cluster/network.py,
cgroups.py, engines.py, agents.py): network namespaces, the host link, routes, host iptables
rules naming its subnet, mounts and files under its run directory, its cgroup tree, and
processes (agentd, dockerd, containerd, shims and containers all name the run directory
or the cluster on their command line, or live in its cgroups).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cluster import cgroups, network
from cluster.layout import CGROUP_ROOT


def _processes_mentioning(*texts: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(t in cmdline for t in texts):
            found.append(f"{proc.name}: {cmdline[:160]}")
    return found


def traces(name: str, octet: int, run_dir: Path) -> dict[str, list[str]]:
    links = json.loads(subprocess.run(["ip", "-j", "-d", "link"], capture_output=True, text=True).stdout or "[]")
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    mounts = Path("/proc/self/mountinfo").read_text()
    return {
        "namespaces": network.namespaces_of(name),
        "links": [link["ifname"] for link in links
                  if link["ifname"] == f"acnet{octet}" or f" {name} " in f" {link.get('ifalias', '')} "],
        "routes": [r for r in routes.splitlines() if f"10.{octet}." in r],
        "iptables": [r for r in rules.splitlines() if f"10.{octet}." in r or f"acnet{octet}" in r],
        "mounts": [m for m in mounts.splitlines() if str(run_dir) in m],
        "cgroups": [str(p) for p in cgroups.exists_anywhere(f"/{CGROUP_ROOT}/{name}")],
        "processes": _processes_mentioning(str(run_dir), f"--name {name} "),
        "run_dir": [str(run_dir)] if run_dir.exists() else [],
    }
