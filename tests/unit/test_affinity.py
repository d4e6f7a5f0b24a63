"""agent/affinity.py: pinning a whole process, its later threads included, to one CPU."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from agent.affinity import available_cpus, parse_cpu

CHILD = """
import json, os, threading
from agent.affinity import pin_to_cpu
early = threading.Event(); done = threading.Event(); seen = {}
def worker(name, started_before):
    started_before.wait() if started_before else None
    seen[name] = sorted(os.sched_getaffinity(0))
    done.set()
go = threading.Event()
before = threading.Thread(target=worker, args=("started_before", go)); before.start()
pin_to_cpu(int(os.environ["CPU"]))
go.set(); before.join()
after = threading.Thread(target=worker, args=("started_after", None)); after.start(); after.join()
seen["main"] = sorted(os.sched_getaffinity(0))
print(json.dumps(seen))
"""


def test_every_thread_runs_on_the_chosen_cpu_those_started_before_and_after():
    cpu = available_cpus()[-1]
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env={**os.environ, "CPU": str(cpu)}, capture_output=True, text=True,
        check=True, timeout=30,
    )
    assert json.loads(out.stdout) == {"started_before": [cpu], "started_after": [cpu], "main": [cpu]}


def test_a_cpu_this_process_may_not_use_is_refused_with_the_ones_it_may():
    allowed = available_cpus()
    missing = max(allowed) + 1
    with pytest.raises(argparse.ArgumentTypeError, match=f"CPUs {','.join(map(str, allowed))} only"):
        parse_cpu(str(missing))
    with pytest.raises(argparse.ArgumentTypeError, match="expected a CPU number"):
        parse_cpu("first")
    assert parse_cpu(str(allowed[0])) == allowed[0]


def test_the_raft_process_refuses_an_unavailable_cpu_before_doing_anything(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "agent.raft", "--id", "n1", "--data-dir", str(tmp_path / "d"), "--listen",
         "127.0.0.1:0", "--peers", "n1=127.0.0.1:1", "--cpu", str(max(available_cpus()) + 1)],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 2 and "--cpu" in out.stderr
    assert not (tmp_path / "d").exists()
