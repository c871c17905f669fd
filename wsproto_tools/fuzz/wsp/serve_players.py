"""The malicious server's players: how each scenario of the table is played over
one connection (the handshake it needs, its attack, its verdict).
"""

from __future__ import annotations

__all__ = ["PLAYERS", "Attack"]

from collections.abc import Awaitable, Callable

from wsproto_tools.fuzz.wsp.serve_attacks_handshake import (
    answering,
    bad_nonce,
    challenge_garbage,
    challenge_twice,
    challenge_wrong_kinds,
    early_data,
    forged_resume,
    grant_unknown,
    grant_unoffered,
    honest,
    missing_proof,
    response_first,
    wrong_proof,
)
from wsproto_tools.fuzz.wsp.serve_attacks_session import (
    ack_above_sent,
    ack_backwards,
    baseline,
    batch_ungranted,
    compressed_ungranted,
    compression_bomb,
    deliver_unsubscribed,
    flood,
    flood_long,
    header_noncanonical,
    reply_unprobed,
    response_twice,
    resume_retired,
    sequence_duplicate,
    sequence_gap,
    server_error,
    session_id_foreign,
    text_frame,
    text_invalid_utf8,
    unknown_type,
    wrong_direction,
    wsp_close,
)
from wsproto_tools.fuzz.wsp.serve_attacks_topics import (
    announced_gap,
    backwards_gap,
    delivering,
    hole,
    new_epoch,
    repeats,
)
from wsproto_tools.fuzz.wsp.serve_case import Case, Player
from wsproto_tools.fuzz.wsp.serve_judging import expect_scenario_close

#: sends a scenario's attack; False when there is nothing to judge (the handshake failed)
Attack = Callable[[Case], Awaitable[bool]]


def _closing(attack: Attack) -> Player:
    """A scenario the client must answer with the scenario's close code."""

    async def play(case: Case) -> None:
        if await attack(case):
            await expect_scenario_close(case)

    return play


def _active(player: Player, withhold: tuple[str, ...] = ()) -> Player:
    """``player`` after a complete, valid handshake (``withhold``: never granted)."""

    async def play(case: Case) -> None:
        if await case.handshake(withhold=withhold):
            await player(case)

    return play


#: scenario name -> how it is played (one entry per line of SCENARIOS)
PLAYERS: dict[str, Player] = {
    "challenge-nonce-empty": bad_nonce(0),
    "challenge-nonce-15": bad_nonce(15),
    "challenge-nonce-257": bad_nonce(257),
    "challenge-wrong-kinds": _closing(challenge_wrong_kinds),
    "challenge-garbage": _closing(challenge_garbage),
    "challenge-twice": _closing(challenge_twice),
    "response-first": _closing(response_first),
    "early-data": _closing(early_data),
    "server-proof-wrong": answering(wrong_proof, authenticates=True),
    "server-proof-missing": answering(missing_proof, authenticates=True),
    "grant-unoffered": answering(grant_unoffered),
    "grant-unknown": answering(grant_unknown),
    "response-encrypted": answering(honest, encrypted=True, authenticates=True),
    "forged-resume": answering(forged_resume),
    "response-twice": _active(_closing(response_twice)),
    "text-frame": _active(_closing(text_frame)),
    "deliver-unsubscribed": _active(_closing(deliver_unsubscribed)),
    "deliver-hole": _active(delivering(hole)),
    "deliver-epoch-change": _active(delivering(new_epoch)),
    "deliver-repeat": _active(delivering(repeats)),
    "ack-above-sent": _active(_closing(ack_above_sent)),
    "heartbeat-reply-unprobed": _active(_closing(reply_unprobed)),
    "unknown-type": _active(unknown_type),
    "sequence-gap": _active(_closing(sequence_gap)),
    "sequence-duplicate": _active(sequence_duplicate),
    "flood": _active(flood),
    "flood-long": _active(flood_long),
    "compressed-ungranted": _active(_closing(compressed_ungranted)),
    "compression-bomb": _active(_closing(compression_bomb)),
    "batch-ungranted": _active(_closing(batch_ungranted), withhold=("batch",)),
    "session-id-foreign": _active(_closing(session_id_foreign)),
    "wrong-direction": _active(_closing(wrong_direction)),
    "resume-retired": _active(_closing(resume_retired)),
    "header-noncanonical": _active(_closing(header_noncanonical)),
    "text-invalid-utf8": _active(_closing(text_invalid_utf8)),
    "deliver-continuity-lost": _active(delivering(announced_gap)),
    "continuity-lost-backwards": _active(delivering(backwards_gap)),
    "ack-backwards": _active(ack_backwards),
    "server-error": _active(server_error),
    "wsp-close": _active(wsp_close),
    "baseline": _active(baseline),
}
