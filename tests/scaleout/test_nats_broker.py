"""Two and three nodes on one real nats-server: offsets, fan-out across nodes,
history and continuity, deduplication, presence, resume on another node."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from scaleout.conftest import SECRET
from wsproto_tools.client import Client
from wsproto_tools.engine.events import ContinuityLostNotice


def url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


async def test_a_message_published_on_one_node_reaches_subscribers_of_every_node(
    nats: Any, cluster_node: Any
) -> None:
    async with (
        cluster_node(nats.url) as a,
        cluster_node(nats.url) as b,
        Client(url(a), secret=SECRET) as sub_a,
        Client(url(b), secret=SECRET) as sub_b,
        Client(url(a), secret=SECRET) as publisher,
    ):
        got_a = await sub_a.subscribe("prices")
        got_b = await sub_b.subscribe("prices")
        for i in range(50):
            await publisher.publish("prices", f"px {i}".encode())
        for sub in (got_a, got_b):
            items = [await asyncio.wait_for(sub.get(), 10) for _ in range(50)]
            assert [d.data for d in items] == [f"px {i}".encode() for i in range(50)]
            assert [d.offset for d in items] == list(range(1, 51))  # contiguous


async def test_offsets_are_contiguous_per_topic_and_history_replays_on_another_node(
    nats: Any, cluster_node: Any
) -> None:
    async with cluster_node(nats.url) as a, cluster_node(nats.url) as b:
        async with Client(url(a), secret=SECRET) as publisher:
            for i in range(10):
                await publisher.publish("x", f"x{i}".encode())
                await publisher.publish("y", f"y{i}".encode())
        async with Client(url(b), secret=SECRET) as late:
            sub = await late.subscribe("y", from_offset=4)
            items = [await asyncio.wait_for(sub.get(), 10) for _ in range(7)]
            assert [d.offset for d in items] == list(range(4, 11))
            assert [d.data for d in items] == [f"y{i}".encode() for i in range(3, 10)]


async def test_history_limit_gives_continuity_lost(nats: Any, cluster_node: Any) -> None:
    async with cluster_node(nats.url, history=5) as a:
        async with Client(url(a), secret=SECRET) as publisher:
            for i in range(12):
                await publisher.publish("h", f"{i}".encode())
        async with Client(url(a), secret=SECRET) as late:
            sub = await late.subscribe("h", from_offset=2)
            first = await asyncio.wait_for(sub.get(), 10)
            assert isinstance(first, ContinuityLostNotice)
            assert first.available == 8
            items = [await asyncio.wait_for(sub.get(), 10) for _ in range(5)]
            assert [d.offset for d in items] == [8, 9, 10, 11, 12]


async def test_presence_counts_subscribers_of_every_node(nats: Any, cluster_node: Any) -> None:
    async with (
        cluster_node(nats.url) as a,
        cluster_node(nats.url) as b,
        Client(url(a), secret=SECRET) as one,
        Client(url(b), secret=SECRET) as two,
        Client(url(b), secret=SECRET) as three,
    ):
        for client in (one, two, three):
            await client.subscribe("room")
        answer: dict[str, Any] = {}
        for _ in range(100):  # presence travels through NATS: bounded wait
            reply = await one.request("presence", b"room")
            answer = json.loads(reply.data)
            if answer["subscribers"] == 3:
                break
            await asyncio.sleep(0.05)
        assert answer == {"topic": "room", "subscribers": 3}


def test_replay_range_follows_the_history_rules() -> None:
    from wsproto_tools.server.nats_broker import replay_range

    # (epoch, first, last, from_offset, asked_epoch) -> (start, end, lost?)
    assert replay_range(9, 1, 10, None, None)[:2] == (11, 10)
    assert replay_range(9, 1, 10, 4, 9) == (4, 10, None)
    assert replay_range(9, 1, 10, 11, 9) == (11, 10, None)  # caught up
    start, end, lost = replay_range(9, 6, 10, 2, 9)
    assert (start, end) == (6, 10) and lost is not None
    assert (lost.requested, lost.available) == (1, 6)
    start, end, lost = replay_range(9, 1, 10, 15, 9)
    assert lost is not None and "ahead" in lost.reason
    start, end, lost = replay_range(9, 3, 10, 5, 8)  # another epoch: from the start
    assert (start, end) == (3, 10) and lost is not None and "epoch" in lost.reason
    assert replay_range(9, 3, 10, 1, 8) == (3, 10, None)  # new subscriber, old epoch
    assert replay_range(9, 11, 10, 3, 9)[2] is not None  # all aged out


async def test_a_publish_sent_again_with_its_id_is_stored_once(nats: Any) -> None:
    from wsproto_tools.server.nats_broker import NatsBroker
    from wsproto_tools.server.nats_options import NatsOptions

    broker = NatsBroker(NatsOptions([nats.url]))
    await broker.start()
    try:
        first = await broker.publish("dedup", b"a", 0.0, "77.1")
        again = await broker.publish("dedup", b"a", 0.0, "77.1")  # a resend after a resume
        other = await broker.publish("dedup", b"b", 0.0, "77.2")
        assert (first.offset, again.offset, other.offset) == (1, 1, 2)
        assert (broker.stored, broker.duplicates) == (2, 1)
    finally:
        await broker.close()


async def test_an_unreachable_broker_is_a_one_line_error_and_status_4() -> None:
    import subprocess
    import sys
    from pathlib import Path

    from scaleout.natsd import free_port

    wsp = str(Path(sys.executable).parent / "wsp")
    done = subprocess.run(
        [wsp, "serve", "--port", "0", "--secret", "s", "--token-key", "k",
         "--broker", f"nats://127.0.0.1:{free_port()}"],
        capture_output=True, timeout=60)
    assert done.returncode == 4
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wsp: error: cannot reach NATS"), lines
    usage = subprocess.run([wsp, "serve", "--broker", "nats://127.0.0.1:1", "--secret", "s"],
                           capture_output=True, timeout=60)
    assert usage.returncode == 2 and b"--token-key" in usage.stderr


async def test_a_lost_history_is_a_new_epoch_and_resubscribers_are_told(
    nats: Any, cluster_node: Any
) -> None:
    async with cluster_node(nats.url) as a:
        async with Client(url(a), secret=SECRET) as publisher:
            for i in range(5):
                await publisher.publish("lost", f"{i}".encode())
            async with Client(url(a), secret=SECRET) as reader:
                sub = await reader.subscribe("lost", from_offset=1)
                old = [await asyncio.wait_for(sub.get(), 10) for _ in range(5)]
            old_epoch = old[0].epoch
            broker: Any = a.broker
            assert broker.js is not None
            await broker.js.delete_stream(broker.stream_name("lost"))  # the history is gone
            for i in range(3):
                await publisher.publish("lost", f"new {i}".encode())
        async with Client(url(a), secret=SECRET) as late:
            sub = await late.subscribe("lost", from_offset=6, epoch=old_epoch)
            notice = await asyncio.wait_for(sub.get(), 10)
            assert isinstance(notice, ContinuityLostNotice)
            assert notice.epoch != old_epoch and notice.available == 1
            fresh = [await asyncio.wait_for(sub.get(), 10) for _ in range(3)]
            assert [(d.offset, d.data) for d in fresh] == [(1, b"new 0"), (2, b"new 1"),
                                                            (3, b"new 2")]
            assert all(d.epoch == notice.epoch for d in fresh)


async def test_nodes_with_other_settings_share_the_buckets(nats: Any, cluster_node: Any) -> None:
    async with (
        cluster_node(nats.url, resume_lifetime=100.0) as a,
        cluster_node(nats.url, resume_lifetime=200.0) as b,  # the bucket stays as made
        Client(url(a), secret=SECRET) as one,
        Client(url(b), secret=SECRET) as two,
    ):
        sub = await two.subscribe("shared")
        await one.publish("shared", b"x")
        assert (await asyncio.wait_for(sub.get(), 10)).data == b"x"
