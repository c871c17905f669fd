"""Checklist rules 22-33, 35, 40 and 43 (flags, Batch, decryption, direction,
sequencing, acknowledgments, heartbeats, silence, publish ids, unknown types,
requests) against the reference server on raw frames."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import zlib
from typing import Any

import pytest

from wsproto_tools.exceptions import ConnectionFailed

from .wire import (
    ACK,
    ACK_REQUESTED,
    BATCH,
    CHALLENGE,
    COMPRESSED,
    CONTINUITY_LOST,
    DELIVER,
    ENCRYPTED,
    ERROR,
    HANDSHAKE_RESPONSE,
    HEARTBEAT,
    OP_BINARY,
    PUBLISH,
    REQUEST,
    RESPONSE,
    RESUME,
    SECRET,
    SUBSCRIBE,
    SUBSCRIBED,
    TEXT,
    WINDOW_UPDATE,
    Closed,
    Msg,
    Peer,
    Sealer,
    against_client,
    assert_closed,
    challenged,
    client_closes,
    handshake,
    header,
    raw_server,
    run_client,
    serve_handshake,
    session,
    session_keys,
    stop_client,
    varint,
)


def acks(messages: list[Msg]) -> list[int]:
    return [m.body["sequence"] for m in messages if m.code == ACK]


async def until_ack(peer: Peer, sequence: int) -> list[Msg]:
    """Everything up to an Acknowledge covering ``sequence``."""
    out: list[Msg] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.0
    while not any(s >= sequence for s in acks(out)):
        got = await peer.recv(max(deadline - loop.time(), 0.0))
        assert isinstance(got, Msg), f"no Acknowledge of {sequence}: {got}; saw {peer.seen}"
        out.append(got)
    return out


# ---------------------------------------------------------------- rule 22
def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    "flag",
    [
        "compressed",
        "encrypted",
        "ack-requested",
        "to-the-client:compressed",
        "to-the-client:encrypted",
    ],
)
async def test_rule_22_flag_negotiated(wsp_server: Any, flag: str) -> None:
    if flag.startswith("to-the-client:"):  # the client offers neither compress nor encrypt
        if flag.endswith("compressed"):
            message = header(TEXT, 1, COMPRESSED) + raw_deflate(b"hi")
        else:
            message = header(TEXT, 1, ENCRYPTED) + os.urandom(12 + 2 + 16)

        async def flagged(peer: Peer) -> Closed:
            await peer.send_frame(OP_BINARY, message)
            closed, _ = await peer.closed()
            return closed

        closed = await against_client(flagged)
        assert closed.code == 4007, closed
        return
    async with wsp_server() as port:  # the server could grant compress and encrypt...
        peer, answer = await session(port, capabilities=("ack", "pubsub"))  # ...none offered
        assert not {"compress", "encrypt"} & set(answer["capabilities"])
        if flag == "ack-requested":  # needs no capability
            await peer.send(TEXT, b"hi", seq=1, flags=ACK_REQUESTED)
            got = await until_ack(peer, 1)
            got += [await peer.expect(TEXT)] if not any(m.code == TEXT for m in got) else []
            assert [m.payload for m in got if m.code == TEXT] == [b"hi"]
            return
        if flag == "compressed":
            # a valid raw DEFLATE stream (no dictionary reference): only the flag is wrong
            message = header(TEXT, 1, COMPRESSED) + raw_deflate(b"hi")
        else:
            message = header(TEXT, 1, ENCRYPTED) + os.urandom(12 + 2 + 16)
        await peer.send_frame(OP_BINARY, message)
        await assert_closed(peer, 4007)


# ---------------------------------------------------------------- rule 23
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_23_batch_negotiated(wsp_server: Any, side: str) -> None:
    if side == "client":
        async def batch(peer: Peer) -> Closed:
            item = header(TEXT, 1) + b"hi"
            await peer.send(BATCH, varint(len(item)) + item)
            closed, _ = await peer.closed()
            return closed

        closed = await against_client(batch, capabilities=("ack", "pubsub"))
        assert closed.code == 4007, closed
        return
    async with wsp_server() as port:
        peer, answer = await session(port, capabilities=("ack", "pubsub"))
        assert "batch" not in answer["capabilities"]
        item = header(TEXT, 1) + b"hi"
        await peer.send(BATCH, varint(len(item)) + item)
        before = await assert_closed(peer, 4007)
        assert all(m.code != TEXT for m in before), "the Batch's item was processed"


# ---------------------------------------------------------------- rule 24
@pytest.mark.parametrize(
    "case", ["tampered-tag", "server-key", "header-altered", "too-short", "to-the-client"]
)
async def test_rule_24_decryption(wsp_server: Any, case: str) -> None:
    if case == "to-the-client":
        async def tampered(peer: Peer) -> tuple[Closed, list[Msg]]:
            c2s, s2c = session_keys(SECRET, peer.nonce, peer.client_nonce)
            peer.incoming, peer.outgoing = Sealer(c2s, b"wspc"), Sealer(s2c, b"wsps")
            head = header(TEXT, 1, ENCRYPTED)
            sealed = peer.outgoing.seal(head, b"hi")
            await peer.send_frame(OP_BINARY, head + sealed[:-1] + bytes((sealed[-1] ^ 0x80,)))
            return await peer.closed()

        closed, before = await against_client(
            tampered, capabilities=("ack", "batch", "pubsub", "encrypt")
        )
        assert closed.code == 1007, (closed, before)
        return
    async with wsp_server() as port:
        peer, answer = await session(port, capabilities=("ack", "encrypt"))
        assert "encrypt" in answer["capabilities"] and peer.outgoing and peer.incoming
        head = header(TEXT, 1, ENCRYPTED)
        if case == "tampered-tag":
            sealed = peer.outgoing.seal(head, b"hi")
            message = head + sealed[:-1] + bytes((sealed[-1] ^ 0x80,))
        elif case == "server-key":  # sealed under the other direction's key
            message = head + Sealer(peer.incoming.key, b"wspc").seal(head, b"hi")
        elif case == "header-altered":  # the header is the associated data
            sealed = peer.outgoing.seal(head, b"hi")
            message = header(TEXT, 1, ENCRYPTED | ACK_REQUESTED) + sealed
        else:  # shorter than nonce + tag
            message = head + os.urandom(20)
        await peer.send_frame(OP_BINARY, message)
        await assert_closed(peer, 1007)


# ---------------------------------------------------------------- rule 25
SERVER_ONLY: dict[str, tuple[int, dict[str, Any]]] = {
    "challenge": (CHALLENGE, {"nonce": b"n" * 16, "methods": ["hmac"]}),
    "handshake-response": (HANDSHAKE_RESPONSE, {"session_id": 7}),
    "deliver": (DELIVER, {"topic": "t", "epoch": 1, "offset": 1, "data": b"x"}),
    "subscribed": (SUBSCRIBED, {"topic": "t", "epoch": 1, "next_offset": 1}),
    "continuity-lost": (
        CONTINUITY_LOST,
        {"topic": "t", "epoch": 1, "requested_offset": 1, "first_available": 5},
    ),
    "response": (RESPONSE, {"id": 1, "data": b"x"}),
}


CLIENT_ONLY: dict[str, tuple[int, dict[str, Any]]] = {
    "publish": (PUBLISH, {"topic": "t", "data": b"x", "id": 1}),
    "subscribe": (SUBSCRIBE, {"topic": "t"}),
    "request": (REQUEST, {"id": 1, "method": "echo", "data": b"x"}),
}


@pytest.mark.parametrize(
    "case", [*sorted(SERVER_ONLY), *(f"to-the-client:{name}" for name in sorted(CLIENT_ONLY))]
)
async def test_rule_25_direction(wsp_server: Any, case: str) -> None:
    if case.startswith("to-the-client:"):
        code, body = CLIENT_ONLY[case.split(":", 1)[1]]

        async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
            await serve_handshake(peer)
            await peer.send(code, body, seq=1 if code == PUBLISH else 0)
            return await peer.closed()

        closed, before = await client_closes(script)
        assert closed.code == 1002, (closed, before)
        return
    code, body = SERVER_ONLY[case]
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send(code, body)
        await assert_closed(peer, 1002)


# ---------------------------------------------------------------- rule 26
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_26_resume_retired(wsp_server: Any, side: str) -> None:
    if side == "client":
        async def resume(peer: Peer) -> tuple[Closed, list[Msg]]:
            body = {"session_id": peer.session_id, "resume_token": b"t", "last_received": 0}
            await peer.send(RESUME, body)
            return await peer.closed()

        closed, before = await against_client(resume)
        assert closed.code == 1002, (closed, before)
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        body = {"session_id": peer.session_id, "resume_token": peer.resume_token,
                "last_received": 0, "offsets": {}}
        await peer.send(RESUME, body)
        await assert_closed(peer, 1002)


# ---------------------------------------------------------------- rule 27
@pytest.mark.parametrize("case", ["gap", "starts-at-two", "zero", "from-the-server"])
async def test_rule_27_sequence_gap(wsp_server: Any, case: str) -> None:
    if case == "from-the-server":
        async def gap(peer: Peer) -> tuple[Closed, list[Msg]]:
            await peer.send_many([peer.wire(TEXT, b"one", seq=1), peer.wire(TEXT, b"3", seq=3)])
            return await peer.closed()

        closed, before = await against_client(gap)
        assert closed.code == 1002, (closed, before)
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        if case == "gap":
            await peer.send(TEXT, b"one", seq=1)
            assert (await peer.expect(TEXT)).payload == b"one"
            await peer.send(TEXT, b"three", seq=3)
        else:
            await peer.send(TEXT, b"x", seq=2 if case == "starts-at-two" else 0)
        before = await assert_closed(peer, 1002)
        assert all(m.code != TEXT for m in before), "the out-of-order message was processed"


# ---------------------------------------------------------------- rule 28
async def client_acks(peer: Peer, sequence: int) -> int:
    """The client's next Acknowledge covering ``sequence`` (bounded)."""
    for _ in range(10):
        ack = await peer.expect(ACK, skip=(HEARTBEAT, WINDOW_UPDATE))
        if ack.body["sequence"] >= sequence:
            return int(ack.body["sequence"])
    raise AssertionError(f"the client did not acknowledge {sequence}")


@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_28_sequence_duplicate(wsp_server: Any, side: str) -> None:
    if side == "client":
        acked: list[int] = []

        async def duplicate(peer: Peer) -> Closed:
            await serve_handshake(peer)
            for seq, text in ((1, b"one"), (1, b"one again"), (2, b"two")):
                await peer.send(TEXT, text, seq=seq)
                acked.append(await client_acks(peer, seq))
            closed, _ = await peer.closed(timeout=4.0)  # until the test closes the client
            return closed

        async with raw_server(duplicate) as (url, result):
            client = await run_client(url)
            assert not isinstance(client, BaseException), client
            try:
                async with asyncio.timeout(2.0):
                    got = [(await client.data.get()).text for _ in range(2)]
                    while len(acked) < 3 and not result.done():
                        await asyncio.sleep(0.01)
                assert got == ["one", "two"], got  # the retransmission is dropped...
                assert acked == [1, 1, 2], acked  # ...and acknowledged again
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await client.data.get()
            finally:
                await stop_client(client)
            async with asyncio.timeout(2.0):
                assert (await result).code == 1000
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send(TEXT, b"one", seq=1)
        first = await until_ack(peer, 1)
        if not any(m.code == TEXT for m in first):
            first.append(await peer.expect(TEXT))
        # the retransmission: dropped (no echo), acknowledged again
        await peer.send(TEXT, b"one again", seq=1)
        again = await until_ack(peer, 1)
        again += await peer.quiet(0.2)
        assert all(m.code != TEXT for m in again), again
        assert 1 in acks(again)
        # and the stream goes on at 2
        await peer.send(TEXT, b"two", seq=2)
        assert (await peer.expect(TEXT)).payload == b"two"
        texts = [m.payload for m in peer.seen if isinstance(m, Msg) and m.code == TEXT]
        assert texts == [b"one", b"two"]


# ---------------------------------------------------------------- rule 29
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_29_ack_range(wsp_server: Any, side: str) -> None:
    if side == "client":  # the client has sent nothing sequenced
        async def ack(peer: Peer) -> tuple[Closed, list[Msg]]:
            await peer.send(ACK, {"sequence": 5})
            return await peer.closed()

        closed, before = await against_client(ack)
        assert closed.code == 1002, (closed, before)
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send(TEXT, b"one", seq=1)
        sent = await peer.expect(TEXT)
        assert sent.seq == 1  # the server has sent sequence 1, nothing above
        await peer.send(ACK, {"sequence": 1})  # fine
        await peer.send(ACK, {"sequence": 2})
        await assert_closed(peer, 1002)


# ---------------------------------------------------------------- rule 30
async def test_rule_30_ack_backwards(wsp_server: Any) -> None:
    async with wsp_server() as port:
        peer, _ = await session(port)
        for n in (1, 2):
            await peer.send(TEXT, b"%d" % n, seq=n)
            assert (await peer.expect(TEXT)).seq == n
        await peer.send(ACK, {"sequence": 2})
        await peer.send(ACK, {"sequence": 1})  # goes back: ignored, not an error
        await peer.send(TEXT, b"3", seq=3)
        assert (await peer.expect(TEXT)).seq == 3
        sent = acks([m for m in peer.seen if isinstance(m, Msg)])
        if not sent or sent[-1] < 3:
            await until_ack(peer, 3)
        sent = acks([m for m in peer.seen if isinstance(m, Msg)])
        assert sent[-1] >= 3
        assert sent == sorted(sent), f"the server's acknowledgments went back: {sent}"
    # the observer reports an acknowledgment that goes back
    from wsproto_tools.codec.schema import (
        Acknowledge,
        Challenge,
        Handshake,
        HandshakeResponse,
        Message,
        TextData,
    )
    from wsproto_tools.engine.observer import Direction, SessionObserver

    c2s, s2c = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
    observer = SessionObserver()
    conversation = [
        (s2c, Message(Challenge(nonce=os.urandom(16), methods=("none",)))),
        (c2s, Message(Handshake(capabilities=("ack",), auth="none",
                                client_nonce=os.urandom(16)))),
        (s2c, Message(HandshakeResponse(session_id=9, capabilities=("ack",)))),
        (s2c, Message(TextData("a"), sequence=1)),
        (s2c, Message(TextData("b"), sequence=2)),
        (c2s, Message(Acknowledge(sequence=2))),
    ]
    for direction, message in conversation:
        assert observer.feed(direction, message, 0.0) == [], message
    findings = observer.feed(c2s, Message(Acknowledge(sequence=1)), 0.0)
    assert [getattr(f, "rule_id", None) for f in findings] == [30], findings


# ---------------------------------------------------------------- rule 31
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_31_heartbeat_reply(wsp_server: Any, side: str) -> None:
    if side == "client":  # the client probes every 15 s: none sent yet
        async def reply(peer: Peer) -> tuple[Closed, list[Msg]]:
            await peer.send(HEARTBEAT, {"id": 42, "reply": True})
            return await peer.closed()

        closed, before = await against_client(reply)
        assert closed.code == 1002, (closed, before)
        return
    async with wsp_server() as port:  # the server probes every 15 s: none sent yet
        peer, _ = await session(port)
        await peer.send(HEARTBEAT, {"id": 42, "reply": True})
        await assert_closed(peer, 1002)


# ---------------------------------------------------------------- rule 32
@pytest.mark.parametrize(
    "case", ["answered-at-once", "probe-left-unanswered", "the-client-answers"]
)
async def test_rule_32_heartbeat_answer(wsp_server: Any, case: str) -> None:
    if case == "the-client-answers":
        async def probe_client(peer: Peer) -> list[Msg]:
            replies = []
            for probe_id in (3, 1, 99):  # the server's own numbering
                await peer.send(HEARTBEAT, {"id": probe_id, "reply": False})
                replies.append(await peer.expect(HEARTBEAT, skip=(ACK, WINDOW_UPDATE), timeout=0.5))
            await peer.drop()
            return replies

        replies = await against_client(probe_client)
        assert [(m.body.get("id"), m.body.get("reply")) for m in replies] == [
            (3, True), (1, True), (99, True)
        ]
        return
    if case == "answered-at-once":
        async with wsp_server() as port:
            peer, _ = await session(port)
            for probe_id in (1, 2, 7):  # the client numbers its own probes
                started = time.monotonic()
                await peer.send(HEARTBEAT, {"id": probe_id, "reply": False})
                reply = await peer.expect(HEARTBEAT, skip=(ACK,), timeout=0.5)
                assert reply.body.get("id") == probe_id and reply.body.get("reply") is True
                assert time.monotonic() - started < 0.5
        return
    # the server probes after 0.1 s of quiet; then we talk (our own probes, every
    # 0.1 s, so the connection is never silent) but never answer its probe
    async with wsp_server(heartbeat_interval=0.1, heartbeat_timeout=0.5) as port:
        peer, _ = await session(port)
        probe = await peer.recv(1.0)
        assert isinstance(probe, Msg) and probe.code == HEARTBEAT, probe
        assert probe.body.get("reply") is not True
        loop = asyncio.get_running_loop()
        asked = loop.time()
        closed: Closed | None = None
        ours = 0
        while closed is None and loop.time() < asked + 1.5:
            ours += 1
            with contextlib.suppress(ConnectionFailed):  # closed: the frame is read below
                await peer.send(HEARTBEAT, {"id": ours, "reply": False})
            next_probe = loop.time() + 0.1
            while (left := next_probe - loop.time()) > 0:
                got = await peer.recv(left)
                if isinstance(got, Closed):
                    closed = got
                    break
        assert closed is not None, (
            f"probe {probe.body} unanswered for {loop.time() - asked:.1f} s "
            "(heartbeat timeout 0.5 s) and the connection is still open"
        )
        assert closed.code == 4006, closed
        # resumable: no wsp Close (S.7)
        assert all(m.code != 0x0004 for m in peer.seen if isinstance(m, Msg))


# ---------------------------------------------------------------- rule 33
@pytest.mark.parametrize("side", ["server", "client"])
async def test_rule_33_silence(wsp_server: Any, side: str) -> None:
    if side == "client":
        async def script(peer: Peer) -> tuple[Closed, list[Msg]]:
            await serve_handshake(peer)
            return await peer.closed(timeout=2.0)  # not a word after the response

        started = time.monotonic()
        closed, before = await client_closes(
            script, heartbeat_interval=10.0, heartbeat_timeout=0.3
        )
        assert closed.code == 4006, (closed, before)
        assert time.monotonic() - started < 0.9  # the timeout (0.3 s) and the handshake
        return
    async with wsp_server(heartbeat_interval=10.0, heartbeat_timeout=0.3) as port:
        peer, _ = await session(port)
        started = time.monotonic()
        await assert_closed(peer, 4006, wsp_close=False)
        assert time.monotonic() - started < 1.5
        held = (peer.session_id, peer.resume_token)
        # the session stays resumable
        again = await challenged(port)
        answer = await handshake(again, resume_token=held[1], last_received=0)
        assert answer["resumed"] is True and answer["session_id"] == held[0]
        await again.drop()


# ---------------------------------------------------------------- rule 35
async def test_rule_35_publish_id(wsp_server: Any) -> None:
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send(SUBSCRIBE, {"topic": "t35"})
        sub = (await peer.expect(SUBSCRIBED)).body
        first = sub["next_offset"]
        publish = {"topic": "t35", "data": b"once", "id": 7}
        await peer.send(PUBLISH, publish, seq=1)
        await peer.send(PUBLISH, publish, seq=2)  # the same id: a retried publish
        got = await until_ack(peer, 2)
        await peer.send(PUBLISH, {"topic": "t35", "data": b"next", "id": 8}, seq=3)
        got += await until_ack(peer, 3)
        got += await peer.quiet(0.2)
        delivered = [(m.body["offset"], m.body["data"]) for m in got if m.code == DELIVER]
        assert delivered == [(first, b"once"), (first + 1, b"next")], delivered


# ---------------------------------------------------------------- rule 40
@pytest.mark.parametrize("code", [0x0350, 0x003F, 0x0120, -0x0350])
async def test_rule_40_unknown_type(wsp_server: Any, code: int) -> None:
    if code < 0:  # sent to the client
        async def unknown(peer: Peer) -> list[Msg]:
            await peer.send(-code, raw=b"\xaa")
            error = await peer.expect(ERROR, skip=(ACK, HEARTBEAT, WINDOW_UPDATE))
            # and the session goes on: data is acknowledged
            await peer.send(TEXT, b"after", seq=1)
            acked = await peer.expect(ACK, skip=(HEARTBEAT, WINDOW_UPDATE))
            await peer.drop()
            return [error, acked]

        error, acked = await against_client(unknown)
        assert error.body["code"] == 1003, error
        assert acked.body["sequence"] >= 1, acked
        return
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send(code, raw=b"\xaa")
        error = await peer.expect(ERROR)
        assert error.body["code"] == 1003, error
        # and the session goes on
        await peer.send(TEXT, b"after", seq=1)
        assert (await peer.expect(TEXT)).payload == b"after"


# ---------------------------------------------------------------- rule 43
async def test_rule_43_request_answer(wsp_server: Any) -> None:
    async with wsp_server() as port:
        peer, _ = await session(port)
        await peer.send(REQUEST, {"id": 5, "method": "echo", "data": b"ping"})
        await peer.send(REQUEST, {"id": 6, "method": "no-such-method", "data": b"x"})
        first = await peer.expect(RESPONSE)
        second = await peer.expect(RESPONSE)
        more = await peer.quiet(0.2)
        assert all(m.code != RESPONSE for m in more), "more than one Response per Request"
        answers = {m.body["id"]: m.body for m in (first, second)}
        assert set(answers) == {5, 6}
        assert answers[5].get("data") == b"ping" and answers[5].get("status", 0) == 0
        assert answers[6].get("status") == 1003
