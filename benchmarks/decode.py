"""Decoder throughput: ``wsp decode --ndjson`` against tshark on real loopback captures.

Records two captures with tcpdump on the loopback interface (several WebSocket
connections between ``websockets`` peers, every data and ACK packet as tcpdump
sees it), then times, in the same run, ``wsp decode --ndjson`` (full decoding:
TCP reassembly, permessage-deflate, wsp codec) and tshark extracting the same
payloads::

    tshark -r F -Y websocket -T fields -e websocket.opcode \\
        -e websocket.payload.text -e data.data

1. ``small``: N (default 100,000) small wsp.v2 messages, permessage-deflate;
2. ``1k``: M megabytes (default 50) of 1 KB wsp.v2 binary messages.

Peak memory (max RSS of each decoding process) is printed for the whole large
file and for its first tenth, to show that memory does not grow with the file.
tshark comes from Debian's ``tshark`` package; without it the ratio is skipped.
Needs root (tcpdump). Usage: ``python benchmarks/decode.py [--messages N] [--mb M]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from websockets.asyncio.server import ServerConnection, serve

from wsproto_tools import codec

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
            ["tcpdump", "-i", "lo", "-n", "-s", "0", "-B", "262144", "-w", str(path),
             f"tcp port {port}"],
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


async def traffic(port: int, messages: list[bytes], compression: str | None) -> None:
    """CONNECTIONS clients send ``messages`` between them; the server acks every 64th."""
    received = 0
    done = asyncio.Event()
    total = len(messages)

    async def handler(ws: ServerConnection) -> None:
        nonlocal received
        async for _raw in ws:
            received += 1
            if received % 64 == 0:
                ack = codec.Message(codec.Acknowledge(sequence=received), session_id=1)
                await ws.send(codec.encode(ack, version=2))
            if received >= total:
                done.set()

    async def client(part: list[bytes]) -> None:
        async with connect(f"ws://127.0.0.1:{port}/bench", subprotocols=["wsp.v2"],
                           compression=compression, ping_interval=None,
                           max_size=None) as ws:
            for i, wire in enumerate(part):
                await ws.send(wire)
                if i % 256 == 0:
                    await asyncio.sleep(0)
            await done.wait()

    async with serve(handler, "127.0.0.1", port, subprotocols=["wsp.v2"],
                     compression=compression, ping_interval=None, max_size=None):
        parts = [messages[i::CONNECTIONS] for i in range(CONNECTIONS)]
        await asyncio.wait_for(asyncio.gather(*(client(p) for p in parts)), 600)


def record(path: Path, messages: list[bytes], compression: str | None) -> str:
    port = pick_port()
    dump = Tcpdump(path, port)
    try:
        asyncio.run(traffic(port, messages, compression))
    finally:
        stats = dump.stop()
    return stats


def small_messages(n: int) -> list[bytes]:
    out = []
    for seq in range(1, n + 1):
        text = f"ACME {100 + seq % 50}.{seq % 100:02d} vol {seq % 977}"
        msg = codec.Message(codec.TextData(text), sequence=seq % (1 << 32), session_id=1)
        out.append(codec.encode(msg, version=2))
    return out


def kilobyte_messages(megabytes: int) -> list[bytes]:
    rng = __import__("random").Random(7)
    block = bytes(rng.getrandbits(8) for _ in range(1 << 16))
    count = megabytes * 1024
    out = []
    for seq in range(1, count + 1):
        off = (seq * 997) % (len(block) - 1024)
        payload = block[off : off + 1016]
        msg = codec.Message(codec.BinaryData(payload), sequence=seq, session_id=1)
        out.append(codec.encode(msg, version=2))
    return out


def timed(cmd: list[str]) -> tuple[float, int, int]:
    """Wall time, peak RSS (KiB) and output lines of ``cmd``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed with status {proc.returncode}")
        out.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: out.read(1 << 20), b""))
    return elapsed, int(usage.ru_maxrss), lines


def wsp_cmd(path: Path) -> list[str]:
    entry = "from wsproto_tools.cli.main import main; main()"
    return [sys.executable, "-c", entry, "decode", "--ndjson", "-q", str(path)]


def tshark_cmd(path: Path) -> list[str]:
    return ["tshark", "-r", str(path), "-Y", "websocket", "-T", "fields",
            "-e", "websocket.opcode", "-e", "websocket.payload.text", "-e", "data.data"]


def compare(name: str, path: Path, expected: int) -> dict[str, Any]:
    size = path.stat().st_size
    wsp_time, wsp_rss, wsp_lines = timed(wsp_cmd(path))
    result: dict[str, Any] = {"name": name, "size": size, "wsp": wsp_time, "wsp_rss": wsp_rss}
    print(f"{name}: {size / 1e6:.1f} MB, {expected} messages sent")
    print(f"  wsp decode --ndjson: {wsp_time:.2f} s ({size / wsp_time / 1e6:.1f} MB/s, "
          f"{expected / wsp_time:,.0f} msg/s), {wsp_lines} lines, "
          f"peak RSS {wsp_rss / 1024:.0f} MiB")
    if shutil.which("tshark") is None:
        print("  tshark: not installed (Debian package 'tshark'); ratio skipped")
        return result
    ts_time, ts_rss, ts_lines = timed(tshark_cmd(path))
    result.update(tshark=ts_time, ratio=ts_time / wsp_time)
    print(f"  tshark -Y websocket:  {ts_time:.2f} s ({size / ts_time / 1e6:.1f} MB/s), "
          f"{ts_lines} lines, peak RSS {ts_rss / 1024:.0f} MiB")
    print(f"  throughput ratio wsp/tshark: {ts_time / wsp_time:.2f}x")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="Keep the captures in this directory.")
    parser.add_argument("--reuse", action="store_true",
                        help="With --keep: time the captures already there, record nothing.")
    args = parser.parse_args()
    if shutil.which("tcpdump") is None:
        raise SystemExit("tcpdump is needed to record the captures (Debian package 'tcpdump')")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        small = folder / "small-deflate.pcap"
        big = folder / "1k-messages.pcap"
        if not (args.reuse and small.exists() and big.exists()):
            print(f"recording {args.messages} small compressed messages ...")
            print("  tcpdump:", record(small, small_messages(args.messages), "deflate"))
            print(f"recording {args.mb} MB of 1 KB messages ...")
            print("  tcpdump:", record(big, kilobyte_messages(args.mb), None))
        results = [compare("small", small, args.messages),
                   compare("1k", big, args.mb * 1024)]
        head = folder / "1k-first-tenth.pcap"
        with big.open("rb") as src, head.open("wb") as dst:
            dst.write(src.read(big.stat().st_size // 10))
        _, rss_head, _ = timed(wsp_cmd(head))
        print(f"peak RSS of wsp decode: {rss_head / 1024:.0f} MiB for the first tenth of the 1k "
              f"file, {results[1]['wsp_rss'] / 1024:.0f} MiB for all of it")


if __name__ == "__main__":
    main()
