"""Checklist rules 41, 42 and 44 (closing, and the failed state) against the reference
server on raw frames."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .wire import (
    ACK,
    CHALLENGE,
    CLOSE,
    HEARTBEAT,
    REQUEST,
    TEXT,
    WINDOW_UPDATE,
    Closed,
    Msg,
    Peer,
    against_client,
    assert_closed,
    hello,
    raw_server,
    run_client,
    serve_handshake,
    session,
    stop_client,
)


def lively(peer: Any, seq: int) -> list[bytes]:
    """Messages that each get an answer from a working session: a TextData (echo and
    Acknowledge), a Heartbeat probe (reply) and an echo Request (Response)."""
    return [
        peer.wire(TEXT, b"answer me", seq=seq),
        peer.wire(HEARTBEAT, {"id": seq, "reply": False}),
        peer.wire(REQUEST, {"id": seq, "method": "echo", "data": b"x"}),
    ]


# ---------------------------------------------------------------- rule 41
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_41_after_close(wsp_server: Any, side: str) -> None:
    if side == "client":
        async def after_close(peer: Peer) -> tuple[Msg, Closed, list[Msg]]:
            await serve_handshake(peer)
            close = await peer.expect(CLOSE, skip=(ACK, HEARTBEAT, WINDOW_UPDATE))
            # what a working client would answer: a TextData (Acknowledge), a probe
            await peer.send_many(
                [peer.wire(TEXT, b"answer me", seq=1),
                 peer.wire(HEARTBEAT, {"id": 1, "reply": False})]
            )
            closed, after = await peer.closed()
            return close, closed, after

        async with raw_server(after_close) as (url, result):
            client = await run_client(url)
            assert not isinstance(client, BaseException), client
            await stop_client(client)  # a wsp Close, then the WebSocket close
            async with asyncio.timeout(4.0):
                close, closed, after = await result
        assert close.body["code"] == 1000 and closed.code == 1000, (close, closed)
        assert after == [], f"the client sent more than the WebSocket close: {after}"
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send(TEXT, b"one", seq=1)
        await peer.expect(TEXT)
        # an Acknowledge of what was never sent makes the server close (rule 29)...
        await peer.send(ACK, {"sequence": 9})
        close = await peer.expect(CLOSE, skip=(ACK,))
        assert close.body["code"] == 1002
        # ...and what it receives after its Close is drained, not answered
        await peer.send_many(lively(peer, 2))
        await peer.send_many(lively(peer, 3))
        closed, after = await peer.closed()
        assert closed.code == 1002
        assert after == [], f"the server sent more than the WebSocket close: {after}"


# ---------------------------------------------------------------- rule 42
@pytest.mark.parametrize("side", ["server", "client"])
@pytest.mark.parametrize("code", [1000, 1001])
async def test_rule_42_close_answer(wsp_server: Any, code: int, side: str) -> None:
    if side == "client":
        async def close(peer: Peer) -> tuple[Closed, list[Msg]]:
            await peer.send(CLOSE, {"code": code, "reason": "done here"})
            return await peer.closed()

        closed, before = await against_client(close)
        assert closed.code == code, (closed, before)
        closes = [m for m in before if m.code == CLOSE]
        assert [m.body["code"] for m in closes] == [code], before
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send(CLOSE, {"code": code, "reason": "done here"})
        before = await assert_closed(peer, code)
        closes = [m for m in before if m.code == CLOSE]
        assert len(closes) == 1 and closes[0].body["code"] == code, before


# ---------------------------------------------------------------- rule 44
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_44_state(wsp_server: Any, side: str) -> None:
    if side == "client":
        async def fail_it(peer: Peer) -> tuple[Closed, list[Msg]]:
            await peer.quiet(0.1)  # what the client sends on its own after the handshake
            # a Challenge in the active state, then what a working client would answer
            await peer.send_many(
                [peer.wire(CHALLENGE, {"nonce": b"n" * 16, "methods": ["hmac"]}),
                 peer.wire(TEXT, b"answer me", seq=1),
                 peer.wire(HEARTBEAT, {"id": 1, "reply": False})]
            )
            return await peer.closed()

        closed, before = await against_client(fail_it)
        assert closed.code == 1002, (closed, before)
        assert [m.code for m in before] == [CLOSE], f"a failed client sent more: {before}"
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        # a Handshake in the active state (S.3 has no `active + handshake`), with
        # messages a working session would answer right behind it, in one write
        await peer.send_many([hello(peer), *lively(peer, 1)])
        before = await assert_closed(peer, 1002)
        assert [m.code for m in before] == [CLOSE], (
            f"a failed session sent more than its Close: {before}"
        )
        assert all(isinstance(m, Msg) for m in before)
