"""The client side of ``wsp replay``: real servers on 127.0.0.1, real recordings."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from wsproto_tools.client import Client
from wsproto_tools.codec.schema import (
    Deliver,
    Flags,
    Message,
    Response,
    Sealed,
    Subscribed,
    TextData,
)
from wsproto_tools.exceptions import ConfigError
from wsproto_tools.replay.cassette import Cassette, CassetteMessage
from wsproto_tools.replay.outcome import ConnOutcome
from wsproto_tools.replay.plan import script_of
from wsproto_tools.replay.player import PlayOptions, play

from .recording import WireLog, lines, wsp

SECRET = b"test-secret"  # the serve fixture's
NONCE = "00" * 16


async def record_session(server: Any) -> Cassette:
    """A real client's session: subscribe, two publishes, two echo requests."""
    log = WireLog()
    async with Client(f"ws://127.0.0.1:{server.port}", secret=SECRET, on_wire=log) as client:
        sub = await client.subscribe("news")
        await client.publish("news", b"first")
        await client.publish("news", b"second")
        for _ in range(2):
            item = await asyncio.wait_for(sub.get(), 5)
            assert item is not None
        assert await client.echo(b"ping") == b"ping"
        assert await client.echo(b"pong") == b"pong"
    return log.cassette()


def payloads(outcome: ConnOutcome, kind: type) -> list[Any]:
    out = []
    for message in outcome.received:
        msg = message.wsp
        if msg is None:
            continue
        items = getattr(msg.payload, "messages", None) or (msg,)
        out.extend(item.payload for item in items if isinstance(item.payload, kind))
    return out


async def test_a_recorded_session_replays_against_a_fresh_server_with_another_secret(
        serve: Any) -> None:
    async with serve() as original:
        cassette = await record_session(original)
    recorded_ids = sorted(p.id for p in payloads_of_cassette(cassette, Response))
    async with serve(secret=b"another") as fresh:
        watcher = Client(f"ws://127.0.0.1:{fresh.port}", secret=b"another")
        async with watcher:
            seen = await watcher.subscribe("news")
            [outcome] = await play(cassette, f"ws://127.0.0.1:{fresh.port}",
                                   PlayOptions(secret=b"another", wait=2))
            got = [await asyncio.wait_for(seen.get(), 5) for _ in range(2)]
            await asyncio.sleep(0.1)
            assert not seen.items  # each publish applied exactly once
    assert outcome.failure is None and outcome.engine
    assert [getattr(g, "data", None) for g in got] == [b"first", b"second"]
    responses = payloads(outcome, Response)
    assert sorted(r.id for r in responses) == recorded_ids
    assert sorted(r.data for r in responses) == [b"ping", b"pong"]
    assert [s.topic for s in payloads(outcome, Subscribed)] == ["news"]
    assert [d.data for d in payloads(outcome, Deliver)] == [b"first", b"second"]
    assert outcome.closed_by == "client" and outcome.close_code == 1000
    assert outcome.sent == len(script_of(cassette, 1).steps) >= 5 and not outcome.skipped
    assert outcome.latencies


def payloads_of_cassette(cassette: Cassette, kind: type) -> list[Any]:
    fake = ConnOutcome(1, received=[m for m in cassette.messages if m.direction == "server"])
    return payloads(fake, kind)


async def test_the_wrong_secret_is_refused(serve: Any) -> None:
    async with serve() as original:
        cassette = await record_session(original)
    async with serve(secret=b"another") as fresh:
        [outcome] = await play(cassette, f"ws://127.0.0.1:{fresh.port}",
                               PlayOptions(secret=b"wrong", wait=1))
        [bare] = await play(cassette, f"ws://127.0.0.1:{fresh.port}", PlayOptions(wait=1))
    assert outcome.failure == "refused", outcome.handshake_error
    assert bare.failure == "refused", bare.handshake_error
    assert outcome.received == [] or outcome.sent == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_closed_port_is_unreachable() -> None:
    cassette = lines({"conn": 1}, {"conn": 1, "direction": "client", "t": 0, "text": "x",
                                   "opcode": "text"})
    [outcome] = await play(cassette, f"ws://127.0.0.1:{free_port()}", PlayOptions())
    assert outcome.failure == "unreachable"
    assert "refused" in (outcome.handshake_error or "")


async def test_bad_options_are_config_errors() -> None:
    cassette = lines({"conn": 1})
    with pytest.raises(ConfigError):
        await play(cassette, "http://127.0.0.1:1/", PlayOptions())
    with pytest.raises(ConfigError):
        await play(cassette, "ws://127.0.0.1:1/", PlayOptions(timing="slow"))
    with pytest.raises(ConfigError, match="no connection 7"):
        await play(cassette, "ws://127.0.0.1:1/", PlayOptions(), conns=[7])


def text_cassette(count: int, gap: float = 0.01) -> Cassette:
    objs: list[dict[str, Any]] = [{"conn": 1, "path": "/echo"}]
    for i in range(count):
        objs.append({"conn": 1, "direction": "client", "t": i * gap, "opcode": "text",
                     "text": f"m{i}"})
        objs.append({"conn": 1, "direction": "server", "t": i * gap + gap / 2,
                     "opcode": "text", "text": f"m{i}"})
        objs.append({"conn": 1, "direction": "client", "t": i * gap + gap / 2,
                     "opcode": "binary", "base64": "AAEC"})
        objs.append({"conn": 1, "direction": "server", "t": i * gap + gap / 2,
                     "opcode": "binary", "base64": "AAEC"})
    objs.append({"conn": 1, "direction": "client", "t": count * gap, "opcode": "close",
                 "close_code": 1000, "close_reason": "bye"})
    return lines(*objs)


@pytest.mark.parametrize("timing", ["causal", "fast", "original"])
async def test_plain_messages_get_exactly_the_echoes(websockets_echo: Any, timing: str) -> None:
    cassette = text_cassette(20, gap=0.005)
    async with websockets_echo() as port:
        [outcome] = await play(cassette, f"ws://127.0.0.1:{port}",
                               PlayOptions(timing=timing, wait=2))
    assert not outcome.engine and outcome.failure is None
    assert outcome.sent == 40
    expected = [m for m in cassette.messages if m.direction == "server"]
    assert [(m.opcode, m.payload()) for m in outcome.received] == [
        (m.opcode, m.payload()) for m in expected]
    assert outcome.closed_by == "client" and outcome.close_code == 1000
    assert outcome.close_reason == "bye"


async def test_fast_mode_sends_everything(websockets_echo: Any) -> None:
    cassette = text_cassette(500, gap=1.0)  # recorded over 500 s
    start = time.monotonic()
    async with websockets_echo() as port:
        [outcome] = await play(cassette, f"ws://127.0.0.1:{port}",
                               PlayOptions(timing="fast", wait=5))
    assert time.monotonic() - start < 10
    assert outcome.sent == 1000 and len(outcome.received) == 1000


class Scripted:
    """A websockets server that answers "q1" late and logs when things happen."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    async def handler(self, ws: ServerConnection) -> None:
        tasks = set()
        async for message in ws:
            self.events.append((f"got {message}", time.monotonic()))
            task = asyncio.ensure_future(self.answer(ws, str(message)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for task in list(tasks):
            await task

    async def answer(self, ws: ServerConnection, message: str) -> None:
        if message == "q1":
            await asyncio.sleep(0.3)
        await ws.send(f"a{message[1:]}")
        self.events.append((f"sent a{message[1:]}", time.monotonic()))


def question_cassette(gap: float) -> Cassette:
    return lines(
        {"conn": 1},
        {"conn": 1, "direction": "client", "t": 0.0, "opcode": "text", "text": "q1"},
        {"conn": 1, "direction": "server", "t": 0.001, "opcode": "text", "text": "a1"},
        {"conn": 1, "direction": "client", "t": gap, "opcode": "text", "text": "q2"},
        {"conn": 1, "direction": "server", "t": gap + 0.001, "opcode": "text", "text": "a2"},
    )


async def test_causal_waits_for_the_answer_before_the_next_step() -> None:
    server = Scripted()
    async with ws_serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        [outcome] = await play(question_cassette(0.002), f"ws://127.0.0.1:{port}",
                               PlayOptions(timing="causal", wait=3))
        [hasty] = await play(question_cassette(0.002), f"ws://127.0.0.1:{port}",
                             PlayOptions(timing="fast", wait=3))
    names = [name for name, _ in server.events]
    assert names[:4] == ["got q1", "sent a1", "got q2", "sent a2"]
    assert names[4:] == ["got q1", "got q2", "sent a2", "sent a1"]  # fast mode does not wait
    assert [m.text for m in outcome.received] == ["a1", "a2"]
    assert [m.text for m in hasty.received] == ["a2", "a1"]


async def test_original_timing_keeps_the_gaps_scaled_by_speed() -> None:
    server = Scripted()
    async with ws_serve(server.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        cassette = lines(
            {"conn": 1},
            {"conn": 1, "direction": "client", "t": 0.0, "opcode": "text", "text": "x1"},
            {"conn": 1, "direction": "client", "t": 0.8, "opcode": "text", "text": "x2"},
        )
        await play(cassette, f"ws://127.0.0.1:{port}",
                   PlayOptions(timing="original", speed=2.0, wait=1))
    times = dict(server.events)
    gap = times["got x2"] - times["got x1"]
    assert 0.3 < gap < 0.9  # 0.8 s recorded, at speed 2


async def test_a_subscriber_and_a_publisher_keep_the_recorded_order(serve: Any) -> None:
    cassette = lines(
        {"conn": 1, "ts": 100.0, "subprotocols": ["wsp.v2"]},
        {"conn": 2, "ts": 100.2, "subprotocols": ["wsp.v2"]},
        {"conn": 1, "direction": "server", "t": 0.0,
         "wsp": wsp("Challenge", nonce=NONCE, methods=["hmac"])},
        {"conn": 1, "direction": "client", "t": 0.01, "wsp": wsp("Subscribe", topic="t")},
        {"conn": 1, "direction": "server", "t": 0.02,
         "wsp": wsp("Subscribed", topic="t", epoch=1, next_offset=1)},
        {"conn": 2, "direction": "server", "t": 0.0,
         "wsp": wsp("Challenge", nonce=NONCE, methods=["hmac"])},
        {"conn": 2, "direction": "client", "t": 0.01,
         "wsp": wsp("Publish", topic="t", data="6869", id=1)},
        {"conn": 1, "direction": "server", "t": 0.3,
         "wsp": wsp("Deliver", topic="t", epoch=1, offset=1, data="6869")},
        {"conn": 2, "direction": "client", "t": 0.5, "opcode": "close", "close_code": 1000},
        {"conn": 1, "direction": "client", "t": 0.9, "opcode": "close", "close_code": 1000},
    )
    async with serve() as server:
        one, two = await play(cassette, f"ws://127.0.0.1:{server.port}",
                              PlayOptions(secret=SECRET, wait=3))
    assert one.failure is None and two.failure is None
    assert [d.data for d in payloads(one, Deliver)] == [b"hi"]
    assert two.sent == 1


async def test_an_encrypted_message_without_plaintext_is_skipped(serve: Any) -> None:
    cassette = lines(
        {"conn": 1, "subprotocols": ["wsp.v2"]},
        {"conn": 1, "direction": "server", "t": 0.0,
         "wsp": wsp("Challenge", nonce=NONCE, methods=["hmac"])},
        {"conn": 1, "direction": "client", "t": 0.02, "wsp": wsp("TextData", text="hello")},
        {"conn": 1, "direction": "server", "t": 0.03, "wsp": wsp("TextData", text="hello")},
    )
    sealed = Message(Sealed(0x0101, b"\x00\xff"), sequence=1, flags=Flags.ENCRYPTED)
    cassette.messages.insert(1, CassetteMessage(1, "client", 0.01, "binary", wsp=sealed))
    async with serve() as server:
        [outcome] = await play(cassette, f"ws://127.0.0.1:{server.port}",
                               PlayOptions(secret=SECRET, wait=2))
    assert outcome.sent == 1
    assert len(outcome.skipped) == 1 and "encrypted" in outcome.skipped[0]
    assert [p.text for p in payloads(outcome, TextData)] == ["hello"]


async def test_the_handshake_is_made_again_with_headers_path_and_deflate() -> None:
    requests: list[Any] = []

    def capture(connection: ServerConnection, request: Any) -> None:
        requests.append(request)

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    cassette = lines(
        {"conn": 1, "path": "/feed?x=1", "subprotocols": ["chat"],
         "extensions": "permessage-deflate; client_max_window_bits",
         "headers": {"Origin": "https://example.com", "Sec-WebSocket-Key": "AAAA",
                     "X-Rec": "1", "User-Agent": "recorded/1.0"}},
        {"conn": 1, "direction": "client", "t": 0.0, "opcode": "text", "text": "x" * 500},
        {"conn": 1, "direction": "server", "t": 0.0, "opcode": "text", "text": "x" * 500},
    )
    async with ws_serve(echo, "127.0.0.1", 0, subprotocols=["chat"],
                        process_request=capture) as server:
        port = server.sockets[0].getsockname()[1]
        [outcome] = await play(cassette, f"ws://127.0.0.1:{port}",
                               PlayOptions(headers=[("X-Rec", "2"), ("X-New", "y")]))
        [moved] = await play(cassette, f"ws://127.0.0.1:{port}/other", PlayOptions())
    first, second = requests
    assert first.path == "/feed?x=1" and second.path == "/other"
    assert first.headers["Origin"] == "https://example.com"
    assert first.headers.get_all("X-Rec") == ["2"] and first.headers["X-New"] == "y"
    assert first.headers["User-Agent"] == "recorded/1.0"
    assert first.headers["Sec-WebSocket-Key"] != "AAAA"
    assert outcome.subprotocol == "chat" and "permessage-deflate" in (outcome.extensions or "")
    assert [m.text for m in outcome.received] == ["x" * 500]
    assert moved.failure is None


async def test_when_the_server_closed_first_the_player_waits_for_its_close() -> None:
    async def closer(ws: ServerConnection) -> None:
        async for message in ws:
            if message == "bye":
                await ws.close(4000, "done")
                return

    cassette = lines(
        {"conn": 1},
        {"conn": 1, "direction": "client", "t": 0.0, "opcode": "text", "text": "bye"},
        {"conn": 1, "direction": "server", "t": 0.1, "opcode": "close", "close_code": 4000,
         "close_reason": "done"},
        {"conn": 1, "direction": "client", "t": 0.1, "opcode": "close", "close_code": 4000,
         "close_reason": "done"},
    )
    async with ws_serve(closer, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        [outcome] = await play(cassette, f"ws://127.0.0.1:{port}", PlayOptions(wait=2))
    assert outcome.closed_by == "server"
    assert (outcome.close_code, outcome.close_reason) == (4000, "done")
    assert outcome.received == [] and outcome.sent == 1


async def test_an_http_refusal_is_refused_or_unreachable() -> None:
    from websockets.datastructures import Headers
    from websockets.http11 import Response as HttpResponse

    def refuse(connection: ServerConnection, request: Any) -> HttpResponse:
        status = 403 if request.path == "/private" else 503
        return HttpResponse(status, "no", Headers(), b"")

    async with ws_serve(lambda ws: None, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        cassette = lines({"conn": 1})
        [private] = await play(cassette, f"ws://127.0.0.1:{port}/private", PlayOptions())
        [busy] = await play(cassette, f"ws://127.0.0.1:{port}/busy", PlayOptions())
    assert (private.failure, private.status, private.handshake_error) == (
        "refused", 403, "HTTP 403")
    assert (busy.failure, busy.status) == ("unreachable", 503)


async def test_a_recorded_resume_resumes_the_replayed_session(serve: Any) -> None:
    token = "746f6b656e"
    cassette = lines(
        {"conn": 1, "ts": 10.0, "subprotocols": ["wsp.v2"]},
        {"conn": 2, "ts": 11.0, "subprotocols": ["wsp.v2"]},
        {"conn": 1, "direction": "server", "t": 0.0,
         "wsp": wsp("Challenge", nonce=NONCE, methods=["hmac"])},
        {"conn": 1, "direction": "client", "t": 0.01,
         "wsp": wsp("Handshake", capabilities=["ack", "pubsub"], auth="hmac",
                    client_nonce=NONCE)},
        {"conn": 1, "direction": "server", "t": 0.02,
         "wsp": wsp("HandshakeResponse", session_id=5, resume_token=token)},
        {"conn": 1, "direction": "client", "t": 0.03, "wsp": wsp("Subscribe", topic="r")},
        {"conn": 1, "direction": "server", "t": 0.04,
         "wsp": wsp("Subscribed", topic="r", epoch=1, next_offset=1)},
        {"conn": 2, "direction": "server", "t": 0.0,
         "wsp": wsp("Challenge", nonce=NONCE, methods=["hmac"])},
        {"conn": 2, "direction": "client", "t": 0.01,
         "wsp": wsp("Handshake", capabilities=["ack", "pubsub"], auth="hmac",
                    client_nonce=NONCE, resume_token=token, last_received=0)},
        {"conn": 2, "direction": "server", "t": 0.02,
         "wsp": wsp("HandshakeResponse", session_id=5, resumed=True)},
        {"conn": 2, "direction": "client", "t": 0.03,
         "wsp": wsp("Request", id=1, method="echo", data="6869")},
        {"conn": 2, "direction": "server", "t": 0.04, "wsp": wsp("Response", id=1, data="6869")},
        {"conn": 2, "direction": "client", "t": 0.05, "opcode": "close", "close_code": 1000},
    )
    async with serve() as server:
        first, second = await play(cassette, f"ws://127.0.0.1:{server.port}",
                                   PlayOptions(secret=SECRET, wait=2))
    assert first.failure is None and second.failure is None
    assert first.close_code == 1001  # the connection ended, not the session
    answers = [m.wsp.payload for m in second.received if m.wsp is not None]
    accepted = [a for a in answers if type(a).__name__ == "HandshakeResponse"]
    assert accepted and accepted[0].resumed
    assert [r.data for r in payloads(second, Response)] == [b"hi"], answers


async def test_a_server_that_stops_reading_is_given_up_on() -> None:
    async def deaf(ws: ServerConnection) -> None:
        await ws.wait_closed()  # reads nothing

    big = b"\x00" * (256 << 10)
    cassette = Cassette()
    cassette.connections[1] = lines({"conn": 1}).connections[1]
    cassette.messages.extend(CassetteMessage(1, "client", 0.0, "binary", data=big)
                             for _ in range(400))
    async with ws_serve(deaf, "127.0.0.1", 0, max_size=None, close_timeout=0.5) as server:
        port = server.sockets[0].getsockname()[1]
        start = time.monotonic()
        [outcome] = await play(cassette, f"ws://127.0.0.1:{port}",
                               PlayOptions(timing="fast", wait=0.5))
        assert time.monotonic() - start < 8
    assert outcome.sent < 400 and outcome.skipped


async def test_wss_with_the_given_context_and_a_certificate_it_does_not_trust(
        tls_files: Any) -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    cassette = question_cassette(0.001)
    async with ws_serve(echo, "127.0.0.1", 0, ssl=tls_files.server_context()) as server:
        url = f"wss://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        [trusted] = await play(cassette, url,
                               PlayOptions(ssl_context=tls_files.client_context(), wait=1))
        [untrusted] = await play(cassette, url, PlayOptions(wait=1))
    assert trusted.failure is None and [m.text for m in trusted.received] == ["q1", "q2"]
    assert untrusted.failure == "unreachable"
    assert "certificate" in (untrusted.handshake_error or "")


async def test_an_encrypted_session_is_encrypted_again_and_kept_decrypted(serve: Any) -> None:
    cassette = lines(
        {"conn": 1, "subprotocols": ["wsp.v2"]},
        {"conn": 1, "direction": "server", "t": 0.0,
         "wsp": wsp("Challenge", nonce=NONCE, methods=["hmac"])},
        {"conn": 1, "direction": "client", "t": 0.01,
         "wsp": wsp("Handshake", capabilities=["ack", "batch", "pubsub", "encrypt"],
                    auth="hmac", client_nonce=NONCE)},
        {"conn": 1, "direction": "client", "t": 0.02,
         "wsp": wsp("Request", id=3, method="echo", data="736563726574")},
        {"conn": 1, "direction": "server", "t": 0.03,
         "wsp": wsp("Response", id=3, data="736563726574")},
    )
    async with serve() as server:
        [outcome] = await play(cassette, f"ws://127.0.0.1:{server.port}",
                               PlayOptions(secret=SECRET, wait=2))
    assert outcome.failure is None
    granted = [m.wsp.payload for m in outcome.received
               if m.wsp is not None and type(m.wsp.payload).__name__ == "HandshakeResponse"]
    assert "encrypt" in granted[0].capabilities
    [response] = [m.wsp for m in outcome.received
                  if m.wsp is not None and isinstance(m.wsp.payload, Response)]
    assert response.payload == Response(3, b"secret")
    assert Flags.ENCRYPTED in response.flags  # it came sealed; kept as its plaintext


async def test_a_replay_of_a_recorded_session_differs_in_nothing_beyond_learned_noise(
        serve: Any) -> None:
    from wsproto_tools.replay.diff import diff_connection, learn_noise
    from wsproto_tools.replay.outcome import recorded_outcome

    async with serve() as original:
        cassette = await record_session(original)
    async with serve(secret=b"another") as fresh:
        url = f"ws://127.0.0.1:{fresh.port}"
        runs = [(await play(cassette, url, PlayOptions(secret=b"another", wait=2)))[0]
                for _ in range(3)]
    noise = learn_noise(runs[:2])
    diff = diff_connection(recorded_outcome(cassette, 1), runs[2], noise)
    assert diff.to_json()["differences"] == 0, diff.to_json()
