"""``wsp decode FILE``: WebSocket and wsp messages from a pcap/pcapng capture."""

from __future__ import annotations

__all__ = ["Printer", "decode", "filter_options", "make_filter"]

import json
import os
import re
from collections.abc import Callable
from typing import IO, Any

import click

from wsproto_tools.cli.env import Environment, fail, guarded
from wsproto_tools.cli.status import ExitStatus

#: Files larger than this get a progress bar (on a terminal).
PROGRESS_MIN_BYTES = 4 * 1024 * 1024
#: Warnings printed one by one before they are only counted.
MAX_WARNINGS_SHOWN = 50

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
        accept: Callable[[Any], bool],
    ) -> None:
        from wsproto_tools.capture import CaptureStats

        self.env = env
        self.mode = mode  # "ndjson", "json", "table", "stats"
        self.show_hex = show_hex
        self.accept = accept
        self.stats = CaptureStats()
        self.violations = 0
        self.warnings_shown = 0
        self._out: IO[str] = env.stdout
        self._lines: list[str] = []
        self._doc_messages: list[dict[str, Any]] = []
        self._doc_warnings: list[dict[str, Any]] = []
        self._header_done = False
        from wsproto_tools.capture import CapturedMessage, CaptureWarning
        from wsproto_tools.render.capture import message_record

        self._message_cls = CapturedMessage
        self._warning_cls = CaptureWarning
        self._record = message_record
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def events(self, events: list[Any]) -> None:
        message_cls = self._message_cls
        for event in events:
            if type(event) is message_cls:
                if not self.accept(event):
                    continue
                self.stats.add(event)
                if event.violations:
                    self.violations += 1
                mode = self.mode
                if mode == "ndjson":
                    self._lines.append(self._dumps(self._record(event, with_hex=self.show_hex)))
                    if len(self._lines) >= 512:
                        self.flush()
                elif mode == "json":
                    self._doc_messages.append(self._record(event, with_hex=self.show_hex))
                elif mode == "table":
                    self._row(event)
            elif type(event) is self._warning_cls:
                self.warning(event.number, event.message)

    def warning(self, number: int, message: str) -> None:
        self.stats.warnings += 1
        if self.mode == "json":
            self._doc_warnings.append({"packet": number, "message": message})
            return
        if self.warnings_shown < MAX_WARNINGS_SHOWN:
            self.warnings_shown += 1
            self.flush()
            click.echo(f"wsp: warning: packet {number}: {message}", err=True)

    def _row(self, event: Any) -> None:
        from wsproto_tools.render.capture import HEADER, hexdump, message_row

        console = self.env.console
        if not self._header_done:
            self._header_done = True
            console.print(
                f"[bold]{HEADER[0]:<15} {HEADER[1]:>4} {HEADER[2]:<3} {HEADER[3]:<22} "
                f"{HEADER[4]:>7}  {HEADER[5]}[/bold]"
            )
        when, conn, arrow, kind, size, summary = message_row(event)
        style = "red" if event.violations else ("yellow" if event.note else "")
        from rich.text import Text

        line = Text(f"{when:<15} {conn:>4} {arrow:<3} {kind:<22} {size:>7}  {summary}", style)
        console.print(line, no_wrap=True, overflow="ellipsis", crop=True)
        if event.violations:
            console.print(Text(f"{'':>20}violations: {', '.join(event.violations)}", "red"))
        if self.show_hex and event.msg.payload:
            console.print(Text(hexdump(event.msg.payload)), style="dim")

    def flush(self) -> None:
        if self._lines:
            self._lines.append("")
            self._out.write("\n".join(self._lines))
            self._lines = []

    def finish(self, connections: list[Any], summary: dict[str, Any]) -> None:
        from wsproto_tools.render.capture import connection_record, summary_view

        shown = [c for c in connections if c.kind in ("websocket", "refused")]
        if self.mode == "ndjson":
            for conn in shown:
                self._lines.append(self._dumps(connection_record(conn)))
            self._lines.append(self._dumps(summary))
            self.flush()
        elif self.mode == "json":
            doc = {
                "connections": [connection_record(c) for c in shown],
                "messages": self._doc_messages,
                "warnings": self._doc_warnings,
                "summary": summary,
            }
            self._out.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        else:
            self.env.console.print(summary_view(summary, connections))
        hidden = self.stats.warnings - self.warnings_shown
        if self.mode != "json" and hidden > 0:
            click.echo(f"wsp: {hidden} more warnings not shown", err=True)
        self._out.flush()


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


@click.command("decode")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@filter_options
@click.option("--json", "as_json", is_flag=True, help="One JSON document at the end.")
@click.option("--stats", "stats_only", is_flag=True, help="Only the summary.")
@click.option(
    "--max-message", type=int, default=16 * 1024 * 1024, show_default=True,
    help="Largest message (bytes) held while reassembling.",
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
    strict: bool,
    quiet: bool,
    as_json: bool,
    stats_only: bool,
    max_message: int,
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
    from wsproto_tools.capture import CaptureDecoder, ConnectionSeen, PacketReader
    from wsproto_tools.exceptions import CaptureError

    accept = make_filter(conns, direction, opcodes, types, topic, grep)
    mode = "ndjson" if ndjson else "json" if as_json else "stats" if stats_only else "table"
    printer = Printer(env, mode=mode, show_hex=show_hex, accept=accept)

    if file == "-":
        import sys

        stream: IO[bytes] = sys.stdin.buffer
        size = 0
    else:
        try:
            stream = open(file, "rb", buffering=1 << 20)  # noqa: SIM115
            size = os.fstat(stream.fileno()).st_size
        except OSError as error:
            fail(f"cannot open {file}: {error.strerror}", ExitStatus.BAD_INPUT)
    try:
        try:
            reader = PacketReader(stream, printer.warning)
        except CaptureError as error:
            fail(f"{file}: {error}", ExitStatus.BAD_INPUT)
        decoder = CaptureDecoder(ws_ports=ws_ports, max_message=max_message)
        machine_output = ndjson or as_json
        show_progress = (
            size > PROGRESS_MIN_BYTES
            and not quiet
            and bool(getattr(env.stderr, "isatty", lambda: False)())
            and not (machine_output and not env.stdout_isatty)
        )
        handle = printer.events
        packet = decoder.packet
        if show_progress:
            with _progress(env, size) as progress:
                task = progress.add_task("decoding", total=size)
                tell = stream.tell
                for n, pkt in enumerate(reader):
                    events = packet(pkt)
                    if events:
                        handle(events)
                    if not n & 0x3FF:
                        progress.update(task, completed=tell())
        else:
            for pkt in reader:
                events = packet(pkt)
                if events:
                    handle(events)
        handle([e for e in decoder.finish() if not isinstance(e, ConnectionSeen)])
    finally:
        if file != "-":
            stream.close()
    summary = printer.stats.summary(
        decoder.connections,
        packets=decoder.packets,
        tcp_packets=decoder.tcp_packets,
        capture_format=reader.info.format + (".gz" if reader.info.compressed else ""),
        first_ts=decoder.first_ts,
        last_ts=decoder.last_ts,
        dropped=reader.info.dropped,
    )
    printer.finish(decoder.connections, summary)
    if strict and printer.violations:
        raise SystemExit(int(ExitStatus.PROBLEMS_FOUND))
