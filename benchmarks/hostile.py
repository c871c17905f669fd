"""Hostile peers: how much memory one attacker can make the server hold.

Run: ``python benchmarks/hostile.py server`` (``--quick`` for a smaller run,
``--only 1 3`` for some attacks) runs the attacks of issue 10, section 1, each
against a fresh ``wsp serve`` process on 127.0.0.1, and prints the server's RSS
growth (``/proc/PID/status``: peak ``VmHWM`` and, after the attacker left,
``VmRSS``) next to the documented budget. ``python benchmarks/hostile.py decode
[args]`` runs ``benchmarks/hostile_decode.py`` (the decoder's attacks).

Attacks (every attacker connects with a 4 KiB receive buffer, finishes the wsp
handshake and then never reads):

1. echo Requests;
2. BinaryData with ack requested (the server echoes it as sequenced data);
3. replay amplification: a topic's history filled with 1 MiB messages, then
   sessions that each send one Subscribe(from_offset=1);
4. history: 1 MiB messages published to three topics;
5. topics: one session subscribes to ever more new topics, then leaves;
   then a bystander makes a new topic;
6. detached sessions: many sessions dropped without a Close, some with 4,096
   publish ids each.

Bounded: every attack has a message count and a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECRET = "hostile-secret"
MiB = 1 << 20


# ---------------------------------------------------------------- the server process


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def status(self) -> dict[str, int]:
        """VmRSS and VmHWM of the server, in KiB."""
        out = {}
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        for name in ("VmRSS", "VmHWM"):
            match = re.search(rf"^{name}:\s+(\d+) kB", text, re.M)
            out[name] = int(match.group(1)) if match else 0
        return out

    def metric(self, name: str) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            body = r.read().decode()
        return "\n".join(line for line in body.splitlines() if line.startswith(name))


@contextlib.contextmanager
def wsp_serve(*options: str, env: dict[str, str] | None = None) -> Any:
    """``wsp serve`` in a child process (the current interpreter) on a free port
    (``env``: added to its environment)."""
    code = "import sys; from wsproto_tools.cli.main import main; sys.argv[0] = 'wsp'; main()"
    log = tempfile.TemporaryFile()  # noqa: SIM115 -- not a pipe: a logging server must not block
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", "--secret", SECRET, *options],
        stderr=log,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        line = ""
        deadline = time.monotonic() + 20
        while "listening" not in line and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            log.seek(0)
            line = log.read().decode(errors="replace")
        match = re.search(r"listening on wss?://[^:]+:(\d+)", line)
        if not match:
            raise RuntimeError(f"wsp serve did not start: {line!r}")
        yield Served(proc, int(match.group(1)))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ---------------------------------------------------------------- attackers


async def attacker(url: str, *, read: bool = False) -> tuple[Any, Any]:
    """A websockets connection with a 4 KiB receive buffer, wsp handshake done;
    it stops reading (unless ``read``: then it reads and discards everything).
    Returns (connection, ClientSession)."""
    from websockets.asyncio.client import connect

    from wsproto_tools.engine.client_session import ClientSession
    from wsproto_tools.engine.session import Credentials

    host, port = url.rsplit("/", 1)[-1].split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    ws = await connect(
        url,
        sock=sock,
        subprotocols=["wsp.v2"],  # type: ignore[list-item]
        compression=None,
        max_size=None,
        ping_interval=None,
        close_timeout=1,
    )
    session = ClientSession(Credentials(secret=SECRET.encode()))
    session.connection_made(time.time(), nonce=os.urandom(16))
    async with asyncio.timeout(10):
        while not session.active:
            session.receive_data(await ws.recv(), time.time())  # type: ignore[arg-type]
            for chunk in session.data_to_send():
                await ws.send(chunk)
    if read:  # a reader that keeps up: everything it is sent is taken at once
        task = asyncio.create_task(_drain(ws))
        _READERS.add(task)
        task.add_done_callback(_READERS.discard)
    else:
        ws.transport.pause_reading()
    return ws, session


_READERS: set[asyncio.Task[None]] = set()


async def _drain(ws: Any) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def send_all(ws: Any, chunks: Any, deadline: float) -> int:
    """Send until the server closes, the chunks run out or the deadline passes."""
    from websockets.exceptions import ConnectionClosed

    sent = 0
    try:
        for chunk in chunks:
            if time.monotonic() > deadline:
                break
            await ws.send(chunk)
            sent += len(chunk)
    except (ConnectionClosed, ConnectionError):
        pass
    return sent


async def drop(ws: Any) -> None:
    """Leave without a close handshake (the session stays resumable)."""
    ws.transport.abort()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.wait_closed(), 2)


def echo_requests(session: Any, total: int, size: int) -> Any:
    from wsproto_tools.codec import Message, Request, encode

    body = os.urandom(size)
    for i in range(total // size):
        yield encode(Message(Request(i + 1, "echo", body), 0, 0))
    del session


def echo_data(session: Any, total: int, size: int) -> Any:
    from wsproto_tools.codec import BinaryData, Flags, Message, encode

    body = os.urandom(size)
    for i in range(total // size):
        yield encode(Message(BinaryData(body), i + 1, 0, 0, Flags.ACK_REQUESTED))
    del session


def publishes(topic: str, count: int, size: int, first_seq: int = 1, ids: bool = False) -> Any:
    from wsproto_tools.codec import Flags, Message, Publish, encode

    body = os.urandom(size)
    for i in range(count):
        pid = i + 1 if ids else None
        yield encode(Message(Publish(topic, body, pid), first_seq + i, 0, 0, Flags.ACK_REQUESTED))


def subscribe(topic: str, from_offset: int | None = None, epoch: int | None = None) -> bytes:
    from wsproto_tools.codec import Message, Subscribe, encode

    return encode(Message(Subscribe(topic, from_offset, epoch), 0, 0))


async def settle(served: Served, seconds: float = 1.0) -> None:
    await asyncio.sleep(seconds)


@dataclass
class Result:
    attack: str
    sent: str
    peak: float  # MB growth of VmHWM over the baseline
    after: float  # MB growth of VmRSS once the attacker is gone
    budget: str
    note: str = ""


def growth(base: dict[str, int], now: dict[str, int]) -> tuple[float, float]:
    return (now["VmHWM"] - base["VmRSS"]) / 1024, (now["VmRSS"] - base["VmRSS"]) / 1024


async def attack_echo(scale: float, kind: str) -> Result:
    total = int(256 * MiB * scale)
    make = echo_requests if kind == "request" else echo_data
    with wsp_serve() as served:
        await asyncio.sleep(0.3)
        base = served.status()
        ws, session = await attacker(served.url)
        sent = await send_all(ws, make(session, total, 64 * 1024), time.monotonic() + 60)
        await settle(served, 2.5)  # the close timeout (2 s) passes
        peak = served.status()
        await drop(ws)
        await settle(served, 1.0)
        after = served.status()
        closes = served.metric('wsp_closes_total{code="4005"}').split()[-1:] or ["0"]
    p, _ = growth(base, peak)
    _, a = growth(base, after)
    name = "1. echo Requests" if kind == "request" else "2. echoed BinaryData (ack requested)"
    return Result(name, f"{sent / MiB:,.0f} MiB", p, a, "--max-buffer 4 MiB", f"4005 x{closes[0]}")


async def attack_replay(scale: float) -> Result:
    count, subscribers = max(8, int(300 * scale)), max(2, int(8 * scale))
    with wsp_serve() as served:
        pub, _ = await attacker(served.url, read=True)
        await send_all(pub, publishes("amp", count, MiB - 1024), time.monotonic() + 60)
        await asyncio.sleep(0.5)
        await drop(pub)
        await settle(served, 1.0)
        base = served.status()
        subs = []
        for _ in range(subscribers):
            ws, _ = await attacker(served.url)
            await ws.send(subscribe("amp", 1))
            subs.append(ws)
        await settle(served, 3.0)
        peak = served.status()
        for ws in subs:
            await drop(ws)
        await settle(served, 1.0)
        after = served.status()
    p, _ = growth(base, peak)
    _, a = growth(base, after)
    return Result(
        "3. replay amplification",
        f"{count} x 1 MiB history, {subscribers} Subscribe(from_offset=1)",
        p,
        a,
        "64 KiB paced + --max-buffer per subscriber",
    )


async def attack_history(scale: float) -> Result:
    count = max(8, int(300 * scale))
    with wsp_serve() as served:
        await asyncio.sleep(0.3)
        base = served.status()
        pub, _ = await attacker(served.url, read=True)
        seq = 1
        sent = 0
        for topic in ("h1", "h2", "h3"):
            sent += await send_all(
                pub, publishes(topic, count, MiB - 1024, seq), time.monotonic() + 60
            )
            seq += count
        await asyncio.sleep(1.0)
        peak = served.status()
        await drop(pub)
        await settle(served, 1.0)
        after = served.status()
    p, _ = growth(base, peak)
    _, a = growth(base, after)
    return Result(
        "4. history (3 topics)",
        f"3 x {count} x 1 MiB ({sent / MiB:,.0f} MiB sent)",
        p,
        a,
        "--history-bytes 64 MiB/topic, --history-total 256 MiB",
    )


async def attack_topics(scale: float) -> Result:
    count = max(2000, int(100_000 * scale))
    with wsp_serve("--max-topics", str(count)) as served:
        await asyncio.sleep(0.3)
        base = served.status()
        ws, _ = await attacker(served.url)
        batch = [subscribe(f"t{i:06d}") for i in range(count)]
        await send_all(ws, batch, time.monotonic() + 60)
        await settle(served, 2.0)
        peak = served.status()
        await drop(ws)
        await settle(served, 1.0)
        after = served.status()
        bystander, session = await attacker(served.url, read=True)
        await bystander.send(subscribe("bystander-topic"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(bystander.wait_closed(), 3)
        refused = "refused (1008)" if bystander.close_code == 1008 else "made"
        await drop(bystander)
        del session
    p, _ = growth(base, peak)
    _, a = growth(base, after)
    return Result(
        "5. topics",
        f"{count:,} subscribes, --max-topics {count:,}",
        p,
        a,
        "--max-topics-per-session 1000",
        f"bystander's new topic: {refused}",
    )


async def attack_detached(scale: float) -> Result:
    plain, with_ids = max(500, int(20_000 * scale)), max(4, int(50 * scale))
    with wsp_serve() as served:
        await asyncio.sleep(0.3)
        base = served.status()
        deadline = time.monotonic() + 120
        made = failed = 0
        for _ in range(plain):
            if time.monotonic() > deadline:
                break
            try:
                ws, _ = await attacker(served.url, read=True)
            except (OSError, TimeoutError):
                failed += 1
                continue
            await drop(ws)
            made += 1
        for n in range(with_ids):
            try:
                ws, _ = await attacker(served.url, read=True)
            except (OSError, TimeoutError):
                failed += 1
                continue
            await send_all(ws, publishes(f"ids{n}", 4096, 16, ids=True), deadline)
            await asyncio.sleep(0.2)
            await drop(ws)
        await settle(served, 1.0)
        peak = served.status()
        after = peak
        sessions = served.metric("wsp_sessions").split()[-1:] or ["?"]
    p, _ = growth(base, peak)
    _, a = growth(base, after)
    return Result(
        "6. detached sessions",
        f"{made:,} plain + {with_ids} with 4,096 publish ids",
        p,
        a,
        "--max-detached 10,000, --max-detached-bytes 64 MiB",
        f"sessions held: {sessions[0]}; connections that failed: {failed}",
    )


ATTACKS = {
    "1": lambda s: attack_echo(s, "request"),
    "2": lambda s: attack_echo(s, "data"),
    "3": attack_replay,
    "4": attack_history,
    "5": attack_topics,
    "6": attack_detached,
}


async def run_server(scale: float, only: list[str]) -> None:
    print(
        f"hostile peers against `wsp serve` (scale {scale:g}; loopback; RSS growth of the "
        "server process over its idle RSS: peak VmHWM, and VmRSS after the attacker left)",
        flush=True,
    )
    print(f"{'attack':40} {'peak MB':>8} {'after MB':>8}  traffic / budget / note", flush=True)
    for key in only or list(ATTACKS):
        started = time.monotonic()
        result = await ATTACKS[key](scale)
        print(
            f"{result.attack:40} {result.peak:8,.0f} {result.after:8,.0f}  {result.sent}; "
            f"budget: {result.budget}; {result.note} ({time.monotonic() - started:.0f} s)",
            flush=True,
        )


def run_decode(argv: list[str]) -> int:
    path = Path(__file__).with_name("hostile_decode.py")
    if not path.exists():
        print("benchmarks/hostile_decode.py is not there", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("hostile_decode", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile_decode"] = module
    spec.loader.exec_module(module)
    return int(module.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "decode":
        return run_decode(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["server", "decode"])
    parser.add_argument("--quick", action="store_true", help="scale 0.125")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", default=[], choices=list(ATTACKS))
    args = parser.parse_args(argv)
    scale = 0.125 if args.quick else args.scale
    asyncio.run(run_server(scale, args.only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
