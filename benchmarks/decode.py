"""Decoder throughput: ``wsp decode --ndjson`` against tshark on real loopback captures.

Records two captures with tcpdump on the loopback interface (several WebSocket
connections between ``websockets`` peers, every data and ACK packet as tcpdump
sees it), then times, in the same run, ``wsp decode --ndjson`` (full decoding:
TCP reassembly, permessage-deflate, wsp codec) and tshark extracting the same
payloads::

    tshark -r F -Y websocket -T fields -e websocket.opcode \\
        -e websocket.payload.text -e data.data

1. ``small``: N (default 100,000) small wsp.v2 TextData messages, permessage-deflate;
2. ``1k``: M megabytes (default 50) of 1 KB wsp.v2 BinaryData messages.

The traffic is real wsp: the project's server (no auth, ``compression`` on for
the first file) and four sessions driven by the engine's ``ClientSession`` over
``websockets`` connections (handshake, sequence numbers, acknowledgments), so
the decoder's session observer follows valid sessions.

Peak memory (max RSS of each decoding process) is printed for the whole large
file and for its first tenth, to show that memory does not grow with the file.
tshark comes from Debian's ``tshark`` package; without it the ratio is skipped.
The pure-Python paths (``WSP_PURE_PYTHON=1``: no C speedups) are timed too.
Each tool's wall time and CPU time (user + system, from ``wait4``) are printed,
with its output sent to ``/dev/null`` (both tools alike; the lines each writes
are counted in an untimed run first, which also warms the page cache);
``--repeat N`` runs the tools N times in turn and keeps each one's best, which
is fairer on a machine shared with other jobs (the load average is printed).
Needs root (tcpdump). Usage: ``python benchmarks/decode.py [--messages N] [--mb M]
[--keep DIR [--reuse]] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.session import Credentials, SessionConfig
from wsproto_tools.engine.states import State
from wsproto_tools.server import ServerConfig, WspServer

#: A port Wireshark dissects as HTTP by default, so no decode-as option is needed.
HTTP_PORTS = (8080, 8088, 3128, 80)
CONNECTIONS = 4


def pick_port() -> int:
    for port in HTTP_PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free HTTP port for tshark to recognize (8080, 8088, 3128, 80)")


class Tcpdump:
    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [
                "tcpdump",
                "-i",
                "lo",
                "-n",
                "-s",
                "0",
                "-B",
                "262144",
                "-w",
                str(path),
                f"tcp port {port}",
            ],
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if b"listening" not in line:
            raise SystemExit(f"tcpdump did not start: {line!r}")
        time.sleep(0.3)

    def stop(self) -> str:
        time.sleep(1.0)
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        return err.decode(errors="replace").strip().replace("\n", "; ")


async def client_session(
    url: str, texts: list[str], binaries: list[bytes], compression: str | None
) -> None:
    """One wsp session (the engine's ClientSession) sending ``texts`` / ``binaries``."""
    session = ClientSession(Credentials(), SessionConfig(window=4096))
    ws = await connect(
        url, subprotocols=["wsp.v2"], compression=compression, ping_interval=None, max_size=None
    )
    session.connection_made(time.time(), version=2, nonce=os.urandom(16))
    active = asyncio.Event()
    room = asyncio.Event()

    async def reader() -> None:
        async for data in ws:
            session.receive_data(data, time.time())  # type: ignore[arg-type]
            if session.state is State.ACTIVE:
                active.set()
            if session.can_send():
                room.set()
            for out in session.data_to_send():
                await ws.send(out)

    task = asyncio.create_task(reader())
    await asyncio.wait_for(active.wait(), 10)
    items: list[str | bytes] = [*texts, *binaries]
    for i, item in enumerate(items):
        while not session.can_send():
            room.clear()
            await room.wait()
        if isinstance(item, str):
            session.send_text(item, time.time())
        else:
            session.send_binary(item, time.time())
        for out in session.data_to_send():
            await ws.send(out)
        if i % 64 == 0:
            await asyncio.sleep(0)
    while session.in_flight:
        room.clear()
        await asyncio.wait_for(room.wait(), 30)
    session.close(1000, "done", time.time())
    for out in session.data_to_send():
        await ws.send(out)
    await ws.close()
    await asyncio.wait_for(task, 10)


async def traffic(
    port: int, texts: list[str], binaries: list[bytes], compression: str | None
) -> None:
    """CONNECTIONS wsp sessions send the messages between them to a wsp server."""
    server = WspServer(
        ServerConfig(
            port=port,
            no_auth=True,
            compression=compression is not None,
            rate=0,
            heartbeat_interval=60,
            max_message_size=1 << 22,
        )
    )
    await server.start()
    try:
        url = f"ws://127.0.0.1:{port}/bench"
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    client_session(
                        url, texts[i::CONNECTIONS], binaries[i::CONNECTIONS], compression
                    )
                    for i in range(CONNECTIONS)
                )
            ),
            600,
        )
    finally:
        await server.shutdown()


def record(path: Path, texts: list[str], binaries: list[bytes], compression: str | None) -> str:
    port = pick_port()
    dump = Tcpdump(path, port)
    try:
        asyncio.run(traffic(port, texts, binaries, compression))
    finally:
        stats = dump.stop()
    return stats


def small_texts(n: int) -> list[str]:
    return [f"ACME {100 + seq % 50}.{seq % 100:02d} vol {seq % 977}" for seq in range(n)]


def kilobyte_payloads(megabytes: int) -> list[bytes]:
    """1 KB wsp messages: 1,017 bytes of data plus the (at most 7-byte) v2 header."""
    rng = random.Random(7)
    block = bytes(rng.getrandbits(8) for _ in range(1 << 16))
    return [block[(i * 997) % (len(block) - 1024) :][:1017] for i in range(megabytes * 1024)]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Wall time, peak RSS (KiB) and CPU time (user + system) of ``cmd``, its output
    thrown away (``/dev/null``: the figure is the decoder's, not this machine's page
    cache; the output itself is counted by :func:`count_lines`, untimed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=None if env is None else {**os.environ, **env})
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed with status {os.waitstatus_to_exitcode(status)}")
    return elapsed, int(usage.ru_maxrss), usage.ru_utime + usage.ru_stime


def count_lines(cmd: list[str]) -> int:
    """Lines ``cmd`` writes (an untimed run, which also warms the page cache)."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        out = proc.stdout
        assert out is not None
        lines = 0
        while chunk := out.read(1 << 20):
            lines += chunk.count(b"\n")
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with status {proc.returncode}")
    return lines


def wsp_cmd(path: Path, *extra: str) -> list[str]:
    entry = "from wsproto_tools.cli.main import main; main()"
    return [sys.executable, "-c", entry, "decode", "--ndjson", "-q", *extra, str(path)]


def tshark_cmd(path: Path) -> list[str]:
    return [
        "tshark",
        "-r",
        str(path),
        "-Y",
        "websocket",
        "-T",
        "fields",
        "-e",
        "websocket.opcode",
        "-e",
        "websocket.payload.text",
        "-e",
        "data.data",
    ]


def compare(name: str, path: Path, expected: int, repeat: int = 1) -> dict[str, Any]:
    """Time wsp (one process, then ``-j 0``) and tshark on ``path``, each ``repeat`` times
    in turn; the best of each is kept (the machine may be shared)."""
    size = path.stat().st_size
    load = os.getloadavg()[0]
    wsp_runs, par_runs, ts_runs, pure_runs = [], [], [], []
    have_tshark = shutil.which("tshark") is not None
    wsp_lines = count_lines(wsp_cmd(path))
    ts_lines = count_lines(tshark_cmd(path)) if have_tshark else 0
    for _ in range(repeat):
        wsp_runs.append(timed(wsp_cmd(path)))
        par_runs.append(timed(wsp_cmd(path, "-j", "0")))
        pure_runs.append(timed(wsp_cmd(path), {"WSP_PURE_PYTHON": "1"}))
        if have_tshark:
            ts_runs.append(timed(tshark_cmd(path)))

    def best(runs: list[tuple[float, int, float]]) -> tuple[float, int, float]:
        return (min(r[0] for r in runs), max(r[1] for r in runs), min(r[2] for r in runs))

    wsp_time, wsp_rss, wsp_cpu = best(wsp_runs)
    par_time, _, par_cpu = best(par_runs)
    pure_time, _, _ = best(pure_runs)
    result: dict[str, Any] = {"name": name, "size": size, "wsp": wsp_time, "wsp_rss": wsp_rss,
                              "wsp_cpu": wsp_cpu, "wsp_parallel": par_time, "wsp_pure": pure_time,
                              "load": load}
    print(f"{name}: {size / 1e6:.1f} MB, {expected} messages sent "
          f"(load average {load:.2f}; best of {repeat})")
    print(
        f"  wsp decode --ndjson: {wsp_time:.2f} s ({size / wsp_time / 1e6:.1f} MB/s, "
        f"{expected / wsp_time:,.0f} msg/s), CPU {wsp_cpu:.2f} s, {wsp_lines} lines, "
        f"peak RSS {wsp_rss / 1024:.0f} MiB"
    )
    print(f"  wsp decode --ndjson -j 0 (one process per core): {par_time:.2f} s "
          f"(CPU {par_cpu:.2f} s)")
    print(f"  wsp decode --ndjson without the C speedups (WSP_PURE_PYTHON=1): "
          f"{pure_time:.2f} s")
    if not have_tshark:
        print("  tshark: not installed (Debian package 'tshark'); ratio skipped")
        return result
    ts_time, ts_rss, ts_cpu = best(ts_runs)
    result.update(tshark=ts_time, tshark_cpu=ts_cpu, ratio=ts_time / wsp_time)
    print(
        f"  tshark -Y websocket:  {ts_time:.2f} s ({size / ts_time / 1e6:.1f} MB/s), "
        f"CPU {ts_cpu:.2f} s, {ts_lines} lines, peak RSS {ts_rss / 1024:.0f} MiB"
    )
    print(
        f"  throughput ratio wsp/tshark: {ts_time / wsp_time:.2f}x "
        f"(with -j 0: {ts_time / par_time:.2f}x; CPU time: {ts_cpu / wsp_cpu:.2f}x)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="Keep the captures in this directory.")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="With --keep: time the captures already there, record nothing.",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Time each tool this many times, in turn, and keep the best (a shared machine).",
    )
    args = parser.parse_args()
    if shutil.which("tcpdump") is None and not args.reuse:
        raise SystemExit("tcpdump is needed to record the captures (Debian package 'tcpdump')")
    load = os.getloadavg()[0]
    print(f"load average before the run: {load:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        small = folder / "small-deflate.pcap"
        big = folder / "1k-messages.pcap"
        if not (args.reuse and small.exists() and big.exists()):
            print(f"recording {args.messages} small compressed messages ...")
            print("  tcpdump:", record(small, small_texts(args.messages), [], "deflate"))
            print(f"recording {args.mb} MB of 1 KB messages ...")
            print("  tcpdump:", record(big, [], kilobyte_payloads(args.mb), None))
        results = [
            compare("small", small, args.messages, args.repeat),
            compare("1k", big, args.mb * 1024, args.repeat),
        ]
        head = folder / "1k-first-tenth.pcap"
        with big.open("rb") as src, head.open("wb") as dst:
            dst.write(src.read(big.stat().st_size // 10))
        _, rss_head, _ = timed(wsp_cmd(head))
        print(
            f"peak RSS of wsp decode: {rss_head / 1024:.0f} MiB for the first tenth of the 1k "
            f"file, {results[1]['wsp_rss'] / 1024:.0f} MiB for all of it"
        )


if __name__ == "__main__":
    main()
