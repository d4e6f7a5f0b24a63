"""The order in which a Pod's containers may start (pure).

Owns: which of a Pod's containers may be started now, given where its init containers
are, and when the Pod counts as initialized.

Rules (Kubernetes'):
- init containers start one at a time, in spec order; the next may start once the one
  before is done: a regular init container when it has exited 0, a sidecar (restartPolicy
  Always) when it runs and has started (past its startupProbe, if it has one);
- the app containers start once every init container is done: the Pod is initialized,
  and stays so (a sidecar that restarts later does not hold the app containers back);
- once initialized, a sidecar may be restarted, a regular init container never runs again;
- nothing starts after a regular init container failed for good (restartPolicy Never).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True, slots=True)
class InitProgress:
    """What the order needs to know of one init container."""

    sidecar: bool
    completed: bool = False  # a regular one: exited 0, will not run again
    started: bool = False  # a sidecar: running and past its startupProbe


def is_done(c: InitProgress) -> bool:
    return c.started if c.sidecar else c.completed


def all_done(init: Sequence[InitProgress]) -> bool:
    return all(is_done(c) for c in init)


def may_start_init(init: Sequence[InitProgress], index: int, *, initialized: bool, failed: bool) -> bool:
    """May the init container at `index` be (re)started now?"""
    if failed:
        return False
    if initialized:
        return init[index].sidecar
    return all(is_done(c) for c in init[:index])


def may_start_app(*, initialized: bool, failed: bool) -> bool:
    return initialized and not failed
