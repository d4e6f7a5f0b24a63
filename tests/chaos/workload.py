"""The chaos workload: clients that write and read small objects through the ClusterAPI the
whole time a scenario runs, and record every operation in a History.

Owns: a few client processes (trio tasks), each with a session of its own, doing one
operation at a time on a small set of keys: create, update (a merge patch of one
annotation), delete and read of Pods `chaos-kv-...` in the namespace `chaos`. Those Pods
select a node label no node has, so they stay Pending and cost no container: they are
registers, and their annotation is the value.

Rules it keeps:
- Every write carries the process's session and the next sequence number, and is retried
  with the same number (any agent, any time) until its outcome is known or its deadline
  passes: a retry is answered from the session, never applied twice, so an operation ends
  `ok` with its real result, or `info` (outcome unknown) if it ran out of time.
- A refusal that says what the state was (AlreadyExists, NotFound) is a known outcome.
- A read that never answered is `fail` (it changed nothing, so it is left out).
- Any other error is not the cluster being unavailable but a bug: it is kept and shown,
  and the scenario fails on it.
- Values are unique (process and counter), so the checker can tell every write apart.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from agent.client import ClusterClient
from agent.grpcbridge.errors import (AlreadyExists, Cancelled, DeadlineExceeded, FailedPrecondition, NotFound,
                                     RpcError, Unavailable)
from tests.chaos.history import (CREATE, DELETE, READ, RESULT_EXISTS, RESULT_NOTFOUND, RESULT_OK, UPDATE,
                                 History)

NAMESPACE = "chaos"
VALUE_ANNOTATION = "chaos.agentd.io/value"
# A label no node carries: the registers are never scheduled.
NEVER_SELECTOR = {"agentd.io/never": "true"}
# Errors that say "not now" (no leader, no quorum, the agent asked died): try again.
_RETRYABLE = (Unavailable, DeadlineExceeded, Cancelled)


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    processes: int = 3  # concurrent clients: enough overlap on each key to test ordering
    keys: int = 8  # registers: few enough that processes meet on them, many enough to spread
    attempt_timeout_s: float = 2.0  # one RPC attempt: a machine that died answers nothing
    op_deadline_s: float = 10.0  # an operation retried this long without an answer is `info`
    pause_s: float = 0.1  # between one process's operations: ~20 ops/s in all, light on 2 cores
    retry_pause_s: float = 0.2  # between attempts of one operation
    weights: tuple[tuple[str, int], ...] = ((READ, 4), (UPDATE, 3), (CREATE, 2), (DELETE, 1))


def register_doc(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": {VALUE_ANNOTATION: value},
                     "labels": {"chaos.agentd.io/register": "true"}},
        "spec": {"nodeSelector": dict(NEVER_SELECTOR), "restartPolicy": "Always",
                 "containers": [{"name": "app", "image": "busybox:local", "command": ["sleep", "3600"],
                                 "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}]},
    }


def _value_of(doc: dict[str, Any]) -> str | None:
    return ((doc.get("metadata") or {}).get("annotations") or {}).get(VALUE_ANNOTATION)


class _Unknown(Exception):
    """The operation's outcome could not be learnt before its deadline."""


@dataclass
class Workload:
    addresses: Sequence[str]
    history: History
    key_prefix: str
    seed: int
    config: WorkloadConfig = WorkloadConfig()
    clock: Callable[[], float] = time.monotonic
    unexpected: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [f"{self.key_prefix}-{i}" for i in range(self.config.keys)]

    async def run(self) -> None:
        """Run every process until cancelled."""
        async with trio.open_nursery() as nursery:
            for i in range(self.config.processes):
                nursery.start_soon(self._process, f"p{i}", random.Random(f"{self.seed}/{i}"))

    async def _process(self, name: str, rng: random.Random) -> None:
        addresses = list(self.addresses)
        rng.shuffle(addresses)
        kinds = [k for k, _ in self.config.weights]
        weights = [w for _, w in self.config.weights]
        async with ClusterClient(addresses, timeout_s=self.config.attempt_timeout_s) as client:
            session: list[Any] = [await self._register(client), 0]  # [client id, last seq]
            counter = 0
            while True:
                if session[0] is None:
                    session[:] = [await self._register(client), 0]
                key = rng.choice(self.keys)
                kind = rng.choices(kinds, weights)[0]
                counter += 1
                value = f"{name}-{counter}" if kind in (CREATE, UPDATE) else None
                await self._one(client, session, name, key, kind, value)
                await trio.sleep(self.config.pause_s)

    async def _register(self, client: ClusterClient) -> str:
        while True:
            try:
                return await client.register_session()
            except _RETRYABLE:
                await trio.sleep(self.config.retry_pause_s)

    async def _one(self, client: ClusterClient, session: list[Any], process: str, key: str, kind: str,
                   value: str | None) -> None:
        handle = self.history.invoke(process, key, kind, value, self.clock())
        try:
            if kind == READ:
                try:
                    seen = await self._retrying(lambda: client.get("Pod", key, namespace=NAMESPACE))
                    self.history.ok(handle, self.clock(), value=_value_of(seen))
                except NotFound:
                    self.history.ok(handle, self.clock(), value=None)
                except _Unknown:
                    self.history.fail(handle, self.clock())
                return
            session[1] += 1
            ticket = (session[0], session[1])
            call = {
                CREATE: lambda: client.apply([register_doc(key, value or "")], create_only=True, session=ticket),
                UPDATE: lambda: client.patch("Pod", key, {"metadata": {"annotations": {VALUE_ANNOTATION: value}}},
                                             namespace=NAMESPACE, session=ticket),
                DELETE: lambda: client.delete("Pod", key, namespace=NAMESPACE, session=ticket),
            }[kind]
            try:
                await self._retrying(call)
                self.history.ok(handle, self.clock(), result=RESULT_OK)
            except AlreadyExists:
                self.history.ok(handle, self.clock(), result=RESULT_EXISTS)
            except NotFound:
                self.history.ok(handle, self.clock(), result=RESULT_NOTFOUND)
            except _Unknown:
                self.history.info(handle, self.clock())
            except FailedPrecondition as exc:
                # The session is gone (or the seq refused): this write's fate is unknown.
                self.history.info(handle, self.clock())
                self.unexpected.append(f"{process} {kind} {key}: {exc}")
                session[:] = [None, 0]  # register again before the next write
        except RpcError as exc:
            self.history.info(handle, self.clock())
            self.unexpected.append(f"{process} {kind} {key}: {type(exc).__name__} {exc}")
        except BaseException:
            self.history.info(handle, self.clock())  # cancelled at the scenario's end: outcome unknown
            raise

    async def _retrying(self, call: Callable[[], Awaitable[Any]]) -> Any:
        deadline = self.clock() + self.config.op_deadline_s
        while True:
            try:
                return await call()
            except _RETRYABLE:
                if self.clock() >= deadline:
                    raise _Unknown() from None
                await trio.sleep(self.config.retry_pause_s)

    async def read_every_key(self, client: ClusterClient, process: str) -> None:
        """One recorded read of every register, by `process` (reads need no session)."""
        for key in self.keys:
            await self._one(client, [None, 0], process, key, READ, None)

    async def remove_keys(self, client: ClusterClient, *, timeout_s: float = 60.0) -> None:
        """Delete this workload's registers (after its history was checked)."""
        with trio.fail_after(timeout_s):
            for key in self.keys:
                while True:
                    try:
                        await client.delete("Pod", key, namespace=NAMESPACE)
                        break
                    except NotFound:
                        break
                    except _RETRYABLE:
                        await trio.sleep(self.config.retry_pause_s)
