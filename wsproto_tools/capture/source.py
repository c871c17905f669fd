"""Recorded and live traffic as a stream of records, for viewers that show it as it comes.

:func:`read_file` reads a pcap, pcapng (either one gzipped) or an NDJSON file
written by ``wsp decode --ndjson`` / ``wsp inspect --ndjson``, and :func:`tap`
an interface; both hand what they decode to a sink as they go, so the first
rows can be shown while the rest is still being read, and both stop when
``stop()`` says so. The sink is a capture pipeline sink
(:class:`~.pipeline.Sink`: ``events(list)``) that also takes NDJSON
``lines(list[bytes])``.
"""

from __future__ import annotations

__all__ = ["FileProgress", "LineSink", "file_kind", "read_file", "tap"]

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol

from wsproto_tools.capture.decoder import CaptureDecoder, ConnectionSeen
from wsproto_tools.capture.pipeline import Outcome, open_file, outcome_of
from wsproto_tools.capture.reader import PacketReader
from wsproto_tools.exceptions import CaptureUnreadable, NotACapture

#: NDJSON lines handed to the sink at once
LINE_BATCH = 2048
#: packets decoded between two looks at ``stop()``
PACKET_BATCH = 1024


class LineSink(Protocol):
    """A pipeline sink that also takes NDJSON lines."""

    stats: Any
    violations: int

    def events(self, events: list[Any]) -> None: ...

    def lines(self, lines: list[bytes]) -> None: ...

    def flush(self) -> None: ...


@dataclass
class FileProgress:
    """How far the reading of a file is (bytes of the file, not of its content)."""

    size: int
    done: int = 0
    finished: bool = False
    records: int = 0
    kind: str = ""


def _peek(stream: IO[bytes]) -> bytes:
    head: bytes = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
    return head


def file_kind(head: bytes) -> str:
    """``ndjson`` or ``capture``, from the first bytes of a file (gunzipped)."""
    return "ndjson" if head.lstrip()[:1] in (b"{", b"") and head.strip() else "capture"


def read_file(
    path: str,
    sink: LineSink,
    *,
    stop: Callable[[], bool] = lambda: False,
    progress: FileProgress | None = None,
    decoder_options: dict[str, Any] | None = None,
) -> Outcome | None:
    """Read ``path`` into ``sink`` until its end or ``stop()``.

    Returns the capture's :class:`~.pipeline.Outcome` (``None`` for NDJSON).
    Raises :class:`CaptureUnreadable` or :class:`NotACapture` for a file that
    is neither a capture nor NDJSON.
    """
    stream, size = open_file(path)
    progress = progress or FileProgress(size)
    progress.size = size
    try:
        head = _peek(stream)
        content: IO[bytes] = stream
        if head[:2] == b"\x1f\x8b":
            gz = gzip.GzipFile(fileobj=stream, mode="rb")
            try:
                head = gz.peek(64)[:64]
            except (OSError, EOFError, zlib.error) as error:
                raise NotACapture(f"{path}: gzip data is corrupt: {error}") from None
            content = gz  # type: ignore[assignment]
        if file_kind(head) == "ndjson":
            progress.kind = "ndjson"
            _read_lines(content, stream, sink, stop, progress)
            return None
        progress.kind = "capture"
        reader = PacketReader(content)
        reader.info.compressed = content is not stream
        decoder = CaptureDecoder(**(decoder_options or {}))
        outcome = _decode(reader, decoder, sink, stop, progress, stream)
        return outcome
    finally:
        progress.finished = True
        stream.close()


def _read_lines(content: IO[bytes], raw: Any, sink: LineSink, stop: Callable[[], bool],
                progress: FileProgress) -> None:
    batch: list[bytes] = []
    try:
        for line in content:
            batch.append(line)
            if len(batch) >= LINE_BATCH:
                sink.lines(batch)
                progress.records += len(batch)
                progress.done = raw.tell()
                batch = []
                if stop():
                    return
    except (OSError, EOFError, zlib.error) as error:
        if batch:
            sink.lines(batch)
        raise CaptureUnreadable(f"{getattr(raw, 'path', 'input')}: {error}") from None
    if batch:
        sink.lines(batch)
        progress.records += len(batch)
    progress.done = progress.size


def _decode(reader: PacketReader, decoder: CaptureDecoder, sink: LineSink,
            stop: Callable[[], bool], progress: FileProgress, raw: Any) -> Outcome:
    handle = sink.events
    decoder.spill = handle
    packet = decoder.packet
    for n, pkt in enumerate(reader, 1):
        events = packet(pkt)
        if events:
            handle(events)
        if n % PACKET_BATCH == 0:
            sink.flush()
            progress.done = raw.tell()
            progress.records = n
            if stop():
                break
    handle([e for e in decoder.finish() if type(e) is not ConnectionSeen])
    sink.flush()
    progress.done = progress.size
    info = reader.info
    return outcome_of(sink, decoder, info.format + (".gz" if info.compressed else ""),
                      info.dropped)


def tap(
    iface: str,
    sink: LineSink,
    *,
    port: int | None = None,
    bpf: str | None = None,
    stop: Callable[[], bool] = lambda: False,
    flush_every: float = 0.05,
) -> Outcome:
    """Decode what ``iface`` carries into ``sink`` until ``stop()``; raises
    :class:`~wsproto_tools.exceptions.CaptureError` when it cannot capture."""
    from wsproto_tools.capture.live import LiveCapture, bpf_for
    from wsproto_tools.capture.pipeline import LiveRun, run_live

    capture = LiveCapture(iface, bpf_for(port, bpf))
    decoder = CaptureDecoder(ws_ports={port} if port is not None else set())
    try:
        return run_live(capture, decoder, sink, LiveRun(stop=stop, hard_stop=stop))
    finally:
        capture.close()
