"""A linearizability checker for key-value histories (Wing & Gong search, memoized).

Owns: `Operation`, one client call with its invocation and completion times, and
`check_history`, which decides whether a history of reads, writes and
compare-and-sets on independent registers has a legal sequential order that respects
real time (Herlihy & Wing). Rules: keys are checked independently (a register per
key is a local property, so the whole history is linearizable iff every key's is);
an operation whose outcome is unknown (status "info": timed out, node crashed) may
take effect at any point after its invocation or never; a "fail" operation surely
did not take effect and is ignored. Search memoizes (linearized set, register value)
pairs, which keeps short histories cheap, and drops unknown-outcome writes whose
value no read observed (they may as well not have happened); a search budget bounds
pathological histories and reports them as undecided rather than passing them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

OK, INFO, FAIL = "ok", "info", "fail"


@dataclass(frozen=True, slots=True)
class Operation:
    """One client call on register `key`.

    kind "write": `value` written. kind "read": `value` returned (ok reads only).
    kind "cas": `value` = (expected, new); `result` True/False once known.
    `complete` is None for an operation still outstanding or of unknown outcome.
    """

    client: str
    kind: str
    key: str
    value: object
    invoke: float
    complete: float | None
    status: str = OK
    result: object = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    key: str | None = None
    reason: str = ""
    states_explored: int = 0


def _step(op: Operation, current: object) -> tuple[bool, object]:
    """Apply `op` to register value `current`: (legal?, new value)."""
    if op.kind == "write":
        return True, op.value
    if op.kind == "read":
        return current == op.value, current
    if op.kind == "cas":
        expected, new = op.value
        if op.status == OK:
            if op.result:
                return current == expected, new
            return current != expected, current
        return True, (new if current == expected else current)
    raise ValueError(f"unknown operation kind {op.kind!r}")


def check_register(ops: list[Operation], initial: object = None, budget: int = 2_000_000) -> CheckResult:
    """Is this single-register history linearizable?"""
    ops = [op for op in ops if op.status == OK or (op.status == INFO and op.kind != "read")]
    if not any(op.kind == "cas" for op in ops):
        # An unknown-outcome write whose value nobody ever read may as well never have
        # happened: drop it. Without this, each such write doubles the search space.
        observed = {op.value for op in ops if op.kind == "read"}
        ops = [op for op in ops if op.status == OK or op.value in observed]
    ops.sort(key=lambda op: op.invoke)
    for op in ops:
        if op.status == OK and op.complete is None:
            raise ValueError(f"ok operation without completion: {op}")
    outcome = search(
        invokes=[op.invoke for op in ops],
        completes=[op.complete if op.status == OK else math.inf for op in ops],  # type: ignore[misc]
        acknowledged=[op.status == OK for op in ops],
        step=lambda i, value: _step(ops[i], value),
        initial=initial, budget=budget)
    if outcome.ok:
        return CheckResult(True, states_explored=outcome.explored)
    reason = "search budget exhausted (undecided)" if outcome.exhausted else "no linearization exists"
    return CheckResult(False, reason=reason, states_explored=outcome.explored)


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    ok: bool
    explored: int
    exhausted: bool  # the budget ran out: undecided, which is not a pass
    deepest: tuple[int, object]  # (set of operations linearized, value) with the most acknowledged ones


def search(*, invokes: list[float], completes: list[float], acknowledged: list[bool],
           step: Callable[[int, object], tuple[bool, object]], initial: object, budget: int) -> SearchOutcome:
    """The Wing & Gong search over one register's operations, sorted by invocation.

    `completes[i]` is math.inf for an operation of unknown outcome; `acknowledged[i]` says
    it must be linearized (an unknown one may be left out); `step(i, value)` gives
    (legal?, new value) for operation i applied to `value`. The memo holds (set
    linearized, value) pairs, as Lowe's and Knossos' checkers do."""
    count = len(invokes)
    must = sum(1 << i for i in range(count) if acknowledged[i])
    seen: set[tuple[int, object]] = set()
    stack: list[tuple[int, object]] = [(0, initial)]
    deepest: tuple[int, object] = (0, initial)
    explored = 0
    while stack:
        done, value = stack.pop()
        if done & must == must:
            return SearchOutcome(True, explored, False, (done, value))
        if (done, value) in seen:
            continue
        seen.add((done, value))
        explored += 1
        if explored > budget:
            return SearchOutcome(False, explored, True, deepest)
        if bin(done & must).count("1") > bin(deepest[0] & must).count("1"):
            deepest = (done, value)
        # The next operation must begin before every pending acknowledged one has ended.
        horizon = min((completes[i] for i in range(count) if not done >> i & 1), default=math.inf)
        for i in range(count):
            if done >> i & 1:
                continue
            if invokes[i] > horizon:
                break  # sorted by invocation: every later op also starts after some op ended
            legal, new_value = step(i, value)
            if legal:
                stack.append((done | 1 << i, new_value))
    return SearchOutcome(False, explored, False, deepest)


def check_history(history: Iterable[Operation], initial: object = None) -> CheckResult:
    """Check every key's sub-history; return the first failure, or ok."""
    by_key: dict[str, list[Operation]] = {}
    for op in history:
        by_key.setdefault(op.key, []).append(op)
    explored = 0
    for key in sorted(by_key):
        result = check_register(by_key[key], initial)
        explored += result.states_explored
        if not result.ok:
            return CheckResult(False, key, result.reason, explored)
    return CheckResult(True, states_explored=explored)
