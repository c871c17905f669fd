"""The recorded server as a responder: which step a client message stands for, and
what to answer (sans-I/O; ``wsp replay --serve`` drives it: replay/serve.py).

A :class:`Responder` holds one recorded connection cut into steps
(:func:`~wsproto_tools.replay.plan.script_of`). Each message a live client sends
is matched to a step by *causal matching* (docs/replay.md, "Playing the server
side"):

- plain WebSocket traffic: the next unplayed step of the same opcode whose
  payload is the same, or equal as JSON; else, by position, the next unplayed
  step of that opcode (not with ``strict``);
- wsp sessions: the next unplayed step of the same message type with the same
  key (a Request by method and data, a Publish by topic and data, a Subscribe
  or Unsubscribe by topic, text and binary data by their content; a topic that
  an earlier Subscribe bound counts as the recorded one); else, by position,
  the next unplayed step of that type.

The answer is the step's ``after`` (the server messages recorded after it),
with the recorded close frame after the step it followed. On a wsp session a
recorded Response is answered as soon as its Request was matched (moved to the
Request's step when the recording had pipelined requests), and the values the
live client chose are bound into what is sent (:class:`Bindings`): the
Response carries the live request id, the Subscribed and Deliver messages of a
topic matched by position carry the live topic name, an Error names the live
sequence number.

A message that stands for no step is *unmatched*: it is answered with nothing.
"""

from __future__ import annotations

__all__ = ["Bindings", "Match", "Responder", "flatten_batches", "wsp_key"]

import dataclasses
import json
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.codec.schema import (
    Batch,
    BinaryData,
    Close,
    ContinuityLost,
    Deliver,
    Error,
    Payload,
    Publish,
    Request,
    Response,
    Subscribe,
    Subscribed,
    TextData,
    Unsubscribe,
)
from wsproto_tools.replay.cassette import Cassette, CassetteMessage
from wsproto_tools.replay.plan import Script, Step

#: ``Match.how`` values: how the client message was tied to its step.
EXACT, JSON_EQUAL, KEY, POSITION, UNMATCHED = "exact", "json", "key", "position", "unmatched"


def flatten_batches(cassette: Cassette) -> Cassette:
    """A copy of ``cassette`` whose wsp Batch messages are replaced by their items
    (each with the Batch's time and direction): a replayer plays messages, and the
    engine batches again as it negotiated."""
    out = Cassette(dict(cassette.connections))
    for message in cassette.messages:
        wsp = message.wsp
        if wsp is not None and isinstance(wsp.payload, Batch):
            out.messages.extend(
                dataclasses.replace(message, wsp=item, raw=None) for item in wsp.payload.messages
            )
        else:
            out.messages.append(message)
    return out


def wsp_key(payload: Payload) -> Hashable:
    """What a client wsp message is matched by (its type comes first)."""
    name = type(payload).__name__
    if isinstance(payload, Request):
        return (name, payload.method, payload.data)
    if isinstance(payload, Publish):
        return (name, payload.topic, payload.data)
    if isinstance(payload, Subscribe | Unsubscribe):
        return (name, payload.topic)
    if isinstance(payload, TextData):
        return (name, payload.text)
    if isinstance(payload, BinaryData):
        return (name, payload.data)
    try:
        hash(payload)
    except TypeError:  # a payload holding a list or dict
        return (name, repr(payload))
    return (name, payload)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return _NOT_JSON


_NOT_JSON = object()


@dataclass(slots=True)
class Match:
    """What one client message stood for: ``step`` (None: unmatched), ``how`` it was
    matched, the recorded ``answers`` to send (their ``t`` minus ``base_t`` is their
    recorded delay), and ``close`` when the recorded server close follows them."""

    step: int | None
    how: str
    answers: list[CassetteMessage] = field(default_factory=list)
    base_t: float = 0.0
    close: CassetteMessage | None = None


@dataclass(slots=True)
class Bindings:
    """Values of the live client that replace the recorded ones in the answers."""

    requests: dict[int, int] = field(default_factory=dict)  # recorded id -> live id
    topics: dict[str, str] = field(default_factory=dict)  # recorded topic -> live topic
    sequences: dict[int, int] = field(default_factory=dict)  # recorded seq -> live seq

    def bind(self, recorded: Payload, live: Payload, recorded_seq: int, live_seq: int) -> None:
        if isinstance(recorded, Request) and isinstance(live, Request):
            self.requests[recorded.id] = live.id
        elif (isinstance(recorded, Subscribe) and isinstance(live, Subscribe)
              and recorded.topic != live.topic):
            self.topics[recorded.topic] = live.topic
        if recorded_seq and live_seq:
            self.sequences[recorded_seq] = live_seq

    def rewrite(self, payload: Payload) -> Payload:
        """``payload`` (a recorded server message) with the live values bound in."""
        if isinstance(payload, Response):
            live = self.requests.get(payload.id)
            return payload if live is None else dataclasses.replace(payload, id=live)
        if isinstance(payload, Deliver | Subscribed | ContinuityLost):
            topic = self.topics.get(payload.topic)
            return payload if topic is None else dataclasses.replace(payload, topic=topic)
        if isinstance(payload, Error) and payload.ref_sequence is not None:
            seq = self.sequences.get(payload.ref_sequence)
            return payload if seq is None else dataclasses.replace(payload, ref_sequence=seq)
        return payload


class Responder:
    """One recorded connection played as its server: see the module's docstring.

    ``close`` is the recorded server close frame when the server closed first, and
    ``close_after`` the index of the step it followed (-1: it followed the opening;
    None: no server-initiated close). On a wsp session the steps that are a
    client's wsp Close are not matched (the engine answers a Close itself), and a
    server's wsp Close answering one is left out.
    """

    def __init__(self, script: Script, messages: list[CassetteMessage], *,
                 strict: bool = False) -> None:
        self.script = script
        self.wsp = script.wsp
        self.strict = strict
        self.bindings = Bindings()
        self.steps: list[Step] = [Step(s.index, s.message, list(s.after)) for s in script.steps]
        self.opening = list(script.opening)
        self.played = [False] * len(self.steps)
        self.last = -1  # the step played last
        self.skipped = 0  # recorded answers that cannot be played (sealed without keys)
        self.close: CassetteMessage | None = None
        self.close_after: int | None = None
        if self.wsp:
            self._wsp_plan()
        self._close_plan(messages)

    # ------------------------------------------------------------------ planning
    def _wsp_plan(self) -> None:
        steps = self.steps
        requests: dict[int, int] = {}  # recorded request id -> its step
        for step in steps:
            payload = _payload(step.message)
            if isinstance(payload, Close):
                self.played[step.index] = True  # the engine answers the client's Close
                step.after = [m for m in step.after if not isinstance(_payload(m), Close)]
        for step in steps:
            payload = _payload(step.message)
            if isinstance(payload, Request):
                requests[payload.id] = step.index
            kept = []
            for message in step.after:
                answer = _payload(message)
                home = requests.get(answer.id) if isinstance(answer, Response) else None
                if home is not None and home < step.index:
                    steps[home].after.append(message)  # pipelined: answer it with its Request
                else:
                    kept.append(message)
            step.after = kept

    def _close_plan(self, messages: list[CassetteMessage]) -> None:
        script = self.script
        close = script.server_close
        if close is None:
            return
        position = {id(m): i for i, m in enumerate(messages)}
        at = position.get(id(close))
        if at is None:
            return
        client_close = script.client_close
        if client_close is not None and position.get(id(client_close), at) < at:
            return  # the server's close answered the client's
        self.close = close
        self.close_after = -1
        for step in self.steps:
            if position.get(id(step.message), at) < at:
                self.close_after = step.index

    # ------------------------------------------------------------------ matching
    @property
    def finished(self) -> bool:
        """Every step was played."""
        return all(self.played)

    def opening_close(self) -> CassetteMessage | None:
        """The recorded server close when it came before any client message."""
        return self.close if self.close_after == -1 else None

    def match_plain(self, opcode: str, payload: bytes) -> Match:
        """The step a plain client message (``opcode``: text or binary) stands for."""
        candidates = [s for s in self._unplayed() if s.message.opcode == opcode]
        for step in candidates:
            if step.message.payload() == payload:
                return self._play(step, EXACT)
        live = _json(payload)
        if live is not _NOT_JSON:
            for step in candidates:
                if _json(step.message.payload()) == live:
                    return self._play(step, JSON_EQUAL)
        return self._by_position(candidates)

    def match_wsp(self, payload: Payload, sequence: int = 0) -> Match:
        """The step a client wsp message stands for (``sequence``: its live number)."""
        kind = type(payload)
        candidates = [s for s in self._unplayed() if type(_payload(s.message)) is kind]
        key = wsp_key(self._recorded_topic(payload))
        for step in candidates:
            recorded = _payload(step.message)
            if recorded is not None and wsp_key(recorded) == key:
                return self._bound(step, payload, sequence, KEY)
        match = self._by_position(candidates)
        if match.step is not None:
            self._bind(self.steps[match.step], payload, sequence)
        return match

    def _recorded_topic(self, payload: Payload) -> Payload:
        """``payload`` with a topic bound by an earlier Subscribe named as recorded."""
        topic = getattr(payload, "topic", None)
        if topic is None or not self.bindings.topics:
            return payload
        for recorded, live in self.bindings.topics.items():
            if live == topic:
                return dataclasses.replace(payload, topic=recorded)  # type: ignore[type-var]
        return payload

    def _bound(self, step: Step, payload: Payload, sequence: int, how: str) -> Match:
        self._bind(step, payload, sequence)
        return self._play(step, how)

    def _bind(self, step: Step, payload: Payload, sequence: int) -> None:
        wsp = step.message.wsp
        assert wsp is not None
        self.bindings.bind(wsp.payload, payload, wsp.sequence, sequence)

    def _unplayed(self) -> list[Step]:
        """Unplayed steps, the ones after the last played first."""
        after = [s for s in self.steps[self.last + 1:] if not self.played[s.index]]
        before = [s for s in self.steps[:self.last + 1] if not self.played[s.index]]
        return after + before

    def _by_position(self, candidates: list[Step]) -> Match:
        if self.strict or not candidates:
            return Match(None, UNMATCHED)
        return self._play(candidates[0], POSITION)

    def _play(self, step: Step, how: str) -> Match:
        self.played[step.index] = True
        self.last = step.index
        close = self.close if self.close_after == step.index else None
        return Match(step.index, how, list(step.after), step.t, close)


def _payload(message: CassetteMessage) -> Payload | None:
    return message.wsp.payload if message.wsp is not None else None
