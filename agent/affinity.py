"""Keeping one agent process on one CPU (`--cpu N` of agentd and `python -m agent.raft`).

Owns: `pin_to_cpu`, which restricts every thread of this process, and every thread it
starts later, to one CPU; and `parse_cpu`, the argparse type for the option.

Why: a node's work moves between threads at every RPC. The Trio thread hands a message
to a grpc thread, grpc's poller wakes a handler thread, which hands the request back to
Trio. On one CPU each hand-off is an ordinary context switch. Spread over several CPUs
each is a wake-up of another CPU (an inter-processor interrupt; on a virtual machine, an
exit to the hypervisor), which costs tens of microseconds more. The GIL keeps a Python
process near one CPU of work anyway. Measured on the 2-core VM with three Raft nodes
(`bench/raft_bench.py`): a write's p50 went from 2.2 ms to 1.8 ms with each node pinned,
and throughput from about 350,000 to 250,000 commands/s.

Rules: pinning is opt-in. Call `pin_to_cpu` before the process starts its threads.
An unknown or unavailable CPU is an error that names the CPUs this process may use.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["available_cpus", "parse_cpu", "pin_to_cpu"]


def available_cpus() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def parse_cpu(text: str) -> int:
    """argparse type: a CPU number this process may run on."""
    try:
        cpu = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cpu {text!r}: expected a CPU number") from None
    allowed = available_cpus()
    if cpu not in allowed:
        raise argparse.ArgumentTypeError(f"--cpu {cpu}: this process may run on CPUs {_describe(allowed)} only")
    return cpu


def pin_to_cpu(cpu: int) -> None:
    """Restrict every thread of this process to `cpu`; threads started later inherit it."""
    allowed = available_cpus()
    if cpu not in allowed:
        raise ValueError(f"CPU {cpu} is not available to this process (CPUs {_describe(allowed)})")
    for thread_id in _thread_ids():
        try:
            os.sched_setaffinity(thread_id, {cpu})
        except ProcessLookupError:
            pass  # the thread ended meanwhile


def _thread_ids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/task")]
    except FileNotFoundError:  # no procfs: the calling thread alone
        return [0]


def _describe(cpus: list[int]) -> str:
    return ",".join(map(str, cpus))
