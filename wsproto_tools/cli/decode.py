"""``wsp decode FILE``: WebSocket and wsp messages from a pcap/pcapng capture."""

from __future__ import annotations

__all__ = ["ProgressBar", "decode", "filter_options", "make_filter"]

import contextlib
import re
from collections.abc import Callable
from typing import IO, Any

import click

from wsproto_tools.cli.env import Environment
from wsproto_tools.cli.status import CommandExit, ExitStatus

#: Files larger than this get a progress bar (on a terminal).
PROGRESS_MIN_BYTES = 4 * 1024 * 1024

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
    expression: str | None = None,
) -> Any:
    """The printer's ``accept``: the option filters, and the ``--filter``
    expression (docs/filter.md) when one is given, ANDed."""
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
    options = MessageFilter(
        frozenset(conns),
        direction,
        frozenset(opcodes),
        frozenset(t.lower() for t in types),
        topic,
        pattern,
    )
    if not expression or not expression.strip():
        return options  # no rows are made
    from wsproto_tools.exceptions import FilterError
    from wsproto_tools.render.filterexpr import compile_filter
    from wsproto_tools.render.rows import ExpressionFilter

    try:
        compiled = compile_filter(expression)
    except FilterError as error:
        raise CommandExit(ExitStatus.USAGE, f"--filter: {error}") from None
    return ExpressionFilter(options, compiled)


class ProgressBar:
    """A progress bar on stderr for ``total`` bytes, shown from its first
    :meth:`update` (after a parallel run's workers were forked)."""

    def __init__(self, env: Environment, total: int) -> None:
        self.env = env
        self.total = total
        self._bar: Any = None
        self._task: Any = None

    def update(self, done: int) -> None:
        if self._bar is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.env.err_console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("decoding", total=self.total)
        self._bar.update(self._task, completed=done)

    def follow(self, tell: Callable[[], int]) -> Callable[[], None]:
        """A callback that shows ``tell()`` (a file's position) as the progress."""
        update = self.update
        return lambda: update(tell())

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@click.command("decode")
@click.argument("file", type=click.Path(allow_dash=True, readable=False))
@filter_options
@click.option("--filter", "expression", metavar="EXPR",
              help="Only messages this filter expression passes (docs/filter.md), "
              "e.g. 'type:Publish topic:prices | violation'.")
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
    expression: str | None,
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
    from wsproto_tools.capture.parallel import WorkerDied, jobs_for, run_parallel
    from wsproto_tools.capture.pipeline import open_file, pausing_stdin, run_decoder
    from wsproto_tools.exceptions import CaptureError, CaptureUnreadable
    from wsproto_tools.render.rows import NumberedPrinter, Printer

    accept = make_filter(conns, direction, opcodes, types, topic, grep, expression)
    mode = "ndjson" if ndjson else "json" if as_json else "stats" if stats_only else "table"

    printer = Printer(env, mode=mode, show_hex=show_hex, accept=accept,
                      max_payload=max_payload)
    stream: IO[bytes]
    if file == "-":
        import sys

        # a stream: what was decoded is written whenever the input pauses
        stream = pausing_stdin(sys.stdin.buffer, printer.pause)
        size = 0
    else:
        stream, size = open_file(file)  # or "cannot open F: ..." (status 3)
    machine_output = ndjson or as_json
    show_progress = (
        size > PROGRESS_MIN_BYTES
        and not quiet
        and bool(getattr(env.stderr, "isatty", lambda: False)())
        and not (machine_output and not env.stdout_isatty)
    )
    jobs = jobs_for(jobs, size, file, mode)
    decoder_options: dict[str, Any] = {"ws_ports": ws_ports, "max_message": max_message}
    bar = ProgressBar(env, size) if show_progress else None
    try:
        try:
            # fail early, in this process, on input that is not a capture
            reader = PacketReader(stream, printer.warning)
        except CaptureError as error:
            raise CommandExit(
                ExitStatus.BAD_INPUT,
                str(error) if isinstance(error, CaptureUnreadable) else f"{file}: {error}",
            ) from None
        if jobs > 1:

            def worker_printer(index: int, send: Callable[[bytes], None]) -> NumberedPrinter:
                return NumberedPrinter(
                    Environment(), send, shared_warnings=index == 0, mode=mode,
                    show_hex=show_hex, accept=accept, max_payload=max_payload,
                )

            try:
                outcome = run_parallel(
                    file, jobs, decoder_options, worker_printer,
                    env.stdout if mode == "ndjson" else None,
                    progress=None if bar is None else bar.update,
                )
            except WorkerDied as died:
                if died.wrote:  # lines were written: decoding again would repeat them
                    raise CommandExit(ExitStatus.BAD_INPUT,
                                      "a decoding worker died; the output is incomplete") from None
                jobs = 1
            else:
                for number, message in outcome.warnings:
                    printer.warning(number, message)
                printer.stats = outcome.stats
                printer.violations = outcome.violations
        if jobs == 1:
            decoder = CaptureDecoder(**decoder_options)
            outcome = run_decoder(reader, printer, decoder,
                                  progress=None if bar is None else bar.follow(stream.tell))
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM): what was decoded is still written
        with contextlib.suppress(Exception):
            printer.pause()
        raise
    finally:
        if bar is not None:
            bar.stop()
        if file != "-":
            stream.close()
    printer.finish(outcome.connections, outcome.summary())
    if strict and outcome.violations:
        raise CommandExit(ExitStatus.PROBLEMS_FOUND)
