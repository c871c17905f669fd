"""The malicious server's attacks on the handshake: a bad Challenge, or a forged
HandshakeResponse, each judged by the close its checklist rule demands.
"""

from __future__ import annotations

__all__ = [
    "Forge",
    "answering",
    "bad_nonce",
    "challenge_garbage",
    "challenge_twice",
    "challenge_wrong_kinds",
    "early_data",
    "forged_resume",
    "grant_unknown",
    "grant_unoffered",
    "honest",
    "missing_proof",
    "response_first",
    "wrong_proof",
]

from collections.abc import Callable
from typing import Any

import msgpack

from wsproto_tools.codec import (
    BinaryData,
    Challenge,
    Cipher,
    Flags,
    Handshake,
    HandshakeResponse,
    counter_nonces,
)
from wsproto_tools.engine.keys import derive_session_keys
from wsproto_tools.fuzz.wsp.findings import Oracle
from wsproto_tools.fuzz.wsp.serve_case import GRANTABLE, TOKEN_PREFIX, Case, Player
from wsproto_tools.fuzz.wsp.serve_judging import (
    expect_open,
    expect_scenario_close,
    security_after_response,
)
from wsproto_tools.fuzz.wsp.serve_link import raw_message
from wsproto_tools.ws import Opcode


# ------------------------------------------------------------ the Challenge
def bad_nonce(size: int) -> Player:
    async def play(case: Case) -> None:
        await case.send(Challenge(case.rng.randbytes(size), ("hmac",)))
        await expect_scenario_close(case)
        if "Authenticate" in case.seen:  # rule 7: before computing a proof
            what = case.scenario.description
            case.finding(Oracle.SECURITY, 0, what, "no proof over a bad nonce", "an Authenticate")

    return play


async def challenge_wrong_kinds(case: Case) -> bool:
    rng = case.rng
    bodies: list[dict[str, Any]] = [
        {"nonce": rng.randbytes(16).hex(), "methods": ["hmac"]},  # str for bytes
        {"nonce": rng.randrange(1 << 30), "methods": ["hmac"]},  # int for bytes
        {"nonce": rng.randbytes(16), "methods": "hmac"},  # str for an array
        {"nonce": rng.randbytes(16), "methods": [1, 2]},  # ints in a str array
        {"methods": ["hmac"]},  # the required nonce missing
    ]
    body = msgpack.packb(rng.choice(bodies), use_bin_type=True)
    await case.link.send_frame(Opcode.BINARY, raw_message(case.link.version, Challenge.TYPE, body))
    return True


async def challenge_garbage(case: Case) -> bool:
    rng = case.rng  # a first byte that is neither v1's 0xD1 nor a v2 head byte
    first = rng.choice([*range(0x00, 0x40), *range(0x80, 0xD1), *range(0xD2, 0x100)])
    await case.link.send_frame(Opcode.BINARY, bytes((first,)) + rng.randbytes(rng.randrange(64)))
    return True


async def challenge_twice(case: Case) -> bool:
    if await case.challenge() is None:
        return False
    await case.send(Challenge(case.rng.randbytes(16), ("hmac",)))
    return True


async def response_first(case: Case) -> bool:
    case.nonce, case.client_nonce = case.rng.randbytes(16), case.rng.randbytes(16)
    await case.send(case.response(server_proof=case.rng.randbytes(32)))
    return True


async def early_data(case: Case) -> bool:
    if await case.challenge() is None:
        return False
    await case.send(BinaryData(case.rng.randbytes(8)), seq=1, flags=Flags.ACK_REQUESTED)
    return True


# ------------------------------------------------------------ the HandshakeResponse
#: the forged answer to a client's Handshake, or why the scenario does not apply
Forge = Callable[[Case, Handshake], HandshakeResponse | str]


async def _new_session_instead(case: Case, why: str) -> None:
    """The scenario does not apply to this client: an honest session, not judged."""
    case.skip(why)
    await case.send(case.response())
    case.active = True
    await expect_open(case, 0, "a new session instead")
    await case.finish()


def answering(forge: Forge, *, encrypted: bool = False, authenticates: bool = False) -> Player:
    async def play(case: Case) -> None:
        hello = await case.challenge()
        if hello is None:
            return
        answer = forge(case, hello)
        if isinstance(answer, str):
            await _new_session_instead(case, answer)
            return
        start = len(case.seen)
        if encrypted:
            keys = derive_session_keys(case.secret, case.nonce, case.client_nonce)
            cipher = Cipher(keys.server_to_client, counter_nonces(b"wsps"))
            await case.link.send(
                case.link.wire(case.message(answer, flags=Flags.ENCRYPTED), cipher)
            )
        else:
            await case.send(answer)
        await expect_scenario_close(case)
        if authenticates:  # the client must not go on with a server that did not prove itself
            security_after_response(case, 0, case.scenario.description, start)

    return play


def forged_resume(case: Case, hello: Handshake) -> HandshakeResponse | str:
    token = hello.resume_token or b""
    end = len(TOKEN_PREFIX) + 8
    if not token.startswith(TOKEN_PREFIX) or len(token) < end:
        return "the client offered no resume token of ours (it did not reconnect)"
    session_id = int.from_bytes(token[len(TOKEN_PREFIX) : end], "big")
    forged = (1 << 20) + case.rng.randrange(1 << 20)  # far above anything it sent
    answer = case.response(session_id=session_id, resumed=True, last_received=forged)
    case.session_id = session_id
    return answer


def wrong_proof(case: Case, hello: Handshake) -> HandshakeResponse | str:
    return case.response(server_proof=case.rng.randbytes(32))


def missing_proof(case: Case, hello: Handshake) -> HandshakeResponse | str:
    return case.response(server_proof=None)


def grant_unoffered(case: Case, hello: Handshake) -> HandshakeResponse | str:
    known = ("compress", "encrypt", "delta", "batch", "pubsub")
    choices = [c for c in known if c not in case.offered]
    if not choices:
        return "the client offered every capability"
    granted = [c for c in case.offered if c in GRANTABLE]
    return case.response(capabilities=(*granted, case.rng.choice(choices)))


def grant_unknown(case: Case, hello: Handshake) -> HandshakeResponse | str:
    granted = [c for c in case.offered if c in GRANTABLE]
    unknown = case.rng.choice(("teleport", "quantum", "ACK", "pubsub2", ""))
    return case.response(capabilities=(*granted, unknown))


def honest(case: Case, hello: Handshake) -> HandshakeResponse | str:
    return case.response()
