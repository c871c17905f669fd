"""Checklist rules 41, 42 and 44 (closing, and the failed state) against the reference
server on raw frames."""

from __future__ import annotations

from typing import Any

import pytest

from .wire import (
    ACK,
    CLOSE,
    HEARTBEAT,
    REQUEST,
    TEXT,
    Closed,
    Msg,
    Peer,
    against_client,
    assert_closed,
    hello,
    session,
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
async def test_rule_41_after_close(wsp_server: Any) -> None:
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
async def test_rule_44_state(wsp_server: Any) -> None:
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
