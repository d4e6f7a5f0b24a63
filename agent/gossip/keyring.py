"""Cluster keyring: AES-GCM sealing of gossip packets and push-pull streams.

Owns: the installed keys and which one is primary. Rules: seal with the primary key
only; open with any installed key (so a key can be rolled out, made primary, then the
old one removed, without a partition); a payload that no key opens raises
KeyringError, which the driver counts and drops. The primary key cannot be removed.
The sealed layout (version byte | 12-byte random nonce | ciphertext + 16-byte tag) is
part of the wire layout in codec.py. The nonce comes from os.urandom: this module
belongs to the driver side, not the pure core.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .codec import NONCE_BYTES, SEAL_OVERHEAD_BYTES, SEAL_VERSION
from .errors import KeyringError

KEY_SIZES = (16, 24, 32)


class Keyring:
    def __init__(self, keys: list[bytes], primary: bytes | None = None) -> None:
        if not keys:
            raise KeyringError("empty", "a keyring needs at least one key")
        self._keys: dict[bytes, AESGCM] = {}
        self._order: list[bytes] = []
        for key in keys:
            self.install(key)
        self._primary = primary if primary is not None else keys[0]
        if self._primary not in self._keys:
            raise KeyringError("unknown_key", "primary key is not installed")

    @property
    def primary(self) -> bytes:
        return self._primary

    @property
    def keys(self) -> tuple[bytes, ...]:
        """Installed keys, primary first."""
        return (self._primary, *[k for k in self._order if k != self._primary])

    def install(self, key: bytes) -> None:
        if type(key) is not bytes or len(key) not in KEY_SIZES:
            raise KeyringError("bad_key", "AES keys are 16, 24 or 32 bytes")
        if key not in self._keys:
            self._keys[key] = AESGCM(key)
            self._order.append(key)

    def use(self, key: bytes) -> None:
        """Make an installed key the primary (the one that seals)."""
        if key not in self._keys:
            raise KeyringError("unknown_key", "install the key before using it")
        self._primary = key

    def remove(self, key: bytes) -> None:
        if key == self._primary:
            raise KeyringError("primary", "the primary key cannot be removed")
        if key in self._keys:
            del self._keys[key]
            self._order.remove(key)

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return bytes([SEAL_VERSION]) + nonce + self._keys[self._primary].encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes = b"") -> bytes:
        if len(sealed) < SEAL_OVERHEAD_BYTES or sealed[0] != SEAL_VERSION:
            raise KeyringError("not_sealed", "too short or unknown seal version")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        # Primary first: it is the one almost every peer uses.
        for key in self.keys:
            try:
                return self._keys[key].decrypt(nonce, body, aad)
            except InvalidTag:
                continue
        raise KeyringError("no_key", "no installed key opens this payload")
