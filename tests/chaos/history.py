"""A history of client operations on per-key registers, and its linearizability check.

Owns: `History`, the recorder (invoke, then ok / fail / info, with times the caller
gives), and `check`, which decides whether the recorded history has a legal sequential
order that respects real time (Herlihy & Wing), with the memoized Wing & Gong search of
agent.raft.linearizability (the one that checks the Raft simulator) over this register model.

The register of a key holds None (no object) or a string (the object's value). Operations:
- create(v): absent -> v, result "ok"; present -> unchanged, result "exists".
- update(v): present -> v, result "ok"; absent -> unchanged, result "notfound".
- delete:    present -> None, result "ok"; absent -> unchanged, result "notfound".
- read:      returns the value (None when absent); changes nothing.

Rules it keeps:
- Pure: no clock, no I/O. Times are numbers the caller read from one monotonic clock.
- `ok` means the outcome is known and happened (a refusal such as "exists" is a known
  outcome too); `fail` means it surely did not take effect, so the operation is left out;
  `info` (timed out, the machine died) means it may take effect at any time after its
  invocation, or never. An operation never completed counts as `info`.
- Keys are checked one by one: linearizability is local (Herlihy & Wing, Theorem 1), so
  the history is linearizable iff every key's sub-history is, which keeps search small.
- A search that exceeds its budget is reported as undecided, which is a failure: a
  history is never passed without a proof.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from agent.raft.linearizability import CheckResult, search

OK, FAIL, INFO = "ok", "fail", "info"
CREATE, UPDATE, DELETE, READ = "create", "update", "delete", "read"
RESULT_OK, RESULT_EXISTS, RESULT_NOTFOUND = "ok", "exists", "notfound"
_KINDS = (CREATE, UPDATE, DELETE, READ)


@dataclass(frozen=True, slots=True)
class Operation:
    """One call on `key` by `process` (one process has at most one call outstanding).

    `value`: what create/update write; what a read returned (None: absent). `result`: for
    an ok create/update/delete, RESULT_OK, RESULT_EXISTS or RESULT_NOTFOUND.
    """

    process: str
    key: str
    kind: str
    value: str | None
    invoke_s: float
    complete_s: float | None = None
    status: str = INFO
    result: str | None = None

    def describe(self) -> str:
        shown = {CREATE: f"create({self.value!r})", UPDATE: f"update({self.value!r})", DELETE: "delete",
                 READ: f"read -> {self.value!r}"}[self.kind]
        if self.kind != READ and self.status == OK:
            shown += f" -> {self.result}"
        end = "?" if self.complete_s is None else f"{self.complete_s:.3f}"
        return f"{self.process} {shown} [{self.invoke_s:.3f}, {end}] {self.status}"


@dataclass(slots=True)
class History:
    """The recorder. `invoke` returns a handle that `ok`, `fail` or `info` completes once."""

    _ops: list[Operation] = field(default_factory=list)
    _open: dict[str, int] = field(default_factory=dict)  # process -> index of its outstanding op

    def invoke(self, process: str, key: str, kind: str, value: str | None, now_s: float) -> int:
        if kind not in _KINDS:
            raise ValueError(f"unknown operation kind {kind!r}")
        if process in self._open:
            raise ValueError(f"{process} invoked an operation while one is outstanding")
        self._ops.append(Operation(process, key, kind, value if kind != READ else None, now_s))
        self._open[process] = len(self._ops) - 1
        return len(self._ops) - 1

    def ok(self, handle: int, now_s: float, *, result: str | None = None, value: str | None = None) -> None:
        """A known outcome: `result` for a write, the `value` seen for a read."""
        op = self._ops[handle]
        if op.kind == READ:
            if result is not None:
                raise ValueError("a read has a value, not a result")
            self._complete(handle, now_s, OK, value=value)
        else:
            if result not in (RESULT_OK, RESULT_EXISTS, RESULT_NOTFOUND):
                raise ValueError(f"a write completes with a result, not {result!r}")
            self._complete(handle, now_s, OK, result=result)

    def fail(self, handle: int, now_s: float) -> None:
        self._complete(handle, now_s, FAIL)

    def info(self, handle: int, now_s: float) -> None:
        self._complete(handle, now_s, INFO)

    def _complete(self, handle: int, now_s: float, status: str, **changes: object) -> None:
        op = self._ops[handle]
        if self._open.get(op.process) != handle:
            raise ValueError(f"operation {handle} is not outstanding")
        if now_s < op.invoke_s:
            raise ValueError("an operation cannot complete before it was invoked")
        del self._open[op.process]
        self._ops[handle] = replace(op, complete_s=now_s, status=status, **changes)  # type: ignore[arg-type]

    def operations(self) -> list[Operation]:
        return list(self._ops)

    def counts(self) -> dict[str, int]:
        out = {OK: 0, FAIL: 0, INFO: 0, "acknowledged_writes": 0}
        for op in self._ops:
            out[op.status] += 1
            if op.status == OK and op.kind != READ:
                out["acknowledged_writes"] += 1
        return out


def _step(op: Operation, current: str | None) -> tuple[bool, str | None]:
    """Apply `op` to the register's `current` value: (legal here?, new value)."""
    present = current is not None
    if op.kind == READ:
        return current == op.value, current
    if op.status == INFO:  # took effect, with whatever outcome the state gives
        if op.kind == CREATE:
            return True, current if present else op.value
        if op.kind == UPDATE:
            return True, op.value if present else None
        return True, None
    if op.kind == CREATE:
        return (not present, op.value) if op.result == RESULT_OK else (present, current)
    if op.kind == UPDATE:
        return (present, op.value) if op.result == RESULT_OK else (not present, current)
    return (present, None) if op.result == RESULT_OK else (not present, current)


def check_key(ops: list[Operation], *, initial: str | None = None, budget: int = 2_000_000) -> CheckResult:
    """Is this one key's history linearizable? (Wing & Gong search with a memo of
    (linearized set, value), as in Lowe's and Knossos' checkers.)"""
    ops = sorted((op for op in ops if op.status == OK or (op.status == INFO and op.kind != READ)),
                 key=lambda op: op.invoke_s)
    for op in ops:
        if op.status == OK and op.complete_s is None:
            raise ValueError(f"an ok operation without completion: {op}")
    completes = [op.complete_s if op.status == OK else math.inf for op in ops]
    outcome = search(invokes=[op.invoke_s for op in ops], completes=completes,  # type: ignore[arg-type]
                     acknowledged=[op.status == OK for op in ops], step=lambda i, value: _step(ops[i], value),
                     initial=initial, budget=budget)
    if outcome.ok:
        return CheckResult(True, states_explored=outcome.explored)
    if outcome.exhausted:
        return CheckResult(False, reason=f"search budget of {budget} states exhausted (undecided)",
                           states_explored=outcome.explored)
    return CheckResult(False, reason=_explain(ops, completes, *outcome.deepest),  # type: ignore[arg-type]
                       states_explored=outcome.explored)


def _explain(ops: list[Operation], completes: list[float], done: int, value: str | None) -> str:
    """The furthest the search got, and the acknowledged operation that could not follow."""
    pending = [i for i in range(len(ops)) if not done >> i & 1 and ops[i].status == OK]
    first = min(pending, key=lambda i: completes[i])
    placed = sum(1 for i in range(len(ops)) if done >> i & 1)
    return (f"no linearization: after {placed} operation(s) the value is {value!r}, and "
            f"{ops[first].describe()} cannot be placed next (nor can anything that must precede it)")


def _by_key(history: History | list[Operation]) -> dict[str, list[Operation]]:
    ops = history.operations() if isinstance(history, History) else history
    by_key: dict[str, list[Operation]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    return by_key


def check(history: History | list[Operation], *, initial: str | None = None,
          budget: int = 2_000_000) -> CheckResult:
    """Check every key's sub-history; the first failure, or ok."""
    explored = 0
    for key, ops in sorted(_by_key(history).items()):
        result = check_key(ops, initial=initial, budget=budget)
        explored += result.states_explored
        if not result.ok:
            return CheckResult(False, key, result.reason, explored)
    return CheckResult(True, states_explored=explored)


def failing_keys(history: History | list[Operation], *, initial: str | None = None,
                 budget: int = 2_000_000) -> list[CheckResult]:
    """Every key whose sub-history is not linearizable (or undecided)."""
    out = []
    for key, ops in sorted(_by_key(history).items()):
        result = check_key(ops, initial=initial, budget=budget)
        if not result.ok:
            out.append(CheckResult(False, key, result.reason, result.states_explored))
    return out
