"""The inspector feed's cost: echo and fan-out through the real server, with no
inspector and with one ``wsp inspect --ndjson`` attached, in the same run.

Run: ``python benchmarks/inspector.py`` (``--quick`` for a shorter run). Loopback
only; the server runs in its own process (started with ``inspect`` on in both
cases, so the only difference is the attached viewer), the viewer in another,
the clients in this one. Prints messages/s for each and the ratio (goal >= 0.9x).

(a) echo: 32 concurrent callers of the built-in echo request, 64-byte payloads;
(b) fan-out: one publisher, 10 subscribers, 64-byte messages; deliveries/s
    counted at the subscribers.

The viewer's summary line says how many records it got and how many the server
dropped: the feed keeps to its time budget (docs/inspect.md) by dropping.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from wsproto_tools.client import Client

SECRET = b"bench-secret"
ADMIN = "bench-admin"
WSP = str(Path(sys.executable).parent / "wsp")


async def child() -> None:
    from wsproto_tools.server import ServerConfig, WspServer

    server = WspServer(
        ServerConfig(
            port=0,
            secret=SECRET,
            history=1000,
            rate=0,
            max_buffer=64 << 20,
            inspect=True,
            admin_secret=ADMIN.encode(),
        )
    )
    await server.start()
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.shutdown()


async def echo_rate(url: str, seconds: float) -> float:
    done = 0
    async with Client(url, secret=SECRET) as client:
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal done
            payload = b"e" * 64
            while time.perf_counter() < deadline:
                await client.echo(payload, timeout=30)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(32)))
        return done / (time.perf_counter() - started)


async def fanout_rate(url: str, count: int, subscribers: int = 10) -> float:
    subs = [Client(url, secret=SECRET) for _ in range(subscribers)]
    for client in subs:
        await client.connect()
    topic = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    streams = [await client.subscribe(topic) for client in subs]
    async with Client(url, secret=SECRET) as publisher:

        async def drain(stream: object) -> None:
            for _ in range(count):
                await stream.get()  # type: ignore[attr-defined]

        started = time.perf_counter()
        readers = [asyncio.create_task(drain(s)) for s in streams]
        payload = b"p" * 64
        pending = [await publisher.publish_nowait(topic, payload) for _ in range(count)]
        await asyncio.gather(*pending)
        await asyncio.wait_for(asyncio.gather(*readers), 120)
        elapsed = time.perf_counter() - started
    for client in subs:
        await client.close()
    return count * subscribers / elapsed


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, f"ws://127.0.0.1:{int(proc.stdout.readline())}"


def start_viewer(url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "WSP_ADMIN_SECRET": ADMIN}
    return subprocess.Popen(
        [WSP, "inspect", url, "--ndjson"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args()
    if args.child:
        asyncio.run(child())
        return
    seconds = 1.0 if args.quick else 3.0
    count = 2000 if args.quick else 10_000
    rounds = 1 if args.quick else 2
    server, url = start_server()
    results: dict[str, dict[str, list[float]]] = {
        "echo": {"none": [], "one": []},
        "fan-out": {"none": [], "one": []},
    }
    summaries = []
    try:
        asyncio.run(echo_rate(url, 0.3))  # warm up
        for _ in range(rounds):
            for mode in ("none", "one"):
                viewer = start_viewer(url) if mode == "one" else None
                if viewer is not None:
                    time.sleep(1.0)
                results["echo"][mode].append(asyncio.run(echo_rate(url, seconds)))
                results["fan-out"][mode].append(asyncio.run(fanout_rate(url, count)))
                if viewer is not None:
                    time.sleep(0.5)
                    viewer.terminate()
                    _, err = viewer.communicate(timeout=30)
                    summaries.append(err.strip())
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    print(f"workload   no inspector      one inspector     ratio  (best of {rounds})")
    for name, modes in results.items():
        none, one = max(modes["none"]), max(modes["one"])
        print(f"{name:<10} {none:>10,.0f} msg/s  {one:>10,.0f} msg/s  {one / none:5.2f}x")
    for line in summaries:
        print(f"viewer: {line}")


if __name__ == "__main__":
    main()
