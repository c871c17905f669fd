"""Protocol vocabulary shared by the session engine and the passive observer.

Kept apart from :mod:`~wsproto_tools.engine.session` so that the observer (and
``wsp decode``) need not import the session machinery (auth, keys, crypto).
"""

from __future__ import annotations

__all__ = ["DEFAULT_CAPABILITIES", "KNOWN_CAPABILITIES", "SEQUENCED"]

from wsproto_tools.codec.schema import BinaryData, DeltaUpdate, Error, Payload, Publish, TextData

#: Capabilities this implementation understands.
DEFAULT_CAPABILITIES: tuple[str, ...] = ("ack", "batch", "pubsub")
KNOWN_CAPABILITIES = frozenset({"ack", "batch", "pubsub", "compress", "encrypt", "delta"})
#: Message classes that travel in the sequenced, acknowledged stream.
SEQUENCED: tuple[type[Payload], ...] = (Publish, TextData, BinaryData, DeltaUpdate, Error)
