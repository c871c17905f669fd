"""Exactly once, in order, across TCP resets; continuity lost when history is short."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from wsproto_tools.client import Client
from wsproto_tools.engine.events import ContinuityLostNotice, Delivery

SECRET = b"test-secret"  # the serve fixture's (tests/conftest.py)
MESSAGES = 2000


@pytest.mark.parametrize("caps", [(), ("encrypt", "compress")], ids=["plain", "encrypted"])
async def test_2000_messages_exactly_once_in_order_across_20_resets(
    serve: Any, proxy_to: Any, caps: tuple[str, ...]
) -> None:
    """Encrypted: every resume derives new keys, sends its HandshakeResponse in clear
    and restarts the nonce counters (docs/protocol.md 5.2, S.2)."""
    rng = random.Random(20)
    events: list[str] = []
    capabilities = ("ack", "batch", "pubsub", *caps)
    async with serve(history=MESSAGES + 100) as server:
        proxy = await proxy_to(server.port, seed=1)
        subscriber = Client(
            f"ws://127.0.0.1:{proxy.port}",
            secret=SECRET,
            backoff_base=0.005,
            backoff_cap=0.02,
            seed=3,
            on_event=lambda n, f: events.append(n),
            capabilities=capabilities,
        )
        publisher = Client(
            f"ws://127.0.0.1:{server.port}", secret=SECRET, capabilities=capabilities
        )
        await subscriber.connect()
        await publisher.connect()
        subscription = await subscriber.subscribe("stream")
        received: list[Delivery] = []

        async def consume() -> None:
            while len(received) < MESSAGES:
                try:
                    item = await subscription.get()
                except Exception as error:
                    raise AssertionError(
                        (subscriber.error, events[-5:], subscriber._runner)
                    ) from error
                assert isinstance(item, Delivery), (item, subscriber.error, events[-5:])
                received.append(item)

        consumer = asyncio.create_task(consume())
        sent = 0
        async with asyncio.timeout(60):
            while sent < MESSAGES:
                if proxy.budget is None:
                    proxy.arm(rng.randrange(1, 1500))  # reset after 1..1500 more bytes
                burst = rng.randrange(1, 40)
                for _ in range(min(burst, MESSAGES - sent)):
                    await publisher.publish_nowait("stream", b"message %d" % sent)
                    sent += 1
                await asyncio.sleep(rng.random() * 0.004)
            while proxy.resets < 20:  # keep resetting while the tail is in flight
                proxy.reset_now()
                await asyncio.sleep(0.01)
            await consumer
        # Resets are timed by bytes relayed, so how many land mid-frame, or hit a
        # connection that had already resumed, depends on scheduling: the oracle is
        # the exactly-once, in-order check below, with at least one of each kind.
        assert proxy.resets >= 20 and proxy.mid_frame >= 1
        assert [d.offset for d in received] == list(range(1, MESSAGES + 1))
        assert [d.data for d in received] == [b"message %d" % i for i in range(MESSAGES)]
        assert subscriber.resumes >= 1 and "continuity_lost" not in events
        assert subscriber.session.encrypted is ("encrypt" in caps)
        assert server.metrics.replays >= 1
        await subscriber.close()
        await publisher.close()


async def test_history_shorter_than_the_gap_reports_continuity_lost(
    serve: Any, proxy_to: Any
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    async with serve(history=10) as server:
        proxy = await proxy_to(server.port)
        subscriber = Client(
            f"ws://127.0.0.1:{proxy.port}",
            secret=SECRET,
            backoff_base=0.01,
            backoff_cap=0.02,
            on_event=lambda n, f: events.append((n, f)),
        )
        async with Client(f"ws://127.0.0.1:{server.port}", secret=SECRET) as publisher:
            await subscriber.connect()
            subscription = await subscriber.subscribe("t")
            for i in range(5):
                await publisher.publish("t", b"%d" % i)
            first = [await subscription.get() for _ in range(5)]
            assert [d.offset for d in first] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
            proxy.refuse = True
            proxy.reset_now()
            for i in range(5, 40):  # 35 messages while away; history keeps 10
                await publisher.publish("t", b"%d" % i)
            proxy.refuse = False
            async with asyncio.timeout(10):
                lost = await subscription.get()
                rest = [await subscription.get() for _ in range(10)]
        assert isinstance(lost, ContinuityLostNotice)
        assert (lost.requested, lost.available) == (6, 31)  # offsets 6..30 are gone
        assert [d.offset for d in rest] == list(range(31, 41))  # type: ignore[union-attr]
        notices = [f for n, f in events if n == "continuity_lost"]
        assert notices == [{"topic": "t", "epoch": lost.epoch, "requested": 6, "available": 31}]
        assert server.metrics.continuity_lost == 1
        await subscriber.close()
