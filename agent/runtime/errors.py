"""Exceptions of agent/runtime. PodRuntimeError is the base of all of them."""

from __future__ import annotations


class PodRuntimeError(Exception):
    """Base of every error raised by agent/runtime."""


class DockerUnavailable(PodRuntimeError):
    """The Docker engine cannot be reached (socket missing, engine stopped, call timed out)."""


class DockerApiError(PodRuntimeError):
    """The engine answered with an error."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class NotFound(DockerApiError):
    """No such container, volume or image."""


class ImageNotFound(NotFound):
    """The image is not present on this engine."""


class ImagePullError(DockerApiError):
    """The image could not be pulled (no registry, no such image, auth)."""


class NoSandboxAddress(PodRuntimeError):
    """The infra container started but its network gave it no IP address."""
