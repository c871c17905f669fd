"""Hostile captures against ``wsp decode``: peak memory next to the 256 MB goal.

Builds, in a temporary directory, the captures of issue 10's decoder items and
runs ``wsp decode`` on each in a fresh process (table, ``--ndjson``, ``--json``,
``--stats``; with and without the C speedups), printing each run's peak RSS
(``wait4``), wall time, exit status and whether it printed a traceback:

1. ``bomb``: one WebSocket connection with permessage-deflate, 100 frames of
   ~10 KB that each inflate to 10 MiB (a 1 MB capture);
2. ``hole``: one connection whose first data segment is missing, 4 MB of small
   binary messages waiting behind the hole until the capture ends;
3. ``holes.gz``: 200 such connections at the same time, gzip-compressed;
4. ``syn``: 300,000 connections that only send a SYN.

Every run is limited to ``--cap`` MB of address space (default 4,096) and
``--timeout`` seconds (default 300), so a decoder that blows up is reported as
such instead of taking the machine down.

Usage: ``python benchmarks/hostile_decode.py [--scale F] [--only NAME ...]
[--modes ndjson,table,...] [--keep DIR]``; ``python benchmarks/hostile.py decode``
calls :func:`main` with the same arguments.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

GOAL_MB = 256

REQUEST = (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
RESPONSE = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
MSS = 1448
T0 = 1_700_000_000.0

_SYN, _FIN, _PSH_ACK, _SYN_ACK, _ACK = 0x02, 0x01, 0x18, 0x12, 0x10


class PcapOut:
    """A streaming classic pcap writer (Ethernet, microseconds)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        stream.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.packets = 0

    def write(self, ts: float, data: bytes) -> None:
        sec = int(ts)
        usec = round((ts - sec) * 1_000_000)
        self.stream.write(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)
        self.packets += 1


def tcp_packet(src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int,
               flags: int, payload: bytes = b"") -> bytes:
    """An Ethernet + IPv4 + TCP packet (checksums left zero, as the decoder ignores them)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                      flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, src, dst)
    return b"\0" * 12 + b"\x08\x00" + ip + tcp + payload


class Conn:
    """One TCP connection's packets: a handshake, then data from either side."""

    def __init__(self, out: PcapOut, n: int, *, port: int = 8080) -> None:
        self.out = out
        self.client = bytes([10, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])
        self.server = bytes([10, 255, 0, 1])
        self.cport = 10000 + n % 50000
        self.port = port
        self.cseq = 1000
        self.sseq = 900000

    def syn(self, ts: float) -> None:
        self.out.write(ts, tcp_packet(self.client, self.cport, self.server, self.port,
                                      self.cseq, 0, _SYN))

    def open(self, ts: float) -> None:
        """SYN, SYN-ACK, the upgrade request and its 101 (permessage-deflate)."""
        self.syn(ts)
        self.out.write(ts, tcp_packet(self.server, self.port, self.client, self.cport,
                                      self.sseq, self.cseq + 1, _SYN_ACK))
        self.cseq += 1
        self.sseq += 1
        self.send(True, REQUEST, ts)
        self.send(False, RESPONSE, ts)

    def send(self, from_client: bool, data: bytes, ts: float, *, skip: bool = False) -> None:
        """``data`` in segments; ``skip``: the segments are not written (a hole)."""
        for off in range(0, len(data), MSS):
            chunk = data[off : off + MSS]
            if from_client:
                if not skip:
                    self.out.write(ts, tcp_packet(self.client, self.cport, self.server,
                                                  self.port, self.cseq, self.sseq,
                                                  _PSH_ACK, chunk))
                self.cseq += len(chunk)
            else:
                if not skip:
                    self.out.write(ts, tcp_packet(self.server, self.port, self.client,
                                                  self.cport, self.sseq, self.cseq,
                                                  _PSH_ACK, chunk))
                self.sseq += len(chunk)


def server_frame(payload: bytes, *, opcode: int = 2, rsv1: bool = False) -> bytes:
    head = 0x80 | opcode | (0x40 if rsv1 else 0)
    size = len(payload)
    if size < 126:
        return bytes([head, size]) + payload
    if size < 65536:
        return bytes([head, 126]) + size.to_bytes(2, "big") + payload
    return bytes([head, 127]) + size.to_bytes(8, "big") + payload


def deflated(size: int) -> bytes:
    """A permessage-deflate payload (RFC 7692) that inflates to ``size`` zero bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = []
    left = size
    while left:
        piece = chunk[: min(left, len(chunk))]
        parts.append(comp.compress(piece))
        left -= len(piece)
    parts.append(comp.flush(zlib.Z_SYNC_FLUSH))
    data = b"".join(parts)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=6)  # type: ignore[return-value]
    return open(path, "wb")


def write_bomb(path: Path, *, frames: int = 100, inflated: int = 10 * 1024 * 1024) -> None:
    """Item 10: ``frames`` compressed frames from the server, each inflating to
    ``inflated`` bytes (under the default --max-message)."""
    frame = server_frame(deflated(inflated), rsv1=True)
    with _open(path) as stream:
        out = PcapOut(stream)
        conn = Conn(out, 1)
        conn.open(T0)
        for i in range(frames):
            conn.send(False, frame, T0 + 0.001 * (i + 1))


def write_holes(path: Path, *, conns: int = 1, behind: int = 4_000_000, size: int = 4) -> None:
    """Item 11: ``conns`` connections at the same time, each with its first data
    segment missing and ``behind`` bytes of ``size``-byte binary messages after it
    (the hole is whole frames, so what follows it decodes). The client never
    acknowledges them: the hole stays open until the capture ends."""
    frame = server_frame(b"\x01" * size)
    count = MSS // len(frame)
    hole = frame * count
    rest = frame * (behind // len(frame))
    with _open(path) as stream:
        out = PcapOut(stream)
        all_conns = [Conn(out, n + 1) for n in range(conns)]
        for i, conn in enumerate(all_conns):
            conn.open(T0 + i * 1e-4)
            conn.send(False, hole, T0, skip=True)
        ts = T0 + 1
        for off in range(0, len(rest), MSS):
            chunk = rest[off : off + MSS]
            for conn in all_conns:
                conn.send(False, chunk, ts)
            ts += 1e-4


def write_syns(path: Path, *, conns: int = 300_000, seconds: float = 30.0) -> None:
    """Item 11: ``conns`` connections that send one SYN each and nothing more."""
    with _open(path) as stream:
        out = PcapOut(stream)
        for n in range(conns):
            Conn(out, n + 1).syn(T0 + seconds * n / conns)


CAPTURES = {
    "bomb": ("bomb.pcap", write_bomb, "100 frames of ~10 KB inflating to 10 MiB each"),
    "hole": ("hole.pcap", write_holes, "4 MB of 4-byte messages behind a TCP hole"),
    "holes.gz": ("holes.pcap.gz", lambda p, scale=1.0: write_holes(p, conns=200),
                 "200 connections like 'hole' at once, gzip"),
    "syn": ("syn.pcap", write_syns, "300,000 SYN-only connections"),
}


def build(name: str, directory: Path, scale: float = 1.0) -> Path:
    """Write capture ``name`` (a key of :data:`CAPTURES`) into ``directory``."""
    filename, _, _ = CAPTURES[name]
    path = directory / filename
    if name == "bomb":
        write_bomb(path, frames=max(1, int(100 * scale)))
    elif name == "hole":
        write_holes(path, behind=int(4_000_000 * scale))
    elif name == "holes.gz":
        write_holes(path, conns=max(1, int(200 * scale)))
    else:
        write_syns(path, conns=max(1, int(300_000 * scale)))
    return path


MODES = {"table": [], "ndjson": ["--ndjson"], "json": ["--json"], "stats": ["--stats"]}


#: runs a command under an address-space cap, then writes its exit status and
#: peak RSS (``RUSAGE_CHILDREN``: this small process's only child) to a file. Not
#: measured from the benchmark (or pytest) process itself: a child forked from a
#: big process starts with that process's pages counted in its peak RSS.
WRAPPER = """
import json, resource, subprocess, sys
out, cap, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
timed_out = False
try:
    status = subprocess.call(sys.argv[4:], timeout=timeout)
except subprocess.TimeoutExpired:  # killed and waited for: its peak is counted
    status, timed_out = -9, True
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    json.dump({"status": status, "maxrss": usage.ru_maxrss, "timed_out": timed_out}, f)
"""


def run_decode(path: Path, extra: list[str], *, pure: bool = False, cap_mb: int = 4096,
               timeout: float = 300, python_path: str | None = None,
               stdin: Any = None) -> dict[str, Any]:
    """``wsp decode`` in a fresh process: peak RSS (MB), seconds, status, stderr, lines."""
    env = dict(os.environ)
    env.pop("WSP_PURE_PYTHON", None)
    if pure:
        env["WSP_PURE_PYTHON"] = "1"
    if python_path:
        env["PYTHONPATH"] = python_path
    env["COLUMNS"] = "120"
    entry = "from wsproto_tools.cli.main import main; main()"
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, str(result), str(cap_mb * 1024 * 1024), str(timeout),
             sys.executable, "-c", entry, "decode", "-q", *extra, str(path)],
            stdout=out, stderr=err, env=env, stdin=stdin, start_new_session=True,
            cwd=path.parent,  # not a directory holding another wsproto_tools
        )
        try:
            proc.wait(timeout + 30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        seconds = time.monotonic() - started
        found = json.loads(result.read_text()) if result.exists() else {"timed_out": True}
        timed_out = found["timed_out"]
        out.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: out.read(1 << 20), b""))
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return {
        "rss_mb": found.get("maxrss", 0) / 1024,
        "seconds": seconds,
        "status": found.get("status", proc.returncode),
        "timed_out": timed_out,
        "traceback": "Traceback" in stderr,
        "stderr": stderr,
        "lines": lines,
    }


def _runs(modes: list[str]) -> Iterator[tuple[str, list[str], bool]]:
    for mode in modes:
        yield mode, MODES[mode], False
    for mode in modes:
        yield mode + " (pure Python)", MODES[mode], True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="size of the attacks (1: as in the issue)")
    parser.add_argument("--only", nargs="*", choices=list(CAPTURES), default=list(CAPTURES))
    parser.add_argument("--modes", default="table,ndjson,json,stats")
    parser.add_argument("--no-pure", action="store_true", help="skip the pure-Python runs")
    parser.add_argument("--cap", type=int, default=4096, help="address space cap (MB)")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--keep", help="write the captures here (and reuse them)")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.keep or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        worst = 0.0
        failures = 0
        for name in args.only:
            filename, _, what = CAPTURES[name]
            path = directory / filename
            if not (args.keep and path.exists()):
                build(name, directory, args.scale)
            print(f"{name}: {what} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
            for label, extra, pure in _runs(modes):
                if pure and args.no_pure:
                    continue
                got = run_decode(path, extra, pure=pure, cap_mb=args.cap, timeout=args.timeout)
                rss = got["rss_mb"]
                worst = max(worst, rss)
                died = got["traceback"] or (got["status"] not in (0, 1) and not got["timed_out"])
                failures += died or rss > GOAL_MB
                verdict = "ok" if rss <= GOAL_MB and not died else "OVER"
                detail = ""
                if got["timed_out"]:
                    detail = (f", still decoding when stopped after {args.timeout:.0f} s "
                              f"({got['lines']:,} lines out)")
                elif got["traceback"]:
                    last = got["stderr"].strip().splitlines()[-1]
                    detail = f", traceback: {last[:80]}"
                elif got["status"] not in (0, 1):
                    detail = f", status {got['status']}"
                print(f"  wsp decode {label:<24} peak RSS {rss:7.0f} MB (goal {GOAL_MB})"
                      f"  {got['seconds']:6.1f} s  {verdict}{detail}", flush=True)
        print(f"worst peak RSS: {worst:.0f} MB; runs over the goal or failed: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
