"""Protocol overhead on real traffic: bytes on the wire per message, both directions.

Run: ``python benchmarks/overhead.py`` (``--quick`` for a short run, ``--json`` for
one JSON object per figure). Loopback only; it stops by itself.

A real ``wsp serve`` (a child process: HMAC auth with a secret, every other
option at its default, 127.0.0.1, a port the OS picks) and the real
``wsproto_tools.client.Client`` (default options; ``version=1`` for the v1 rows).
Between them sits a counting TCP proxy (asyncio, 127.0.0.1): every byte it reads
from one side and writes to the other is counted per connection and direction,
so the figures are TCP payload bytes — WebSocket frame headers and the masking
keys of client→server frames included (TCP/IP headers are not: on loopback the
kernel coalesces segments). The proxy also parses the frames it forwards
(``ws.frames.FrameParser``) and decodes each wsp message (``codec.decode``) only
to say *what* went over: the message types, and how the overhead splits into
WebSocket frame headers, wsp headers (re-encoding the decoded message with and
without its session id tells how many header bytes the session id took) and the
rest (msgpack fields around the payload, Batch containers, Acknowledges). The
byte counts themselves never depend on that decoding: at the end they are checked
against the kernel's own (``TCP_INFO`` ``tcpi_bytes_acked`` and
``tcpi_bytes_received`` of each client's socket, over the same window).

Four kinds of traffic, each with a ``size``-byte payload (16, 128, 1024):

* data echo — ``client.send_binary(payload)``: a BinaryData (c2s) that the server
  echoes as its own BinaryData (s2c), both sequenced and acknowledged;
* echo — ``client.echo(payload)``: a Request to the server's ``echo`` method
  (client→server, c2s) and its Response (server→client, s2c), on one connection;
* publish — ``client.publish(topic, payload)``: the Publish (c2s) and the server's
  Acknowledge (s2c), on the publisher's connection;
* deliver — the same messages reaching a subscriber: the server's Deliver (s2c)
  and whatever the subscriber answers (c2s), on the subscriber's connection.

Topics have 4 characters ("t000"...), a fresh one per run. Each run starts new
clients; the HTTP upgrade, the wsp session handshake and the subscription are
measured apart (the "setup" lines) and left out: the counted window opens once
the session is active, a warm-up of ``--warmup`` messages has brought sequence
numbers and topic offsets into the range of a session that has been running a
while, and the connection has been quiet for 0.15 s; it closes when every answer
has come and the connection is quiet again. Two modes:

* ``1-by-1`` (the default figure, the worst case): one message at a time, each
  waiting for its answer (the Response; the Acknowledge and the delivery);
* ``burst``: bursts of ``--burst`` messages sent without waiting (``echo`` calls
  gathered, ``publish_nowait``), then every answer awaited; whatever the client
  and server coalesce (Batches, one Acknowledge per flushed burst) is shared by
  the burst.

Per message: bytes per direction (total / messages), the overhead (bytes that are
not the payload; for the direction that carries no payload, all of it) in bytes
and in % of the payload, and "both ways": every byte that is not payload over the
payload bytes carried (twice the payload for echo). Goal (issue 11): under 10 %
at 128 bytes, for echo, publish and deliver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools import __file__ as wsp_file
from wsproto_tools.client import Client
from wsproto_tools.codec import Batch, BinaryData, Message, TextData, decode, detect_version, encode
from wsproto_tools.codec.payloads import encode_fields
from wsproto_tools.ws.frames import FrameParser

SECRET = "overhead-bench-secret"
SIZES = (16, 128, 1024)
QUIET = 0.15  # seconds without a byte on any connection: the traffic has settled
POLL = 0.05
RUN_LIMIT = 120.0  # seconds: a run that takes longer is a failure, not a hang
OPCODES = {0: "ws continuation", 1: "ws text", 8: "ws close", 9: "ws ping", 10: "ws pong"}


# ---------------------------------------------------------------- counting proxy


@dataclass
class Tally:
    """What one direction of one connection carried."""

    bytes: int = 0  # TCP payload bytes
    http: int = 0  # of which the HTTP upgrade head
    ws_header: int = 0  # WebSocket frame headers, masking keys included
    frames: int = 0
    wsp_header: int = 0  # wsp headers of the messages (Batch items included)
    session_id: int = 0  # of which session ids (v2: the S field; v1 has a fixed header)
    with_session_id: int = 0  # wsp messages whose header carried a session id
    types: Counter[str] = field(default_factory=Counter)  # wsp messages (Batch items too)

    def copy(self) -> Tally:
        return dataclasses.replace(self, types=Counter(self.types))

    def __sub__(self, other: Tally) -> Tally:
        types = Counter(self.types)
        types.subtract(other.types)
        numbers = {
            f.name: getattr(self, f.name) - getattr(other, f.name)
            for f in dataclasses.fields(self)
            if f.name != "types"
        }
        return Tally(**numbers, types=+types)


def body_length(payload: Any) -> int:
    """Bytes of a message's payload after its header (raw data, text or msgpack map)."""
    if isinstance(payload, BinaryData):
        return len(payload.data)
    if isinstance(payload, TextData):
        return len(payload.text.encode())
    return len(encode_fields(payload))


class Direction:
    """Counts the bytes of one direction and parses them (only to label them)."""

    def __init__(self) -> None:
        self.tally = Tally()
        self._head: bytes | None = b""  # the HTTP head so far; None once it is over
        self._frames = FrameParser()

    def feed(self, data: bytes) -> None:
        t = self.tally
        t.bytes += len(data)
        if self._head is not None:
            head = self._head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self._head = head
                t.http += len(data)
                return
            used = end + 4 - len(self._head)
            t.http += used
            self._head = None
            data = data[used:]
        for b0, payload, _mask, total, _minimal in self._frames.feed_raw(data):
            t.frames += 1
            t.ws_header += total - len(payload)
            opcode = b0 & 0x0F
            if opcode != 2 or not b0 & 0x80:
                t.types[OPCODES.get(opcode, f"ws opcode {opcode}")] += 1
                continue
            try:
                self._label(decode(payload), detect_version(payload))
            except Exception:  # labelling only; the bytes are counted anyway
                t.types["undecodable"] += 1

    def _label(self, msg: Message, version: int) -> None:
        """Count ``msg`` by type; attribute its header bytes (re-encoded: labels only)."""
        t = self.tally
        t.with_session_id += bool(msg.session_id)
        if type(msg.payload) is Batch:
            t.types["Batch"] += 1
            for item in msg.payload.messages:
                self._label(item, version)
            return
        t.types[msg.type_name] += 1
        wire = len(encode(msg, version=version))
        t.wsp_header += wire - body_length(msg.payload)
        if msg.session_id:
            without = dataclasses.replace(msg, session_id=0)
            t.session_id += wire - len(encode(without, version=version))


@dataclass
class Link:
    """One proxied connection: client→server and server→client."""

    c2s: Direction = field(default_factory=Direction)
    s2c: Direction = field(default_factory=Direction)

    def snapshot(self) -> tuple[Tally, Tally]:
        return self.c2s.tally.copy(), self.s2c.tally.copy()


class Proxy:
    """A TCP proxy on 127.0.0.1 that counts what it forwards, per connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.links: list[Link] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        link = Link()
        self.links.append(link)
        s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        pipes = [
            asyncio.create_task(self._pipe(c_reader, s_writer, link.c2s)),
            asyncio.create_task(self._pipe(s_reader, c_writer, link.s2c)),
        ]
        self._tasks.update(pipes)
        for task in pipes:
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction
    ) -> None:
        try:
            while data := await reader.read(1 << 16):
                direction.feed(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            writer.close()


def kernel_counts(client: Client) -> tuple[int, int] | None:
    """(bytes sent and acknowledged, bytes received) of the client's socket (TCP_INFO)."""
    ws = client.ws
    sock = ws.transport.get_extra_info("socket") if ws is not None else None
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < 136:
        return None
    return struct.unpack_from("=QQ", info, 120)  # tcpi_bytes_acked, tcpi_bytes_received


async def settle(links: list[Link], limit: float = 5.0) -> None:
    """Wait until no byte has moved on ``links`` for QUIET seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    last = [(link.c2s.tally.bytes, link.s2c.tally.bytes) for link in links]
    quiet_since = loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(POLL)
        now = [(link.c2s.tally.bytes, link.s2c.tally.bytes) for link in links]
        if now != last:
            last, quiet_since = now, loop.time()
        elif loop.time() - quiet_since >= QUIET:
            return
    raise RuntimeError(f"the traffic did not settle within {limit:g} s")


# ---------------------------------------------------------------- the server


@contextlib.asynccontextmanager
async def wsp_serve() -> AsyncIterator[int]:
    """``wsp serve --port 0`` with a secret (WSP_SECRET) in a child process; yields its port."""
    exe = shutil.which("wsp", path=os.path.dirname(sys.executable)) or shutil.which("wsp")
    if exe is None:
        raise SystemExit("overhead: the wsp command is not installed (pip install -e .)")
    env = {**os.environ, "WSP_SECRET": SECRET}
    proc = subprocess.Popen(
        [exe, "serve", "--host", "127.0.0.1", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stderr is not None
    try:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(20):
            while True:
                line = await loop.run_in_executor(None, proc.stderr.readline)
                if not line:
                    raise RuntimeError("wsp serve ended before listening")
                found = re.search(r"listening on ws://127\.0\.0\.1:(\d+)", line)
                if found:
                    break
        # keep reading its stderr, so that a chatty server never blocks on a full pipe
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield int(found.group(1))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- one run


def wsp_messages(tally: Tally) -> int:
    return sum(n for name, n in tally.types.items() if not name.startswith("ws "))


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Figure:
    """The counted window of one connection in one run."""

    what: str  # echo, publish, deliver
    version: int
    mode: str
    size: int
    messages: int
    c2s: Tally
    s2c: Tally
    kernel: tuple[int, int] | None  # the kernel's (c2s, s2c) bytes for the same window

    @property
    def carried(self) -> tuple[int, int]:
        """Payload bytes per message carried (c2s, s2c)."""
        return {
            "echo": (self.size, self.size),
            "data echo": (self.size, self.size),
            "publish": (self.size, 0),
            "deliver": (0, self.size),
        }[self.what]

    def per_message(self) -> dict[str, Any]:
        n = self.messages
        c_pay, s_pay = self.carried
        c2s, s2c = self.c2s.bytes / n, self.s2c.bytes / n
        c_over, s_over = c2s - c_pay, s2c - s_pay
        return {
            "what": self.what,
            "version": self.version,
            "mode": self.mode,
            "payload": self.size,
            "messages": n,
            "c2s_bytes": c2s,
            "s2c_bytes": s2c,
            "c2s_overhead": c_over,
            "s2c_overhead": s_over,
            "c2s_overhead_pct": 100 * c_over / self.size,
            "s2c_overhead_pct": 100 * s_over / self.size,
            "both_ways_pct": 100 * (c_over + s_over) / (c_pay + s_pay),
            "c2s_ws_header": self.c2s.ws_header / n,
            "s2c_ws_header": self.s2c.ws_header / n,
            "c2s_wsp_header": self.c2s.wsp_header / n,
            "s2c_wsp_header": self.s2c.wsp_header / n,
            "c2s_session_id_bytes": self.c2s.session_id / n,
            "s2c_session_id_bytes": self.s2c.session_id / n,
            "c2s_rest": c_over - (self.c2s.ws_header + self.c2s.wsp_header) / n,
            "s2c_rest": s_over - (self.s2c.ws_header + self.s2c.wsp_header) / n,
            "c2s_frames": self.c2s.frames / n,
            "s2c_frames": self.s2c.frames / n,
            "c2s_types": {k: v / n for k, v in sorted(self.c2s.types.items())},
            "s2c_types": {k: v / n for k, v in sorted(self.s2c.types.items())},
            "c2s_session_id": share(self.c2s.with_session_id, wsp_messages(self.c2s)),
            "s2c_session_id": share(self.s2c.with_session_id, wsp_messages(self.s2c)),
        }


@dataclass
class Setup:
    """Bytes of a connection before the counted window (upgrade, handshake, subscribe)."""

    version: int
    http_c2s: int
    http_s2c: int
    wsp_c2s: int
    wsp_s2c: int
    c2s_types: Counter[str]
    s2c_types: Counter[str]
    subscribe_c2s: int = 0
    subscribe_s2c: int = 0


class Window:
    """The counted window of some connections (proxy tallies and kernel counts)."""

    def __init__(self, links: list[Link], clients: list[Client]) -> None:
        self.links, self.clients = links, clients
        self.start = [link.snapshot() for link in links]
        self.kernel_start = [kernel_counts(c) for c in clients]

    def close(self) -> list[tuple[Tally, Tally, tuple[int, int] | None]]:
        out = []
        for link, client, (c0, s0), k0 in zip(
            self.links, self.clients, self.start, self.kernel_start, strict=True
        ):
            c1, s1 = link.snapshot()
            k1 = kernel_counts(client)
            kernel = (k1[0] - k0[0], k1[1] - k0[1]) if k0 and k1 else None
            out.append((c1 - c0, s1 - s0, kernel))
        return out


async def connect(proxy: Proxy, version: int) -> tuple[Client, Link]:
    before = len(proxy.links)
    client = Client(f"ws://127.0.0.1:{proxy.port}", secret=SECRET.encode(), version=version)
    await client.connect()
    assert len(proxy.links) == before + 1, "one proxied connection per client"
    negotiated = client.session.version
    if negotiated != version:
        raise RuntimeError(f"asked for wire version {version}, the server chose {negotiated}")
    return client, proxy.links[before]


def batches(count: int, burst: int) -> list[int]:
    return [min(burst, count - i) for i in range(0, count, burst)]


async def measure_one_client(
    proxy: Proxy, version: int, what: str, mode: str, size: int, count: int, warmup: int,
    send: Callable[[Client, int], Awaitable[None]],
) -> tuple[Figure, Setup]:
    """One client's connection: ``send(client, n)`` after a warm-up, counted."""
    client, link = await connect(proxy, version)
    try:
        await settle([link])
        c, s = link.snapshot()
        setup = Setup(version, c.http, s.http, c.bytes - c.http, s.bytes - s.http,
                      c.types, s.types)
        await send(client, warmup)
        await settle([link])
        window = Window([link], [client])
        await send(client, count)
        await settle([link])
        ((c2s, s2c, kernel),) = window.close()
        return Figure(what, version, mode, size, count, c2s, s2c, kernel), setup
    finally:
        await client.close()


def rounds(mode: str, n: int, burst: int) -> list[int]:
    """Messages per round: one at a time, or bursts."""
    return [1] * n if mode == "1-by-1" else batches(n, burst)


async def run_echo(
    proxy: Proxy, version: int, mode: str, size: int, count: int, burst: int, warmup: int
) -> tuple[list[Figure], Setup]:
    """Requests to the server's ``echo`` method."""
    payload = os.urandom(size)

    async def one(client: Client) -> None:
        if await client.echo(payload) != payload:
            raise RuntimeError("the echo came back different")

    async def send(client: Client, n: int) -> None:
        for b in rounds(mode, n, burst):
            await asyncio.gather(*(one(client) for _ in range(b)))

    figure, setup = await measure_one_client(
        proxy, version, "echo", mode, size, count, warmup, send
    )
    return [figure], setup


async def run_data_echo(
    proxy: Proxy, version: int, mode: str, size: int, count: int, burst: int, warmup: int
) -> list[Figure]:
    """BinaryData to the server, which echoes it as its own sequenced BinaryData."""
    payload = os.urandom(size)

    async def send(client: Client, n: int) -> None:
        for b in rounds(mode, n, burst):
            await asyncio.gather(*(client.send_binary(payload) for _ in range(b)))
            for _ in range(b):
                echoed = await client.data.get()
                if getattr(echoed, "data", None) != payload:
                    raise RuntimeError("the data echo came back different")

    figure, _ = await measure_one_client(
        proxy, version, "data echo", mode, size, count, warmup, send
    )
    return [figure]


async def run_pubsub(
    proxy: Proxy, version: int, mode: str, size: int, count: int, burst: int, warmup: int,
    topic: str,
) -> tuple[list[Figure], Setup]:
    payload = os.urandom(size)
    pub, pub_link = await connect(proxy, version)
    sub_client, sub_link = await connect(proxy, version)
    try:
        await settle([pub_link, sub_link])
        before = sub_link.snapshot()
        sub = await sub_client.subscribe(topic)
        await settle([pub_link, sub_link])
        after = sub_link.snapshot()
        c, s = before
        setup = Setup(version, c.http, s.http, c.bytes - c.http, s.bytes - s.http,
                      c.types, s.types, after[0].bytes - c.bytes, after[1].bytes - s.bytes)

        async def receive(n: int) -> None:
            for _ in range(n):
                item = await sub.get()
                if getattr(item, "data", None) != payload:
                    raise RuntimeError(f"unexpected delivery: {item!r}")

        async def send(n: int) -> None:
            if mode == "1-by-1":
                for _ in range(n):
                    await pub.publish(topic, payload)
                    await receive(1)
            else:
                for b in batches(n, burst):
                    futures = [await pub.publish_nowait(topic, payload) for _ in range(b)]
                    await asyncio.gather(*futures)
                    await receive(b)

        await send(warmup)
        await settle([pub_link, sub_link])
        window = Window([pub_link, sub_link], [pub, sub_client])
        await send(count)
        await settle([pub_link, sub_link])
        (p_c2s, p_s2c, p_kernel), (s_c2s, s_s2c, s_kernel) = window.close()
        return [
            Figure("publish", version, mode, size, count, p_c2s, p_s2c, p_kernel),
            Figure("deliver", version, mode, size, count, s_c2s, s_s2c, s_kernel),
        ], setup
    finally:
        await pub.close()
        await sub_client.close()


# ---------------------------------------------------------------- report


def types_text(types: dict[str, float]) -> str:
    return " ".join(f"{name} {n:.2f}".replace(".00", "") for name, n in types.items()) or "-"


def num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def parts(r: dict[str, Any], d: str) -> str:
    """The overhead of direction ``d`` as ws + wsp header (session id) + rest."""
    if not r[f"{d}_bytes"]:
        return "-"
    sid = r[f"{d}_session_id_bytes"]
    return (
        f"{num(r[f'{d}_ws_header'])}+{num(r[f'{d}_wsp_header'])}"
        f"{f'({num(sid)})' if sid else ''}+{num(r[f'{d}_rest'])}"
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'what':<9} {'payload':>7} {'c2s B/msg':>10} {'s2c B/msg':>10} "
        f"{'c2s overhead':>16} {'s2c overhead':>16} {'both ways':>9}  "
        f"{'c2s: ws+hdr(sid)+rest':>22} {'s2c: ws+hdr(sid)+rest':>22}  per message: c2s | s2c"
    )
    for r in rows:
        print(
            f"{r['what']:<9} {r['payload']:>5} B {r['c2s_bytes']:>10.2f} {r['s2c_bytes']:>10.2f} "
            f"{r['c2s_overhead']:>7.2f} B {r['c2s_overhead_pct']:>5.1f} % "
            f"{r['s2c_overhead']:>7.2f} B {r['s2c_overhead_pct']:>5.1f} % "
            f"{r['both_ways_pct']:>7.1f} %  {parts(r, 'c2s'):>22} {parts(r, 's2c'):>22}  "
            f"{types_text(r['c2s_types'])} | {types_text(r['s2c_types'])}"
        )


def print_setup(setups: dict[int, Setup]) -> None:
    for version, s in sorted(setups.items(), reverse=True):
        print(
            f"setup, wsp.v{version} (left out of the figures): HTTP upgrade c2s {s.http_c2s} B, "
            f"s2c {s.http_s2c} B; wsp handshake (HMAC auth) c2s {s.wsp_c2s} B "
            f"({types_text(dict(s.c2s_types))}), s2c {s.wsp_s2c} B "
            f"({types_text(dict(s.s2c_types))}); subscribing to a topic: c2s "
            f"{s.subscribe_c2s} B, s2c {s.subscribe_s2c} B"
        )


async def main(args: argparse.Namespace) -> int:
    count = args.count or (200 if args.quick else 1000)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    versions = tuple(int(v) for v in args.versions.split(","))
    modes = ("1-by-1", "burst")
    started = time.perf_counter()
    if not args.json:
        print(
            f"protocol overhead on real traffic: wsp serve (HMAC auth, defaults) and "
            f"wsproto_tools.client on 127.0.0.1 through a counting proxy; {count:,} messages "
            f"per figure after {args.warmup} warm-up messages; burst = {args.burst} messages "
            f"in flight; python {sys.version.split()[0]}; package {os.path.dirname(wsp_file)}"
        )
    figures: list[Figure] = []
    setups: dict[int, Setup] = {}
    run = 0
    async with wsp_serve() as port:
        proxy = Proxy(port)
        await proxy.start()
        try:
            for version in versions:
                for mode in modes:
                    for size in sizes:
                        async with asyncio.timeout(RUN_LIMIT):
                            figs, _ = await run_echo(
                                proxy, version, mode, size, count, args.burst, args.warmup
                            )
                            figures += figs
                            figures += await run_data_echo(
                                proxy, version, mode, size, count, args.burst, args.warmup
                            )
                            figs, setup = await run_pubsub(
                                proxy, version, mode, size, count, args.burst, args.warmup,
                                f"t{run % 1000:03d}",
                            )
                            figures += figs
                            setups.setdefault(version, setup)
                            run += 1
        finally:
            await proxy.close()
    rows = [f.per_message() for f in figures]
    mismatches = [
        f for f in figures if f.kernel is not None and f.kernel != (f.c2s.bytes, f.s2c.bytes)
    ]
    checked = sum(f.kernel is not None for f in figures)
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 1 if mismatches else 0
    order = {"data echo": 0, "echo": 1, "publish": 2, "deliver": 3}
    for version in versions:
        for mode in modes:
            label = (
                "one message at a time, each waiting for its answer (the default figure)"
                if mode == "1-by-1"
                else f"pipelined bursts of {args.burst} (answers awaited per burst)"
            )
            print(f"\nwsp.v{version}{' (default)' if version == 2 else ''}, {mode}: {label}")
            print_table(
                sorted(
                    (r for r in rows if r["version"] == version and r["mode"] == mode),
                    key=lambda r: (order[r["what"]], r["payload"]),
                )
            )
    print()
    print_setup(setups)
    print(
        "c2s: client to server (masked frames); s2c: server to client. Overhead: bytes per "
        "message that are not the payload (all of them in the direction that carries none), "
        "in % of the payload. Both ways: all non-payload bytes over the payload bytes "
        "carried. The overhead per message splits into ws (WebSocket frame headers, masking "
        "keys included) + hdr (wsp headers; in brackets the session ids in them) + rest (the "
        "msgpack fields around the payload, Batch containers, messages without payload)."
    )
    if 128 in sizes and 2 in versions:
        worst = [
            (r["what"], d, r[f"{d}_overhead_pct"])
            for r in rows
            if r["version"] == 2 and r["mode"] == "1-by-1" and r["payload"] == 128
            for d in ("c2s", "s2c")
        ]
        missed = [f"{w} {d} {p:.1f} %" for w, d, p in worst if p >= 10]
        print(
            "goal < 10 % at 128 B (wsp.v2, 1-by-1, each direction): "
            + ("met" if not missed else "missed: " + ", ".join(missed))
        )
    if mismatches:
        print(f"kernel check FAILED on {len(mismatches)} of {checked} windows:")
        for f in mismatches:
            print(f"  {f.what} v{f.version} {f.mode} {f.size} B: proxy "
                  f"{(f.c2s.bytes, f.s2c.bytes)}, kernel {f.kernel}")
    else:
        print(
            f"kernel check: the client sockets' TCP_INFO byte counts (bytes_acked, "
            f"bytes_received) equal the proxy's in all {checked} of {len(figures)} windows"
        )
    print(f"run time {time.perf_counter() - started:.1f} s")
    return 1 if mismatches else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (200 messages)")
    parser.add_argument("--count", type=int, default=0, help="messages per figure (1000)")
    parser.add_argument("--burst", type=int, default=100, help="messages per burst (100)")
    parser.add_argument("--warmup", type=int, default=300, help="messages before counting (300)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="payload sizes")
    parser.add_argument("--versions", default="2,1", help="wire versions (2,1)")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    sys.exit(asyncio.run(main(parser.parse_args())))
