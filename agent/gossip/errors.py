"""Errors of the gossip package.

Owns: the exception hierarchy. Rules: bad input from a peer raises a CodecError or
KeyringError inside the decoding path, which the driver counts and drops; a broken
internal invariant raises GossipInvariantError and is never swallowed.
"""

from __future__ import annotations


class GossipError(Exception):
    """Base of every error raised by agent.gossip."""


class CodecError(GossipError):
    """A packet or stream could not be decoded (malformed, oversized, wrong version).

    `reason` is a short stable word used as a counter name (e.g. "malformed", "oversized").
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class KeyringError(GossipError):
    """A sealed payload could not be opened, or a keyring operation was refused."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class MetadataTooLarge(GossipError, ValueError):
    """Own metadata over max_meta_bytes (a caller error, raised by set_meta)."""


class GossipConfigError(GossipError):
    """A configuration value is out of range or inconsistent."""


class GossipInvariantError(GossipError):
    """An internal rule of the protocol core was broken: a bug, never bad input."""
