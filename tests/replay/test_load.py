"""The load mode of ``wsp replay``: copies, loops, a rate, and what it reports."""

from __future__ import annotations

import time
from typing import Any

import pytest

from wsproto_tools.exceptions import ConfigError
from wsproto_tools.replay.cassette import Cassette
from wsproto_tools.replay.load import percentile, run_load
from wsproto_tools.replay.player import PlayOptions

from .recording import lines


def echo_cassette(count: int) -> Cassette:
    objs: list[dict[str, Any]] = [{"conn": 1}]
    for i in range(count):
        objs.append({"conn": 1, "direction": "client", "t": i * 0.001, "opcode": "text",
                     "text": f"m{i}"})
        objs.append({"conn": 1, "direction": "server", "t": i * 0.001, "opcode": "text",
                     "text": f"m{i}"})
    return lines(*objs)


async def test_three_copies_give_three_times_the_messages(websockets_echo: Any) -> None:
    async with websockets_echo() as port:
        result = await run_load(echo_cassette(50), f"ws://127.0.0.1:{port}",
                                PlayOptions(timing="fast", wait=2), copies=3)
    assert result.connections == 3 and not result.failures
    assert result.sent == 150 and result.received == 150
    assert result.throughput > 0 and len(result.latencies) >= 3
    lat = result.latency()
    assert lat["p50"] is not None and lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    report = result.to_json()
    assert report["sent"] == 150 and report["failures"] == {}


async def test_a_loop_repeats_until_its_duration_and_a_rate_paces_it(
        websockets_echo: Any) -> None:
    async with websockets_echo() as port:
        start = time.monotonic()
        result = await run_load(echo_cassette(5), f"ws://127.0.0.1:{port}",
                                PlayOptions(timing="fast", wait=1), copies=2, loop=True,
                                duration=0.5, rate=200)
        elapsed = time.monotonic() - start
    assert 0.4 < elapsed < 3
    assert result.rounds > 2 and result.sent == result.received
    assert result.sent <= 200 * elapsed + 20  # the rate (and its small burst)
    async with websockets_echo() as port:
        counted = await run_load(echo_cassette(5), f"ws://127.0.0.1:{port}",
                                 PlayOptions(timing="causal", wait=1), loop=True, rounds=4)
    assert counted.rounds == 4 and counted.sent == 20 and counted.received == 20


async def test_failures_are_counted_by_kind() -> None:
    result = await run_load(echo_cassette(1), "ws://127.0.0.1:1", PlayOptions(), copies=2)
    assert result.failures == {"unreachable": 2} and result.sent == 0
    assert result.errors and "x2" in result.errors[0]


async def test_a_loop_needs_an_end() -> None:
    with pytest.raises(ConfigError, match="duration"):
        await run_load(echo_cassette(1), "ws://127.0.0.1:1", PlayOptions(), loop=True)
    with pytest.raises(ConfigError):
        await run_load(echo_cassette(1), "ws://127.0.0.1:1", PlayOptions(), copies=0)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100 and percentile([], 0.5) is None


async def test_copies_of_a_wsp_session_are_each_rewritten_on_their_own(serve: Any) -> None:
    nonce = "00" * 16
    objs: list[dict[str, Any]] = [
        {"conn": 1, "subprotocols": ["wsp.v2"]},
        {"conn": 1, "direction": "server", "t": 0.0,
         "wsp": {"type": "Challenge", "payload": {"nonce": nonce, "methods": ["hmac"]}}},
    ]
    for i in range(10):
        objs.append({"conn": 1, "direction": "client", "t": 0.01 * i,
                     "wsp": {"type": "Request", "payload": {"id": 7, "method": "echo",
                                                            "data": "6869"}}})
        objs.append({"conn": 1, "direction": "server", "t": 0.01 * i,
                     "wsp": {"type": "Response", "payload": {"id": 7, "data": "6869"}}})
    async with serve() as server:
        result = await run_load(lines(*objs), f"ws://127.0.0.1:{server.port}",
                                PlayOptions(secret=b"test-secret", wait=2), copies=4)
    assert not result.failures and result.timeouts == 0
    assert result.sent == 40
    assert result.received >= 40  # the responses, and the engine's own messages
