"""Hostile peers (issue 10, section 1): every byte the server holds for a peer is
bounded and charged to it. Real ``wsp serve`` processes (memory read from
``/proc/PID/status``) or a WspServer on 127.0.0.1; attackers are websockets
clients with a 4 KiB receive buffer that finish the handshake and stop reading
(``benchmarks/hostile.py``, scaled down)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from wsproto_tools.codec import Batch, BinaryData, Deliver, Flags, Message, Publish, decode, encode
from wsproto_tools.codec.limits import Limits
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.session import Credentials

_PATH = Path(__file__).parents[2] / "benchmarks" / "hostile.py"
_SPEC = importlib.util.spec_from_file_location("hostile_bench", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
hostile: Any = importlib.util.module_from_spec(_SPEC)
sys.modules["hostile_bench"] = hostile
_SPEC.loader.exec_module(hostile)

MiB = 1 << 20
SECRET = hostile.SECRET.encode()

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def mb(kib: int) -> float:
    return kib / 1024


def closes(served: Any, code: int) -> int:
    line = served.metric(f'wsp_closes_total{{code="{code}"}}')
    return int(float(line.split()[-1])) if line else 0


# ---------------------------------------------------------------- 1 and 2: output budget


@pytest.mark.parametrize("kind", ["request", "data"])
async def test_a_client_that_never_reads_is_cut_at_its_budget(kind: str) -> None:
    """Items 1 and 2: echo Requests or echoed BinaryData (ack requested) from a
    client that never reads; 24 MiB sent, a 256 KiB budget: closed with 4005,
    the server grows by a few MB, and less is held once the attacker is gone."""
    make = hostile.echo_requests if kind == "request" else hostile.echo_data
    with hostile.wsp_serve("--max-buffer", str(256 * 1024)) as served:
        await asyncio.sleep(0.3)
        base = served.status()
        ws, session = await hostile.attacker(served.url)
        await hostile.send_all(ws, make(session, 24 * MiB, 64 * 1024), time.monotonic() + 20)
        await asyncio.sleep(2.5)  # the close timeout passes
        peak = served.status()
        assert closes(served, 4005) == 1
        await hostile.drop(ws)
        await asyncio.sleep(0.5)
        after = served.status()
    assert mb(peak["VmHWM"] - base["VmRSS"]) < 12, (base, peak)
    assert mb(after["VmRSS"] - base["VmRSS"]) < 10, (base, after)


async def test_sequenced_answers_respect_the_window(serve: Any) -> None:
    """Item 2: echoes are never unacknowledged past the window (the rest waits
    in the session's backlog, charged to its budget), and a retransmission
    timeout resends at most the window, not everything ever echoed."""
    async with (
        serve(secret=SECRET) as server,
        connect(
            hostile_url(server),
            subprotocols=["wsp.v2"],  # type: ignore[list-item]
        ) as ws,
    ):
        session = ClientSession(Credentials(secret=SECRET))
        session.connection_made(0.0, nonce=os.urandom(16))
        while not session.active:
            session.receive_data(await ws.recv(), 0.0)  # type: ignore[arg-type]
            for chunk in session.data_to_send():
                await ws.send(chunk)
        for seq in range(1, 301):  # never acknowledged: the client only reads
            await ws.send(encode(Message(BinaryData(b"x" * 100), seq, 0, 0, Flags.ACK_REQUESTED)))
        await asyncio.sleep(0.3)
        (held,) = server.sessions.values()
        window = held.window.size
        assert held.in_flight <= window < 300
        assert len(held.backlog or ()) == 300 - held.in_flight
        assert held.held == 300 * (100 + 64)
        async with asyncio.timeout(5):
            while server.metrics.retransmits == 0:
                await asyncio.sleep(0.1)
        assert server.metrics.retransmits <= window


def hostile_url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


# ---------------------------------------------------------------- 3: replay


async def test_replay_is_paced_by_what_the_subscriber_drains() -> None:
    """Item 3: 24 x 1 MiB of history, then 3 sessions that each send one
    Subscribe(from_offset=1) and never read: the server grows by a few MB, not
    by 3 x 24 MB."""
    with hostile.wsp_serve() as served:
        pub, _ = await hostile.attacker(served.url, read=True)
        await hostile.send_all(pub, hostile.publishes("amp", 24, MiB - 1024), time.monotonic() + 20)
        await asyncio.sleep(0.5)
        await hostile.drop(pub)
        await asyncio.sleep(0.5)
        base = served.status()
        subs = []
        for _ in range(3):
            ws, _ = await hostile.attacker(served.url)
            await ws.send(hostile.subscribe("amp", 1))
            subs.append(ws)
        await asyncio.sleep(2.0)
        peak = served.status()
        for ws in subs:
            await hostile.drop(ws)
    assert mb(peak["VmHWM"] - base["VmRSS"]) < 12, (base, peak)


async def test_a_paced_replay_delivers_everything_in_order(serve: Any) -> None:
    """Pacing keeps the contract: a subscriber from offset 1 gets every message
    once, in order, the replay first and then what was published meanwhile."""
    async with (
        serve(secret=SECRET) as server,
        connect(
            hostile_url(server),
            subprotocols=["wsp.v2"],  # type: ignore[list-item]
            max_size=None,
        ) as ws,
    ):
        if True:  # one block per connection
            session = await _handshake(ws)
            for n in range(1, 41):
                session.publish("paced", bytes([n]) * 100_000, 0.0)
                for chunk in session.data_to_send():
                    await ws.send(chunk)
                while session.in_flight > 8:
                    session.receive_data(await ws.recv(), 0.0)  # type: ignore[arg-type]
            async with connect(
                hostile_url(server),
                subprotocols=["wsp.v2"],  # type: ignore[list-item]
                max_size=None,
            ) as reader:
                await _handshake(reader)
                await reader.send(hostile.subscribe("paced", 1))
                await asyncio.sleep(0.2)
                for n in range(41, 46):  # published while the replay goes on
                    session.publish("paced", bytes([n]) * 100_000, 0.0)
                    for chunk in session.data_to_send():
                        await ws.send(chunk)
                offsets: list[int] = []
                async with asyncio.timeout(10):
                    while len(offsets) < 45:
                        msg = decode(await reader.recv(), limits=Limits(max_message=1 << 24))  # type: ignore[arg-type]
                        items = msg.payload.messages if isinstance(msg.payload, Batch) else (msg,)
                        for item in items:
                            if isinstance(item.payload, Deliver):
                                offset = item.payload.offset
                                assert item.payload.data == bytes([offset]) * 100_000
                                offsets.append(offset)
                assert offsets == list(range(1, 46))
                assert server.metrics.replayed_messages >= 40


async def _handshake(ws: Any) -> ClientSession:
    session = ClientSession(Credentials(secret=SECRET))
    session.connection_made(0.0, nonce=os.urandom(16))
    while not session.active:
        session.receive_data(await ws.recv(), 0.0)
        for chunk in session.data_to_send():
            await ws.send(chunk)
    return session


# ---------------------------------------------------------------- 4: history in bytes


async def test_history_is_bounded_in_bytes() -> None:
    """Item 4: 24 x 1 MiB to one topic and 24 x 1 MiB to another under
    --history-bytes 4 MiB and --history-total 6 MiB: the server keeps at most
    6 MiB of them."""
    options = ("--history-bytes", str(4 * MiB), "--history-total", str(6 * MiB))
    # large blocks always mmap'ed, so that what is freed leaves the RSS at once
    with hostile.wsp_serve(*options, env={"MALLOC_MMAP_THRESHOLD_": "131072"}) as served:
        await asyncio.sleep(0.3)
        base = served.status()
        pub, _ = await hostile.attacker(served.url, read=True)
        await hostile.send_all(pub, hostile.publishes("h1", 24, MiB - 1024), time.monotonic() + 20)
        await hostile.send_all(
            pub, hostile.publishes("h2", 24, MiB - 1024, 25), time.monotonic() + 20
        )
        await asyncio.sleep(1.0)
        await hostile.drop(pub)
        await asyncio.sleep(0.5)
        after = served.status()
    assert mb(after["VmRSS"] - base["VmRSS"]) < 16, (base, after)


async def test_history_bytes_in_process(serve: Any) -> None:
    async with serve(secret=SECRET, history_bytes=300_000, history_total=500_000) as server:
        async with connect(hostile_url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            session = await _handshake(ws)
            for n in range(10):
                for k, topic in enumerate(("a", "b")):
                    session.publish(topic, b"x" * 100_000, 0.0, 2 * n + k + 1)
                    for chunk in session.data_to_send():
                        await ws.send(chunk)
            while session.in_flight:
                session.receive_data(await ws.recv(), 0.0)  # type: ignore[arg-type]
        hub = server.broker.hub
        assert hub.topics["a"].bytes <= 300_000 and hub.topics["b"].bytes <= 300_000
        assert hub.total <= 500_000
        assert hub.total == sum(log.bytes for log in hub.topics.values())


# ---------------------------------------------------------------- 5: topics


async def test_idle_topics_are_freed(serve: Any) -> None:
    """Item 5: topics with no subscriber and no history are freed."""
    async with serve(secret=SECRET) as server:
        async with connect(hostile_url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            await _handshake(ws)
            for n in range(500):
                await ws.send(hostile.subscribe(f"t{n}"))
            async with asyncio.timeout(5):
                while len(server.broker.hub.topics) < 500:
                    await asyncio.sleep(0.05)
            await ws.send(hostile.subscribe("t0"))
        async with asyncio.timeout(5):
            while server.broker.hub.topics:
                await asyncio.sleep(0.05)
        assert not server.subscribers


async def test_one_session_cannot_take_every_topic(serve: Any) -> None:
    """Item 5: a session may make --max-topics-per-session topics (1008 beyond);
    the others can still make theirs."""
    async with serve(secret=SECRET, max_topics=50, max_topics_per_session=10) as server:
        async with connect(hostile_url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            session = await _handshake(ws)
            for n in range(11):
                await ws.send(hostile.subscribe(f"greedy{n}"))
            async with asyncio.timeout(5):
                while True:
                    try:
                        session.receive_data(await ws.recv(), 0.0)  # type: ignore[arg-type]
                    except Exception:
                        break
            assert ws.close_code == 1008 and "limit 10" in (ws.close_reason or "")
        async with connect(hostile_url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            session = await _handshake(ws)
            session.publish("mine", b"hello", 0.0)
            for chunk in session.data_to_send():
                await ws.send(chunk)
            async with asyncio.timeout(5):
                while session.in_flight:
                    session.receive_data(await ws.recv(), 0.0)  # type: ignore[arg-type]
        assert "mine" in server.broker.hub.topics


# ---------------------------------------------------------------- 6: detached sessions


async def test_detached_sessions_are_capped(serve: Any) -> None:
    """Item 6: at most --max-detached sessions are held for resume (the oldest
    go first), and a session keeps at most 1,024 publish ids."""
    async with serve(secret=SECRET, max_detached=5) as server:
        ids = []
        for _ in range(12):
            ws, session = await hostile.attacker(hostile_url(server), read=True)
            ids.append(session.session_id)
            await hostile.drop(ws)
            await asyncio.sleep(0.02)
        async with asyncio.timeout(5):
            while server.attached:
                await asyncio.sleep(0.05)
        assert list(server.sessions) == ids[-5:]
        assert (
            len(server.detached) == 5 and server.detached_bytes <= server.config.max_detached_bytes
        )

        ws, session = await hostile.attacker(hostile_url(server), read=True)
        for n in range(1, 2001):
            await ws.send(encode(Message(Publish("ids", b"", n), n, 0, 0, Flags.ACK_REQUESTED)))
        async with asyncio.timeout(10):
            while server.sessions[session.session_id].recv_seq < 2000:
                await asyncio.sleep(0.05)
        assert len(server.sessions[session.session_id].applied_ids or ()) == 1024
        await hostile.drop(ws)


async def test_detached_bytes_are_capped(serve: Any) -> None:
    """Item 6: what detached sessions hold (unacknowledged data included) stays
    under --max-detached-bytes."""
    async with serve(secret=SECRET, max_detached_bytes=300_000, max_buffer=200_000) as server:
        for _ in range(4):
            ws, _ = await hostile.attacker(hostile_url(server))
            for seq in range(1, 21):
                await ws.send(
                    encode(Message(BinaryData(b"y" * 5_000), seq, 0, 0, Flags.ACK_REQUESTED))
                )
            await asyncio.sleep(0.2)
            await hostile.drop(ws)
        async with asyncio.timeout(5):
            while server.attached:
                await asyncio.sleep(0.05)
        assert server.detached_bytes <= 300_000
        held = sum(s.held for s in server.sessions.values())
        assert 0 < held <= 300_000


def test_hub_frees_idle_topics_with_a_new_epoch() -> None:
    """A freed topic that had given out offsets comes back in another epoch (old
    offsets are never taken for new ones); owners are charged while it exists."""
    from wsproto_tools.engine.history import ContinuityLost
    from wsproto_tools.engine.hub import Hub

    hub = Hub(epoch=5, history=0, max_per_owner=2)
    hub.publish("a", b"x", 0.0, owner=7)
    hub.topic("b", 7)
    with pytest.raises(Exception, match="limit 2"):
        hub.topic("c", 7)
    assert hub.release("a", 0.0) and hub.release("b", 0.0)
    assert not hub.topics and not hub.owned
    again = hub.topic("a", 7)
    assert again.epoch != 5 and again.last_offset == 0
    answer = hub.subscribe("a", 2, 5, 0.0)  # a cursor of the old incarnation
    assert isinstance(answer.lost, ContinuityLost)


def test_hub_history_total_drops_the_oldest_of_any_topic() -> None:
    from wsproto_tools.engine.hub import Hub

    hub = Hub(epoch=1, history=100, history_bytes=60, history_total=100)
    for n in range(10):
        hub.publish("old" if n < 5 else "new", bytes(10), float(n))
    assert hub.total == 100 and [len(t.entries) for t in hub.topics.values()] == [5, 5]
    hub.publish("new", bytes(10), 10.0)
    assert hub.topics["old"].first_available == 2 and hub.total == 100
    for n in range(20):
        hub.publish("new", bytes(10), 11.0 + n)
    assert hub.topics["new"].bytes == 60 and hub.total == sum(t.bytes for t in hub.topics.values())
    assert hub.total <= 100
