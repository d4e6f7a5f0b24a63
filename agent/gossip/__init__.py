"""SWIM membership with the Lifeguard refinements: pure core, codec, keyring, trio driver.

Importing this package loads only the pure parts (config, core, codec, messages,
events, errors): no trio, socket or cryptography, so simulators and tests of the core
run without them. The I/O parts are imported from their own modules:

    from agent.gossip.driver import GossipNode   # the trio UDP/TCP member
    from agent.gossip.keyring import Keyring     # AES-GCM sealing

Start a member with `GossipNode(config, name, bind, seeds=...)` and
`await nursery.start(node.run)`; read MemberEvents from `node.events`.
"""

from .config import LAN, TEST, GossipConfig, detection_bound_s
from .core import GossipCore, OutPacket, Output, StreamRequest
from .errors import (
    CodecError,
    GossipConfigError,
    GossipError,
    GossipInvariantError,
    KeyringError,
    MetadataTooLarge,
)
from .events import EventKind, MemberEvent
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
