"""Connection benchmark: many concurrent authenticated sessions on one server process.

Run: ``python benchmarks/conns.py`` (default 10,000 sessions; ``--sessions N``,
``--quick`` for 1,000). Loopback only. The server runs in its own process, the
clients in ``--procs`` other processes. In the same run, the same number of bare
``websockets`` connections to a bare ``websockets`` server gives the baseline.

Figures: the server's RSS growth per session (target <= 20 KiB without
compression; the bare baseline is printed beside it), and every heartbeat
answered (clients send one every ``--interval`` seconds, <= 30 s, and hold the
sessions for a little more than two intervals).
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


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# ---------------------------------------------------------------- child: servers


async def serve(kind: str) -> None:
    raise_fd_limit()
    if kind == "wsp":
        from wsproto_tools.server import ServerConfig, WspServer

        server = WspServer(
            ServerConfig(
                port=0,
                secret=SECRET,
                max_connections=50_000,
                heartbeat_interval=30,
                heartbeat_timeout=90,
            )
        )
        await server.start()
        port = server.port
    else:
        from websockets.asyncio.server import ServerConnection
        from websockets.asyncio.server import serve as ws_serve

        async def hold(ws: ServerConnection) -> None:
            async for _ in ws:
                pass

        bare = await ws_serve(
            hold, "127.0.0.1", 0, compression=None, ping_interval=None, backlog=4096
        )
        port = bare.sockets[0].getsockname()[1]
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if kind == "wsp":
        await server.shutdown()


# ---------------------------------------------------------------- child: clients


async def clients(kind: str, port: int, count: int, interval: float) -> None:
    raise_fd_limit()
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{port}"
    gate = asyncio.Semaphore(100)
    held: list[object] = []

    if kind == "wsp":
        from wsproto_tools.client import Client

        async def one() -> None:
            async with gate:
                client = Client(
                    url,
                    secret=SECRET,
                    heartbeat_interval=interval,
                    heartbeat_timeout=3 * interval,
                    open_timeout=60,
                )
                await client.connect()
                held.append(client)
    else:

        async def one() -> None:
            async with gate:
                held.append(
                    await connect(url, compression=None, ping_interval=None, open_timeout=60)
                )

    await asyncio.gather(*(one() for _ in range(count)))
    print(json.dumps({"ready": len(held)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    sent = answered = 0
    now = time.time()
    if kind == "wsp":
        for client in held:
            session = client.session  # type: ignore[attr-defined]
            sent += session.heartbeat_id
            # a probe still in flight (sent < 1 s ago) is not counted as unanswered
            late = sum(1 for t in session.heartbeats.values() if now - t > 1.0)
            answered += session.heartbeat_id - late
    print(json.dumps({"sent": sent, "answered": answered}), flush=True)
    await asyncio.gather(*(c.close() for c in held), return_exceptions=True)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- parent


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def measure(kind: str, sessions: int, procs: int, interval: float, hold: float) -> dict[str, float]:
    server = spawn("--role", "server", "--kind", kind)
    assert server.stdout is not None and server.stdin is not None
    port = int(server.stdout.readline())
    time.sleep(0.5)
    before = rss_kib(server.pid)
    share = [sessions // procs + (1 if i < sessions % procs else 0) for i in range(procs)]
    started = time.perf_counter()
    children = [
        spawn(
            "--role",
            "clients",
            "--kind",
            kind,
            "--port",
            str(port),
            "--count",
            str(n),
            "--interval",
            str(interval),
        )
        for n in share
    ]
    ready = 0
    for child in children:
        assert child.stdout is not None
        ready += json.loads(child.stdout.readline())["ready"]
    connect_time = time.perf_counter() - started
    time.sleep(hold)
    after = rss_kib(server.pid)
    sent = answered = 0
    for child in children:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("\n")
        child.stdin.flush()
    for child in children:
        assert child.stdout is not None and child.stdin is not None
        report = json.loads(child.stdout.readline())
        sent += report["sent"]
        answered += report["answered"]
        child.stdin.close()
        child.wait(timeout=120)
    server.stdin.close()
    server.wait(timeout=60)
    return {
        "ready": ready,
        "per_session_kib": (after - before) / max(1, ready),
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
        "connect_s": connect_time,
        "sent": sent,
        "answered": answered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--procs", type=int, default=4, help="client processes")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="heartbeat interval in seconds (<= 30)"
    )
    parser.add_argument("--quick", action="store_true", help="1,000 sessions, 2 s heartbeats")
    parser.add_argument("--role", choices=["server", "clients"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=["wsp", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(serve(args.kind))
        return
    if args.role == "clients":
        asyncio.run(clients(args.kind, args.port, args.count, args.interval))
        return
    if args.quick:
        args.sessions, args.interval = 1000, 2.0
    if args.interval > 30:
        parser.error("heartbeats must come every 30 s or more often")
    limit = raise_fd_limit()
    if args.sessions + 100 > limit:
        parser.error(f"the open-file limit ({limit}) is too low for {args.sessions} sessions")
    hold = 2 * args.interval + 1
    print(
        f"conns benchmark: {args.sessions:,} sessions from {args.procs} client processes, "
        f"heartbeats every {args.interval:g} s, held {hold:g} s; loopback, no compression"
    )
    bare = measure("bare", args.sessions, args.procs, args.interval, 1.0)
    ours = measure("wsp", args.sessions, args.procs, args.interval, hold)
    print(f"{'':<34} {'wsp':>10} {'bare':>10}")
    print(f"{'connections open':<34} {ours['ready']:>10,.0f} {bare['ready']:>10,.0f}")
    print(f"{'connect time (s)':<34} {ours['connect_s']:>10.1f} {bare['connect_s']:>10.1f}")
    print(
        f"{'server RSS before/after (MiB)':<34} "
        f"{ours['rss_before_mib']:>4.0f}/{ours['rss_after_mib']:<5.0f} "
        f"{bare['rss_before_mib']:>4.0f}/{bare['rss_after_mib']:<5.0f}"
    )
    print(
        f"{'RSS growth per session (KiB)':<34} {ours['per_session_kib']:>10.1f} "
        f"{bare['per_session_kib']:>10.1f}   target <= 20 KiB"
    )
    print(
        f"{'heartbeats sent / answered':<34} {ours['sent']:>10,.0f} / {ours['answered']:,.0f}"
        f"   target: all answered"
    )
    if ours["answered"] != ours["sent"] or ours["ready"] != args.sessions:
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
