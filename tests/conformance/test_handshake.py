"""Checklist rules 6-21 (the handshake, authentication, capabilities, encryption,
resume and session ids): the server's duties against the reference server on raw
frames, the client's duties against ``wsproto_tools.client`` and a raw server,
and what only an observer sees against ``SessionObserver``."""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any

import jwt
import pytest

from .wire import (
    ACK,
    AUTHENTICATE,
    CHALLENGE,
    CLOSE,
    ENCRYPTED,
    HANDSHAKE,
    HANDSHAKE_RESPONSE,
    HEARTBEAT,
    PUBLISH,
    REQUEST,
    SECRET,
    SUBSCRIBE,
    TEXT,
    WINDOW_UPDATE,
    Closed,
    Msg,
    Peer,
    Sealer,
    assert_closed,
    authenticate,
    challenged,
    client_closes,
    client_proof,
    connect,
    handshake,
    hello,
    serve_handshake,
    session,
    session_keys,
)

JWT_KEY = b"conformance-jwt-key-of-32-bytes!"


def token(sub: str = "alice", key: bytes = JWT_KEY, **claims: Any) -> str:
    body: dict[str, Any] = {"sub": sub, "exp": int(time.time()) + 300}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, "HS256")


async def echoed(peer: Peer, text: bytes, seq: int) -> Msg:
    """Send TextData ``seq`` and return the server's echo of it (S.4)."""
    await peer.send(TEXT, text, seq=seq)
    msg = await peer.expect(TEXT)
    assert msg.payload == text
    return msg


# ---------------------------------------------------------------- rule 6
@pytest.mark.parametrize(
    "case", ["server-speaks-first", "response-after-authenticate", "client", "observer"]
)
async def test_rule_06_challenge_first(wsp_server: Any, case: str) -> None:
    if case == "server-speaks-first":  # a Challenge, unsolicited, whatever the method
        configs: list[tuple[dict[str, Any], list[str]]] = [
            ({}, ["hmac"]),
            ({"secret": None, "jwt_key": JWT_KEY}, ["jwt"]),
            ({"secret": None, "no_auth": True}, ["none"]),
        ]
        for config, methods in configs:
            async with wsp_server(**config) as port:
                peer = await connect(port)
                first = await peer.recv()
                assert isinstance(first, Msg) and first.code == CHALLENGE, first
                assert 16 <= len(first.body["nonce"]) <= 256
                assert first.body.get("methods") == methods
                await peer.drop()
    elif case == "response-after-authenticate":  # with hmac, not after the Handshake alone
        async with wsp_server() as port:
            peer = await challenged(port)
            await peer.send_many([hello(peer)])
            assert await peer.quiet(0.2) == [], "answered before the Authenticate"
            await peer.send_many([authenticate(peer)])
            await peer.expect(HANDSHAKE_RESPONSE, skip=())
            await peer.drop()
    elif case == "client":  # a HandshakeResponse before any Challenge
        async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
            await peer.send(HANDSHAKE_RESPONSE, {"session_id": 7, "capabilities": ["ack"]})
            return await peer.closed()

        closed, before = await client_closes(script)
        assert closed.code == 1002, (closed, before)
    else:  # the observer: a Handshake before the Challenge, a response before the Handshake
        from wsproto_tools.codec.schema import Challenge, Handshake, HandshakeResponse, Message
        from wsproto_tools.engine.observer import Direction, SessionObserver

        c2s, s2c = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
        early = Message(Handshake(capabilities=("ack",), auth="none", client_nonce=os.urandom(16)))
        findings = SessionObserver().feed(c2s, early, 0.0)
        assert [getattr(f, "rule_id", None) for f in findings] == [6], findings
        assert findings[0].close_code == 1002
        observer = SessionObserver()
        assert observer.feed(s2c, Message(Challenge(os.urandom(16), ("none",))), 0.0) == []
        response = Message(HandshakeResponse(session_id=7, capabilities=("ack",)))
        findings = observer.feed(s2c, response, 0.0)
        assert 6 in [getattr(f, "rule_id", None) for f in findings], findings


# ---------------------------------------------------------------- rule 7 (the client's duty)
@pytest.mark.parametrize("size", [8, 15, 257])
async def test_rule_07_nonce_size(size: int) -> None:
    async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
        await peer.send(CHALLENGE, {"nonce": os.urandom(size), "methods": ["hmac"]})
        return await peer.closed()

    closed, before = await client_closes(script)
    assert closed.code == 1002, (closed, before)
    assert all(m.code != AUTHENTICATE for m in before), "a proof was computed"
    assert all(m.body["code"] == 1002 for m in before if m.code == CLOSE)


# ---------------------------------------------------------------- rule 8
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_08_handshake_once(wsp_server: Any, side: str) -> None:
    if side == "client":  # a second Challenge, after the HandshakeResponse
        async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
            await serve_handshake(peer)
            await peer.send(CHALLENGE, {"nonce": os.urandom(16), "methods": ["hmac"]})
            return await peer.closed()

        closed, before = await client_closes(script)
        assert closed.code == 1002, (closed, before)
        return
    async with wsp_server() as port:  # a second Handshake, before the Authenticate
        peer = await challenged(port)
        await peer.send_many([hello(peer), hello(peer)])
        await assert_closed(peer, 1002)


# ---------------------------------------------------------------- rule 9
@pytest.mark.parametrize("auth", ["absent", "none", "jwt", "kerberos"])
async def test_rule_09_auth_method(wsp_server: Any, auth: str) -> None:
    async with wsp_server() as port:  # a shared secret only: methods ["hmac"]
        peer = await challenged(port)
        assert peer.seen[0].body["methods"] == ["hmac"]  # type: ignore[union-attr]
        fields: dict[str, Any] = {"token": token()} if auth == "jwt" else {}
        await peer.send_many([hello(peer, auth=None if auth == "absent" else auth, **fields)])
        await assert_closed(peer, 4001)


# ---------------------------------------------------------------- rule 10
async def test_rule_10_capability_known(wsp_server: Any) -> None:
    async with wsp_server() as port:
        peer = await challenged(port)
        await peer.send_many(
            [hello(peer, capabilities=("ack", "teleport")), authenticate(peer)]
        )
        await assert_closed(peer, 4007)


# ---------------------------------------------------------------- rule 11
@pytest.mark.parametrize(
    "case", ["before-handshake", "other-method", "after-accept-jwt", "after-accept-none"]
)
async def test_rule_11_authenticate(wsp_server: Any, case: str) -> None:
    if case in ("before-handshake", "other-method"):
        async with wsp_server() as port:
            peer = await challenged(port)
            if case == "before-handshake":
                peer.client_nonce = os.urandom(16)
                await peer.send_many([authenticate(peer), hello(peer)])
                await assert_closed(peer, 1002)
            else:  # an hmac Handshake, then an Authenticate naming another method
                first = hello(peer)
                proof = client_proof(SECRET, peer.nonce, peer.client_nonce)
                await peer.send_many(
                    [first, peer.wire(AUTHENTICATE, {"method": "jwt", "proof": proof})]
                )
                before = await assert_closed(peer, 4001)
                assert all(m.code != HANDSHAKE_RESPONSE for m in before)
        return
    # a jwt or none Handshake is accepted at once: an Authenticate after it is late
    if case == "after-accept-jwt":
        config: dict[str, Any] = {"jwt_key": JWT_KEY}
        first_fields: dict[str, Any] = {"auth": "jwt", "token": token()}
    else:
        config = {"secret": None, "no_auth": True}
        first_fields = {"auth": "none"}
    async with wsp_server(**config) as port:
        peer = await challenged(port)
        await peer.send_many([hello(peer, **first_fields), authenticate(peer)])
        before = await assert_closed(peer, 1002)
        assert before[0].code == HANDSHAKE_RESPONSE, before


# ---------------------------------------------------------------- rule 12
@pytest.mark.parametrize("case", ["wrong-secret", "short-client-nonce", "truncated-proof"])
async def test_rule_12_hmac_proof(wsp_server: Any, case: str) -> None:
    async with wsp_server() as port:
        peer = await challenged(port)
        if case == "wrong-secret":
            out = [hello(peer), authenticate(peer, b"not-the-secret")]
        elif case == "short-client-nonce":
            out = [hello(peer, client_nonce=os.urandom(8)), authenticate(peer)]
        else:
            first = hello(peer)
            proof = client_proof(SECRET, peer.nonce, peer.client_nonce)[:16]
            out = [first, peer.wire(AUTHENTICATE, {"method": "hmac", "proof": proof})]
        await peer.send_many(out)
        before = await assert_closed(peer, 4001)
        assert all(m.code != HANDSHAKE_RESPONSE for m in before)


# ---------------------------------------------------------------- rule 13
@pytest.mark.parametrize(
    "case", ["forged", "no-exp", "expired", "not-yet-valid", "expires-during-session"]
)
async def test_rule_13_jwt(wsp_server: Any, case: str) -> None:
    now = time.time()
    tokens = {
        "forged": token(key=b"another-key-another-key-another!"),
        "no-exp": token(exp=None),
        "expired": token(exp=int(now) - 30),
        "not-yet-valid": token(nbf=int(now) + 60),
        "expires-during-session": token(exp=math.ceil(now) + 1),
    }
    async with wsp_server(secret=None, jwt_key=JWT_KEY) as port:
        peer = await challenged(port)
        if case != "expires-during-session":
            await peer.send_many([hello(peer, auth="jwt", token=tokens[case])])
            before = await assert_closed(peer, 4001)
            assert all(m.code != HANDSHAKE_RESPONSE for m in before)
            return
        answer = await handshake(peer, auth="jwt", token=tokens[case])
        assert not answer["resumed"]
        # the sweeper runs every 0.05 s here; exp is at most 2 s away
        await assert_closed(peer, 4001, timeout=3.5)


# ---------------------------------------------------------------- rule 14 (the client's duty)
@pytest.mark.parametrize("proof", ["wrong", "missing"])
async def test_rule_14_server_proof(proof: str) -> None:
    async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
        await serve_handshake(peer, proof=proof)
        return await peer.closed()

    closed, before = await client_closes(script)
    assert closed.code == 4001, (closed, before)
    assert all(m.body["code"] == 4001 for m in before if m.code == CLOSE)


# ---------------------------------------------------------------- rule 15 (the client's duty)
@pytest.mark.parametrize("grant", ["delta", "teleport"])
async def test_rule_15_capability_granted(grant: str) -> None:
    async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
        await serve_handshake(peer, grant=("ack", grant))
        return await peer.closed()

    # the client offers its defaults (ack, batch, pubsub): never delta, never teleport
    closed, before = await client_closes(script)
    assert closed.code == 4007, (closed, before)
    assert all(m.body["code"] == 4007 for m in before if m.code == CLOSE)


# ---------------------------------------------------------------- rule 16
@pytest.mark.parametrize(
    "case",
    [
        "publish",
        "text",
        "subscribe",
        "heartbeat",
        "acknowledge",
        "request",
        "unknown-type",
        "text-between-handshake-and-authenticate",
    ],
)
async def test_rule_16_not_yet_active(wsp_server: Any, case: str) -> None:
    async with wsp_server() as port:
        peer = await challenged(port)
        early = {
            "publish": [peer.wire(PUBLISH, {"topic": "t", "data": b"x", "id": 1}, seq=1)],
            "text": [peer.wire(TEXT, b"hi", seq=1)],
            "subscribe": [peer.wire(SUBSCRIBE, {"topic": "t"})],
            "heartbeat": [peer.wire(HEARTBEAT, {"id": 1, "reply": False})],
            "acknowledge": [peer.wire(ACK, {"sequence": 0})],
            "request": [peer.wire(REQUEST, {"id": 1, "method": "echo", "data": b"x"})],
            # rule 16's "anything else" covers a type rule 40 would answer with an Error
            "unknown-type": [peer.wire(0x0350, raw=b"\xaa")],
            "text-between-handshake-and-authenticate": [
                hello(peer), peer.wire(TEXT, b"hi", seq=1), authenticate(peer)
            ],
        }[case]
        await peer.send_many(early)
        before = await assert_closed(peer, 1008)
        assert all(m.code != HANDSHAKE_RESPONSE for m in before)


# ---------------------------------------------------------------- rule 17
@pytest.mark.parametrize("side", ["server-silent", "server-no-authenticate", "client"])
async def test_rule_17_handshake_timeout(wsp_server: Any, side: str) -> None:
    if side == "client":
        async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
            return await peer.closed()  # upgraded, then not a word

        started = time.monotonic()
        closed, before = await client_closes(script, open_timeout=0.3)
        assert closed.code == 4002, (closed, before)
        assert time.monotonic() - started < 1.5
        return
    async with wsp_server(handshake_timeout=0.3) as port:
        peer = await challenged(port)
        if side == "server-no-authenticate":
            await peer.send_many([hello(peer)])
        started = time.monotonic()
        # S.7 names no wsp Close for 4002; one, if sent, must say 4002
        await assert_closed(peer, 4002, wsp_close=None)
        assert time.monotonic() - started < 1.0


# ---------------------------------------------------------------- rule 18
def check_sealed_stream(messages: list[Msg], start: int = 0) -> int:
    """Every server message is ENCRYPTED, with nonces wsps || 0, 1, 2...;
    returns the next counter."""
    counter = start
    for msg in messages:
        assert msg.flags & ENCRYPTED, f"in clear after encryption began: {msg}"
        assert msg.nonce[:4] == b"wsps", msg.nonce
        assert int.from_bytes(msg.nonce[4:], "little") == counter, (msg.nonce, counter)
        counter += 1
    return counter


def check_client_sealed(messages: list[Msg]) -> None:
    """Every client message is ENCRYPTED, with nonces wspc || 0, 1, 2..."""
    for counter, msg in enumerate(messages):
        assert msg.flags & ENCRYPTED, f"in clear after encryption began: {msg}"
        assert msg.nonce == b"wspc" + counter.to_bytes(8, "little"), (msg, counter)


@pytest.mark.parametrize("case", ["fresh", "resume", "the-client"])
async def test_rule_18_response_in_clear(wsp_server: Any, case: str) -> None:
    if case == "the-client":
        async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
            await serve_handshake(peer)  # grants what was offered: encrypt too
            c2s, s2c = session_keys(SECRET, peer.nonce, peer.client_nonce)
            peer.incoming, peer.outgoing = Sealer(c2s, b"wspc"), Sealer(s2c, b"wsps")
            await peer.send(TEXT, b"sealed", seq=1)  # opened and acknowledged
            await peer.expect(ACK, skip=(HEARTBEAT, WINDOW_UPDATE))
            await peer.send(TEXT, b"clear", seq=2, seal=False)
            closed, _ = await peer.closed()
            return closed, [m for m in peer.seen[2:] if isinstance(m, Msg)]

        closed, after = await client_closes(
            script, capabilities=("ack", "batch", "pubsub", "encrypt")
        )
        assert closed.code == 4007, (closed, after)
        check_client_sealed(after)
        assert [m.body["code"] for m in after if m.code == CLOSE] == [4007], after
        return
    caps = ("ack", "pubsub", "encrypt")
    async with wsp_server() as port:
        peer, answer = await session(port, capabilities=caps)  # asserts: response in clear
        assert "encrypt" in answer["capabilities"]
        if case == "resume":
            old_id, old_token = peer.session_id, peer.resume_token
            await peer.drop()
            await asyncio.sleep(0.05)
            peer = await challenged(port)
            answer = await handshake(
                peer, capabilities=caps, resume_token=old_token, last_received=0
            )
            assert answer["resumed"] is True and answer["session_id"] == old_id
            assert peer.outgoing is not None and peer.outgoing.counter == 0
        # under this connection's keys: the server opens ours, we open its echo
        await peer.send(TEXT, b"sealed", seq=1)
        echo = await peer.expect(TEXT)
        assert echo.payload == b"sealed"
        after = [m for m in peer.seen if isinstance(m, Msg)]
        after = after[after.index(answer["_msg"]) + 1 :]
        check_sealed_stream(after)
        # a message in clear after encryption began
        await peer.send(TEXT, b"clear", seq=2, seal=False)
        before = await assert_closed(peer, 4007)
        check_sealed_stream(before, start=len(after))


# ---------------------------------------------------------------- rule 19
RECONNECTING: dict[str, Any] = {"max_attempts": 3, "backoff_base": 0.01, "backoff_cap": 0.05}


async def test_rule_19_resume_token(wsp_server: Any) -> None:
    # the client sends the token back byte for byte, as a msgpack bin
    opaque = b"\x00\xff not utf-8 \x80" + os.urandom(8)

    async def first(peer: Peer) -> None:
        await serve_handshake(peer, resume_token=opaque)
        await peer.drop()  # lost: the client reconnects and resumes

    async def second(peer: Peer) -> dict[str, Any]:
        await peer.send(CHALLENGE, {"nonce": os.urandom(16), "methods": ["hmac"]})
        resumed: dict[str, Any] = (await peer.expect(HANDSHAKE, skip=())).body
        await peer.drop()
        return resumed

    resumed = await client_closes(first, second, **RECONNECTING)
    assert resumed.get("resume_token") == opaque, resumed
    assert resumed.get("last_received") == 0, resumed
    # the server: a bin token, and a bad one starts a new session
    async with wsp_server(jwt_key=JWT_KEY) as port:
        peer, answer = await session(port)
        held = (peer.session_id, peer.resume_token)
        assert isinstance(answer["resume_token"], bytes), "resume_token is not a msgpack bin"
        await peer.drop()
        await asyncio.sleep(0.05)

        async def resume(token_bytes: bytes, **kw: Any) -> dict[str, Any]:
            again = await challenged(port)
            reply = await handshake(again, resume_token=token_bytes, last_received=0, **kw)
            # S.2: every HandshakeResponse carries a token (a bin), a resumed one too
            assert isinstance(reply.get("resume_token"), bytes) and reply["resume_token"]
            # not an error: the session goes on (data is echoed)
            await echoed(again, b"still here", 1)
            await again.drop()
            await asyncio.sleep(0.05)
            return reply

        # one bit changed in the middle (not the last byte: in the reference server's
        # base64url text the last character carries padding bits a decoder ignores)
        middle = len(held[1]) // 2
        forged = held[1][:middle] + bytes((held[1][middle] ^ 0x01,)) + held[1][middle + 1 :]
        for bad in (os.urandom(40), forged, b""):
            reply = await resume(bad)
            assert reply["resumed"] is False, bad
            assert reply["session_id"] != held[0]
        # another identity's resume (a JWT subject) starts a new session too
        reply = await resume(held[1], auth="jwt", token=token("mallory"))
        assert reply["resumed"] is False and reply["session_id"] != held[0]
        # the token sent back byte for byte resumes the session
        reply = await resume(held[1])
        assert reply["resumed"] is True and reply["session_id"] == held[0]


# ---------------------------------------------------------------- rule 20
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_20_resume_last_received(wsp_server: Any, side: str) -> None:
    if side == "client":
        async def first(peer: Peer) -> None:
            await serve_handshake(peer)
            await peer.drop()

        async def second(peer: Peer) -> tuple[Closed, list[Msg]]:
            # the client sent nothing sequenced; the server claims 5 received
            await serve_handshake(peer, resumed=True, last_received=5)
            return await peer.closed()

        closed, before = await client_closes(first, second, **RECONNECTING)
        assert closed.code == 1002, (closed, before)
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        await echoed(peer, b"one", 1)  # the server has sent exactly one sequenced message
        held = (peer.session_id, peer.resume_token)
        await peer.drop()
        await asyncio.sleep(0.05)
        peer = await challenged(port)
        await peer.send_many(
            [hello(peer, resume_token=held[1], last_received=5), authenticate(peer)]
        )
        await assert_closed(peer, 1002)


# ---------------------------------------------------------------- rule 21
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_21_session_id(wsp_server: Any, side: str) -> None:
    if side == "client":
        async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
            await serve_handshake(peer)
            await peer.send(TEXT, b"mine", seq=1, session_id=peer.session_id)  # accepted
            for _ in range(10):  # the client's Acknowledge of 1 (bounded)
                ack = await peer.expect(ACK, skip=(HEARTBEAT, WINDOW_UPDATE))
                if ack.body["sequence"] >= 1:
                    break
            else:
                raise AssertionError("the client did not acknowledge sequence 1")
            await peer.send(TEXT, b"other", seq=2, session_id=peer.session_id ^ 0x5A5A)
            return await peer.closed()

        closed, before = await client_closes(script)
        assert closed.code == 1002, (closed, before)
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        # the id of the session itself is accepted
        await peer.send(TEXT, b"mine", seq=1, session_id=peer.session_id)
        assert (await peer.expect(TEXT)).payload == b"mine"
        # v2 senders leave it out: no server message has S set
        assert all(m.session_id == 0 for m in peer.seen if isinstance(m, Msg)), peer.seen
        await peer.send(TEXT, b"other", seq=2, session_id=peer.session_id ^ 0x5A5A)
        await assert_closed(peer, 1002)
