"""Live tap: the rate ``wsp tap`` keeps up with (table and ``--ndjson``), next to tcpdump.

A bounded traffic generator on 127.0.0.1 -- a WebSocket client sending N small
masked text frames, one TCP segment each (``TCP_NODELAY``), at a set rate, to a
server that completes the upgrade and reads everything -- runs while ``wsp tap -i
lo --port P`` (a real subprocess: the table in a pseudo-terminal of 200 columns
that a thread reads, as a terminal would; ``--ndjson`` to a file) and ``tcpdump
-i lo -w F port P`` capture the same traffic. tcpdump's file, decoded by ``wsp
decode --ndjson``, is the oracle: packets and messages on the wire. For each mode
and rate it prints what the tap decoded, what it reported as not decoded and
dropped, how long it took to finish after the traffic ended, and its CPU time;
and what tcpdump captured and dropped.

The tap is stopped with SIGTERM as soon as the traffic ends: a backlog (what it
had captured but not decoded yet) shows as the time it then takes to finish
(decoding it, writing the summary, exiting); "kept up" is under 0.5 s with
nothing lost. A rate of 0 sends as fast as the sender can (the segments then
coalesce: fewer, larger packets). Needs root (the tap and tcpdump). Usage::

    python benchmarks/tap.py [--rates 10000,20000,40000,0] [--seconds 5] \
        [--modes table,ndjson] [--json]

``tests/capture/test_tap.py`` imports :class:`Traffic`, :class:`Tcpdump` and
:class:`Tap` from here.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: An ANSI escape sequence (colours, styles) in the table's output.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ENTRY = "from wsproto_tools.cli.main import main; main()"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def text_frame(payload: bytes, mask: bytes) -> bytes:
    """A masked (client) text frame for a payload under 126 bytes."""
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + mask + masked


@dataclass
class Sent:
    messages: int = 0
    seconds: float = 0.0
    received_bytes: int = 0


class Traffic:
    """N small WebSocket messages from a client to a server on 127.0.0.1:``port``, at
    ``rate`` messages per second (0: as fast as possible), one TCP segment each; at
    most ``limit`` seconds. Then a close handshake. Bounded in count and in time."""

    def __init__(self, port: int, messages: int, rate: float = 0, limit: float = 30.0) -> None:
        self.port = port
        self.messages = messages
        self.rate = rate
        self.limit = limit
        mask = os.urandom(4)
        self.frames = [text_frame(b"tap message %d" % i, mask) for i in range(messages)]
        self.close_frame = bytes((0x88, 0x82)) + mask + bytes(
            b ^ mask[i] for i, b in enumerate(b"\x03\xe8"))
        self.listener = socket.create_server(("127.0.0.1", port))
        self.sent = Sent()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = ""
            for line in request.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
            )
            tail = request.partition(b"\r\n\r\n")[2]
            total = len(tail)
            while True:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if chunk.endswith(self.close_frame):
                    conn.sendall(b"\x88\x02\x03\xe8")  # the server's close frame
                    break
            self.sent.received_bytes = total

    def run(self) -> Sent:
        server = threading.Thread(target=self._serve, daemon=True)
        server.start()
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                f"GET /tap HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = sock.recv(4096)
                if not chunk:
                    raise RuntimeError("the server closed during the upgrade")
                response += chunk
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            send = sock.send
            frames = self.frames
            rate = self.rate
            start = time.perf_counter()
            deadline = start + self.limit
            i = 0
            n = len(frames)
            while i < n:
                now = time.perf_counter()
                if now >= deadline:
                    break
                due = n if not rate else min(n, int((now - start) * rate) + 1)
                if due <= i:
                    time.sleep(min(0.0005, (i - due + 1) / rate))
                    continue
                while i < due:
                    send(frames[i])
                    i += 1
                    if not i & 0x3F and time.perf_counter() >= deadline:
                        break
            self.sent.seconds = time.perf_counter() - start
            self.sent.messages = i
            sock.sendall(self.close_frame)
            sock.settimeout(10)
            try:
                while sock.recv(4096):
                    pass
            except (TimeoutError, ConnectionResetError):
                pass
        server.join(10)
        self.listener.close()
        return self.sent


class Tcpdump:
    """``tcpdump -i lo -w PATH tcp port PORT`` while it runs; :meth:`stop` gives its
    own counts (captured, received by filter, dropped by kernel)."""

    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "-s", "0", "-B", "65536", "--immediate-mode",
             "-w", str(path),
             f"tcp port {port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if "listening" not in line:
            raise RuntimeError(f"tcpdump did not start: {line!r}")

    def stop(self) -> dict[str, int]:
        time.sleep(0.5)  # what is still in its ring buffer
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        counts = {}
        for line in err.splitlines():
            words = line.split()
            if len(words) > 1 and words[0].isdigit():
                counts[" ".join(words[1:])] = int(words[0])
        return {
            "captured": counts.get("packets captured", -1),
            "dropped": counts.get("packets dropped by kernel", -1),
        }


def decode_counts(path: Path) -> tuple[int, int]:
    """(packets, messages) of a capture, by ``wsp decode --ndjson``."""
    result = subprocess.run(
        [sys.executable, "-c", ENTRY, "decode", "--ndjson", "-q", str(path)],
        capture_output=True, text=True, check=True,
    )
    summary = json.loads(result.stdout.splitlines()[-1])
    return int(summary["packets"]), int(summary["messages"])


class Tap:
    """``wsp tap -i lo --port PORT ...`` as a subprocess. Its stdout goes to the file
    ``out``, or with ``terminal=True`` to a pseudo-terminal (200 columns, 256 colours,
    as a user sees the table) that a thread reads into ``out`` as fast as it can;
    stderr goes to ``out`` + ``.err``. ``read_delay``: the terminal pauses this long
    between reads (a slow terminal)."""

    def __init__(
        self, port: int, out: Path, *extra: str, terminal: bool = False,
        read_delay: float = 0.0, env: dict[str, str] | None = None,
    ) -> None:
        self.out_path = out
        self.err_path = out.with_name(out.name + ".err")
        self._out: IO[bytes] = open(out, "wb", buffering=0)  # noqa: SIM115
        self._err: IO[bytes] = open(self.err_path, "wb")  # noqa: SIM115
        self._reader: threading.Thread | None = None
        stdout: Any = self._out
        self.read_delay = read_delay
        env = {**os.environ, "COLUMNS": "200", "LINES": "50", **(env or {})}
        if terminal:
            import fcntl
            import pty
            import termios

            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
            stdout = slave
            env.update(TERM="xterm-256color")
            env.pop("NO_COLOR", None)
            self._reader = threading.Thread(target=self._read, args=(master,), daemon=True)
        else:
            env.pop("TERM", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ENTRY, "tap", "-i", "lo", "--port", str(port), *extra],
            stdout=stdout, stderr=self._err, stdin=subprocess.DEVNULL, env=env,
        )
        if terminal:
            os.close(slave)
            assert self._reader is not None
            self._reader.start()
        self.ended = 0.0
        deadline = time.monotonic() + 20
        while "tapping lo" not in self.err_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"the tap did not start: {self.err_path.read_text()!r}")
            time.sleep(0.02)

    def _read(self, master: int) -> None:
        """The terminal's side: everything the tap writes, into the output file."""
        try:
            while True:
                if self.read_delay:
                    time.sleep(self.read_delay)
                try:
                    data = os.read(master, 1 << 16)
                except OSError:  # EIO: the tap closed the terminal
                    break
                if not data:
                    break
                self._out.write(data)
        finally:
            os.close(master)

    def wait(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for the tap to end (killed after ``timeout`` s): (status, stderr);
        :attr:`ended` is the (monotonic) time it ended."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.ended = time.monotonic()
        if self._reader is not None:
            self._reader.join(10)
        self._out.close()
        self._err.close()
        return self.proc.returncode, self.err_path.read_text()

    def output(self) -> str:
        """What the tap wrote to stdout, without ANSI codes and carriage returns."""
        text = self.out_path.read_text(errors="replace")
        return ANSI.sub("", text).replace("\r\n", "\n")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)


def run_mode(mode: str, rate: float, seconds: float, folder: Path) -> dict[str, Any]:
    """One run: the traffic at ``rate`` messages/s for ``seconds``, tapped in ``mode``
    (``table``: in a terminal; ``ndjson``: to a file) and by tcpdump."""
    port = free_port()
    messages = int(rate * seconds) if rate else int(50_000 * seconds)
    traffic = Traffic(port, messages, rate, limit=seconds + 5)
    oracle = folder / f"tcpdump-{mode}-{int(rate)}.pcap"
    out = folder / f"tap-{mode}-{int(rate)}.out"
    extra = ["--ndjson"] if mode == "ndjson" else []
    tcpdump = Tcpdump(oracle, port)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tap = Tap(port, out, *extra, terminal=mode == "table")
    time.sleep(0.3)
    sent = traffic.run()
    traffic_end = time.monotonic()
    tap.stop(signal.SIGTERM)
    status, err = tap.wait(timeout=seconds + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    dumped = tcpdump.stop()
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    packets, wire_messages = decode_counts(oracle)
    result: dict[str, Any] = {
        "mode": mode, "rate": rate, "sent": sent.messages, "seconds": sent.seconds,
        "wire_packets": packets, "wire_messages": wire_messages,
        "tcpdump_captured": dumped["captured"], "tcpdump_dropped": dumped["dropped"],
        "tcpdump_cpu": (reaped.ru_utime + reaped.ru_stime) - (after.ru_utime + after.ru_stime),
        "tap_status": status,
        "tap_cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        # how long after the traffic the tap took to finish: its backlog
        "tap_lag": tap.ended - traffic_end,
    }
    result.update(tap_counts(mode, tap.output(), err))
    return result


def tap_counts(mode: str, text: str, err: str) -> dict[str, Any]:
    """What the tap said (``text``: its stdout): messages, packets, not decoded,
    dropped by the kernel; in table mode also the message rows shown."""
    not_decoded = 0
    for line in err.splitlines():
        if line.endswith("packets captured but not decoded"):
            not_decoded = int(line.split()[1])
    if mode == "ndjson":
        summary = json.loads(text.splitlines()[-1])
        assert summary["not_decoded"] == not_decoded
        return {"tap_messages": summary["messages"], "tap_packets": summary["packets"],
                "tap_not_decoded": not_decoded, "tap_dropped": summary["dropped"]}
    rows = {"packets": -1, "messages": -1, "dropped by capture": -1}
    shown = 0
    for line in text.splitlines():
        if " C→S " in line or " S→C " in line:
            shown += 1
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) == 2 and cells[0] in rows:
            rows[cells[0]] = int(cells[1].split()[0])
    return {"tap_messages": rows["messages"], "tap_rows": shown, "tap_packets": rows["packets"],
            "tap_not_decoded": not_decoded, "tap_dropped": rows["dropped by capture"]}


def report(r: dict[str, Any]) -> None:
    pps = r["wire_packets"] / r["seconds"]
    lost = r["wire_messages"] - r["tap_messages"]
    kept = "kept up" if lost == 0 and r["tap_lag"] < 0.5 and not r["tap_dropped"] else "BEHIND"
    rows = f" ({r['tap_rows']} table rows)" if "tap_rows" in r else ""
    print(
        f"  {r['mode']:<6} {pps:>8,.0f} packets/s ({r['sent'] / r['seconds']:,.0f} msg/s "
        f"for {r['seconds']:.1f} s): tap {r['tap_messages']}/{r['wire_messages']} messages"
        f"{rows}, {r['tap_packets']}/{r['wire_packets']} packets, "
        f"not decoded {r['tap_not_decoded']}, dropped {r['tap_dropped']}, "
        f"lost {lost}; finished {r['tap_lag']:.2f} s after the traffic, "
        f"CPU {r['tap_cpu']:.2f} s: {kept}"
    )
    print(f"  {'':<6} tcpdump -w: {r['tcpdump_captured']} captured, "
          f"{r['tcpdump_dropped']} dropped by kernel, CPU {r['tcpdump_cpu']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="10000,20000,40000,0",
                        help="Messages per second to try (comma-separated).")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--modes", default="table,ndjson")
    parser.add_argument("--json", action="store_true", help="Also print every figure as JSON.")
    parser.add_argument("--keep", type=Path, help="Keep captures and outputs in DIR.")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("tcpdump") is None:
        raise SystemExit("needs root and tcpdump")
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for rate in [float(r) for r in args.rates.split(",")]:
            label = f"{rate:,.0f} msg/s" if rate else "as fast as the sender can"
            print(f"traffic: {label} for {args.seconds} s")
            for mode in args.modes.split(","):
                result = run_mode(mode, rate, args.seconds, folder)
                results.append(result)
                report(result)
    if args.json:
        print(json.dumps(results, indent=1))

if __name__ == "__main__":
    main()
