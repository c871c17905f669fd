"""Helpers for the capture generators: record loopback traffic, write expected files.

Every generator starts a real capture tool (tcpdump or dumpcap) on the loopback
interface, runs real peers that log what they send, stops the capture and
writes ``NAME.expected.json`` from those logs -- never from the decoder.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CAPTURES = HERE.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def recording(path: Path, port: int, *, tool: str = "tcpdump", iface: str = "lo") -> Iterator[None]:
    """Capture ``tcp port PORT`` on ``iface`` into ``path`` while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    bpf = f"tcp port {port}"
    if tool == "tcpdump":
        cmd = ["tcpdump", "-i", iface, "--immediate-mode", "-U", "-n", "-s", "0", "-B", "16384",
               "-w", str(path), bpf]
        ready = b"listening on"
    else:
        cmd = ["dumpcap", "-i", iface, "-q", "-f", bpf, "-w", str(path)]
        ready = b"Capturing on"
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    deadline = time.monotonic() + 10
    seen = b""
    while ready not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    if ready not in seen:
        proc.kill()
        raise RuntimeError(f"{tool} did not start: {seen.decode(errors='replace')}")
    time.sleep(0.3)
    try:
        yield
    finally:
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.chmod(path, 0o644)


class Log:
    """What the peers logged: one entry per message sent (and per connection)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.connections: dict[int, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}

    def sent(self, conn: int, direction: str, opcode: str, payload: bytes | str | None = b"",
             **fields: Any) -> None:
        """Log one message; ``payload=None`` when only ``fields`` are known."""
        entry: dict[str, Any] = {"conn": conn, "direction": direction, "opcode": opcode}
        if payload is None:
            pass
        elif opcode == "text":
            entry["text"] = payload if isinstance(payload, str) else payload.decode()
        elif opcode != "close":
            data = payload.encode() if isinstance(payload, str) else payload
            entry["hex"] = data.hex()
        entry.update(fields)
        self.messages.append(entry)

    def connection(self, conn: int, **fields: Any) -> None:
        self.connections.setdefault(conn, {"conn": conn}).update(fields)

    def write(self, name: str, how: str) -> None:
        doc = {
            "how": how,
            "connections": [self.connections[k] for k in sorted(self.connections)],
            "messages": self.messages,
            **self.extra,
        }
        out = CAPTURES / f"{name}.expected.json"
        out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def pcap_records(path: Path) -> list[tuple[bytes, bytes]]:
    """(record header, data) of each packet of a little-endian classic pcap file."""
    raw = path.read_bytes()
    pos = 24
    out = []
    while pos + 16 <= len(raw):
        header = raw[pos : pos + 16]
        incl = int.from_bytes(header[8:12], "little")
        out.append((header, raw[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    return out


def drop_packet_containing(path: Path, marker: bytes) -> int:
    """Rewrite the pcap file without the one packet whose bytes contain ``marker``."""
    raw = path.read_bytes()
    records = pcap_records(path)
    hits = [i for i, (_, data) in enumerate(records) if marker in data]
    if len(hits) != 1:
        raise RuntimeError(f"marker found in {len(hits)} packets, expected 1")
    kept = [r for i, r in enumerate(records) if i != hits[0]]
    path.write_bytes(raw[:24] + b"".join(h + d for h, d in kept))
    return hits[0] + 1
