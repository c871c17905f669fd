"""Checklist rules 34 and 36-39 (topics): the server's duties against the reference
server on raw frames; a subscriber's duties (36-38) against ``wsproto_tools.client``
and a raw server that delivers what it should not."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest

from .wire import (
    ACK,
    CONTINUITY_LOST,
    DELIVER,
    HEARTBEAT,
    PUBLISH,
    SUBSCRIBE,
    SUBSCRIBED,
    WINDOW_UPDATE,
    Closed,
    Msg,
    Peer,
    assert_closed,
    client_closes,
    raw_server,
    run_client,
    serve_handshake,
    session,
    stop_client,
)

JWT_KEY = b"conformance-jwt-key-of-32-bytes!"
CLIENT_NOISE = (ACK, HEARTBEAT, WINDOW_UPDATE)


def acks(messages: list[Msg]) -> list[int]:
    return [m.body["sequence"] for m in messages if m.code == ACK]


async def collect(peer: Peer, count: int, code: int, timeout: float = 2.0) -> list[Msg]:
    """Every message (Acknowledges left out) until ``count`` of type ``code``."""
    out: list[Msg] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while sum(m.code == code for m in out) < count:
        got = await peer.recv(max(deadline - loop.time(), 0.0))
        assert isinstance(got, Msg), f"{got} before {count} x 0x{code:04x}; saw {out}"
        if got.code != ACK:
            out.append(got)
    return out


# ---------------------------------------------------------------- rule 34
@pytest.mark.parametrize("action", ["publish", "subscribe"])
async def test_rule_34_topic_allowed(wsp_server: Any, action: str) -> None:
    claims = {
        "sub": "alice",
        "exp": int(time.time()) + 300,
        "wsp": {"pub": ["ok.*"], "sub": ["ok.*"]},
    }
    credential = jwt.encode(claims, JWT_KEY, "HS256")
    async with wsp_server(secret=None, jwt_key=JWT_KEY) as port:
        peer, _ = await session(port, auth="jwt", token=credential)
        if action == "publish":
            await peer.send(PUBLISH, {"topic": "ok.1", "data": b"fine", "id": 1}, seq=1)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2.0
            while 1 not in acks([m for m in peer.seen if isinstance(m, Msg)]):
                got = await peer.recv(max(deadline - loop.time(), 0.0))
                assert isinstance(got, Msg), f"allowed publish not acknowledged: {got}"
            await peer.send(PUBLISH, {"topic": "secret.x", "data": b"no", "id": 2}, seq=2)
            before = await assert_closed(peer, 4003)
            assert all(a < 2 for a in acks(before)), f"the refused publish was acked: {before}"
        else:
            await peer.send(SUBSCRIBE, {"topic": "ok.1"})
            assert (await peer.expect(SUBSCRIBED)).body["topic"] == "ok.1"
            await peer.send(SUBSCRIBE, {"topic": "secret.x"})
            before = await assert_closed(peer, 4003)
            assert all(m.code != SUBSCRIBED for m in before), before


# ---------------------------------------------------------------- rules 36-38: the subscriber
def deliver(topic: str, epoch: int, offset: int, data: bytes) -> dict[str, Any]:
    return {"topic": topic, "epoch": epoch, "offset": offset, "data": data}


async def subscribed(peer: Peer, epoch: int = 5, next_offset: int = 1) -> str:
    """Answer the client's Subscribe; returns the topic."""
    topic: str = (await peer.expect(SUBSCRIBE, skip=CLIENT_NOISE)).body["topic"]
    await peer.send(SUBSCRIBED, {"topic": topic, "epoch": epoch, "next_offset": next_offset})
    return topic


@pytest.mark.parametrize("case", ["never-subscribed", "other-topic"])
async def test_rule_36_subscribed_first(case: str) -> None:
    async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
        await serve_handshake(peer)
        if case == "other-topic":
            await subscribed(peer)
        await peer.send(DELIVER, deliver("elsewhere", 5, 1, b"x"))
        return await peer.closed()

    closed, before = await client_closes(
        script, subscribe="news" if case == "other-topic" else None
    )
    assert closed.code == 1002, (closed, before)


@pytest.mark.parametrize("case", ["skipped-offset", "new-epoch"])
async def test_rule_37_deliver_order(case: str) -> None:
    async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
        await serve_handshake(peer)
        topic = await subscribed(peer, epoch=5)
        second = deliver(topic, 5, 3, b"b") if case == "skipped-offset" else deliver(
            topic, 6, 2, b"b"
        )
        await peer.send_many([peer.wire(DELIVER, deliver(topic, 5, 1, b"a")),
                              peer.wire(DELIVER, second)])
        return await peer.closed()

    closed, before = await client_closes(script, subscribe="news")
    assert closed.code == 1002, (closed, before)


async def test_rule_38_deliver_duplicate() -> None:
    async def script(peer: Peer) -> list[Msg]:
        await serve_handshake(peer)
        topic = await subscribed(peer, epoch=5)
        offsets = [(1, b"a"), (2, b"b"), (1, b"a"), (2, b"b"), (3, b"c")]  # a replay overlap
        await peer.send_many(
            [peer.wire(DELIVER, deliver(topic, 5, o, d)) for o, d in offsets]
        )
        heard = await peer.quiet(0.4)  # fails if the client closes
        await peer.drop()
        return heard

    async with raw_server(script) as (url, result):
        client = await run_client(url)
        assert not isinstance(client, BaseException), client
        try:
            async with asyncio.timeout(2.0):
                sub = await client.subscribe("news")
                items = [await sub.get() for _ in range(3)]
            assert [(i.offset, i.data) for i in items] == [(1, b"a"), (2, b"b"), (3, b"c")]
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await sub.get()
            async with asyncio.timeout(2.0):
                await asyncio.shield(result)
        finally:
            await stop_client(client)


# ---------------------------------------------------------------- rule 39
@pytest.mark.parametrize("case", ["gap", "covered", "epoch-gone"])
async def test_rule_39_continuity(wsp_server: Any, case: str) -> None:
    async with wsp_server(history=3) as port:
        publisher, _ = await session(port)
        await publisher.send(SUBSCRIBE, {"topic": "t39"})
        first = (await publisher.expect(SUBSCRIBED)).body
        epoch, start = first["epoch"], first["next_offset"]
        for n in range(6):
            body = {"topic": "t39", "data": b"m%d" % n, "id": n + 1}
            await publisher.send(PUBLISH, body, seq=n + 1)
        live = await collect(publisher, 6, DELIVER)
        assert [m.body["offset"] for m in live if m.code == DELIVER] == list(
            range(start, start + 6)
        )
        end = start + 6  # the live end; history holds start+3 .. start+5
        wanted = {"gap": start + 1, "covered": start + 4, "epoch-gone": start + 4}[case]
        asked_epoch = epoch + 1 if case == "epoch-gone" else epoch
        subscriber, _ = await session(port)
        await subscriber.send(SUBSCRIBE, {"topic": "t39", "from_offset": wanted,
                                          "epoch": asked_epoch})
        replay_from = wanted if case == "covered" else start + 3
        got = await collect(subscriber, end - replay_from, DELIVER)
        kinds = [m.code for m in got]
        if case == "covered":
            assert CONTINUITY_LOST not in kinds, got
            assert kinds[0] == SUBSCRIBED, got
        else:
            assert kinds[:2] == [CONTINUITY_LOST, SUBSCRIBED], got
            lost = got[0].body
            assert lost["topic"] == "t39" and lost["epoch"] == epoch, lost
            assert lost["first_available"] == start + 3, lost
            if case == "gap":
                assert lost["requested_offset"] == wanted, lost
        sub = next(m.body for m in got if m.code == SUBSCRIBED)
        assert sub["epoch"] == epoch and sub["next_offset"] == end, sub
        replay = [(m.body["epoch"], m.body["offset"]) for m in got if m.code == DELIVER]
        assert replay == [(epoch, o) for o in range(replay_from, end)], replay
        # then live messages, from the live end on
        await publisher.send(PUBLISH, {"topic": "t39", "data": b"live", "id": 99}, seq=7)
        later = await collect(subscriber, 1, DELIVER)
        assert [m.body["offset"] for m in later if m.code == DELIVER] == [end]
