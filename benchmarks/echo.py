"""Echo benchmark: the wsp server and client against a bare ``websockets`` echo.

Run: ``python benchmarks/echo.py`` (``--quick`` for a short run). Loopback only;
each server runs in its own process, the client in this one, and the baseline is
measured in the same run:

(a) round trips per second of the built-in echo request, awaited one at a time,
    against bare echo round trips (target >= 0.8x);
(b) pipelined: the client publishes N messages on a topic it subscribes to and
    counts deliveries at the application, against bare pipelined echo
    (target >= 1.0x);
(c) p99 round trip of the echo request at 1,000 requests/s (target < 5 ms),
    beside the bare echo's p99 at the same rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from wsproto_tools.client import Client, Subscription

SECRET = b"bench-secret"
SIZES = (64, 1024)


# ---------------------------------------------------------------- servers (child processes)


async def serve_wsp(**overrides: Any) -> None:
    """The benchmark's wsp server (``overrides``: more ServerConfig fields)."""
    from wsproto_tools.server import ServerConfig, WspServer

    server = WspServer(
        ServerConfig(
            port=0, secret=SECRET, history=100_000, rate=0, max_buffer=64 << 20, **overrides
        )
    )
    await server.start()
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.shutdown()


async def serve_bare() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for data in ws:
            await ws.send(data)

    async with serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@contextlib.asynccontextmanager
async def child(role: str, *args: str, script: str = __file__) -> AsyncIterator[int]:
    """Start ``script`` (this one by default) as a server process; yields its port."""
    proc = subprocess.Popen(
        [sys.executable, script, "--role", role, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
        yield int(line)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---------------------------------------------------------------- measurements
#
# Each side keeps one connection for a whole test; the test is a series of rounds,
# and in each round both sides run the same block (wsp first in even rounds, bare
# first in odd ones), so the two see the same background load, block by block.


Block = Callable[[], Awaitable[float]]


@contextlib.asynccontextmanager
async def bare_connection(port: int) -> AsyncIterator[ClientConnection]:
    async with connect(
        f"ws://127.0.0.1:{port}", compression=None, ping_interval=None, max_queue=None
    ) as ws:
        yield ws


@contextlib.asynccontextmanager
async def wsp_client(port: int, queue_size: int = 10_000) -> AsyncIterator[Client]:
    async with Client(f"ws://127.0.0.1:{port}", secret=SECRET, queue_size=queue_size) as client:
        yield client


def bare_round_trips(ws: ClientConnection, payload: bytes, count: int) -> Block:
    async def block() -> float:
        start = time.perf_counter()
        for _ in range(count):
            await ws.send(payload)
            await ws.recv()
        return count / (time.perf_counter() - start)

    return block


def wsp_round_trips(client: Client, payload: bytes, count: int) -> Block:
    async def block() -> float:
        start = time.perf_counter()
        for _ in range(count):
            await client.echo(payload)
        return count / (time.perf_counter() - start)

    return block


def bare_pipelined(ws: ClientConnection, payload: bytes, count: int) -> Block:
    async def block() -> float:
        async def receive() -> None:
            for _ in range(count):
                await ws.recv()

        start = time.perf_counter()
        receiver = asyncio.create_task(receive())
        for _ in range(count):
            await ws.send(payload)
        await receiver
        return count / (time.perf_counter() - start)

    return block


def wsp_pipelined(client: Client, subscription: Subscription, payload: bytes, count: int) -> Block:
    """Publish ``count`` messages on a topic the client subscribes to; the block
    ends when the application has received every one of them."""

    async def block() -> float:
        async def receive() -> None:
            for _ in range(count):
                await subscription.get()

        start = time.perf_counter()
        receiver = asyncio.create_task(receive())
        for _ in range(count):
            await client.publish_nowait(subscription.topic, payload)
        await receiver
        return count / (time.perf_counter() - start)

    return block


async def paced_p99(port: int, size: int, seconds: float, rate: float, wsp: bool) -> float:
    """p99 round trip (seconds) of requests sent at ``rate`` per second."""
    payload = os.urandom(size)
    samples: list[float] = []
    count = int(seconds * rate)
    if wsp:
        async with Client(f"ws://127.0.0.1:{port}", secret=SECRET) as client:
            start = time.perf_counter()
            for i in range(count):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = time.perf_counter()
                await client.echo(payload)
                samples.append(time.perf_counter() - t0)
    else:
        async with connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None) as ws:
            start = time.perf_counter()
            for i in range(count):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = time.perf_counter()
                await ws.send(payload)
                await ws.recv()
                samples.append(time.perf_counter() - t0)
    return statistics.quantiles(samples, n=100)[98]


@dataclass
class Result:
    ours: list[float]
    theirs: list[float]

    @property
    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.ours, self.theirs, strict=True)]

    def summary(self) -> tuple[float, float, float, float, float]:
        """Median of each side, then the median and quartiles of the paired ratios."""
        ratios = sorted(self.ratios)
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        return (
            statistics.median(self.ours),
            statistics.median(self.theirs),
            statistics.median(ratios),
            q1,
            q3,
        )


async def alternate(rounds: int, ours: Block, theirs: Block) -> Result:
    """``rounds`` paired blocks, alternating which side goes first."""
    result = Result([], [])
    for i in range(rounds):
        if i % 2:
            b = await theirs()
            a = await ours()
        else:
            a = await ours()
            b = await theirs()
        result.ours.append(a)
        result.theirs.append(b)
    return result


def load() -> str:
    """The 1-minute load average (other jobs on the machine share its cores)."""
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def row(size: int, test: str, result: Result, target: str, scale: float = 1.0) -> None:
    ours, theirs, ratio, q1, q3 = result.summary()
    print(
        f"{size:>6} {test:<34} {ours * scale:>12,.{3 if scale != 1 else 0}f} "
        f"{theirs * scale:>12,.{3 if scale != 1 else 0}f} {ratio:>6.2f}x "
        f"({q1:.2f}-{q3:.2f}) {target:<8} load {load()}"
    )


async def main(quick: bool) -> None:
    trips = 1000
    piped = 10_000
    rounds = 5 if quick else 15
    paced, paced_rounds = (1.0, 3) if quick else (2.0, 5)
    print(
        f"echo benchmark: loopback, servers in child processes, python "
        f"{sys.version.split()[0]}, {os.cpu_count()} cores, load {load()}; (a) and (b): "
        f"{rounds} rounds of paired blocks ({trips:,} round trips, {piped:,} messages) "
        f"on one connection per side, wsp and bare taking turns to go first; rates are "
        f"each side's median, the ratio is the median of the paired ratios (quartiles "
        f"in brackets)"
    )
    async with child("wsp") as wp, child("bare") as bp:
        print(
            f"{'size':>6} {'test':<34} {'wsp':>12} {'bare':>12} {'ratio':>7} "
            f"{'quartiles':<11} target"
        )
        for size in SIZES:
            payload = os.urandom(size)
            async with wsp_client(wp) as client, bare_connection(bp) as ws:
                ours = wsp_round_trips(client, payload, trips)
                theirs = bare_round_trips(ws, payload, trips)
                await alternate(1, ours, theirs)  # warm-up
                row(
                    size,
                    "(a) awaited round trips /s",
                    await alternate(rounds, ours, theirs),
                    ">= 0.8x",
                )
            async with wsp_client(wp, queue_size=piped + 10) as client, bare_connection(bp) as ws:
                topic = f"bench-{os.urandom(6).hex()}"  # a fresh topic: no history to replay
                subscription = await client.subscribe(topic)
                ours = wsp_pipelined(client, subscription, payload, piped)
                theirs = bare_pipelined(ws, payload, piped)
                await alternate(1, ours, theirs)  # warm-up
                row(
                    size,
                    "(b) pipelined deliveries /s",
                    await alternate(rounds, ours, theirs),
                    ">= 1.0x",
                )
            p99 = Result([], [])
            for i in range(paced_rounds):
                sides = [(p99.ours, wp, True), (p99.theirs, bp, False)]
                for samples, port, wsp in sides if i % 2 == 0 else reversed(sides):
                    samples.append(await paced_p99(port, size, paced, 1000, wsp))
            # lower is better here: a ratio above 1 means wsp's p99 is the longer one
            row(size, "(c) p99 round trip at 1,000/s (ms)", p99, "< 5 ms", scale=1e3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run")
    parser.add_argument("--role", choices=["wsp", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "wsp":
        asyncio.run(serve_wsp())
    elif args.role == "bare":
        asyncio.run(serve_bare())
    else:
        asyncio.run(main(args.quick))
