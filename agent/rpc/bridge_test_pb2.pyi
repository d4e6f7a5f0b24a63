from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EchoRequest(_message.Message):
    __slots__ = ("text", "delay_s", "fail_with", "count", "blob")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DELAY_S_FIELD_NUMBER: _ClassVar[int]
    FAIL_WITH_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    text: str
    delay_s: float
    fail_with: str
    count: int
    blob: bytes
    def __init__(self, text: _Optional[str] = ..., delay_s: _Optional[float] = ..., fail_with: _Optional[str] = ..., count: _Optional[int] = ..., blob: _Optional[bytes] = ...) -> None: ...

class EchoReply(_message.Message):
    __slots__ = ("text", "index")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    text: str
    index: int
    def __init__(self, text: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...
