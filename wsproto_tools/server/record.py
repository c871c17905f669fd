"""``wsp serve --record DIR``: every WebSocket session written, as it happens, to pcapng.

What is recorded is what crossed the socket, byte for byte: the inbound bytes as
``data_received`` gets them (the HTTP Upgrade request, masked client frames,
compressed frames as sent) and the outbound bytes the connection writes to its
transport (the ``101`` answer, the frames). They are laid out as synthetic
loopback TCP/IP (:class:`~wsproto_tools.ws.synth.SyntheticConnection`: a
three-way handshake at the connection's start, the stream, a FIN exchange at its
end) so that Wireshark, tshark and ``wsp decode`` open the files as captures.
Addresses are mapped to loopback (``127.0.0.1``, or ``::1`` for IPv6 peers); the
client's real port and the server's real listening port are kept, and the real
peer address is in the file name and in the section header's comment.

Cost: with recording off nothing here runs (the server's connection class is the
plain one). With it on, each write and each ``data_received`` appends to a
per-direction chunk (no copy). A chunk is complete when the direction changes;
complete chunks become packets once per burst (``loop.call_soon``, after the
answer was handed to the transport), as data segments that carry the ACK of the
other side (no pure ACKs) and a TCP checksum of 0 (a correct one costs more
than all the rest: docs/performance.md, "wsp serve --record"). Files are
written from a per-session buffer, and flushed once a second so a file can be
read while its session runs (docs/replay.md, "Recording with wsp serve
--record").

Rotation: a session's file that passes ``max_bytes`` goes on in ``...-part2.pcapng``
(a fresh section header and interface; the TCP stream simply continues), and the
directory keeps at most ``max_files`` recordings (the oldest closed ones are
deleted; ``0``: no limit). A write failure (disk full) ends the recording of that
session with one log line; the session itself goes on.
"""

from __future__ import annotations

__all__ = ["Recorder", "RecordingMixin", "recording_class"]

import asyncio
import contextlib
import heapq
import logging
import os
import re
import struct
import tempfile
import time
from collections.abc import Iterable
from typing import Any, Literal, cast

from websockets.asyncio.server import ServerConnection

from wsproto_tools.exceptions import ConfigError
from wsproto_tools.server.metrics import Metrics
from wsproto_tools.ws.pcapng import (
    LINKTYPE_ETHERNET,
    block,
    enhanced_packet_block,
    interface_description_block,
    option,
)
from wsproto_tools.ws.synth import SyntheticConnection

Direction = Literal["client", "server"]

log = logging.getLogger("wsproto_tools.server.record")

#: Defaults of ``--record-max-bytes`` and ``--record-max-files``.
DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_MAX_FILES = 1000
#: Seconds between flushes of every open recording (files readable as sessions run).
FLUSH_INTERVAL = 1.0
#: A session's buffered pcapng bytes are written once they pass this.
WRITE_AT = 256 * 1024
#: Stream bytes per synthetic segment (the MSS the SYNs advertise: Linux loopback's).
_MSS = 65495
_ACK, _PSH = 0x10, 0x08
_NAME = re.compile(r"^wsp-.*?(?:-part(\d+))?\.pcapng$")


def _order(name: str) -> tuple[str, int]:
    """Sort key of a recording file: its session's name, then its part number."""
    match = _NAME.match(name)
    part = int(match.group(1)) if match and match.group(1) else 1
    stem = name[: -len(f"-part{part}.pcapng")] if part > 1 else name[: -len(".pcapng")]
    return stem, part


def _sum16(data: bytes) -> int:
    """The 16-bit ones' complement sum of ``data`` (RFC 1071), reduced mod 0xFFFF.

    ``2**16 == 1 (mod 0xFFFF)``, so the big-endian integer of the data is
    congruent to the sum of its 16-bit words: one C-speed conversion and one
    modulo instead of a Python loop. Odd lengths are padded with a zero byte.
    """
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    return value % 0xFFFF


def _fold(total: int) -> int:
    """The checksum field for a ones' complement sum ``total`` (mod 0xFFFF, nonzero data)."""
    total %= 0xFFFF
    return ~(total or 0xFFFF) & 0xFFFF


class _Stream(SyntheticConnection):
    """A :class:`SyntheticConnection` with a fast path for recorded stream bytes.

    :meth:`segments` appends to a pcapng buffer the data segments of stream bytes
    given in parts (each part copied once, into the buffer). Each segment carries
    the ACK of everything the other side sent (as real TCP piggybacks it: no pure
    ACKs). Its TCP checksum is left 0, as in a capture of loopback with checksum
    offload: a correct one costs more than the rest of the recording for large
    messages (see docs/replay.md); IPv4 header checksums are right. Connection
    setup and teardown are the parent's (checksummed).
    """

    def __init__(self, conn: int, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        # per sender: ports, addresses, the link header and the IPv4 header's constant sum
        self._ends: dict[str, tuple[int, int, bytes, bytes, bytes, int]] = {}
        for sender in ("client", "server"):
            (src, sport), (dst, dport) = (
                (self.client, self.server) if sender == "client" else (self.server, self.client)
            )
            v4 = len(src) == 4
            constant = _sum16(_IP4.pack(0x45, 0, 0, 0, 0x4000, 64, 6, 0, src, dst)) if v4 else 0
            self._ends[sender] = (sport, dport, src, dst, _LINK4 if v4 else _LINK6, constant)

    def segments(
        self, buffer: bytearray, ts: float, sender: Direction, parts: list[bytes], size: int
    ) -> None:
        sport, dport, src, dst, link, constant = self._ends[sender]
        micros = max(round(ts * 1_000_000), self._last_us + 1)
        self._last_us = micros
        high, low = micros >> 32, micros & 0xFFFFFFFF
        seq = self._seq
        ack = seq["server" if sender == "client" else "client"]
        if size > _MSS:  # rare: one copy to cut it into segments
            data = memoryview(b"".join(parts))
            pieces: list[list[bytes] | list[memoryview]] = [
                [data[start : start + _MSS]] for start in range(0, size, _MSS)
            ]
        else:
            pieces = [parts]
        last = len(pieces) - 1
        v4 = len(src) == 4
        for index, piece in enumerate(pieces):
            length = size if last == 0 else len(piece[0])
            captured = (54 if v4 else 74) + length
            pad = (-captured) % 4
            total = 32 + captured + pad
            buffer += _EPB.pack(6, total, 0, high, low, captured, captured)
            buffer += link
            if v4:
                ip_id = self._ip_id[sender]
                self._ip_id[sender] = (ip_id + 1) & 0xFFFF
                csum = _fold(constant + 40 + length + ip_id)
                buffer += _IP4.pack(0x45, 0, 40 + length, ip_id, 0x4000, 64, 6, csum, src, dst)
            else:
                buffer += _IP6.pack(6 << 28, 20 + length, 6, 64, src, dst)
            flags = _ACK | _PSH if index == last else _ACK
            buffer += _TCP.pack(sport, dport, seq[sender], ack, 0x50, flags, 65535, 0, 0)
            seq[sender] = (seq[sender] + length) & 0xFFFFFFFF
            for part in piece:
                buffer += part
            buffer += _PADS[pad]
            buffer += total.to_bytes(4, "little")


_EPB = struct.Struct("<IIIIIII")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_LINK4 = b"\0" * 12 + b"\x08\x00"  # loopback MACs (all zeros), IPv4
_LINK6 = b"\0" * 12 + b"\x86\xdd"
_PADS = (b"", b"\0", b"\0\0", b"\0\0\0")


def _header(comment: str) -> bytes:
    """A section header (with ``comment``) and the Ethernet interface ``lo``."""
    body = (
        struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
        + option(1, comment.encode())
        + option(4, b"wsp serve --record")
        + b"\0" * 4
    )
    return block(0x0A0D0D0A, body) + interface_description_block(LINKTYPE_ETHERNET, name="lo")


class Recording:
    """One recorded session: its synthetic stream, its pending bytes, its file."""

    __slots__ = (
        "buffer",
        "chunk_dir",
        "chunk_size",
        "chunk_ts",
        "client_closed",
        "comment",
        "file",
        "file_bytes",
        "name",
        "part",
        "parts",
        "path",
        "ready",
        "recorder",
        "room",
        "scheduled",
        "started",
        "stream",
    )

    def __init__(
        self, recorder: Recorder, stream: _Stream, name: str, comment: str, started: float
    ) -> None:
        self.recorder = recorder
        self.stream = stream
        self.name = name  # without ".pcapng"
        self.comment = comment
        self.started = started
        self.part = 0
        self.path = ""
        self.file: int | None = None
        self.file_bytes = 0
        self.room = WRITE_AT  # buffered bytes that make a write (less near max_bytes)
        self.buffer = bytearray()
        self.parts: list[bytes] = []  # the pending chunk: one direction's bytes
        self.chunk_size = 0
        self.chunk_dir: Direction = "client"
        self.chunk_ts = 0.0
        #: finished chunks waiting for :meth:`drain` (after the loop's current work)
        self.ready: list[tuple[float, Direction, list[bytes], int]] = []
        self.scheduled = False
        self.client_closed = False

    # the hot path: a write or a data_received
    def add(self, direction: Direction, data: bytes) -> None:
        if direction is not self.chunk_dir or not self.parts:
            if self.file is None:
                return  # failed: no longer recorded
            if self.parts:  # the other direction's chunk is complete: packets later
                self.ready.append((self.chunk_ts, self.chunk_dir, self.parts, self.chunk_size))
                self.parts = []
                self.chunk_size = 0
                if not self.scheduled:
                    self.scheduled = True
                    self.recorder.loop.call_soon(self.drain)
            self.chunk_dir = direction
            self.chunk_ts = time.time()
        self.parts.append(data)
        self.chunk_size += len(data)
        if self.chunk_size >= WRITE_AT:
            self.emit()

    def drain(self) -> None:
        """The finished chunks as packets, into the buffer (and the file when it is full).

        Called once per burst from the event loop, after the work that made the
        chunks (an answer is sent before its question is turned into packets).
        """
        self.scheduled = False
        ready = self.ready
        if not ready:
            return
        segments = self.stream.segments
        buffer = self.buffer
        for ts, direction, parts, size in ready:
            segments(buffer, ts, direction, parts, size)
        ready.clear()
        if len(buffer) >= self.room:
            self.write()

    def emit(self) -> None:
        """Every pending byte as packets: the finished chunks, then the current one."""
        if self.parts:
            self.ready.append((self.chunk_ts, self.chunk_dir, self.parts, self.chunk_size))
            self.parts = []
            self.chunk_size = 0
        self.drain()

    def open(self, packets: Iterable[bytes]) -> None:
        """Start the next part; ``packets``: pcapng blocks to put after its header."""
        self.part += 1
        suffix = "" if self.part == 1 else f"-part{self.part}"
        self.path = os.path.join(self.recorder.directory, f"{self.name}{suffix}.pcapng")
        self.file = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.file_bytes = 0
        limit = self.recorder.max_bytes
        self.room = max(1, min(WRITE_AT, limit)) if limit else WRITE_AT
        part = "" if self.part == 1 else f", part {self.part}"
        self.buffer[:0] = _header(self.comment + part) + b"".join(packets)
        self.recorder.opened(self)

    def write(self, last: bool = False) -> None:
        """Write the buffer to the file; rotate when the file passed ``max_bytes``
        (unless this is the ``last`` write of the session)."""
        buffer = self.buffer
        if self.file is None or not buffer:
            return
        recorder = self.recorder
        try:
            with memoryview(buffer) as view:
                done = 0
                while done < len(buffer):
                    done += os.write(self.file, view[done:])
        except OSError as error:
            recorder.failed(self, error)
            return
        recorder.metrics.record_bytes += len(buffer)
        self.file_bytes += len(buffer)
        buffer.clear()
        limit = recorder.max_bytes
        if limit and self.file_bytes >= limit and not last:
            self.close_file()
            try:
                self.open(())
            except OSError as error:
                recorder.failed(self, error)
                return
        self.room = max(1, min(WRITE_AT, limit - self.file_bytes)) if limit else WRITE_AT

    def close_file(self) -> None:
        file = self.file
        if file is None:
            return
        self.file = None
        with contextlib.suppress(OSError):  # written (or its failure reported) by write()
            os.close(file)
        self.recorder.closed(self)

    def finish(self) -> None:
        """The connection is gone: the FIN exchange, the last bytes, the file closed."""
        if self.file is None:
            return
        self.emit()
        first: Direction = "client" if self.client_closed else "server"
        ts = time.time()
        for packet in self.stream.teardown(ts, first):
            self.buffer += enhanced_packet_block(packet.ts, packet.data)
        self.write(last=True)
        self.close_file()


class Recorder:
    """The recordings of one server: the directory, rotation, the flush timer, metrics.

    Made inside the server's running event loop.
    """

    def __init__(
        self,
        directory: str,
        metrics: Metrics,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
        plaintext: bool = False,
        tls: bool = False,
    ) -> None:
        self.directory = directory
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.max_files = max_files
        #: TLS sessions are recorded only with --record-plaintext (their plaintext)
        self.skip_reason = "tls" if tls and not plaintext else None
        self.live: set[Recording] = set()
        self.files = 0  # recording files in the directory (open ones included)
        self._closed: list[tuple[tuple[str, int], str]] = []  # a heap, oldest first
        self._sessions = 0
        self._timer: asyncio.TimerHandle | None = None
        self._warned = False
        self.loop = asyncio.get_running_loop()

    def check(self) -> None:
        """Make the directory and prove it writable; :class:`ConfigError` if it is not.

        Recording files already there count towards ``max_files`` (oldest first).
        """
        where = f"--record {self.directory}"
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".wsp-probe-", dir=self.directory)
            os.close(fd)
            os.unlink(probe)
            names = [n for n in os.listdir(self.directory) if _NAME.match(n)]
        except OSError as error:
            raise ConfigError(f"{where}: {error.strerror or error}") from None
        for name in names:
            heapq.heappush(self._closed, (_order(name), os.path.join(self.directory, name)))
        self.files = len(names)
        self._prune()

    def start(self) -> None:
        self._timer = self.loop.call_later(FLUSH_INTERVAL, self._flush)

    def close(self) -> None:
        """Finish every open recording and stop the timer (server shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for recording in list(self.live):
            recording.finish()

    def _flush(self) -> None:
        for recording in list(self.live):
            recording.emit()
            recording.write()
        self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self._flush)

    # ------------------------------------------------------------------ sessions
    def begin(self, ws: ServerConnection, started: float) -> Recording | None:
        """The recording of a connection that was just upgraded (None: not recorded)."""
        request = ws.request
        if request is not None and request.path.split("?", 1)[0] == "/inspect":
            self.metrics.record_skipped["inspect"] += 1
            return None
        if self.skip_reason is not None:
            self.metrics.record_skipped[self.skip_reason] += 1
            if not self._warned:
                self._warned = True
                log.warning("--record: TLS sessions are not recorded without --record-plaintext")
            return None
        local = ws.local_address or ("127.0.0.1", 0)
        remote = ws.remote_address or ("127.0.0.1", 0)
        v6 = ":" in str(local[0])
        loopback = "::1" if v6 else "127.0.0.1"
        self._sessions += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
        millis = int(started * 1000) % 1000
        host = str(remote[0]).replace(":", "_")
        name = f"wsp-{stamp}.{millis:03d}Z-{self._sessions:06d}-{host}-{remote[1]}"
        peer = f"[{remote[0]}]:{remote[1]}" if ":" in str(remote[0]) else f"{remote[0]}:{remote[1]}"
        comment = (
            f"wsp serve --record: client {peer}, server port {local[1]} "
            f"(addresses mapped to {loopback})"
        )
        client_port = int(remote[1]) or 1
        server_port = int(local[1]) or 1
        if client_port == server_port:
            server_port = server_port % 65535 + 1
        stream = _Stream(
            self._sessions,
            client_addr=loopback,
            client_port=client_port,
            server_addr=loopback,
            server_port=server_port,
        )
        recording = Recording(self, stream, name, comment, started)
        try:
            recording.open(enhanced_packet_block(p.ts, p.data) for p in stream.connect(started))
        except OSError as error:
            self.failed(recording, error)
            return None
        self.metrics.record_sessions += 1
        return recording

    def opened(self, recording: Recording) -> None:
        self.live.add(recording)
        self.files += 1
        self.metrics.record_files += 1
        self._prune()

    def closed(self, recording: Recording) -> None:
        self.live.discard(recording)
        heapq.heappush(self._closed, (_order(os.path.basename(recording.path)), recording.path))
        self._prune()

    def failed(self, recording: Recording, error: OSError) -> None:
        """A recording that cannot be written ends; its session goes on."""
        self.metrics.record_errors += 1
        log.warning(
            "--record: %s: %s; this session is no longer recorded",
            recording.path or self.directory,
            error.strerror or error,
        )
        file = recording.file
        recording.file = None
        recording.buffer = bytearray()  # (a traceback may still hold a view of it)
        recording.parts = []
        recording.ready = []
        recording.chunk_size = 0
        if file is not None:
            with contextlib.suppress(OSError):  # already failing: the warning says so
                os.close(file)
            self.closed(recording)

    def _prune(self) -> None:
        """Delete the oldest closed recordings beyond ``max_files``."""
        limit = self.max_files
        closed = self._closed
        while limit and self.files > limit and closed:
            _, path = heapq.heappop(closed)
            self.files -= 1
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # someone else removed it
            except OSError as error:
                log.warning("--record: cannot delete %s: %s", path, error.strerror or error)


class _RecordingTransport:
    """The connection's transport, with its writes recorded (everything else delegated)."""

    __slots__ = ("_connection", "_transport")

    def __init__(self, transport: asyncio.Transport, connection: RecordingMixin) -> None:
        self._transport = transport
        self._connection = connection

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)  # first: recording is never in the way of an answer
        record = self._connection._record
        if record is not None:
            record.add("server", bytes(data))
        else:
            self._connection.outbound(bytes(data))

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for line in lines:
            self.write(line)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class RecordingMixin(ServerConnection):
    """A server connection whose bytes, both ways, go to :attr:`recorder`.

    Chosen by the server only when recording is on. Until the opening handshake is
    answered the bytes are held; a ``101`` starts the session's file, anything
    else (``/healthz``, ``/metrics``, a refused upgrade) is not recorded.
    """

    recorder: Recorder
    _record: Recording | None = None
    _held: list[tuple[Direction, bytes]] | None = None
    _started = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._started = time.time()
        self._held = []
        # Connection.transport is not public in websockets (pinned in pyproject.toml)
        self.transport = cast(
            asyncio.Transport, _RecordingTransport(cast(asyncio.Transport, transport), self)
        )

    def data_received(self, data: bytes) -> None:
        record = self._record
        if record is not None:
            record.add("client", data)
        elif self._held is not None:
            self._held.append(("client", data))
        super().data_received(data)

    def outbound(self, data: bytes) -> None:
        record = self._record
        if record is not None:
            record.add("server", data)
            return
        held = self._held
        if held is None:
            return
        self._held = None
        if not data.startswith(b"HTTP/1.1 101 "):
            return  # plain HTTP or a refused upgrade: not a session
        record = self.recorder.begin(self, self._started)
        if record is None:
            return
        self._record = record
        for direction, chunk in held:
            record.add(direction, chunk)
        record.add("server", data)

    def eof_received(self) -> None:
        record = self._record
        if record is not None:
            record.client_closed = True
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        record = self._record
        if record is not None:
            self._record = None
            record.finish()


def recording_class(base: type[ServerConnection], recorder: Recorder) -> type[ServerConnection]:
    """``base`` (the server's connection class) with its bytes recorded by ``recorder``."""
    return cast(
        type[ServerConnection],
        type(f"Recording{base.__name__}", (RecordingMixin, base), {"recorder": recorder}),
    )
