"""Rewriting a recorded wsp session for a new run: engine calls and bindings.

A recorded client message cannot be sent again as its bytes: its session id,
sequence number, acknowledgements, nonces and encryption belong to a session
that is gone. :class:`Rewriter` turns each recorded message into the engine call
that makes the same request in the new session (for users: docs/replay.md):

- ``Publish`` -> :meth:`ClientSession.publish`, with a fresh publish id when
  the recording had one;
- ``Subscribe`` -> :meth:`ClientSession.subscribe`; a ``from_offset`` is moved
  by the topic's offsets (recorded offset - the recording's first offset of the
  topic + the replay's first offset of it: :class:`TopicOffsets`);
- ``Unsubscribe`` -> :meth:`ClientSession.unsubscribe`;
- ``Request`` -> :meth:`ClientSession.request` with a fresh request id, bound to
  the recorded one so that the replayed ``Response`` is stored under it;
- ``TextData``/``BinaryData`` -> ``send_text``/``send_binary``;
- a ``Batch`` -> each of its messages; a wsp ``Close`` -> ``close``;
- anything else of the application (DeltaUpdate, Error, unknown types) ->
  :meth:`Session.send_payload`;
- an encrypted message recorded without its plaintext cannot be sent: it is
  skipped with a reason.

Server messages go the other way (:meth:`Rewriter.restore`): a ``Response``
takes back the recorded request id and an ``Error`` the recorded sequence number
of the message it refers to, so that a replay and its recording are compared in
the recording's numbering. :func:`answer_keys` is what ``--timing causal``
counts an answer by.
"""

from __future__ import annotations

__all__ = ["AnswerKey", "Rewriter", "TopicOffsets", "answer_keys", "first_offsets"]

import dataclasses
from collections.abc import Iterable
from typing import Any

from wsproto_tools.codec.schema import (
    Batch,
    BinaryData,
    Close,
    ContinuityLost,
    Deliver,
    Error,
    Message,
    Publish,
    Request,
    Response,
    Sealed,
    Subscribe,
    Subscribed,
    TextData,
    Unsubscribe,
)
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.replay.cassette import Cassette, CassetteMessage
from wsproto_tools.replay.plan import ENGINE_CLIENT_TYPES, ENGINE_SERVER_TYPES

#: What an answer is counted by: ("Response", id), ("Deliver", topic),
#: ("Subscribed", topic), ("ContinuityLost", topic), ("Error", code), or
#: ("message",) for anything matched by position.
AnswerKey = tuple[Any, ...]
_POSITION: AnswerKey = ("message",)
#: server payloads that show a topic's offsets
_TOPICAL = (Subscribed, Deliver, Batch)


def answer_keys(message: Message | None) -> list[AnswerKey]:
    """The keys a server message counts as, for ``--timing causal``: one per message
    (a Batch's items each), none for engine traffic and for what cannot be read
    (encrypted without keys). ``message`` None (not wsp) is matched by position.

    Topic offsets and sequence numbers differ from run to run, so a Deliver counts
    by its topic and an Error by its code: the causal wait is for *as many* of
    them as the recording had by then.
    """
    if message is None:
        return [_POSITION]
    payload = message.payload
    if isinstance(payload, Batch):
        return [key for item in payload.messages for key in answer_keys(item)]
    if isinstance(payload, (*ENGINE_SERVER_TYPES, Sealed)):
        return []
    if isinstance(payload, Response):
        return [("Response", payload.id)]
    if isinstance(payload, Deliver | Subscribed | ContinuityLost):
        return [(type(payload).__name__, payload.topic)]
    if isinstance(payload, Error):
        return [("Error", payload.code)]
    return [_POSITION]


def first_offsets(messages: Iterable[CassetteMessage]) -> dict[str, int]:
    """Per topic, the first offset a series of server messages shows: a Subscribed's
    ``next_offset`` or a Deliver's ``offset``, whichever came first."""
    out: dict[str, int] = {}
    for message in messages:
        if message.direction == "server" and message.wsp is not None:
            _learn(out, message.wsp)
    return out


def _learn(out: dict[str, int], message: Message) -> None:
    p = message.payload
    if isinstance(p, Batch):
        for item in p.messages:
            _learn(out, item)
    elif isinstance(p, Subscribed):
        out.setdefault(p.topic, p.next_offset)
    elif isinstance(p, Deliver):
        out.setdefault(p.topic, p.offset)


class TopicOffsets:
    """The offsets of the topics, recorded and replayed: what a recorded
    ``from_offset`` becomes. Shared by the connections of one run (topics are the
    server's, not a connection's); each load-test copy has its own."""

    __slots__ = ("epochs", "recorded", "replayed")

    def __init__(self, recorded: dict[str, int] | None = None) -> None:
        self.recorded = dict(recorded or {})
        self.replayed: dict[str, int] = {}
        self.epochs: dict[str, int] = {}

    @classmethod
    def of(cls, cassette: Cassette) -> TopicOffsets:
        """The recorded first offsets of ``cassette``'s topics (in recorded time order)."""
        starts = {c.conn: c.ts for c in cassette.connections.values()}
        topical = [m for m in cassette.messages if m.wsp is not None and m.direction == "server"
                   and isinstance(m.wsp.payload, _TOPICAL)]
        topical.sort(key=lambda m: starts[m.conn] + m.t)
        return cls(first_offsets(topical))

    def observe(self, message: Message) -> None:
        """Learn from a server message of the replay (its first offsets, epochs)."""
        p = message.payload
        if isinstance(p, Batch):
            for item in p.messages:
                self.observe(item)
            return
        if isinstance(p, Subscribed):
            self.replayed.setdefault(p.topic, p.next_offset)
            self.epochs[p.topic] = p.epoch
        elif isinstance(p, Deliver):
            self.replayed.setdefault(p.topic, p.offset)
            self.epochs[p.topic] = p.epoch
        elif isinstance(p, ContinuityLost):
            self.epochs[p.topic] = p.epoch

    def offset(self, topic: str, recorded: int) -> int:
        """A recorded offset of ``topic`` in the replay's numbering (unchanged while
        either side's first offset is unknown)."""
        base = self.recorded.get(topic)
        now = self.replayed.get(topic)
        if base is None or now is None:
            return recorded
        return max(0, recorded - base + now)


class Rewriter:
    """The translation of one played connection: fresh ids, and the bindings back.

    ``send`` makes the engine calls for a recorded client message and returns None,
    or the reason it could not be sent. ``restore`` maps a server message of the
    replay back into the recording's numbering.
    """

    __slots__ = ("offsets", "publish_id", "request_id", "requests", "sequences")

    def __init__(self, offsets: TopicOffsets | None = None) -> None:
        self.offsets = offsets or TopicOffsets()
        self.request_id = 0
        self.publish_id = 0
        #: replayed request id -> recorded one
        self.requests: dict[int, int] = {}
        #: replayed sequence number -> recorded one (sequenced client messages)
        self.sequences: dict[int, int] = {}

    def send(self, session: ClientSession, message: Message, now: float) -> str | None:
        """Send ``message`` (recorded) through ``session``; None, or why it was not."""
        p = message.payload
        if isinstance(p, Sealed):
            return "encrypted in the recording, and its plaintext was not recorded"
        if isinstance(p, ENGINE_CLIENT_TYPES):
            return None  # the engine's own (handshake, acks, heartbeats): never copied
        if isinstance(p, Batch):
            reasons = [self.send(session, item, now) for item in p.messages]
            skipped = [r for r in reasons if r is not None]
            return "; ".join(skipped) if skipped else None
        sequence = 0
        if isinstance(p, Publish):
            publish_id = None
            if p.id is not None:
                self.publish_id += 1
                publish_id = self.publish_id
            sequence = session.publish(p.topic, p.data, now, publish_id)
        elif isinstance(p, Request):
            self.request_id += 1
            self.requests[self.request_id] = p.id
            session.request(self.request_id, p.method, p.data, now)
        elif isinstance(p, Subscribe):
            if p.from_offset is None:
                session.subscribe(p.topic, now)
            else:
                session.subscribe(p.topic, now,
                                  from_offset=self.offsets.offset(p.topic, p.from_offset),
                                  epoch=self.offsets.epochs.get(p.topic))
        elif isinstance(p, Unsubscribe):
            session.unsubscribe(p.topic, now)
        elif isinstance(p, TextData):
            sequence = session.send_text(p.text, now)
        elif isinstance(p, BinaryData):
            sequence = session.send_binary(p.data, now)
        elif isinstance(p, Close):
            session.close(p.code, p.reason, now)
        else:
            sequence = session.send_payload(p, now)
        if sequence and message.sequence:
            self.sequences[sequence] = message.sequence
        return None

    def restore(self, message: Message) -> Message:
        """``message`` (from the server) in the recording's numbering: a Response with
        the recorded request id, an Error with the recorded sequence it refers to."""
        p = message.payload
        if isinstance(p, Response):
            recorded = self.requests.pop(p.id, None)
            if recorded is not None and recorded != p.id:
                return dataclasses.replace(message, payload=dataclasses.replace(p, id=recorded))
        elif isinstance(p, Error) and p.ref_sequence is not None:
            recorded = self.sequences.get(p.ref_sequence)
            if recorded is not None and recorded != p.ref_sequence:
                return dataclasses.replace(
                    message, payload=dataclasses.replace(p, ref_sequence=recorded))
        elif isinstance(p, Batch):
            items = tuple(self.restore(item) for item in p.messages)
            if any(a is not b for a, b in zip(items, p.messages, strict=True)):
                return dataclasses.replace(message, payload=Batch(items))
        return message
