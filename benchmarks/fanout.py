"""Fan-out benchmark: one topic, many subscribers in other processes.

Run: ``python benchmarks/fanout.py`` (1,000 subscribers, 1,000 messages;
``--quick`` for 200 x 500). Loopback only. A publisher sends the messages to
the wsp server, which encodes each topic message once and writes the same bytes
to every subscriber; deliveries per second are counted at the subscribers'
applications. In the same run, a bare ``websockets`` server calls
``websockets.broadcast`` with frames of the same size (the encoded Deliver) to
the same number of subscribers, counted the same way. Target: >= 0.7x broadcast.
A second wsp run has subscribers that do not negotiate batching, so each topic
message is one WebSocket frame, as with broadcast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time

SECRET = b"bench-secret"
TOPIC = "fanout"


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def frame_size(size: int) -> int:
    """Bytes of one encoded Deliver of a ``size``-byte message (the broadcast frame)."""
    from wsproto_tools.server.fanout import encode_delivery

    return len(encode_delivery(TOPIC, 1 << 31, 1000, bytes(size), 2))


# ---------------------------------------------------------------- servers


async def serve_wsp() -> None:
    raise_fd_limit()
    from wsproto_tools.server import ServerConfig, WspServer

    server = WspServer(
        ServerConfig(
            port=0,
            secret=SECRET,
            max_connections=50_000,
            rate=0,
            max_buffer=64 << 20,
            history=100_000,
        )
    )
    await server.start()
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.shutdown()


async def serve_bare(messages: int, size: int) -> None:
    raise_fd_limit()
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    conns: set[ServerConnection] = set()

    async def hold(ws: ServerConnection) -> None:
        conns.add(ws)
        try:
            await ws.wait_closed()
        finally:
            conns.discard(ws)

    async with serve(
        hold, "127.0.0.1", 0, compression=None, ping_interval=None, backlog=4096
    ) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # "go"
        frame = os.urandom(frame_size(size))
        for i in range(messages):
            broadcast(conns, frame)
            if i % 16 == 15:
                await asyncio.sleep(0)  # let the loop write, as a server would
        await loop.run_in_executor(None, sys.stdin.read)


# ---------------------------------------------------------------- subscribers


async def subscribers(kind: str, port: int, count: int, messages: int, batch: bool) -> None:
    raise_fd_limit()
    url = f"ws://127.0.0.1:{port}"
    gate = asyncio.Semaphore(100)
    first: list[float] = []
    last: list[float] = []
    total = 0

    if kind == "wsp":
        from wsproto_tools.client import Client

        clients = []

        async def join() -> object:
            async with gate:
                caps = ("ack", "batch", "pubsub") if batch else ("ack", "pubsub")
                client = Client(
                    url, secret=SECRET, open_timeout=60, queue_size=messages + 10, capabilities=caps
                )
                await client.connect()
                clients.append(client)
                return await client.subscribe(TOPIC)

        subs = await asyncio.gather(*(join() for _ in range(count)))
        print(json.dumps({"ready": len(subs)}), flush=True)

        async def consume(sub: object) -> None:
            nonlocal total
            for n in range(messages):
                await sub.get()  # type: ignore[attr-defined]
                if n == 0:
                    first.append(time.time())
            last.append(time.time())
            total += messages

        async with asyncio.timeout(300):
            await asyncio.gather(*(consume(s) for s in subs))
    else:
        from websockets.asyncio.client import connect

        async def join_bare() -> object:
            async with gate:
                return await connect(
                    url, compression=None, ping_interval=None, open_timeout=60, max_queue=None
                )

        conns = await asyncio.gather(*(join_bare() for _ in range(count)))
        print(json.dumps({"ready": len(conns)}), flush=True)

        async def consume_bare(ws: object) -> None:
            nonlocal total
            for n in range(messages):
                await ws.recv()  # type: ignore[attr-defined]
                if n == 0:
                    first.append(time.time())
            last.append(time.time())
            total += messages

        async with asyncio.timeout(300):
            await asyncio.gather(*(consume_bare(c) for c in conns))
    print(json.dumps({"count": total, "first": min(first), "last": max(last)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# ---------------------------------------------------------------- parent


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


async def publish(port: int, messages: int, size: int) -> None:
    from wsproto_tools.client import Client

    async with Client(f"ws://127.0.0.1:{port}", secret=SECRET) as client:
        payload = os.urandom(size)
        futures = [await client.publish_nowait(TOPIC, payload) for _ in range(messages)]
        await asyncio.gather(*futures)


def run(kind: str, subs: int, procs: int, messages: int, size: int, batch: bool = True) -> float:
    args = ["--role", "server", "--kind", kind, "--messages", str(messages), "--size", str(size)]
    server = spawn(*args)
    assert server.stdout is not None and server.stdin is not None
    port = int(server.stdout.readline())
    share = [subs // procs + (1 if i < subs % procs else 0) for i in range(procs)]
    children = [
        spawn(
            "--role",
            "subscribers",
            "--kind",
            kind,
            "--port",
            str(port),
            "--count",
            str(n),
            "--messages",
            str(messages),
            *([] if batch else ["--no-batch"]),
        )
        for n in share
    ]
    for child in children:
        assert child.stdout is not None
        json.loads(child.stdout.readline())
    if kind == "wsp":
        asyncio.run(publish(port, messages, size))
    else:
        server.stdin.write("go\n")
        server.stdin.flush()
    reports = []
    for child in children:
        assert child.stdout is not None and child.stdin is not None
        reports.append(json.loads(child.stdout.readline()))
        child.stdin.close()
        child.wait(timeout=60)
    server.stdin.close()
    server.wait(timeout=60)
    total = sum(r["count"] for r in reports)
    if total != subs * messages:
        raise SystemExit(f"{kind}: {total} deliveries, expected {subs * messages}")
    elapsed = max(r["last"] for r in reports) - min(r["first"] for r in reports)
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64, help="message bytes")
    parser.add_argument("--procs", type=int, default=4, help="subscriber processes")
    parser.add_argument("--quick", action="store_true", help="200 subscribers x 500 messages")
    parser.add_argument("--role", choices=["server", "subscribers"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=["wsp", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-batch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(serve_wsp() if args.kind == "wsp" else serve_bare(args.messages, args.size))
        return
    if args.role == "subscribers":
        asyncio.run(subscribers(args.kind, args.port, args.count, args.messages, not args.no_batch))
        return
    if args.quick:
        args.subscribers, args.messages = 200, 500
    raise_fd_limit()
    print(
        f"fanout benchmark: 1 topic, {args.subscribers:,} subscribers in {args.procs} "
        f"processes, {args.messages:,} messages of {args.size} bytes "
        f"(broadcast frame {frame_size(args.size)} bytes); loopback"
    )
    bare = run("bare", args.subscribers, args.procs, args.messages, args.size)
    ours = run("wsp", args.subscribers, args.procs, args.messages, args.size)
    single = run("wsp", args.subscribers, args.procs, args.messages, args.size, batch=False)
    print(
        f"{'deliveries/s at the subscribers':<40} {'wsp':>12} {'broadcast':>12} {'ratio':>7} target"
    )
    print(
        f"{'wsp (Batch of Delivers, encoded once)':<40} {ours:>12,.0f} {bare:>12,.0f} "
        f"{ours / bare:>6.2f}x >= 0.7x"
    )
    print(
        f"{'wsp, batching not negotiated':<40} {single:>12,.0f} {bare:>12,.0f} "
        f"{single / bare:>6.2f}x >= 0.7x"
    )


if __name__ == "__main__":
    main()
