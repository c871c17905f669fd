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
from functools import partial

from websockets.asyncio.client import connect

SECRET = b"bench-secret"
SIZES = (64, 1024)


# ---------------------------------------------------------------- servers (child processes)


async def serve_wsp() -> None:
    from wsproto_tools.server import ServerConfig, WspServer

    server = WspServer(
        ServerConfig(port=0, secret=SECRET, history=100_000, rate=0, max_buffer=64 << 20)
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
async def child(role: str) -> AsyncIterator[int]:
    """Start this script as a server process; yields its port."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--role", role],
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


async def bare_round_trips(port: int, size: int, count: int) -> float:
    async with connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None) as ws:
        payload = os.urandom(size)
        for _ in range(200):
            await ws.send(payload)
            await ws.recv()
        start = time.perf_counter()
        for _ in range(count):
            await ws.send(payload)
            await ws.recv()
        return count / (time.perf_counter() - start)


async def wsp_round_trips(port: int, size: int, count: int) -> float:
    from wsproto_tools.client import Client

    async with Client(f"ws://127.0.0.1:{port}", secret=SECRET) as client:
        payload = os.urandom(size)
        for _ in range(200):
            await client.echo(payload)
        start = time.perf_counter()
        for _ in range(count):
            await client.echo(payload)
        return count / (time.perf_counter() - start)


async def bare_pipelined(port: int, size: int, count: int) -> float:
    async with connect(
        f"ws://127.0.0.1:{port}", compression=None, ping_interval=None, max_queue=None
    ) as ws:
        payload = os.urandom(size)

        async def receive() -> None:
            for _ in range(count):
                await ws.recv()

        start = time.perf_counter()
        receiver = asyncio.create_task(receive())
        for _ in range(count):
            await ws.send(payload)
        await receiver
        return count / (time.perf_counter() - start)


async def wsp_pipelined(port: int, size: int, count: int) -> float:
    from wsproto_tools.client import Client

    topic = f"bench-{os.urandom(6).hex()}"  # a fresh topic: no history to replay
    async with Client(f"ws://127.0.0.1:{port}", secret=SECRET, queue_size=count + 10) as client:
        subscription = await client.subscribe(topic)
        payload = os.urandom(size)

        async def receive() -> None:
            for _ in range(count):
                await subscription.get()

        start = time.perf_counter()
        receiver = asyncio.create_task(receive())
        for _ in range(count):
            await client.publish_nowait(topic, payload)
        await receiver
        return count / (time.perf_counter() - start)


async def paced_p99(port: int, size: int, seconds: float, rate: float, wsp: bool) -> float:
    """p99 round trip (seconds) of requests sent at ``rate`` per second."""
    from wsproto_tools.client import Client

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


async def best(
    rounds: int,
    ours: Callable[[], Awaitable[float]],
    theirs: Callable[[], Awaitable[float]],
    *,
    lower: bool = False,
) -> tuple[float, float, float]:
    """Alternate the two measurements ``rounds`` times.

    Returns each side's best and the median of the per-round ratios (paired
    rounds see the same background load, so their ratio is the steadier figure).
    """
    pick = min if lower else max
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(await ours())
        b.append(await theirs())
    return pick(a), pick(b), statistics.median(x / y for x, y in zip(a, b, strict=True))


async def main(quick: bool) -> None:
    trips = 1000 if quick else 2000
    piped = 3000 if quick else 10_000
    paced = 1.0 if quick else 2.0
    rounds = 3 if quick else 7
    print(
        f"echo benchmark: loopback, servers in child processes, python "
        f"{sys.version.split()[0]}; {rounds} alternating rounds: best rate of each, "
        f"median of the paired ratios"
    )
    async with child("wsp") as wp, child("bare") as bp:
        print(f"{'size':>6} {'test':<34} {'wsp':>12} {'bare':>12} {'ratio':>7} target")
        for size in SIZES:
            ours, theirs, ratio = await best(
                rounds,
                partial(wsp_round_trips, wp, size, trips),
                partial(bare_round_trips, bp, size, trips),
            )
            print(
                f"{size:>6} {'(a) awaited round trips /s':<34} {ours:>12,.0f} "
                f"{theirs:>12,.0f} {ratio:>6.2f}x >= 0.8x"
            )
            ours, theirs, ratio = await best(
                rounds,
                partial(wsp_pipelined, wp, size, piped),
                partial(bare_pipelined, bp, size, piped),
            )
            print(
                f"{size:>6} {'(b) pipelined deliveries /s':<34} {ours:>12,.0f} "
                f"{theirs:>12,.0f} {ratio:>6.2f}x >= 1.0x"
            )
            ours, theirs, ratio = await best(
                rounds,
                partial(paced_p99, wp, size, paced, 1000, True),
                partial(paced_p99, bp, size, paced, 1000, False),
                lower=True,
            )
            print(
                f"{size:>6} {'(c) p99 round trip at 1,000/s (ms)':<34} {ours * 1e3:>12.3f} "
                f"{theirs * 1e3:>12.3f} {ratio:>6.2f}x < 5 ms"
            )


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
