"""Replay benchmark: ``wsp replay --timing fast`` against a bare ``websockets`` client.

Run: ``python benchmarks/replay.py`` (``--quick`` for a short run). Loopback only;
each server runs in its own process, the replayer and the baseline in this one.
Two cassettes of N client messages (100,000; 10,000 with ``--quick``) are made
here (never committed), each with the server's recorded answers:

(1) **wsp**: one wsp session alternating a Publish (64 bytes, with a publish id)
    and an ``echo`` Request (64 bytes), replayed through the engine (new session,
    fresh ids, the engine's acks and window) against ``wsp serve`` in a child
    process;
(2) **plain**: N binary messages of 64 bytes, replayed against a bare
    ``websockets`` echo server in a child process.

The baseline, in the same run: a bare ``websockets`` client sending the same N
messages (the wsp messages as their encoded bytes) to the bare echo server
while it reads the N echoes. Throughput is client messages a second, from the
connect to the last answer and the close: both sides start from their messages
in memory (the baseline from a list of bytes, the replayer from its plan: the
scripts of :func:`~wsproto_tools.replay.player.players_of`, whose making is timed
apart and reported as "planning"). Rounds alternate baseline and replays; the
figure is the median of the per-round ratios (goal >= 0.8x). The inputs (the
cassettes, the baseline's bytes) are made before the rounds and frozen out of
the garbage collector's way (``gc.freeze``), for both sides alike. At the end the cost of
``wsp serve --record`` is measured by ``benchmarks/record.py --quick``, when that
script exists, so that one command gives both figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator

from websockets.asyncio.client import connect

from wsproto_tools.codec.schema import Challenge, Message, Publish, Request, Response
from wsproto_tools.replay.cassette import Cassette, CassetteConnection, CassetteMessage
from wsproto_tools.replay.player import PlayOptions, players_of

SECRET = b"bench-secret"
SIZE = 64


# ---------------------------------------------------------------- servers (child processes)


async def serve_wsp() -> None:
    from wsproto_tools.server import ServerConfig, WspServer

    server = WspServer(ServerConfig(port=0, secret=SECRET, rate=0, max_buffer=256 << 20))
    await server.start()
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.shutdown()


async def serve_bare() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for data in ws:
            await ws.send(data)

    async with serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None,
                     max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@contextlib.asynccontextmanager
async def child(role: str) -> AsyncIterator[int]:
    """Start this script as a server process; yields its port."""
    proc = subprocess.Popen([sys.executable, __file__, "--role", role],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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


# ---------------------------------------------------------------- cassettes


def wsp_cassette(count: int) -> Cassette:
    """A recorded wsp session: Publish / echo Request alternately, with the Responses."""
    cassette = Cassette()
    cassette.connections[1] = CassetteConnection(1, 0.0, "/", ("wsp.v2",))
    add = cassette.messages.append
    add(CassetteMessage(1, "server", 0.0, "binary",
                        wsp=Message(Challenge(b"\x00" * 16, ("hmac",)))))
    body = b"x" * SIZE
    seq = 0
    for i in range(count):
        t = i * 1e-5
        if i % 2 == 0:
            seq += 1
            add(CassetteMessage(1, "client", t, "binary",
                                wsp=Message(Publish("bench", body, i + 1), sequence=seq)))
        else:
            add(CassetteMessage(1, "client", t, "binary",
                                wsp=Message(Request(i, "echo", body))))
            add(CassetteMessage(1, "server", t, "binary", wsp=Message(Response(i, body))))
    add(CassetteMessage(1, "client", count * 1e-5, "close", close_code=1000))
    return cassette


def plain_cassette(count: int) -> Cassette:
    """N binary messages and their echoes."""
    cassette = Cassette()
    cassette.connections[1] = CassetteConnection(1, 0.0, "/")
    add = cassette.messages.append
    for i in range(count):
        data = i.to_bytes(8, "little") * (SIZE // 8)
        add(CassetteMessage(1, "client", i * 1e-5, "binary", data=data))
        add(CassetteMessage(1, "server", i * 1e-5, "binary", data=data))
    add(CassetteMessage(1, "client", count * 1e-5, "close", close_code=1000))
    return cassette


def payloads(cassette: Cassette) -> list[bytes]:
    return [m.payload() for m in cassette.messages
            if m.direction == "client" and m.opcode == "binary"]


# ---------------------------------------------------------------- measurements


async def bare(port: int, messages: list[bytes]) -> float:
    """A bare websockets client: send every message, read every echo; messages/s."""
    start = time.perf_counter()
    async with connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None,
                       max_size=None, max_queue=None) as ws:
        async def reader() -> None:
            for _ in range(len(messages)):
                await ws.recv()

        task = asyncio.ensure_future(reader())
        for data in messages:
            await ws.send(data)
        await task
    return len(messages) / (time.perf_counter() - start)


async def replayed(cassette: Cassette, port: int, secret: bytes | None,
                   plans: list[float] | None = None) -> float:
    """Replay ``cassette`` in fast mode; client messages a second (every answer checked).

    The clock runs from the connect to the close, as the baseline's: both start
    from their messages in memory (the baseline from a list of bytes, the replayer
    from its plan, whose making is timed apart into ``plans``)."""
    options = PlayOptions(timing="fast", wait=60, secret=secret, linger=0)
    start = time.perf_counter()
    [player] = players_of(cassette, f"ws://127.0.0.1:{port}", options)
    ready = time.perf_counter()
    outcome = await player.run()
    elapsed = time.perf_counter() - ready
    if plans is not None:
        plans.append(ready - start)
    expected = sum(answers(m) for m in cassette.messages if m.direction == "server")
    got = sum(answers(m) for m in outcome.received)
    if outcome.failure is not None or outcome.skipped or got != expected:
        raise SystemExit(f"replay failed: {outcome.handshake_error} {outcome.skipped[:3]} "
                         f"({got} of {expected} answers)")
    return outcome.sent / elapsed


def answers(message: CassetteMessage) -> int:
    """The answers a server message holds: Responses (wsp), else the message itself."""
    if message.wsp is None:
        return 1
    items = getattr(message.wsp.payload, "messages", None) or (message.wsp,)
    return sum(1 for m in items if isinstance(m.payload, Response))


async def main(quick: bool) -> None:
    count = 10_000 if quick else 100_000
    rounds = 3 if quick else 5
    wsp = wsp_cassette(count)
    plain = plain_cassette(count)
    wsp_bytes = payloads(wsp)
    plain_bytes = payloads(plain)
    # the inputs of both sides live through the run: out of the collector's way
    gc.collect()
    gc.freeze()
    print(f"wsp replay, fast mode: {count:,} messages of {SIZE} bytes, {rounds} rounds "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    ratios: dict[str, list[float]] = {"wsp": [], "plain": []}
    rates: dict[str, list[float]] = {"wsp": [], "plain": [], "bare-wsp": [], "bare-plain": []}
    plans: dict[str, list[float]] = {"wsp": [], "plain": []}
    async with child("wsp") as wsp_port, child("bare") as bare_port:
        await bare(bare_port, plain_bytes[:1000])  # warm up both servers
        await replayed(wsp_cassette(1000), wsp_port, SECRET)
        for r in range(rounds):
            pairs = [("plain", plain, bare_port, None, plain_bytes),
                     ("wsp", wsp, wsp_port, SECRET, wsp_bytes)]
            for name, cassette, port, secret, messages in pairs:
                if r % 2 == 0:
                    base = await bare(bare_port, messages)
                    mine = await replayed(cassette, port, secret, plans[name])
                else:
                    mine = await replayed(cassette, port, secret, plans[name])
                    base = await bare(bare_port, messages)
                rates[name].append(mine)
                rates[f"bare-{name}"].append(base)
                ratios[name].append(mine / base)
                print(f"  round {r + 1} {name:5}: replay {mine:10,.0f} msg/s  "
                      f"bare {base:10,.0f} msg/s  ratio {mine / base:.2f}x", flush=True)
    print()
    for name, what in (("plain", "plain binary vs websockets echo"),
                       ("wsp", "wsp session vs wsp serve")):
        ratio = statistics.median(ratios[name])
        print(f"{what:34}: replay {statistics.median(rates[name]):10,.0f} msg/s, bare "
              f"{statistics.median(rates['bare-' + name]):10,.0f} msg/s, median ratio "
              f"{ratio:.2f}x (goal >= 0.8x) {'PASS' if ratio >= 0.8 else 'FAIL'}; "
              f"planning {statistics.median(plans[name]):.2f} s")
    record = os.path.join(os.path.dirname(os.path.abspath(__file__)), "record.py")
    if os.path.exists(record):
        print("\nwsp serve --record (benchmarks/record.py --quick):", flush=True)
        subprocess.run([sys.executable, record, "--quick"], check=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--role", choices=["wsp", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "wsp":
        asyncio.run(serve_wsp())
    elif args.role == "bare":
        asyncio.run(serve_bare())
    else:
        asyncio.run(main(args.quick))
