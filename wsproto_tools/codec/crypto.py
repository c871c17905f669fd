"""The ENCRYPTED flag's transform: ChaCha20-Poly1305 under a caller-supplied key.

The sealed payload is ``nonce (12 bytes) || ciphertext || tag (16 bytes)`` and the
associated data is the message's header bytes, so a header cannot be altered
without the tag failing. The codec draws no randomness: nonces come from the
caller's nonce source (for example :func:`counter_nonces`).
"""

from __future__ import annotations

__all__ = ["NONCE_SIZE", "OVERHEAD", "TAG_SIZE", "Cipher", "counter_nonces"]

from collections.abc import Callable, Iterator
from typing import Any

from wsproto_tools.exceptions import ConfigError, DecryptionFailed, LocalProtocolError

NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
KEY_SIZE = 32


def counter_nonces(prefix: bytes = b"\0\0\0\0", start: int = 0) -> Callable[[], bytes]:
    """A nonce source: ``prefix`` (4 bytes, e.g. one per direction) then a u64le counter."""
    if len(prefix) != 4:
        raise ConfigError("nonce prefix must be 4 bytes")

    def numbers() -> Iterator[bytes]:
        counter = start
        while True:
            yield prefix + counter.to_bytes(8, "little")
            counter += 1

    return numbers().__next__


class Cipher:
    """A session key plus a nonce source; pass it to ``encode``/``decode``.

    ``nonces`` may be omitted on a receive-only cipher.
    """

    __slots__ = ("_aead", "_nonces")

    def __init__(self, key: bytes, nonces: Callable[[], bytes] | None = None) -> None:
        if len(key) != KEY_SIZE:
            raise ConfigError(f"the session key must be {KEY_SIZE} bytes, not {len(key)}")
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        self._aead: Any = ChaCha20Poly1305(key)
        self._nonces = nonces

    def seal(self, header: bytes, plaintext: bytes) -> bytes:
        """``nonce || ciphertext || tag`` with ``header`` as associated data."""
        if self._nonces is None:
            raise LocalProtocolError("this Cipher has no nonce source; it can only decrypt")
        nonce = self._nonces()
        if len(nonce) != NONCE_SIZE:
            raise LocalProtocolError(f"the nonce source gave {len(nonce)} bytes, not 12")
        sealed: bytes = self._aead.encrypt(nonce, plaintext, header)
        return nonce + sealed

    def open(self, header: bytes, sealed: bytes, offset: int) -> bytes:
        """Decrypt and authenticate; ``offset`` is where the payload starts."""
        if len(sealed) < OVERHEAD:
            raise DecryptionFailed(
                f"encrypted payload of {len(sealed)} bytes is shorter than nonce and tag",
                offset=offset,
            )
        from cryptography.exceptions import InvalidTag

        try:
            plain: bytes = self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], header)
        except InvalidTag:
            raise DecryptionFailed(
                "encrypted payload failed authentication (wrong key or altered bytes)",
                offset=offset,
            ) from None
        return plain
