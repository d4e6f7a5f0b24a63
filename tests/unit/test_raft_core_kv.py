"""The test key-value state machine and its client sessions (thesis §6.3)."""

from __future__ import annotations

import msgpack
import pytest

from agent.raft.kv import STALE, KvError, KvStore, encode_cas, encode_delete, encode_put
from agent.raft.statemachine import StateMachine
from agent.raft.types import Entry, EntryKind


def feed(kv: KvStore, *datas: bytes) -> list:
    results = []
    for data in datas:
        results.append(kv.apply(Entry(kv.applied_index + 1, 1, EntryKind.NORMAL, data)))
    return results


def test_kv_implements_state_machine_protocol():
    assert isinstance(KvStore(), StateMachine)


def test_retried_command_applies_once_and_returns_cached_result__thesis_6_3():
    kv = KvStore()
    first = feed(kv, encode_cas("c1", 1, "k", None, "v1"))
    feed(kv, encode_put("c2", 1, "k", "other"))
    retry = feed(kv, encode_cas("c1", 1, "k", None, "v1"))  # the same command again
    assert first == [True] and retry == [True]  # cached, not re-executed (would be False)
    assert kv.get("k") == "other"
    assert kv.commands_applied == 2


def test_older_sequence_is_reported_stale__thesis_6_3():
    kv = KvStore()
    feed(kv, encode_put("c", 1, "k", "a"), encode_put("c", 2, "k", "b"))
    assert feed(kv, encode_put("c", 1, "k", "a")) == [STALE]
    assert kv.get("k") == "b"


def test_noop_and_config_entries_only_advance_applied_index():
    kv = KvStore()
    kv.apply(Entry(1, 1, EntryKind.NOOP))
    kv.apply(Entry(2, 1, EntryKind.CONFIG, b"{}"))
    assert kv.applied_index == 2 and kv.data == {}


def test_malformed_command_returns_error_and_log_goes_on():
    kv = KvStore()
    results = feed(kv, b"\xff\x00garbage", msgpack.packb((1, "x", "put")), msgpack.packb(("c", 1, "zap", "k")))
    assert results == [KvError("malformed"), KvError("bad_session"), KvError("unknown_op")]
    assert feed(kv, encode_put("c", 2, "k", "v")) == [None]
    assert kv.get("k") == "v"


def test_snapshot_restores_data_and_sessions__thesis_6_3():
    kv = KvStore()
    feed(kv, encode_put("c", 1, "k", "v"), encode_delete("d", 1, "missing"), b"junk")
    copy = KvStore()
    copy.restore(kv.snapshot())
    assert copy.data == kv.data and copy.applied_index == kv.applied_index
    assert feed(copy, encode_delete("d", 1, "missing")) == [False]  # cached result survived
    assert copy.sessions == kv.sessions | {"d": (1, False)}


def test_a_snapshot_builder_captures_the_state_when_called_not_when_run():
    kv = KvStore()
    feed(kv, encode_put("c", 1, "k", "before"))
    build = kv.snapshot_builder()
    expected = kv.snapshot()
    feed(kv, encode_put("c", 2, "k", "after"), encode_put("d", 1, "new", "x"))
    assert build() == expected  # what was applied later is not in it
    restored = KvStore()
    restored.restore(build())
    assert (restored.data, restored.applied_index) == ({"k": "before"}, 1)


def test_a_large_snapshot_round_trips_chunk_by_chunk_and_is_put_in_place_only_when_asked():
    """Packed and decoded in chunks (so a worker thread doing it lets the Trio thread have
    the GIL between them); restore_builder changes nothing until its result is called."""
    kv = KvStore()
    feed(kv, *(encode_put(f"c{k}", 1, f"k{k}", str(k)) for k in range(5000)), encode_put("c1", 1, "again", "x"))
    feed(kv, b"junk", encode_delete("c1", 2, "k1"))
    data = kv.snapshot_builder()()
    assert type(data) is bytearray  # never joined into one more copy
    target = KvStore()
    feed(target, encode_put("old", 1, "k", "v"))
    install = target.restore_builder(memoryview(data))
    assert target.data == {"k": "v"} and target.applied_index == 1
    install()
    assert (target.data, target.sessions, target.applied_index) == (kv.data, kv.sessions, kv.applied_index)
    assert len(kv.data) > 2 * 2048 and len(kv.sessions) > 2 * 2048  # several chunks of each


def test_a_snapshot_of_something_else_is_refused():
    with pytest.raises(ValueError):
        KvStore().restore_builder(msgpack.packb({"i": 1, "d": {}, "s": {}}))
    with pytest.raises(ValueError):
        KvStore().restore_builder(b"")
