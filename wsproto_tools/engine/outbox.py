"""The outbox of a session: what waits to be sent, batched and sealed.

Messages are queued as codec :class:`~wsproto_tools.codec.schema.Message` objects;
:meth:`Outbox.data_to_send` encodes them in the negotiated version, one Batch when
batching was negotiated, under the session's cipher once encryption has begun
(docs/protocol.md 5.2: a nonce is the direction prefix and a u64le counter from
0 per connection).
"""

from __future__ import annotations

__all__ = ["BATCH_BYTES", "BATCH_ITEMS", "Outbox"]

from collections import Counter
from typing import TYPE_CHECKING

from wsproto_tools.codec import constructor, encode, encode_batch
from wsproto_tools.codec.crypto import Cipher, counter_nonces
from wsproto_tools.codec.schema import Acknowledge, Batch, Flags, Message, Payload
from wsproto_tools.engine.states import State

if TYPE_CHECKING:
    from wsproto_tools.engine.keys import SessionKeys
    from wsproto_tools.engine.session import SessionConfig

BATCH_ITEMS = 512
BATCH_BYTES = 256 * 1024
#: nonce prefixes by sender (docs/protocol.md 5.2)
CLIENT_PREFIX = b"wspc"
SERVER_PREFIX = b"wsps"

_MESSAGE = constructor(Message)


class Outbox:
    """Queue, batch, seal and encode (a mixin of :class:`~.session.Session`)."""

    if not TYPE_CHECKING:  # mypy: the slots are the concrete session's
        __slots__ = ()
    # declared by Session
    state: State
    is_client: bool
    version: int
    outbox: list[Message]
    ack_pending: int
    recv_seq: int
    keys: SessionKeys | None
    stats_out: Counter[str] | None
    config: SessionConfig
    _batch: bool
    _ciphers: tuple[Cipher, Cipher] | None
    _seal: Flags
    _hdr_sid: int

    def _send(
        self, payload: Payload, now: float, flags: Flags = Flags.NONE, *, stamp: bool = False
    ) -> Message:
        """Queue an unsequenced message (``stamp``: with the header timestamp)."""
        msg = _MESSAGE(
            payload,
            0,
            self._hdr_sid,
            int(now * 1_000_000) if stamp else 0,
            flags | self._seal if self._seal else flags,
        )
        self.outbox.append(msg)
        return msg

    @property
    def encrypted(self) -> bool:
        """Whether messages are sealed under the session keys (per-session encoding)."""
        return bool(self._seal)

    def _install_ciphers(self) -> None:
        """Encryption begins (after the HandshakeResponse): this connection's keys,
        nonces from counter 0."""
        keys = self.keys
        if keys is None:
            return
        if self.is_client:
            send, recv, prefix = keys.client_to_server, keys.server_to_client, CLIENT_PREFIX
        else:
            send, recv, prefix = keys.server_to_client, keys.client_to_server, SERVER_PREFIX
        self._ciphers = (Cipher(send, counter_nonces(prefix, 0)), Cipher(recv))
        self._seal = Flags.ENCRYPTED

    def messages_to_send(self) -> list[Message]:
        """Take everything queued, with one coalesced Acknowledge first if due."""
        out = self.outbox
        if self.ack_pending and self.state in (State.ACTIVE, State.CLOSING):
            self.ack_pending = 0
            out.insert(0, _MESSAGE(Acknowledge(self.recv_seq), 0, self._hdr_sid, 0, self._seal))
        self.outbox = []
        return out

    def encode(self, msg: Message) -> bytes:
        """One message in the negotiated version (and the session's cipher, if any)."""
        cipher = self._ciphers[0] if self._ciphers is not None else None
        return encode(msg, version=self.version, cipher=cipher)

    def data_to_send(self) -> list[bytes]:
        """Everything queued, encoded: one Batch when batching was negotiated."""
        messages = self.messages_to_send()
        if not messages:
            return []
        stats = self.stats_out
        if stats is not None:
            for m in messages:
                stats[type(m.payload).__name__] += 1
        if len(messages) > 1 and self._batch:
            return self._batches(messages)
        if self._ciphers is None:
            version = self.version
            return [encode(m, version=version) for m in messages]
        return [self.encode(m) for m in messages]

    def _batches(self, messages: list[Message]) -> list[bytes]:
        """Batches within the peer's limits (item count, and bytes well under 1 MiB)."""
        out: list[bytes] = []
        limit = min(BATCH_ITEMS, self.config.limits.max_batch_items)
        start = 0
        while start < len(messages):
            group: list[Message] = []
            size = 0
            for msg in messages[start : start + limit]:
                payload = msg.payload
                size += len(getattr(payload, "data", b"")) + 64
                group.append(msg)
                if size > BATCH_BYTES:
                    break
            start += len(group)
            if len(group) == 1:
                out.append(self.encode(group[0]))
            else:
                out.append(self._encode_batch(group))
        return out

    def _encode_batch(self, group: list[Message]) -> bytes:
        if self._ciphers is None:
            version = self.version
            return encode_batch([encode(m, version=version) for m in group], self._hdr_sid,
                                version)
        seal = self._seal
        if seal:  # one sealed Batch (one nonce), its items in clear inside it
            group = [
                _MESSAGE(m.payload, m.sequence, m.session_id, m.timestamp, m.flags & ~seal)
                for m in group
            ]
        return self.encode(_MESSAGE(Batch(tuple(group)), 0, self._hdr_sid, 0, seal))
