"""The capture pipeline: packets through a :class:`~.decoder.CaptureDecoder` into a sink.

``wsp decode`` and ``wsp tap`` drive the same pipeline. A *sink* takes the
decoder's events in batches (``sink.events(list)``) and keeps ``stats`` and
``violations``; what it writes, and where, is its own business (the printers
of :mod:`wsproto_tools.render.rows`). :func:`run_decoder` reads a file or a
stream, :func:`run_live` a :class:`~.live.LiveCapture`; both end with an
:class:`Outcome`, whose :meth:`~Outcome.summary` is the summary record.
"""

from __future__ import annotations

__all__ = [
    "LiveRun",
    "NamedReader",
    "Outcome",
    "Sink",
    "open_file",
    "outcome_of",
    "pausing_stdin",
    "run_decoder",
    "run_live",
]

import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from wsproto_tools.capture.decoder import CapturedMessage, ConnectionSeen
from wsproto_tools.exceptions import CaptureUnreadable

#: Output is flushed at least this often (seconds) while live packets keep coming.
FLUSH_EVERY = 0.05


class Sink(Protocol):
    """Where decoded events go."""

    stats: Any
    violations: int

    def events(self, events: list[Any]) -> None: ...

    def flush(self) -> None: ...


@dataclass
class Outcome:
    """What one decoding run (or one worker's share of it) found."""

    stats: Any
    connections: list[Any]
    packets: int = 0
    tcp_packets: int = 0
    first_ts: float | None = None
    last_ts: float = 0.0
    capture_format: str = ""
    dropped: int | None = None
    violations: int = 0
    warnings: list[tuple[int, str]] = field(default_factory=list)
    #: the decoder's limits at work (``CaptureDecoder.limits()``), for the summary
    limits: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The summary record (``CaptureStats.summary``) of this run."""
        return dict(self.stats.summary(
            self.connections,
            packets=self.packets,
            tcp_packets=self.tcp_packets,
            capture_format=self.capture_format,
            first_ts=self.first_ts,
            last_ts=self.last_ts,
            dropped=self.dropped,
            limits=self.limits,
        ))


def outcome_of(sink: Sink, decoder: Any, capture_format: str, dropped: int | None,
               first_ts: float | None = None) -> Outcome:
    """The outcome of a finished run of ``decoder`` into ``sink``."""
    return Outcome(
        sink.stats,
        decoder.connections,
        decoder.packets,
        decoder.tcp_packets,
        decoder.first_ts if decoder.first_ts is not None else first_ts,
        decoder.last_ts,
        capture_format,
        dropped,
        sink.violations,
        limits=decoder.limits(),
    )


def run_decoder(
    reader: Any,
    sink: Sink,
    decoder: Any,
    *,
    progress: Callable[[], None] | None = None,
) -> Outcome:
    """Read every packet of ``reader`` (a :class:`~.reader.PacketReader`) through
    ``decoder`` into ``sink``; ``progress`` is called every 1,024 packets."""
    handle = sink.events
    # a packet that releases many messages hands them out as they are made
    decoder.spill = handle
    packet = decoder.packet
    if progress is not None:
        for n, pkt in enumerate(reader):
            events = packet(pkt)
            if events:
                handle(events)
            if not n & 0x3FF:
                progress()
    else:
        for pkt in reader:
            events = packet(pkt)
            if events:
                handle(events)
    handle([e for e in decoder.finish() if type(e) is not ConnectionSeen])
    info = reader.info
    return outcome_of(sink, decoder, info.format + (".gz" if info.compressed else ""),
                      info.dropped)


@dataclass
class LiveRun:
    """What :func:`run_live` needs besides the capture, the decoder and the sink."""

    #: stop after this many messages that ``accept`` lets through
    count: int | None = None
    accept: Callable[[Any], bool] = bool
    duration: float | None = None
    #: the capture stops when this says so (a first signal)...
    stop: Callable[[], bool] = lambda: False
    #: ... and the decoding of the backlog when this does (a second one)
    hard_stop: Callable[[], bool] = lambda: False
    #: ``save(packet)``: also write the packet to a file (``-w``)
    save: Callable[[Any], None] | None = None
    #: ``backlog(n)``: ``n`` packets were captured but not decoded yet at the stop
    backlog: Callable[[int], None] = lambda waiting: None
    #: ``flushed()``: what the sink wrote was flushed (the sink's stream follows)
    flushed: Callable[[], None] = lambda: None
    #: packets counted, not decoded, after ``hard_stop`` (set by :func:`run_live`)
    not_decoded: int = 0
    kernel_packets: int = 0
    kernel_drops: int = 0


def run_live(capture: Any, decoder: Any, sink: Sink, run: LiveRun) -> Outcome:
    """Decode what ``capture`` (a :class:`~.live.LiveCapture`) captures until a
    stop, ``run.count`` messages or ``run.duration``; then the backlog already
    captured, unless ``run.hard_stop`` says to only count it."""
    started = time.time()
    seen = 0
    last_flush = time.monotonic()
    count = run.count
    accept = run.accept
    save = run.save

    def handle(events: list[Any]) -> None:
        nonlocal seen
        sink.events(events)
        if count is not None:
            seen += sum(1 for e in events if type(e) is CapturedMessage and accept(e))

    # a packet that releases many messages hands them out as they are made
    decoder.spill = handle

    def decode(batch: list[Any]) -> bool:
        """Decode (and save) one batch of packets; True when ``count`` is reached."""
        nonlocal last_flush
        packet = decoder.packet
        for pkt in batch:
            if save is not None:
                save(pkt)
            events = packet(pkt)
            if events:
                handle(events)
            if count is not None and seen >= count:
                return True
        now = time.monotonic()
        if not batch or now - last_flush >= FLUSH_EVERY:
            sink.flush()
            run.flushed()
            last_flush = now
        return False

    counted = False
    for batch in capture.batches(duration=run.duration, stop=run.stop):
        if decode(batch):
            counted = True
            break
    capture.freeze()  # no more packets in: the rest is what was captured
    if not counted:
        kernel_packets, kernel_drops = capture.kernel_counters()
        run.backlog(kernel_packets - kernel_drops - capture.stats.received)
        for batch in capture.backlog():
            if run.hard_stop():  # the rest is counted (and saved), not decoded
                if save is not None:
                    for pkt in batch:
                        save(pkt)
                run.not_decoded = len(batch) + capture.discard(save)
                break
            if decode(batch):
                break
    handle(decoder.finish())
    run.kernel_packets, run.kernel_drops = capture.kernel_counters()
    return outcome_of(sink, decoder, f"live:{capture.iface}", run.kernel_drops, started)


class _PausingInput:
    """A stream (stdin) read without buffering of its own, that calls ``on_pause``
    before a read that would wait: what was decoded is written while the input
    pauses, not at the end or after a thousand lines."""

    def __init__(self, stream: IO[bytes], on_pause: Callable[[], None]) -> None:
        self._fd = stream.fileno()
        self._on_pause = on_pause

    def fileno(self) -> int:
        return self._fd

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def _read(self, n: int) -> bytes:
        import select

        fd = self._fd
        try:
            ready = select.select([fd], [], [], 0)[0]
        except (OSError, ValueError):  # not a file select takes: just read
            ready = [fd]
        if not ready:
            self._on_pause()
        return os.read(fd, n)

    def read1(self, n: int = -1) -> bytes:
        return self._read(n if n > 0 else 1 << 16)

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            chunks = []
            while chunk := self._read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        return self._read(n)


def pausing_stdin(stream: IO[bytes], on_pause: Callable[[], None]) -> Any:
    """``stream`` (stdin), read so that ``on_pause`` is called before a read that
    would wait, when it is a file descriptor; else ``stream`` itself."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    return _PausingInput(stream, on_pause)


class NamedReader(io.BufferedReader):
    """A capture file whose read errors name it ("cannot read F: Input/output error")."""

    def __init__(self, raw: io.FileIO, name: str, buffer_size: int) -> None:
        super().__init__(raw, buffer_size)
        self.path = name

    def _failed(self, error: OSError) -> CaptureUnreadable:
        return CaptureUnreadable(f"cannot read {self.path}: {error.strerror or error}")

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except OSError as error:
            raise self._failed(error) from None

    def read1(self, size: int = -1) -> bytes:
        try:
            return super().read1(size)
        except OSError as error:
            raise self._failed(error) from None


def open_file(path: str) -> tuple[NamedReader, int]:
    """A capture file opened for :class:`~.reader.PacketReader`, and its size.

    Raises :class:`CaptureUnreadable` ("cannot open F: ...") when it cannot be.
    """
    if os.path.isdir(path):
        raise CaptureUnreadable(f"cannot open {path}: is a directory, not a capture")
    try:
        stream = NamedReader(io.FileIO(path, "rb"), path, 1 << 20)
        return stream, os.fstat(stream.fileno()).st_size
    except OSError as error:
        raise CaptureUnreadable(f"cannot open {path}: {error.strerror}") from None
