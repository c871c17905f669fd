"""``wsp decode FILE``: WebSocket and wsp messages from a pcap/pcapng capture."""

from __future__ import annotations

__all__ = ["Printer", "decode", "filter_options", "make_filter"]

import array
import contextlib
import io
import json
import os
import pickle
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import click

from wsproto_tools.cli.env import Environment, fail, guarded
from wsproto_tools.cli.status import ExitStatus

if TYPE_CHECKING:
    from wsproto_tools.exceptions import CaptureUnreadable

#: Files larger than this get a progress bar (on a terminal).
PROGRESS_MIN_BYTES = 4 * 1024 * 1024
#: Files larger than this are decoded by several processes (--ndjson, --stats).
PARALLEL_MIN_BYTES = 4 * 1024 * 1024
#: Warnings printed one by one before they are only counted.
MAX_WARNINGS_SHOWN = 50
#: warnings listed in a --json document (the rest are counted in warnings_omitted)
MAX_JSON_WARNINGS = 10_000
#: NDJSON lines waiting are written once there are this many...
FLUSH_LINES = 1024
#: ... or this many bytes of them
FLUSH_BYTES = 1 << 20

#: the characters of a table row before its summary
ROW_PREFIX = 15 + 1 + 4 + 1 + 3 + 1 + 22 + 1 + 7 + 2

_OPCODES = ("text", "binary", "ping", "pong", "close", "continuation")


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The message filters shared by ``wsp decode`` and ``wsp tap``."""
    options = [
        click.option("--conn", "conns", type=int, multiple=True, help="Only connection N."),
        click.option(
            "--direction", type=click.Choice(["client", "server"]), help="Only this sender."
        ),
        click.option(
            "--opcode", "opcodes", type=click.Choice(_OPCODES), multiple=True,
            help="Only these WebSocket opcodes.",
        ),
        click.option("--type", "types", multiple=True, help="Only these wsp message types."),
        click.option("--topic", help="Only wsp messages about this topic."),
        click.option("--grep", help="Only messages whose text or payload matches this regex."),
        click.option(
            "--ws-port", "ws_ports", type=int, multiple=True,
            help="Treat this port as a WebSocket server port (capture without handshake).",
        ),
        click.option("--hex", "show_hex", is_flag=True, help="Show payloads as hex dumps too."),
        click.option("--ndjson", is_flag=True, help="One JSON object per line, streamed."),
        click.option(
            "--max-payload", type=click.IntRange(min=0), default=None, metavar="B",
            help="Cut longer payloads to their first B bytes in --ndjson/--json "
            '(with "cut": the bytes left out).',
        ),
        click.option("--strict", is_flag=True, help="Exit 1 when violations were found."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_filter(
    conns: tuple[int, ...],
    direction: str | None,
    opcodes: tuple[str, ...],
    types: tuple[str, ...],
    topic: str | None,
    grep: str | None,
) -> Any:
    from wsproto_tools.capture import MessageFilter
    from wsproto_tools.cli.params import check_names
    from wsproto_tools.codec.schema import TYPES

    check_names(types, [spec.name for spec in TYPES.values()] + ["Unknown"], "--type",
                "wsp message type")
    try:
        pattern = re.compile(grep) if grep else None
    except re.error as error:
        raise click.BadParameter(
            f"bad regular expression: {error}", param_hint="--grep"
        ) from None
    return MessageFilter(
        frozenset(conns),
        direction,
        frozenset(opcodes),
        frozenset(t.lower() for t in types),
        topic,
        pattern,
    )


class Printer:
    """Writes decoder events as NDJSON, as one JSON document, or as table rows."""

    def __init__(
        self,
        env: Environment,
        *,
        mode: str,
        show_hex: bool,
        accept: Any,
        max_payload: int | None = None,
    ) -> None:
        from wsproto_tools.capture import CaptureStats

        self.env = env
        self.mode = mode  # "ndjson", "json", "table", "stats"
        self.show_hex = show_hex
        self.accept = accept
        #: the filter, or None when it lets everything through (checked once)
        self._accept = accept if accept.active else None
        self.stats = CaptureStats()
        self.violations = 0
        self.warnings_shown = 0
        self._out: IO[str] = env.stdout
        #: the byte stream under stdout (NDJSON is written as UTF-8 bytes), if any
        self._bytes_out: IO[bytes] | None = getattr(env.stdout, "buffer", None)
        self._lines: list[str] = []
        self._count = 0
        #: table rows waiting (text, styled), and the ANSI codes of each style
        self._rows: list[str] = []
        self._ansi: dict[str, tuple[str, ...]] = {}
        #: the console's width while a batch of rows is written (0: read it again)
        self._width = 0
        #: --json: whether the document was begun (its messages are streamed)
        self._json_started = False
        self._doc_warnings: list[dict[str, Any]] = []
        self._header_done = False
        #: packet number of each NDJSON line, when a parallel run must merge them.
        self.numbers: array.array[int] | None = None
        from wsproto_tools.capture import CapturedMessage, CaptureWarning
        from wsproto_tools.render.capture import LineBuffer

        self._message_cls = CapturedMessage
        self._warning_cls = CaptureWarning
        #: the NDJSON lines waiting to be written
        self._buffer = LineBuffer(with_hex=show_hex, max_payload=max_payload)
        self.max_payload = max_payload
        #: the C line buffer (its size is read once a packet), or None
        self._c_lines = self._buffer._c
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        if mode == "ndjson" and self._accept is None and self._buffer.fast is not None:
            # the common case, one call per packet: everything bound once
            self._add = self.stats.counter()
            self._line = self._buffer.fast
            self._fallback = self._buffer.fallback
            self.events = self._ndjson  # type: ignore[method-assign]
        elif mode == "stats" and self._accept is None:
            self._add = self.stats.counter()
            self.events = self._count_only  # type: ignore[method-assign]

    def _count_only(self, events: list[Any]) -> None:
        """:meth:`events` for ``--stats`` with no filter."""
        message_cls = self._message_cls
        for event in events:
            if type(event) is message_cls:
                self._add(event)
                if event.violations:
                    self.violations += 1
            elif type(event) is self._warning_cls:
                self.warning(event.number, event.message)

    def _ndjson(self, events: list[Any]) -> None:
        """:meth:`events` for ``--ndjson`` with no filter and the C line writer."""
        message_cls = self._message_cls
        for event in events:
            if type(event) is message_cls:
                self._add(event)
                if event.violations:
                    self.violations += 1
                if not self._line(event):
                    self._fallback(event)
                self._count += 1
                if self.numbers is not None:
                    self.numbers.append(event.number)
            elif type(event) is self._warning_cls:
                self.warning(event.number, event.message)
        if self._count >= FLUSH_LINES or self._c_lines.size >= FLUSH_BYTES:
            self.flush()

    def events(self, events: list[Any]) -> None:
        message_cls = self._message_cls
        write_line = self._buffer.write
        fast_line = self._buffer.fast
        fallback = self._buffer.fallback
        accept = self._accept
        add = self.stats.counter()
        mode = self.mode
        for event in events:
            if type(event) is message_cls:
                if accept is not None and not accept(event):
                    continue
                add(event)
                if event.violations:
                    self.violations += 1
                if mode == "ndjson":
                    if fast_line is None:
                        write_line(event)
                    elif not fast_line(event):
                        fallback(event)
                    self._count += 1
                    if self.numbers is not None:
                        self.numbers.append(event.number)
                    if self._count >= FLUSH_LINES or self._buffer.size >= FLUSH_BYTES:
                        self.flush()
                elif mode == "json":
                    write_line(event)  # the same object, streamed into the document
                    self._count += 1
                    if self._count >= FLUSH_LINES or self._buffer.size >= FLUSH_BYTES:
                        self.flush()
                elif mode == "table":
                    self._row(event)
            elif type(event) is self._warning_cls:
                self.warning(event.number, event.message)

    def warning(self, number: int, message: str) -> None:
        self.stats.warnings += 1
        if self.mode == "json":
            if len(self._doc_warnings) < MAX_JSON_WARNINGS:
                self._doc_warnings.append({"packet": number, "message": message})
            return
        if self.warnings_shown < MAX_WARNINGS_SHOWN:
            self.warnings_shown += 1
            self.flush()
            click.echo(f"wsp: warning: packet {number}: {message}", err=True)

    #: table rows written as text, not through rich (same output; rich per row costs
    #: about 150 µs); rows rich must lay out (wide or control characters) still go there
    fast_table = True
    #: a character outside the common rows' (which rich lays out one cell a character)
    _uncommon = re.compile("[^ -~→←⏎…]").search

    def _row(self, event: Any) -> None:
        from wsproto_tools.render.capture import HEADER, hexdump, message_row, pretty_json

        console = self.env.console
        if not self._header_done:
            self._header_done = True
            self._rows_flush()
            console.print(
                f"[bold]{HEADER[0]:<15} {HEADER[1]:>4} {HEADER[2]:<3} {HEADER[3]:<22} "
                f"{HEADER[4]:>7}  {HEADER[5]}[/bold]"
            )
        # the summary fills the row: as wide as the terminal, uncut through a pipe
        room = max(20, (self._width or console.width) - ROW_PREFIX)
        when, conn, arrow, kind, size, summary = message_row(event, room)
        style = "red" if event.violations else ("yellow" if event.note else "")
        self._table_line(f"{when:<15} {conn:>4} {arrow:<3} {kind:<22} {size:>7}  {summary}",
                         style)
        if event.violations:
            self._table_line(f"{'':>20}violations: {', '.join(event.violations)}", "red")
        text = event.msg.text
        extra: list[tuple[str, str]] = []
        if text is not None and event.wsp is None:
            pretty = pretty_json(text)
            if pretty is not None and "\n" in pretty:
                extra.append((pretty, "cyan"))
        if self.show_hex and event.msg.payload:
            extra.append((hexdump(event.msg.payload), "dim"))
        if extra:
            from rich.text import Text

            self._rows_flush()
            for block, block_style in extra:
                console.print(Text(block), style=block_style)

    def _table_line(self, line: str, style: str) -> None:
        """One row, cropped to the console's width as rich would (with an ellipsis)."""
        console = self.env.console
        # the common row (printable ASCII, arrows, ⏎ and …) is one cell a character
        if not self.fast_table or (self._uncommon(line) is not None and (
            not line.isprintable() or _cell_len(line) != len(line)
        )):
            from rich.text import Text

            self._rows_flush()
            console.print(Text(line, style), no_wrap=True, overflow="ellipsis", crop=True)
            return
        width = self._width
        if not width:  # read once a batch of rows (it asks the terminal)
            width = self._width = console.width
        if len(line) > width:
            line = line[: width - 1] + "…"
        if style and console.color_system is not None and not console.no_color:
            styles = self._ansi
            if style not in styles:
                from rich.color import ColorSystem
                from rich.style import Style

                # console.color_system is "standard", "256", "truecolor" or "windows"
                system = {
                    "standard": ColorSystem.STANDARD, "256": ColorSystem.EIGHT_BIT,
                    "truecolor": ColorSystem.TRUECOLOR, "windows": ColorSystem.WINDOWS,
                }[console.color_system]
                styles[style] = tuple(Style.parse(style).render("\0", color_system=system)
                                      .split("\0"))
            before, after = styles[style]
            line = before + line + after
        self._rows.append(line)
        if len(self._rows) >= 512:
            self._rows_flush()

    def _rows_flush(self) -> None:
        self._width = 0
        if self._rows:
            self._rows.append("")
            text = "\n".join(self._rows)
            self._rows = []
            out = self.env.console.file
            if out is not self._out or self._bytes_out is None:
                out.write(text)
                return
            out.flush()  # whatever went through the text layer comes first
            encoding = getattr(out, "encoding", None) or "utf-8"
            self._write_all(text.encode(encoding, getattr(out, "errors", None) or "strict"))

    def _write_all(self, data: bytes | memoryview) -> None:
        """Write all of ``data`` to stdout's byte stream. Unbuffered (PYTHONUNBUFFERED,
        ``python -u``), that is the file itself, which may take only part of a large
        write when a signal interrupts it (SIGTERM stopping the tap while a terminal or
        a pipe is slow to read): the rest is written again, not dropped."""
        assert self._bytes_out is not None
        write = self._bytes_out.write
        view = memoryview(data)
        while view:
            written = write(view)
            if written is None:  # a non-blocking file that is full
                import select

                select.select([], [self._bytes_out], [], 0.05)
                continue
            view = view[written:]

    def flush(self) -> None:
        self._flush_text()
        self._rows_flush()
        if self.mode == "json":
            self._flush_json()
            return
        if self._buffer.size:
            self._count = 0
            if self._bytes_out is not None:
                self._out.flush()  # whatever went through the text layer comes first
                self._buffer.write_to(self._write_all)
            else:
                self._out.write(self._buffer.take().decode("utf-8", "surrogateescape"))

    def pause(self) -> None:
        """The input paused: write out everything decoded so far."""
        self.flush()
        self._out.flush()
        if self._bytes_out is not None:
            self._bytes_out.flush()

    def finish(self, connections: list[Any], summary: dict[str, Any]) -> None:
        from wsproto_tools.render.capture import connection_record, summary_view

        shown = [c for c in connections if c.kind in ("websocket", "refused")]
        if self.mode == "ndjson":
            for conn in shown:
                self._lines.append(self._dumps(connection_record(conn)))
            self._lines.append(self._dumps(summary))
            self.flush()
        elif self.mode == "json":
            self._flush_json()
            rest: dict[str, Any] = {
                "connections": [connection_record(c) for c in shown],
                "warnings": self._doc_warnings,
            }
            if self.stats.warnings > len(self._doc_warnings):
                rest["warnings_omitted"] = self.stats.warnings - len(self._doc_warnings)
            rest["summary"] = summary
            text = json.dumps(rest, ensure_ascii=False, indent=2)  # "{\n  ...\n}"
            head = b"\n  ],\n" if self._json_started else b'{\n  "messages": [],\n'
            self._write_bytes(head + text[2:].encode("utf-8", "surrogateescape") + b"\n")
        else:
            self._rows_flush()
            self.env.console.print(summary_view(summary, connections))
        hidden = self.stats.warnings - self.warnings_shown
        if self.mode != "json" and hidden > 0:
            click.echo(f"wsp: {hidden} more warnings not shown", err=True)
        self._out.flush()
        if self._bytes_out is not None:
            self._bytes_out.flush()

    def _flush_json(self) -> None:
        """Write the message lines waiting as elements of the document's array."""
        if not self._buffer.size:
            return
        self._count = 0
        lines = self._buffer.take()[:-1].split(b"\n")
        head = b",\n    " if self._json_started else b'{\n  "messages": [\n    '
        self._json_started = True
        self._write_bytes(head + b",\n    ".join(lines))

    def _write_bytes(self, data: bytes) -> None:
        if self._bytes_out is not None:
            self._out.flush()  # whatever went through the text layer comes first
            self._write_all(data)
        else:
            self._out.write(data.decode("utf-8", "surrogateescape"))

    def _flush_text(self) -> None:
        """Move the waiting text lines into the byte buffer."""
        if self._lines:
            self._lines.append("")
            self._buffer.text("\n".join(self._lines))
            self._lines = []


def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def _progress(env: Environment, total: int) -> Any:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=env.err_console,
        transient=True,
    )
    return progress


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


def run_decoder(
    reader: Any,
    printer: Printer,
    decoder: Any,
    *,
    progress: Callable[[], None] | None = None,
) -> Outcome:
    """Read every packet of ``reader`` through ``decoder`` into ``printer``."""
    from wsproto_tools.capture import ConnectionSeen

    handle = printer.events
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
    return Outcome(
        printer.stats,
        decoder.connections,
        decoder.packets,
        decoder.tcp_packets,
        decoder.first_ts,
        decoder.last_ts,
        info.format + (".gz" if info.compressed else ""),
        info.dropped,
        printer.violations,
        limits=decoder.limits(),
    )


class _NumberedPrinter(Printer):
    """A worker's printer: batches of NDJSON lines, with their packet numbers, sent
    to the parent through ``pipe`` (see :func:`run_parallel`)."""

    def __init__(self, env: Environment, pipe: Any, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._pipe = pipe
        self.numbers = array.array("Q")
        self.collected: list[tuple[int, str]] = []
        #: every line with a packet number up to this one has been sent
        self.watermark = 0
        #: whether this worker reports the warnings about the file itself
        self.shared_warnings = True

    def warning(self, number: int, message: str) -> None:
        if self.shared_warnings or message.startswith("connection "):
            # every worker reads the whole file: only the first one reports its damage
            self.stats.warnings += 1
            if len(self.collected) < MAX_WARNINGS_SHOWN:
                self.collected.append((number, message))

    def flush(self) -> None:
        self._flush_text()
        lines = self._buffer.take()
        self._count = 0
        numbers = b""
        if self.numbers:
            # the lines of a packet come together: all before the last one are sent
            self.watermark = max(self.watermark, self.numbers[-1] - 1)
            numbers = self.numbers.tobytes()
        # one message, no pickling: tag, watermark, size of the numbers, numbers, lines
        self._pipe.send_bytes(
            b"L" + _LINES_HEAD.pack(self.watermark, len(numbers)) + numbers + lines
        )
        self.numbers = array.array("Q")


def _worker(
    path: str,
    index: int,
    count: int,
    options: dict[str, Any],
    accept: Any,
    progress: Any,
    pipe: Any,
) -> None:
    from wsproto_tools.capture import CaptureDecoder, PacketReader

    with open(path, "rb", buffering=1 << 20) as stream:
        printer = _NumberedPrinter(
            Environment(), pipe, mode=options["mode"], show_hex=options["show_hex"],
            accept=accept, max_payload=options["max_payload"],
        )
        printer.shared_warnings = index == 0
        decoder = CaptureDecoder(
            ws_ports=options["ws_ports"], max_message=options["max_message"], shard=(index, count)
        )
        decoder.spill = printer.events
        tell = stream.tell

        def tick() -> None:
            # every 1,024 packets: tell the parent how far this share has got, so
            # the other shares' lines can be written meanwhile (a later line of
            # this share has at least the current packet's number)
            if index == 0:
                progress.value = tell()
            printer.watermark = max(0, decoder.packets - 1)
            printer.flush()

        outcome = run_decoder(PacketReader(stream, printer.warning), printer, decoder,
                              progress=tick)
        printer.flush()
    outcome.connections = [c for c in outcome.connections if decoder.owns(c.id)]
    outcome.warnings = printer.collected
    pipe.send_bytes(b"D" + pickle.dumps(outcome))
    pipe.close()


#: Line batches the parent holds per worker before it stops reading that worker.
_MAX_QUEUED = 16


#: a worker's batch of lines: b"L", then its watermark and the size of the numbers
_LINES_HEAD = struct.Struct("<QQ")


class _Merger:
    """Writes the workers' lines in packet order as soon as the order is known.

    A worker's lines come in packet order; a line is written once every other
    worker is done, has sent a later line, or has reported (its watermark) that
    it has no earlier one. Ties go to the lower worker index, as one process
    would have written them (connections in order). Lines stay bytes: a batch is
    kept as the message received, and runs of its lines are written as slices.
    """

    def __init__(self, count: int, out: IO[str] | None) -> None:
        self.count = count
        #: per worker: batches of (packet numbers, the message, index of the next
        #: line, offset of the next line in the message)
        self.queues: list[list[tuple[array.array[int], bytes, int, int]]] = [
            [] for _ in range(count)
        ]
        self.watermarks = [0] * count
        self.done = [False] * count
        self.out = out
        self.binary = getattr(out, "buffer", None) if out is not None else None
        self.wrote = False

    def add(self, index: int, message: bytes) -> None:
        """Take a worker's ``L`` message (see ``_NumberedPrinter.flush``)."""
        watermark, size = _LINES_HEAD.unpack_from(message, 1)
        self.watermarks[index] = watermark
        if size:
            start = 1 + _LINES_HEAD.size
            values = array.array("Q")
            values.frombytes(message[start : start + size])
            self.queues[index].append((values, message, 0, start + size))

    def _write(self, data: bytes | memoryview) -> None:
        if self.out is None:
            return
        if not self.wrote:
            self.wrote = True
            if self.binary is not None:
                self.out.flush()
        if self.binary is not None:
            self.binary.write(data)
        else:
            self.out.write(bytes(data).decode("utf-8"))

    def drain(self) -> None:
        """Write every line whose place in the order is known."""
        pieces: list[memoryview] = []
        self._order(pieces)
        if not pieces:
            return
        fd = self._fd()
        if fd is None:
            self._write(b"".join(pieces))
            return
        for start in range(0, len(pieces), 512):  # gathered writes, no copy
            chunk = pieces[start : start + 512]
            done = os.writev(fd, chunk)
            total = sum(len(piece) for piece in chunk)
            if done < total:  # a short write (a pipe): the rest as one buffer
                rest = b"".join(chunk)[done:]
                while rest:
                    rest = rest[os.write(fd, rest) :]

    def _fd(self) -> int | None:
        """The file descriptor under the output, flushed, when it can take writev."""
        if self.binary is None or not hasattr(os, "writev"):
            return None
        try:
            fd = self.binary.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        if not self.wrote:
            self.wrote = True
            assert self.out is not None
            self.out.flush()
        self.binary.flush()
        return fd

    def _order(self, pieces: list[memoryview]) -> None:
        """Append to ``pieces`` the runs of lines whose place is known, in order."""
        import bisect

        queues = self.queues
        count = self.count
        inf = 1 << 64
        while True:
            best = -1
            head = inf
            for j in range(count):
                if queues[j]:
                    values, _, offset, _ = queues[j][0]
                    if values[offset] < head:
                        best, head = j, values[offset]
            if best < 0:
                return
            bound = inf + 1
            for j in range(count):
                if j == best:
                    continue
                if queues[j]:
                    values, _, offset, _ = queues[j][0]
                    limit = values[offset] + (1 if best < j else 0)
                elif self.done[j]:
                    continue
                else:
                    limit = self.watermarks[j] + 1
                bound = min(bound, limit)
            values, message, offset, first = queues[best][0]
            end = bisect.bisect_left(values, bound, offset)
            if end <= offset:
                return  # waiting for another worker
            if end >= len(values):
                pieces.append(memoryview(message)[first:])
                queues[best].pop(0)
            else:
                find = message.index
                last = first
                for _ in range(end - offset):
                    last = find(b"\n", last) + 1
                pieces.append(memoryview(message)[first:last])
                queues[best][0] = (values, message, end, last)


def run_parallel(
    env: Environment, path: str, jobs: int, options: dict[str, Any], accept: Any,
    show_progress: bool, size: int,
) -> Outcome:
    """Decode ``path`` with ``jobs`` processes, each owning a share of the connections.

    Each worker reads the whole file and decodes its connections; its lines come
    back through a pipe in batches and are written in capture order as soon as
    that order is known (streamed, and the parent holds at most
    ``_MAX_QUEUED`` batches per worker: a worker that is ahead waits).
    """
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("fork")
    progress = ctx.Value("q", 0, lock=False)
    workers = []
    for index in range(jobs):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker,
            args=(path, index, jobs, options, accept, progress, send),
            daemon=True,
        )
        proc.start()
        send.close()
        workers.append((proc, receive))
    merger = _Merger(jobs, env.stdout if options["mode"] == "ndjson" else None)
    outcomes: list[Outcome | None] = [None] * jobs
    bar = _progress(env, size) if show_progress else None
    try:
        if bar is not None:
            bar.start()
            task = bar.add_task("decoding", total=size)
        while not all(merger.done):
            readable = [
                pipe for i, (_, pipe) in enumerate(workers)
                if not merger.done[i] and len(merger.queues[i]) < _MAX_QUEUED
            ]
            ready = wait(readable, 0.1) if readable else []
            if bar is not None:
                bar.update(task, completed=progress.value)
            for conn in ready:
                index = next(i for i, (_, r) in enumerate(workers) if r is conn)
                try:
                    message = workers[index][1].recv_bytes()
                except EOFError:
                    proc = workers[index][0]
                    proc.join(1)
                    raise CaptureDecodeFailed(
                        f"decoding worker exited with {proc.exitcode}"
                    ) from None
                if message[:1] == b"L":
                    merger.add(index, message)
                else:
                    outcomes[index] = pickle.loads(message[1:])  # from our own worker
                    merger.done[index] = True
            merger.drain()
        merger.drain()
        for proc, _ in workers:
            proc.join()
    except CaptureDecodeFailed:
        if merger.wrote:  # lines were written: decoding again would repeat them
            fail("a decoding worker died; the output is incomplete", ExitStatus.BAD_INPUT)
        raise
    finally:
        if bar is not None:
            bar.stop()
        for proc, _ in workers:
            if proc.is_alive():
                proc.terminate()
    first = outcomes[0]
    assert first is not None
    done = [o for o in outcomes if o is not None]
    connections = sorted((c for o in done for c in o.connections), key=lambda c: c.id)
    for other in done[1:]:
        first.stats.merge(other.stats)
        first.violations += other.violations
        first.warnings.extend(other.warnings)
        first.limits = merge_limits(first.limits, other.limits)
    first.connections = connections
    first.warnings.sort()
    return first


class CaptureDecodeFailed(Exception):
    """A decoding worker process died."""


def _jobs(requested: int, size: int, file: str, mode: str) -> int:
    if file == "-" or mode not in ("ndjson", "stats"):
        return 1
    if requested == 0:
        if size < PARALLEL_MIN_BYTES:
            return 1
        return max(1, min(os.cpu_count() or 1, 4))
    return requested


def merge_limits(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The limits of two shards' decoders together (counters add up)."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            merged = dict(out.get(key, {}))
            for k, v in value.items():
                merged[k] = merged.get(k, 0) + v
            out[key] = merged
        else:
            out[key] = out.get(key, 0) + value
    return out


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


def _stdin(stream: IO[bytes], on_pause: Callable[[], None]) -> IO[bytes]:
    """stdin, read through :class:`_PausingInput` when it is a file descriptor."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    return _PausingInput(stream, on_pause)  # type: ignore[return-value]


class _NamedReader(io.BufferedReader):
    """A capture file whose read errors name it ("cannot read F: Input/output error")."""

    def __init__(self, raw: io.FileIO, name: str, buffer_size: int) -> None:
        super().__init__(raw, buffer_size)
        self.path = name

    def _failed(self, error: OSError) -> CaptureUnreadable:
        from wsproto_tools.exceptions import CaptureUnreadable

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


@click.command("decode")
@click.argument("file", type=click.Path(allow_dash=True, readable=False))
@filter_options
@click.option("--json", "as_json", is_flag=True,
              help="One JSON document (its messages streamed as they are decoded).")
@click.option("--stats", "stats_only", is_flag=True, help="Only the summary.")
@click.option(
    "--max-message", type=int, default=16 * 1024 * 1024, show_default=True,
    help="Largest message (bytes) held while reassembling.",
)
@click.option(
    "-j", "--jobs", type=click.IntRange(min=0), default=1, show_default=True,
    help="Processes for --ndjson/--stats on a file, each decoding a share of the "
    "connections (0: one per core for files over 4 MB).",
)
@click.pass_obj
@guarded
def decode(
    env: Environment,
    file: str,
    conns: tuple[int, ...],
    direction: str | None,
    opcodes: tuple[str, ...],
    types: tuple[str, ...],
    topic: str | None,
    grep: str | None,
    ws_ports: tuple[int, ...],
    show_hex: bool,
    ndjson: bool,
    max_payload: int | None,
    strict: bool,
    quiet: bool,
    as_json: bool,
    stats_only: bool,
    max_message: int,
    jobs: int,
) -> None:
    """Decode the WebSocket (and wsp) messages in a pcap or pcapng FILE ("-" for stdin).

    Reads Ethernet, Linux cooked (SLL, SLL2), loopback and raw-IP captures,
    plain or gzip-compressed. Prints one row per message and a summary; --ndjson
    streams one JSON object per message (keys in docs/decode.md).

    Exit status: 0 the capture was read (even with violations); 1 with --strict
    when violations were found; 3 the input is not a capture.
    """
    if sum((ndjson, as_json, stats_only)) > 1:
        raise click.UsageError("--ndjson, --json and --stats exclude each other")
    from wsproto_tools.capture import CaptureDecoder, PacketReader
    from wsproto_tools.exceptions import CaptureError, CaptureUnreadable

    accept = make_filter(conns, direction, opcodes, types, topic, grep)
    mode = "ndjson" if ndjson else "json" if as_json else "stats" if stats_only else "table"

    printer = Printer(env, mode=mode, show_hex=show_hex, accept=accept,
                      max_payload=max_payload)
    if file == "-":
        import sys

        # a stream: what was decoded is written whenever the input pauses
        stream: IO[bytes] = _stdin(sys.stdin.buffer, printer.pause)
        size = 0
    else:
        if os.path.isdir(file):
            fail(f"cannot open {file}: is a directory, not a capture", ExitStatus.BAD_INPUT)
        try:
            stream = _NamedReader(io.FileIO(file, "rb"), file, 1 << 20)
            size = os.fstat(stream.fileno()).st_size
        except OSError as error:
            fail(f"cannot open {file}: {error.strerror}", ExitStatus.BAD_INPUT)
    machine_output = ndjson or as_json
    show_progress = (
        size > PROGRESS_MIN_BYTES
        and not quiet
        and bool(getattr(env.stderr, "isatty", lambda: False)())
        and not (machine_output and not env.stdout_isatty)
    )
    jobs = _jobs(jobs, size, file, mode)
    try:
        try:
            # fail early, in this process, on input that is not a capture
            reader = PacketReader(stream, printer.warning)
        except CaptureError as error:
            fail(str(error) if isinstance(error, CaptureUnreadable) else f"{file}: {error}",
                 ExitStatus.BAD_INPUT)
        if jobs > 1:
            options = {"mode": mode, "show_hex": show_hex, "ws_ports": ws_ports,
                       "max_message": max_message, "max_payload": max_payload}
            try:
                outcome = run_parallel(env, file, jobs, options, accept, show_progress, size)
            except CaptureDecodeFailed:
                jobs = 1
            else:
                for number, message in outcome.warnings:
                    printer.warning(number, message)
                printer.stats = outcome.stats
                printer.violations = outcome.violations
        if jobs == 1:
            decoder = CaptureDecoder(ws_ports=ws_ports, max_message=max_message)
            decoder.spill = printer.events
            if show_progress:
                with _progress(env, size) as bar:
                    task = bar.add_task("decoding", total=size)
                    tell = stream.tell
                    outcome = run_decoder(
                        reader, printer, decoder,
                        progress=lambda: bar.update(task, completed=tell()),
                    )
            else:
                outcome = run_decoder(reader, printer, decoder)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM): what was decoded is still written
        with contextlib.suppress(Exception):
            printer.pause()
        raise
    finally:
        if file != "-":
            stream.close()
    summary = outcome.stats.summary(
        outcome.connections,
        packets=outcome.packets,
        tcp_packets=outcome.tcp_packets,
        capture_format=outcome.capture_format,
        first_ts=outcome.first_ts,
        last_ts=outcome.last_ts,
        dropped=outcome.dropped,
        limits=outcome.limits,
    )
    printer.finish(outcome.connections, summary)
    if strict and outcome.violations:
        raise SystemExit(int(ExitStatus.PROBLEMS_FOUND))
