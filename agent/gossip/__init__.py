"""SWIM membership with the Lifeguard refinements: pure core, codec, keyring, trio driver.

Start a member with `GossipNode(config, name, bind, seeds=...)` and
`await nursery.start(node.run)`; read MemberEvents from `node.events`.
"""

from .config import LAN, TEST, GossipConfig, detection_bound_s
from .core import GossipCore, OutPacket, Output, StreamRequest
from .driver import GossipNode
from .errors import (
    CodecError,
    GossipConfigError,
    GossipError,
    GossipInvariantError,
    KeyringError,
    MetadataTooLarge,
)
from .events import EventKind, MemberEvent
from .keyring import Keyring
from .messages import MemberRecord, MemberState

__all__ = [
    "LAN",
    "TEST",
    "CodecError",
    "EventKind",
    "GossipConfig",
    "GossipConfigError",
    "GossipCore",
    "GossipError",
    "GossipInvariantError",
    "GossipNode",
    "Keyring",
    "KeyringError",
    "MemberEvent",
    "MemberRecord",
    "MemberState",
    "MetadataTooLarge",
    "OutPacket",
    "Output",
    "StreamRequest",
    "detection_bound_s",
]
