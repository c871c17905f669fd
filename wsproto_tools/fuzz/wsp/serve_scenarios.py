"""The scenarios of ``wsp fuzz --serve --suite wsp``: one attack each, the client
reaction the checklist (docs/protocol.md, S.9) demands, and the order cases play them.
"""

from __future__ import annotations

__all__ = ["SCENARIOS", "Phase", "Scenario", "plan", "scenario_for", "scenario_pool"]

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from wsproto_tools.engine.rules import Rule
from wsproto_tools.exceptions import CloseCode

_C = CloseCode


class Phase(Enum):
    """Where a scenario strikes."""

    CHALLENGE = "challenge"  # instead of (or around) the Challenge
    RESPONSE = "response"  # in the HandshakeResponse
    ACTIVE = "active"  # after a good handshake


@dataclass(frozen=True, slots=True)
class Scenario:
    """One attack and the client reaction the spec demands.

    ``close_code`` is the code the client must close with (None: it must stay open
    and answer a Heartbeat probe); ``needs`` names what the client must do first
    for the scenario to apply (``subscribe``: a Subscribe; ``resume``: a Handshake
    with a resume token); otherwise the case is skipped.
    """

    name: str
    description: str
    rule: int | None
    expect: str
    phase: Phase = Phase.ACTIVE
    close_code: int | None = None
    needs: str = ""
    accept: tuple[int, ...] = ()  # other close codes that also meet the spec


def _closes(rule: Rule, code: int | None = None) -> tuple[int, int, str]:
    value = int(rule.code if code is None else code)
    return int(rule), value, f"closes with {value} (a wsp Close, if any, with the same code)"


def _scenario(
    name: str,
    description: str,
    rule: Rule,
    phase: Phase,
    *,
    code: int | None = None,
    needs: str = "",
    accept: tuple[int, ...] = (),
) -> Scenario:
    number, value, expect = _closes(rule, code)
    if accept:
        expect += " or " + ", ".join(str(c) for c in accept)
    return Scenario(name, description, number, expect, phase, value, needs, accept)


SCENARIOS: tuple[Scenario, ...] = (
    # ------------------------------------------------------------ the Challenge
    _scenario(
        "challenge-nonce-empty",
        "a Challenge whose nonce has 0 bytes",
        Rule.NONCE_SIZE,
        Phase.CHALLENGE,
    ),
    _scenario(
        "challenge-nonce-15",
        "a Challenge whose nonce has 15 bytes",
        Rule.NONCE_SIZE,
        Phase.CHALLENGE,
    ),
    _scenario(
        "challenge-nonce-257",
        "a Challenge whose nonce has 257 bytes",
        Rule.NONCE_SIZE,
        Phase.CHALLENGE,
    ),
    _scenario(
        "challenge-wrong-kinds",
        "a Challenge whose fields have the wrong msgpack kinds",
        Rule.PAYLOAD,
        Phase.CHALLENGE,
    ),
    _scenario(
        "challenge-garbage",
        "random bytes that are no wsp header instead of a Challenge",
        Rule.HEADER,
        Phase.CHALLENGE,
    ),
    _scenario(
        "challenge-twice",
        "a second Challenge after the client's Handshake",
        Rule.HANDSHAKE_ONCE,
        Phase.CHALLENGE,
    ),
    _scenario(
        "response-first",
        "a HandshakeResponse before any Challenge",
        Rule.CHALLENGE_FIRST,
        Phase.CHALLENGE,
    ),
    _scenario(
        "early-data",
        "a BinaryData between the Handshake and the HandshakeResponse",
        Rule.NOT_YET_ACTIVE,
        Phase.CHALLENGE,
    ),
    # ------------------------------------------------------------ the HandshakeResponse
    _scenario(
        "server-proof-wrong",
        "a HandshakeResponse with a wrong server_proof",
        Rule.SERVER_PROOF,
        Phase.RESPONSE,
    ),
    _scenario(
        "server-proof-missing",
        "a HandshakeResponse without server_proof",
        Rule.SERVER_PROOF,
        Phase.RESPONSE,
    ),
    _scenario(
        "grant-unoffered",
        "a HandshakeResponse granting a known capability never offered",
        Rule.CAPABILITY_GRANTED,
        Phase.RESPONSE,
    ),
    _scenario(
        "grant-unknown",
        "a HandshakeResponse granting an unknown capability",
        Rule.CAPABILITY_GRANTED,
        Phase.RESPONSE,
    ),
    _scenario(
        "response-encrypted",
        "an ENCRYPTED HandshakeResponse",
        Rule.RESPONSE_IN_CLEAR,
        Phase.RESPONSE,
    ),
    _scenario(
        "forged-resume",
        "resumed: true with a last_received above what the client sent",
        Rule.RESUME_LAST_RECEIVED,
        Phase.RESPONSE,
        needs="resume",
    ),
    # ------------------------------------------------------------ an active session
    _scenario(
        "response-twice",
        "a second HandshakeResponse in an active session",
        Rule.STATE,
        Phase.ACTIVE,
    ),
    _scenario("text-frame", "a text WebSocket message", Rule.BINARY_ONLY, Phase.ACTIVE),
    _scenario(
        "deliver-unsubscribed",
        "a Deliver for a topic never subscribed",
        Rule.SUBSCRIBED_FIRST,
        Phase.ACTIVE,
    ),
    _scenario(
        "deliver-hole",
        "Delivers that skip an offset without a ContinuityLost",
        Rule.DELIVER_ORDER,
        Phase.ACTIVE,
        needs="subscribe",
    ),
    _scenario(
        "deliver-epoch-change",
        "a Deliver of a new epoch without a ContinuityLost",
        Rule.DELIVER_ORDER,
        Phase.ACTIVE,
        needs="subscribe",
    ),
    Scenario(
        "deliver-repeat",
        "Delivers, then some of them again (a replay overlap)",
        int(Rule.DELIVER_DUPLICATE),
        "drops the repeats, stays open and answers a Heartbeat probe",
        Phase.ACTIVE,
        None,
        "subscribe",
    ),
    _scenario(
        "ack-above-sent", "an Acknowledge above what the client sent", Rule.ACK_RANGE, Phase.ACTIVE
    ),
    _scenario(
        "heartbeat-reply-unprobed",
        "a Heartbeat reply to a probe never sent",
        Rule.HEARTBEAT_REPLY,
        Phase.ACTIVE,
    ),
    Scenario(
        "unknown-type",
        "a message of an unknown type (0x0350)",
        int(Rule.UNKNOWN_TYPE),
        "answers an Error 1003 and stays open (answers a Heartbeat probe)",
        Phase.ACTIVE,
    ),
    _scenario(
        "sequence-gap",
        "a sequenced BinaryData that skips a sequence number",
        Rule.SEQUENCE_GAP,
        Phase.ACTIVE,
    ),
    Scenario(
        "sequence-duplicate",
        "a sequenced BinaryData sent twice",
        int(Rule.SEQUENCE_DUPLICATE),
        "drops the repeat, acknowledges it again and stays open",
        Phase.ACTIVE,
    ),
    Scenario(
        "flood",
        "hundreds of valid sequenced messages in one write",
        None,
        "acknowledges them all and answers a Heartbeat probe (or closes with a "
        "documented code: 1001, 1009, 1013, 4004, 4005)",
        Phase.ACTIVE,
    ),
    Scenario(
        "flood-long",
        "over 10,000 valid sequenced data messages, never more than 1,024 unacknowledged",
        None,
        "keeps acknowledging and answers a Heartbeat probe: data the application does not "
        "read must not stall the session",
        Phase.ACTIVE,
    ),
    _scenario(
        "compressed-ungranted",
        "a small COMPRESSED message without the compress capability",
        Rule.FLAG_NEGOTIATED,
        Phase.ACTIVE,
    ),
    _scenario(
        "compression-bomb",
        "a COMPRESSED message (a DEFLATE bomb of 4-16 MiB) without the compress capability",
        Rule.FLAG_NEGOTIATED,
        Phase.ACTIVE,
        # not 1009: the flag is in the header, and a payload under a flag that was
        # never granted is refused, not inflated (section 1, rule 22)
    ),
    _scenario(
        "batch-ungranted", "a Batch when batch was not granted", Rule.BATCH_NEGOTIATED, Phase.ACTIVE
    ),
    _scenario(
        "session-id-foreign",
        "a header session id other than the session's",
        Rule.SESSION_ID,
        Phase.ACTIVE,
    ),
    _scenario(
        "wrong-direction",
        "a Publish (a client-only message) from the server",
        Rule.DIRECTION,
        Phase.ACTIVE,
    ),
    _scenario("resume-retired", "a Resume message (retired)", Rule.RESUME_RETIRED, Phase.ACTIVE),
    _scenario(
        "header-noncanonical",
        "a header that does not decode in canonical form (an over-long sequence varint)",
        Rule.HEADER,
        Phase.ACTIVE,
    ),
    _scenario(
        "text-invalid-utf8",
        "a sequenced TextData whose payload is not UTF-8",
        Rule.PAYLOAD,
        Phase.ACTIVE,
    ),
    Scenario(
        "deliver-continuity-lost",
        "Delivers, a ContinuityLost, then a Deliver after the announced gap",
        int(Rule.CONTINUITY),
        "accepts the gap ContinuityLost announced and stays open (answers a Heartbeat probe)",
        Phase.ACTIVE,
        None,
        "subscribe",
    ),
    Scenario(
        "continuity-lost-backwards",
        "a ContinuityLost whose first_available the subscriber already has, then the "
        "Delivers from there on again",
        int(Rule.DELIVER_DUPLICATE),
        "drops the offsets it already has (delivers each offset once) and stays open, "
        "or closes with 1002 (a ContinuityLost that loses nothing)",
        Phase.ACTIVE,
        None,
        "subscribe",
        (int(_C.PROTOCOL_ERROR),),
    ),
    Scenario(
        "ack-backwards",
        "an Acknowledge below an earlier one",
        int(Rule.ACK_BACKWARDS),
        "ignores it and stays open (answers a Heartbeat probe)",
        Phase.ACTIVE,
    ),
    Scenario(
        "server-error",
        "a sequenced Error (a problem that does not end the session, section 7.1)",
        None,
        "acknowledges it and stays open (answers a Heartbeat probe)",
        Phase.ACTIVE,
    ),
    Scenario(
        "wsp-close",
        "a wsp Close from the server",
        int(Rule.CLOSE_ANSWER),
        "answers a Close of the same code, then closes the WebSocket with it",
        Phase.ACTIVE,
    ),
    Scenario(
        "baseline",
        "a valid session: nothing wrong",
        None,
        "stays open and answers a Heartbeat probe",
        Phase.ACTIVE,
    ),
)

_BY_NAME = {s.name: s for s in SCENARIOS}


def scenario_pool(names: Sequence[str] | None) -> tuple[Scenario, ...]:
    """The scenarios named (all of :data:`SCENARIOS` for None); ValueError for an unknown name."""
    if names is None:
        return SCENARIOS
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}")
    return tuple(_BY_NAME[n] for n in names)


def scenario_for(seed: int, index: int, names: Sequence[str] | None = None) -> Scenario:
    """The scenario case ``index`` plays: a seeded permutation of the pool per block."""
    pool = scenario_pool(names)
    block, position = divmod(index, len(pool))
    order = list(range(len(pool)))
    random.Random(f"{seed}:block:{block}").shuffle(order)
    return pool[order[position]]


def plan(seed: int, cases: int, names: Sequence[str] | None = None) -> list[str]:
    """The names of the scenarios of cases 0 .. cases-1."""
    return [scenario_for(seed, i, names).name for i in range(cases)]
