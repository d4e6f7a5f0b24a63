"""Errors that cross a gRPC call, as one family of exceptions.

Owns: the mapping between Python exceptions and gRPC status codes, both ways.

Rules it keeps:
- A handler raises `RpcError(code, details)` (or one of the named subclasses below) to
  answer with that status; the client side raises the same type back, so
  `except NotFound:` works on both ends of a call.
- `RpcError.from_status(code, details)` picks the most specific subclass for a code,
  so a NOT_FOUND from the wire comes back as `NotFound`.
- Everything here derives from `BridgeError`, the base exception of `agent.grpcbridge`.
"""

from __future__ import annotations

from typing import ClassVar

import grpc


class BridgeError(Exception):
    """Base of every exception raised by the agent.grpcbridge package."""


class RpcError(BridgeError):
    """A call ended with a non-OK gRPC status (raised by handlers and by clients)."""

    default_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    _by_code: ClassVar[dict[grpc.StatusCode, type[RpcError]]] = {}

    def __init__(self, code: grpc.StatusCode | None = None, details: str = "") -> None:
        if code is not None and not isinstance(code, grpc.StatusCode):
            raise TypeError(f"RpcError code must be a grpc.StatusCode, got {code!r}")
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.details: str = details
        super().__init__(f"{self.code.name}: {details}")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # The first subclass declared for a code is the one clients get back.
        RpcError._by_code.setdefault(cls.default_code, cls)

    @classmethod
    def from_status(cls, code: grpc.StatusCode, details: str) -> RpcError:
        """The most specific RpcError type for a status code received from a peer."""
        specific = RpcError._by_code.get(code)
        return specific(details) if specific is not None else RpcError(code, details)


def _subclass_init(self: RpcError, details: str = "") -> None:
    RpcError.__init__(self, type(self).default_code, details)


class InvalidArgument(RpcError, ValueError):
    """The request is malformed or asks for something impossible."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT
    __init__ = _subclass_init  # type: ignore[assignment]


class NotFound(RpcError, LookupError):
    """The object named by the request does not exist."""

    default_code = grpc.StatusCode.NOT_FOUND
    __init__ = _subclass_init  # type: ignore[assignment]


class AlreadyExists(RpcError):
    """The object the request would create already exists."""

    default_code = grpc.StatusCode.ALREADY_EXISTS
    __init__ = _subclass_init  # type: ignore[assignment]


class FailedPrecondition(RpcError):
    """The system is not in a state where the request can run (e.g. not the leader)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION
    __init__ = _subclass_init  # type: ignore[assignment]


class Unavailable(RpcError):
    """The peer cannot serve now; retrying later (or elsewhere) may work."""

    default_code = grpc.StatusCode.UNAVAILABLE
    __init__ = _subclass_init  # type: ignore[assignment]


class DeadlineExceeded(RpcError):
    """The call did not finish before its deadline."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED
    __init__ = _subclass_init  # type: ignore[assignment]


class Cancelled(RpcError):
    """The call was cancelled by one of its ends."""

    default_code = grpc.StatusCode.CANCELLED
    __init__ = _subclass_init  # type: ignore[assignment]


class ResourceExhausted(RpcError):
    """A limit was hit: message size, quota, queue length."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    __init__ = _subclass_init  # type: ignore[assignment]


class Unimplemented(RpcError):
    """The peer does not implement this method."""

    default_code = grpc.StatusCode.UNIMPLEMENTED
    __init__ = _subclass_init  # type: ignore[assignment]


class Internal(RpcError):
    """The peer failed unexpectedly while handling the call."""

    default_code = grpc.StatusCode.INTERNAL
    __init__ = _subclass_init  # type: ignore[assignment]
