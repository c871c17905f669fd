"""``wsp tap -i IFACE``: decode WebSocket traffic live from a network interface."""

from __future__ import annotations

__all__ = ["tap"]

import contextlib
import signal
import time
from collections.abc import Iterator
from typing import IO, Any

import click

from wsproto_tools.cli.decode import filter_options, make_filter
from wsproto_tools.cli.env import Environment
from wsproto_tools.cli.status import CommandExit, ExitStatus

#: A backlog this large (packets) at the end is announced on stderr.
BACKLOG_NOTE = 10_000


class Stopper:
    """SIGINT and SIGTERM while the tap captures. The first stops the capture (what
    was captured is still decoded), the second stops the decoding (what is left is
    counted, and saved with ``-w``), a third interrupts. A signal that was ignored
    (SIGINT in a backgrounded script) stays ignored."""

    def __init__(self) -> None:
        self.signals = 0

    def requested(self) -> bool:
        return self.signals > 0

    @property
    def hard(self) -> bool:
        return self.signals > 1

    def _handler(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signals > 2:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous: dict[signal.Signals, Any] = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                current = signal.getsignal(sig)
                if current is signal.SIG_IGN:
                    continue
                signal.signal(sig, self._handler)
                previous[sig] = signal.SIG_DFL if current is None else current
        except ValueError:  # not the main thread: Ctrl-C raises as usual
            pass
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@click.command("tap")
@click.option("-i", "--interface", "iface", required=True, help="Interface to capture on (lo).")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Only TCP port N (and treat it as a WebSocket port).")
@click.option("--bpf", help="A BPF filter expression (tcpdump syntax), ANDed with --port.")
@click.option(
    "-w", "--write", "write", type=click.Path(dir_okay=False), help="Also save to FILE.pcapng."
)
@click.option("--count", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("--duration", type=click.FloatRange(min=0), help="Stop after S seconds.")
@filter_options
@click.pass_obj
def tap(
    env: Environment,
    iface: str,
    port: int | None,
    bpf: str | None,
    write: str | None,
    count: int | None,
    duration: float | None,
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
) -> None:
    """Capture on IFACE and print WebSocket (and wsp) messages as they are decoded.

    Needs root (or CAP_NET_RAW) and libpcap or tcpdump for BPF filters. On
    loopback the outgoing copy of each packet is left out. Ends after --count
    messages, --duration seconds, Ctrl-C or SIGTERM (exit status 0); the packets
    already captured then are still decoded (Ctrl-C again: they are only counted,
    "N packets captured but not decoded"). Then the summary, with the packets the
    kernel dropped.

    Exit status: 0 ok; 1 with --strict when violations were found; 3 the
    interface cannot be captured on.
    """
    from wsproto_tools.capture import CaptureDecoder
    from wsproto_tools.capture.live import LiveCapture, bpf_for
    from wsproto_tools.capture.pipeline import LiveRun, run_live
    from wsproto_tools.capture.writer import PcapngWriter
    from wsproto_tools.render.rows import Printer

    accept = make_filter(conns, direction, opcodes, types, topic, grep)
    printer = Printer(env, mode="ndjson" if ndjson else "table", show_hex=show_hex,
                      accept=accept, max_payload=max_payload)
    ports = set(ws_ports)
    if port is not None:
        ports.add(port)
    capture = LiveCapture(iface, bpf_for(port, bpf))
    decoder = CaptureDecoder(ws_ports=ports)
    stopper = Stopper()

    def backlog(waiting: int) -> None:
        if waiting >= BACKLOG_NOTE and not quiet:
            click.echo(f"wsp: decoding the {waiting} packets already captured; "
                       "Ctrl-C again to skip them", err=True)

    run = LiveRun(count=count, accept=accept, duration=duration, stop=stopper.requested,
                  hard_stop=lambda: stopper.hard, backlog=backlog, flushed=env.stdout.flush)
    out: IO[bytes] | None = None
    # signals stop the capture, then the decoding, until the summary is out
    with stopper.installed():
        try:
            if write:
                try:
                    out = open(write, "wb")  # noqa: SIM115
                except OSError as error:
                    raise CommandExit(ExitStatus.BAD_INPUT,
                                      f"cannot write {write}: {error.strerror or error}") from None
                writer = PcapngWriter(out, capture.linktype, name=iface)

                def save(pkt: Any) -> None:
                    writer.write(pkt[1], pkt[3])

                run.save = save
            if not quiet:
                filt = bpf_for(port, bpf) or "everything"
                click.echo(f"wsp: tapping {iface} ({filt}); Ctrl-C to stop", err=True)
            outcome = run_live(capture, decoder, printer, run)
            if write:
                writer.statistics(time.time(), run.kernel_packets, run.kernel_drops)
        finally:
            capture.close()
            if out is not None:
                out.close()
        summary = outcome.summary()
        summary["kernel_packets"] = run.kernel_packets
        summary["not_decoded"] = run.not_decoded
        summary["loopback_duplicates"] = capture.stats.duplicates
        printer.finish(outcome.connections, summary)
        with contextlib.suppress(OSError):
            env.stdout.flush()
        if run.not_decoded:
            click.echo(f"wsp: {run.not_decoded} packets captured but not decoded", err=True)
        if strict and outcome.violations:
            raise CommandExit(ExitStatus.PROBLEMS_FOUND)
