from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetNodeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("name", "version", "capacity_cpu_millicores", "capacity_memory_bytes", "allocatable_cpu_millicores", "allocatable_memory_bytes", "labels", "docker_available", "docker_error")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_CPU_MILLICORES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    ALLOCATABLE_CPU_MILLICORES_FIELD_NUMBER: _ClassVar[int]
    ALLOCATABLE_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DOCKER_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    DOCKER_ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    capacity_cpu_millicores: int
    capacity_memory_bytes: int
    allocatable_cpu_millicores: int
    allocatable_memory_bytes: int
    labels: _containers.ScalarMap[str, str]
    docker_available: bool
    docker_error: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., capacity_cpu_millicores: _Optional[int] = ..., capacity_memory_bytes: _Optional[int] = ..., allocatable_cpu_millicores: _Optional[int] = ..., allocatable_memory_bytes: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., docker_available: _Optional[bool] = ..., docker_error: _Optional[str] = ...) -> None: ...

class ListPodsRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class PodView(_message.Message):
    __slots__ = ("uid", "namespace", "name", "pod_json", "status_json")
    UID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    POD_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_JSON_FIELD_NUMBER: _ClassVar[int]
    uid: str
    namespace: str
    name: str
    pod_json: bytes
    status_json: bytes
    def __init__(self, uid: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., pod_json: _Optional[bytes] = ..., status_json: _Optional[bytes] = ...) -> None: ...

class ListPodsResponse(_message.Message):
    __slots__ = ("pods",)
    PODS_FIELD_NUMBER: _ClassVar[int]
    pods: _containers.RepeatedCompositeFieldContainer[PodView]
    def __init__(self, pods: _Optional[_Iterable[_Union[PodView, _Mapping]]] = ...) -> None: ...

class GetPodRequest(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class WatchPodsRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class PodEvent(_message.Message):
    __slots__ = ("kind", "pod")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CURRENT: _ClassVar[PodEvent.Kind]
        MODIFIED: _ClassVar[PodEvent.Kind]
        DELETED: _ClassVar[PodEvent.Kind]
    CURRENT: PodEvent.Kind
    MODIFIED: PodEvent.Kind
    DELETED: PodEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    kind: PodEvent.Kind
    pod: PodView
    def __init__(self, kind: _Optional[_Union[PodEvent.Kind, str]] = ..., pod: _Optional[_Union[PodView, _Mapping]] = ...) -> None: ...

class PodLogsRequest(_message.Message):
    __slots__ = ("namespace", "name", "container", "tail_lines", "follow", "previous")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    container: str
    tail_lines: int
    follow: bool
    previous: bool
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., container: _Optional[str] = ..., tail_lines: _Optional[int] = ..., follow: _Optional[bool] = ..., previous: _Optional[bool] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("line",)
    LINE_FIELD_NUMBER: _ClassVar[int]
    line: str
    def __init__(self, line: _Optional[str] = ...) -> None: ...
