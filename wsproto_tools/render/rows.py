"""Decoded captures written out: NDJSON lines, one JSON document, table rows, summary.

:class:`Printer` is the sink of the capture pipeline
(:mod:`wsproto_tools.capture.pipeline`) for ``wsp decode`` and ``wsp tap``;
:class:`NumberedPrinter` is a parallel worker's (:mod:`wsproto_tools.capture.parallel`).
They write to the streams and console of the :class:`Output` they are given.
"""

from __future__ import annotations

__all__ = ["MAX_WARNINGS_SHOWN", "ExpressionFilter", "NumberedPrinter", "Output", "Printer"]

import array
import json
import re
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Protocol

from wsproto_tools.capture import CapturedMessage, CaptureStats, CaptureWarning
from wsproto_tools.capture.parallel import pack_lines
from wsproto_tools.render.capture import (
    HEADER,
    LineBuffer,
    connection_record,
    hexdump,
    message_row,
    pretty_json,
    summary_view,
)

if TYPE_CHECKING:
    from wsproto_tools.render.filterexpr import Filter

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


class Output(Protocol):
    """Where a printer writes: stdout, a rich console on it, and warnings."""

    @property
    def stdout(self) -> IO[str]: ...

    @property
    def console(self) -> Any: ...

    def warn(self, line: str) -> None:
        """Write one line to stderr (``wsp: warning: ...``)."""


class Printer:
    """Writes decoder events as NDJSON, as one JSON document, or as table rows."""

    def __init__(
        self,
        env: Output,
        *,
        mode: str,
        show_hex: bool,
        accept: Any,
        max_payload: int | None = None,
    ) -> None:
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
        self._message_cls = CapturedMessage
        self._warning_cls = CaptureWarning
        #: the NDJSON lines waiting to be written
        self._buffer = LineBuffer(with_hex=show_hex, max_payload=max_payload)
        self.max_payload = max_payload
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        #: ``events(batch)``: take a batch of decoder events (chosen once, here)
        self.events: Callable[[list[Any]], None] = self._events
        if mode == "ndjson" and self._accept is None:
            # the common case, one call per packet: everything bound once
            self._add = self.stats.counter()
            self._line = self._buffer.fast
            self._fallback = self._buffer.fallback
            self._writer = self._buffer.writer  # its size is read once a packet
            self.events = self._ndjson
        elif mode == "stats" and self._accept is None:
            self._add = self.stats.counter()
            self.events = self._count_only

    def _count_only(self, events: list[Any]) -> None:
        """``events`` for ``--stats`` with no filter."""
        message_cls = self._message_cls
        for event in events:
            if type(event) is message_cls:
                self._add(event)
                if event.violations:
                    self.violations += 1
            elif type(event) is self._warning_cls:
                self.warning(event.number, event.message)

    def _ndjson(self, events: list[Any]) -> None:
        """``events`` for ``--ndjson`` with no filter."""
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
        if self._count >= FLUSH_LINES or self._writer.size >= FLUSH_BYTES:
            self.flush()

    def _events(self, events: list[Any]) -> None:
        message_cls = self._message_cls
        write_line = self._buffer.write
        line = self._buffer.fast
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
                    if not line(event):
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
            self.env.warn(f"wsp: warning: packet {number}: {message}")

    #: table rows written as text, not through rich (same output; rich per row costs
    #: about 150 µs); rows rich must lay out (wide or control characters) still go there
    fast_table = True
    #: a character outside the common rows' (which rich lays out one cell a character)
    _uncommon = re.compile("[^ -~→←⏎…]").search

    def _row(self, event: Any) -> None:
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
            self.env.warn(f"wsp: {hidden} more warnings not shown")
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


class ExpressionFilter:
    """A printer's ``accept``: the option filters (a
    :class:`~wsproto_tools.capture.filters.MessageFilter`) and a compiled filter
    expression (:mod:`wsproto_tools.render.filterexpr`), ANDed. The expression
    sees each message as a :class:`~wsproto_tools.render.records.Row`, made only
    for messages the options let through."""

    active = True

    def __init__(self, options: Any, expression: Filter) -> None:
        from wsproto_tools.render.records import row_of_captured

        self.options = options if options.active else None
        self.expression = expression
        self._test = expression.test
        self._row = row_of_captured

    def __call__(self, item: CapturedMessage) -> bool:
        options = self.options
        if options is not None and not options(item):
            return False
        return self._test(self._row(item))


class NumberedPrinter(Printer):
    """A parallel worker's printer: batches of NDJSON lines, with their packet
    numbers, handed to ``send`` (:func:`~wsproto_tools.capture.parallel.pack_lines`).

    Every worker reads the whole file: only the one with ``shared_warnings``
    reports the warnings about the file itself.
    """

    def __init__(self, env: Output, send: Callable[[bytes], object], *,
                 shared_warnings: bool, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._send = send
        self.numbers = array.array("Q")
        self.collected: list[tuple[int, str]] = []
        #: every line with a packet number up to this one has been sent
        self.watermark = 0
        self.shared_warnings = shared_warnings

    def warning(self, number: int, message: str) -> None:
        if self.shared_warnings or message.startswith("connection "):
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
        self._send(pack_lines(self.watermark, numbers, lines))
        self.numbers = array.array("Q")
