"""The chaos suite's invariants over what was sampled during a scenario, as pure functions.

Owns: deciding, from samples taken by the monitor (monitor.py), whether
- at most one leader was ever seen per Raft term (from agents' Status and their logs);
- a Pod identity (uid) ran on two nodes at once for longer than the fencing window allows;
- the workload Pods were below their count (running on a node the API calls Ready, as the
  nodes' own engines show) for longer than the stated bound, and for how long at most.

Rules it keeps: pure (times are numbers from one monotonic clock, samples are data);
every function returns what it found (the evidence), and the caller asserts on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# What agent/raft/node.py logs when a node learns of a new leader (or loses it).
LEADER_LINE = re.compile(r"node=(?P<node>\S+) .*\bevent=raft_leader_changed term=(?P<term>\d+) leader=(?P<leader>\S+)")


@dataclass(frozen=True, slots=True)
class LeaderSeen:
    t: float | None  # None when read from a log line (its time is not needed)
    source: str  # the agent that said so
    term: int
    leader: str


@dataclass(frozen=True, slots=True)
class PodSample:
    """What the API said at time t: each workload Pod's (node, phase), and the Ready nodes."""

    t: float
    pods: Mapping[str, tuple[str, str, str]]  # Pod name -> (spec.nodeName, status.phase, uid)
    ready: frozenset[str]

    def running_on_ready(self) -> int:
        return sum(1 for node, phase, _ in self.pods.values() if phase == "Running" and node in self.ready)

    def placed_as_run(self, engines: EngineSample) -> bool:
        """Every Pod Running on a Ready node, and its containers running there and nowhere else."""
        return all(phase == "Running" and node in self.ready and engines.running.get(uid) == {node}
                   for node, phase, uid in self.pods.values())


@dataclass(frozen=True, slots=True)
class EngineSample:
    """Which Pod uids had a running container in which node's engine at time t."""

    t: float
    running: Mapping[str, frozenset[str]]  # uid -> nodes


@dataclass(frozen=True, slots=True)
class Interval:
    start: float
    end: float
    what: str

    @property
    def length_s(self) -> float:
        return self.end - self.start


def leaders_from_log(node: str, lines: Iterable[str]) -> list[LeaderSeen]:
    out = []
    for line in lines:
        found = LEADER_LINE.search(line)
        if found and found["leader"] not in ("None", "-", ""):
            out.append(LeaderSeen(None, found["node"] or node, int(found["term"]), found["leader"]))
    return out


def terms_with_two_leaders(seen: Iterable[LeaderSeen]) -> dict[int, set[str]]:
    """Raft's Election Safety (§5.2): at most one leader per term. The terms that broke it."""
    by_term: dict[int, set[str]] = {}
    for s in seen:
        by_term.setdefault(s.term, set()).add(s.leader)
    return {term: leaders for term, leaders in by_term.items() if len(leaders) > 1}


def duplicate_runs(samples: Iterable[EngineSample]) -> list[Interval]:
    """Each stretch of consecutive samples in which one uid ran on two or more nodes: from
    the first such sample to the first sample after it in which it did not (or the last one)."""
    out: list[Interval] = []
    open_since: dict[str, tuple[float, frozenset[str]]] = {}
    last_t = None
    for sample in sorted(samples, key=lambda s: s.t):
        last_t = sample.t
        doubled = {uid: nodes for uid, nodes in sample.running.items() if len(nodes) > 1}
        for uid in list(open_since):
            if uid not in doubled:
                start, nodes = open_since.pop(uid)
                out.append(Interval(start, sample.t, f"{uid} on {','.join(sorted(nodes))}"))
        for uid, nodes in doubled.items():
            start, seen = open_since.get(uid, (sample.t, frozenset()))
            open_since[uid] = (start, seen | nodes)
    for uid, (start, nodes) in open_since.items():
        out.append(Interval(start, last_t if last_t is not None else start, f"{uid} on {','.join(sorted(nodes))} "
                                                                            "(still at the end)"))
    return out


def running_counts(pods: Iterable[PodSample], engines: Iterable[EngineSample]) -> list[tuple[float, int]]:
    """At each engine sample: how many workload Pods have containers running on a node the
    API (its latest answer before then) calls Ready. The engines are the truth of what runs,
    and they answer even while the API cannot (no leader), so a gap in the API's answers
    hides nothing; the API says which nodes count (a cut-off node's copy does not)."""
    pods = sorted(pods, key=lambda p: p.t)
    out = []
    i = -1
    for e in sorted(engines, key=lambda e: e.t):
        while i + 1 < len(pods) and pods[i + 1].t <= e.t:
            i += 1
        if i < 0:
            continue
        latest = pods[i]
        out.append((e.t, sum(1 for _, _, uid in latest.pods.values()
                             if e.running.get(uid, frozenset()) & latest.ready)))
    return out


def below_count(points: Iterable[tuple[float, int]], want: int, *,
                counted_from: float = float("-inf")) -> list[Interval]:
    """Each stretch in which fewer than `want` ran, from (time, how many) points: from the
    first point below (or `counted_from`, if later) to the first back at `want` (or the last)."""
    out: list[Interval] = []
    since: float | None = None
    last: float | None = None
    for t, count in sorted(points):
        last = t
        if count < want:
            if since is None:
                since = t
        elif since is not None:
            out.append(Interval(max(since, counted_from), t, "below"))
            since = None
    if since is not None and last is not None:
        out.append(Interval(max(since, counted_from), last, "below (still at the end)"))
    return [i for i in out if i.end >= counted_from]
