"""The state-machine interface Raft applies committed entries to.

Owns: `StateMachine`, the Protocol every replicated state machine implements (the
test key-value store in kv.py, the cluster state in agent/state). Rules: `apply` is
deterministic (same entries in the same order give the same results on every node),
is called once per committed entry in log order (NOOP and CONFIG entries included, so
the machine can track its applied index), and never raises on a malformed command:
it returns an error result instead. `snapshot()` captures everything applied so far,
`restore()` replaces the whole state with a snapshot.

A machine whose state is large may also offer `snapshot_builder()`: capture the state
now, cheaply (copies of its containers, say), and return a function that serializes that
capture later. The node calls the function on a worker thread, so applying goes on
meanwhile; what it returns must equal what `snapshot()` would have returned. And
`restore_builder(data)`: decode a snapshot (the node calls it on a worker thread) and
return a function that puts the decoded state in place at once (called on the node's
task, where nothing reads the machine in between). Work on a worker thread still holds
the GIL: do it in short steps (chunks of a few thousand items), so the Trio thread gets
it back between them. A snapshot's data may be any buffer (bytes, bytearray,
memoryview): it is never copied whole.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from agent.raft.types import Entry


@runtime_checkable
class StateMachine(Protocol):
    applied_index: int

    def apply(self, entry: Entry) -> object:
        """Apply one committed entry; return the result for the proposing client."""

    def snapshot(self) -> bytes:
        """Serialize the state (including client sessions) as of `applied_index`."""

    def restore(self, data: bytes) -> None:
        """Replace the state by a snapshot produced by `snapshot()`."""
