from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KvStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KV_OK: _ClassVar[KvStatus]
    KV_NOT_LEADER: _ClassVar[KvStatus]
    KV_TIMEOUT: _ClassVar[KvStatus]
    KV_ERROR: _ClassVar[KvStatus]
KV_OK: KvStatus
KV_NOT_LEADER: KvStatus
KV_TIMEOUT: KvStatus
KV_ERROR: KvStatus

class LogEntry(_message.Message):
    __slots__ = ("index", "term", "kind", "data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    term: int
    kind: int
    data: bytes
    def __init__(self, index: _Optional[int] = ..., term: _Optional[int] = ..., kind: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class SnapshotPoint(_message.Message):
    __slots__ = ("index", "term", "membership")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    index: int
    term: int
    membership: bytes
    def __init__(self, index: _Optional[int] = ..., term: _Optional[int] = ..., membership: _Optional[bytes] = ...) -> None: ...

class RaftMessage(_message.Message):
    __slots__ = ("type", "src", "dst", "term", "prev_index", "prev_term", "entries", "commit", "index", "reject", "hint_term", "hint_index", "last_index", "last_term", "pre_vote", "transfer", "granted", "heartbeat_context", "read_context", "meta", "offset", "data", "done", "next_offset")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    PREV_INDEX_FIELD_NUMBER: _ClassVar[int]
    PREV_TERM_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    HINT_TERM_FIELD_NUMBER: _ClassVar[int]
    HINT_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_TERM_FIELD_NUMBER: _ClassVar[int]
    PRE_VOTE_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    READ_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    type: int
    src: str
    dst: str
    term: int
    prev_index: int
    prev_term: int
    entries: _containers.RepeatedCompositeFieldContainer[LogEntry]
    commit: int
    index: int
    reject: bool
    hint_term: int
    hint_index: int
    last_index: int
    last_term: int
    pre_vote: bool
    transfer: bool
    granted: bool
    heartbeat_context: int
    read_context: bytes
    meta: SnapshotPoint
    offset: int
    data: bytes
    done: bool
    next_offset: int
    def __init__(self, type: _Optional[int] = ..., src: _Optional[str] = ..., dst: _Optional[str] = ..., term: _Optional[int] = ..., prev_index: _Optional[int] = ..., prev_term: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ..., commit: _Optional[int] = ..., index: _Optional[int] = ..., reject: _Optional[bool] = ..., hint_term: _Optional[int] = ..., hint_index: _Optional[int] = ..., last_index: _Optional[int] = ..., last_term: _Optional[int] = ..., pre_vote: _Optional[bool] = ..., transfer: _Optional[bool] = ..., granted: _Optional[bool] = ..., heartbeat_context: _Optional[int] = ..., read_context: _Optional[bytes] = ..., meta: _Optional[_Union[SnapshotPoint, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., done: _Optional[bool] = ..., next_offset: _Optional[int] = ...) -> None: ...

class MessageBatch(_message.Message):
    __slots__ = ("src", "dst", "messages", "epoch", "seq")
    SRC_FIELD_NUMBER: _ClassVar[int]
    DST_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    src: str
    dst: str
    messages: _containers.RepeatedCompositeFieldContainer[RaftMessage]
    epoch: int
    seq: int
    def __init__(self, src: _Optional[str] = ..., dst: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[RaftMessage, _Mapping]]] = ..., epoch: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class BatchAck(_message.Message):
    __slots__ = ("accepted", "rejected", "replies")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    replies: _containers.RepeatedCompositeFieldContainer[RaftMessage]
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., replies: _Optional[_Iterable[_Union[RaftMessage, _Mapping]]] = ...) -> None: ...

class PutRequest(_message.Message):
    __slots__ = ("client_id", "seq", "key", "value", "timeout_s")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    seq: int
    key: str
    value: str
    timeout_s: float
    def __init__(self, client_id: _Optional[str] = ..., seq: _Optional[int] = ..., key: _Optional[str] = ..., value: _Optional[str] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class PutReply(_message.Message):
    __slots__ = ("status", "leader_id", "leader_address", "error", "index", "not_proposed")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NOT_PROPOSED_FIELD_NUMBER: _ClassVar[int]
    status: KvStatus
    leader_id: str
    leader_address: str
    error: str
    index: int
    not_proposed: bool
    def __init__(self, status: _Optional[_Union[KvStatus, str]] = ..., leader_id: _Optional[str] = ..., leader_address: _Optional[str] = ..., error: _Optional[str] = ..., index: _Optional[int] = ..., not_proposed: _Optional[bool] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("key", "local", "timeout_s")
    KEY_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    key: str
    local: bool
    timeout_s: float
    def __init__(self, key: _Optional[str] = ..., local: _Optional[bool] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class GetReply(_message.Message):
    __slots__ = ("status", "leader_id", "leader_address", "found", "value", "error")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    status: KvStatus
    leader_id: str
    leader_address: str
    found: bool
    value: str
    error: str
    def __init__(self, status: _Optional[_Union[KvStatus, str]] = ..., leader_id: _Optional[str] = ..., leader_address: _Optional[str] = ..., found: _Optional[bool] = ..., value: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("node_id", "term", "role", "leader_id", "commit_index", "applied_index", "last_index", "first_index", "snapshot_index", "counters", "keys", "voters", "learners")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEX_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    term: int
    role: str
    leader_id: str
    commit_index: int
    applied_index: int
    last_index: int
    first_index: int
    snapshot_index: int
    counters: _containers.ScalarMap[str, int]
    keys: int
    voters: _containers.RepeatedScalarFieldContainer[str]
    learners: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., term: _Optional[int] = ..., role: _Optional[str] = ..., leader_id: _Optional[str] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., last_index: _Optional[int] = ..., first_index: _Optional[int] = ..., snapshot_index: _Optional[int] = ..., counters: _Optional[_Mapping[str, int]] = ..., keys: _Optional[int] = ..., voters: _Optional[_Iterable[str]] = ..., learners: _Optional[_Iterable[str]] = ...) -> None: ...

class BenchRequest(_message.Message):
    __slots__ = ("count", "window", "value_bytes", "key_prefix", "commands_per_call")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    VALUE_BYTES_FIELD_NUMBER: _ClassVar[int]
    KEY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_PER_CALL_FIELD_NUMBER: _ClassVar[int]
    count: int
    window: int
    value_bytes: int
    key_prefix: str
    commands_per_call: int
    def __init__(self, count: _Optional[int] = ..., window: _Optional[int] = ..., value_bytes: _Optional[int] = ..., key_prefix: _Optional[str] = ..., commands_per_call: _Optional[int] = ...) -> None: ...

class BenchReply(_message.Message):
    __slots__ = ("status", "leader_id", "committed", "elapsed_s", "failed", "latency_p50_ms", "latency_p99_ms")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    status: KvStatus
    leader_id: str
    committed: int
    elapsed_s: float
    failed: int
    latency_p50_ms: float
    latency_p99_ms: float
    def __init__(self, status: _Optional[_Union[KvStatus, str]] = ..., leader_id: _Optional[str] = ..., committed: _Optional[int] = ..., elapsed_s: _Optional[float] = ..., failed: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ...) -> None: ...

class TransferRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class TransferReply(_message.Message):
    __slots__ = ("status", "leader_id", "error")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    status: KvStatus
    leader_id: str
    error: str
    def __init__(self, status: _Optional[_Union[KvStatus, str]] = ..., leader_id: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class MemberRequest(_message.Message):
    __slots__ = ("node_id", "action")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    action: str
    def __init__(self, node_id: _Optional[str] = ..., action: _Optional[str] = ...) -> None: ...

class MemberReply(_message.Message):
    __slots__ = ("status", "leader_id", "error", "index")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    status: KvStatus
    leader_id: str
    error: str
    index: int
    def __init__(self, status: _Optional[_Union[KvStatus, str]] = ..., leader_id: _Optional[str] = ..., error: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...
