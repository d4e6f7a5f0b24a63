"""Client sessions: exactly-once writes through retries (Raft thesis §6.3).

Owns: the table of registered clients, each with the sequence number and result of its
last write, and their deterministic expiry.

Rules it keeps:
- A client registers once (a command of its own; its id is derived from the log index,
  so every node names it alike) and then numbers its writes 1, 2, 3...
- A write whose seq equals the client's last is a retry: it is answered with the stored
  result and not applied again. A lower seq is refused as stale; an unknown client is
  refused as expired (it must register again, and knows its earlier write's fate is
  unknown), never silently applied twice.
- At most `max_sessions` are kept; past that the least recently used is forgotten. Use is
  measured in log indexes, never in wall-clock time, so every node expires the same ones.
- Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Session:
    last_seq: int
    last_result: object
    last_used: int  # log index of the client's latest command


class SessionRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # "session_expired" | "stale_sequence"
        self.message = message


class Sessions:
    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self._table: dict[str, Session] = {}  # insertion order = least recently used first

    def __len__(self) -> int:
        return len(self._table)

    def register(self, client_id: str, index: int) -> None:
        self._table[client_id] = Session(0, None, index)
        while len(self._table) > self.max_sessions:
            del self._table[next(iter(self._table))]

    def check(self, client_id: str, seq: int, index: int) -> tuple[bool, object]:
        """(True, cached result) for a retry, (False, None) for a new write.
        Raises SessionRefused for an unknown client or a stale seq."""
        session = self._table.get(client_id)
        if session is None:
            raise SessionRefused("session_expired", f"session {client_id!r} is unknown or expired: register again")
        if seq == session.last_seq:
            self._touch(client_id, session, index)
            return True, session.last_result
        if seq < session.last_seq:
            raise SessionRefused("stale_sequence",
                                 f"session {client_id!r}: seq {seq} is older than its last write {session.last_seq}")
        return False, None

    def record(self, client_id: str, seq: int, result: object, index: int) -> None:
        session = self._table.get(client_id)
        if session is None:
            return
        session.last_seq = seq
        session.last_result = result
        self._touch(client_id, session, index)

    def _touch(self, client_id: str, session: Session, index: int) -> None:
        session.last_used = index
        # Move to the end: the dict's order is the least-recently-used order.
        del self._table[client_id]
        self._table[client_id] = session

    def to_wire(self) -> list[list[object]]:
        return [[cid, s.last_seq, s.last_result, s.last_used] for cid, s in self._table.items()]

    def restore(self, rows: list[list[object]]) -> None:
        self._table = {str(cid): Session(int(seq), result, int(used)) for cid, seq, result, used in rows}
