"""Codec benchmark: encode/decode rates, wire overhead, and a loopback echo yardstick.

Run: ``python benchmarks/codec.py`` (``--quick`` for a short run). Everything is
measured in the same run, so the codec/echo ratio holds on a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from wsproto_tools.codec import BinaryData, Message, decode, encode

SIZES = (16, 128, 1024)
SEQUENCE = 1000  # a two-byte varint in v2


def ws_header(length: int, masked: bool) -> int:
    """RFC 6455 frame header size for a payload of ``length`` bytes."""
    size = 2 if length <= 125 else 4 if length <= 0xFFFF else 10
    return size + (4 if masked else 0)


def per_call(func: Callable[[], object], seconds: float) -> float:
    """Seconds per call of ``func``: best of five runs of about ``seconds``/5 each."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            func()
        elapsed = time.perf_counter() - start
        if elapsed > 0.02:
            break
        loops *= 4
    best = elapsed / loops
    runs = max(1, int(seconds / 5 / elapsed))
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(loops * runs):
            func()
        best = min(best, (time.perf_counter() - start) / (loops * runs))
    return best


async def echo_cost(size: int, count: int, window: int) -> float:
    """Seconds per echo of a ``size``-byte binary message, ``window`` in flight."""

    async def handler(ws: ServerConnection) -> None:
        async for data in ws:
            await ws.send(data)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
            payload = bytes(size)
            for _ in range(200):  # warm-up
                await ws.send(payload)
                await ws.recv()
            best = float("inf")
            for _ in range(3):
                in_flight = asyncio.Semaphore(window)

                async def sender(in_flight: asyncio.Semaphore = in_flight) -> None:
                    for _ in range(count):
                        await in_flight.acquire()
                        await ws.send(payload)

                start = time.perf_counter()
                task = asyncio.create_task(sender())
                for _ in range(count):
                    await ws.recv()
                    in_flight.release()
                await task
                best = min(best, (time.perf_counter() - start) / count)
            return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter measurement")
    args = parser.parse_args()
    seconds = 0.5 if args.quick else 2.0
    count = 2000 if args.quick else 10000

    print("wsp codec benchmark (BinaryData, sequence 1000; rates in messages/s)")
    print(f"{'payload':>7} {'ver':>3} {'header':>6} {'encode/s':>10} {'decode/s':>10} "
          f"{'enc+dec µs':>10} {'s->c %':>7} {'c->s %':>7}")
    results: dict[tuple[int, int], float] = {}
    for size in SIZES:
        msg = Message(BinaryData(bytes(range(256)) * (size // 256) + bytes(size % 256)),
                      sequence=SEQUENCE)
        for version in (1, 2):
            wire = encode(msg, version=version)
            assert decode(wire) == msg
            header = len(wire) - size
            enc = per_call(lambda m=msg, v=version: encode(m, version=v), seconds)
            dec = per_call(lambda w=wire: decode(w), seconds)
            results[(size, version)] = enc + dec
            s2c = 100 * (ws_header(len(wire), False) + header) / size
            c2s = 100 * (ws_header(len(wire), True) + header) / size
            print(f"{size:>7} {version:>3} {header:>6} {1 / enc:>10,.0f} {1 / dec:>10,.0f} "
                  f"{(enc + dec) * 1e6:>10.2f} {s2c:>7.1f} {c2s:>7.1f}")

    print()
    print("yardstick: pipelined echo through a bare websockets connection on 127.0.0.1")
    echo = {size: asyncio.run(echo_cost(size, count, 64)) for size in SIZES}
    for size in SIZES:
        codec = results[(size, 2)]
        print(f"{size:>7} B echo {echo[size] * 1e6:7.2f} µs; v2 codec enc+dec "
              f"{codec * 1e6:5.2f} µs = {100 * codec / echo[size]:4.1f}% of one echo "
              f"(v1: {100 * results[(size, 1)] / echo[size]:4.1f}%)")
    ratio = results[(128, 2)] / echo[128]
    verdict = "meets" if ratio <= 0.10 else "MISSES"
    print(f"\ntarget: 128-byte v2 codec enc+dec <= 10% of one echo: {100 * ratio:.1f}% ({verdict})")


if __name__ == "__main__":
    main()
