"""``wsp tap -i IFACE``: decode WebSocket traffic live from a network interface."""

from __future__ import annotations

__all__ = ["tap"]

import contextlib
import time
from typing import IO, Any

import click

from wsproto_tools.cli.decode import Outcome, Printer, filter_options, make_filter
from wsproto_tools.cli.env import Environment, guarded
from wsproto_tools.cli.status import ExitStatus


@click.command("tap")
@click.option("-i", "--interface", "iface", required=True, help="Interface to capture on (lo).")
@click.option("--port", type=int, help="Only TCP port N (and treat it as a WebSocket port).")
@click.option("--bpf", help="A BPF filter expression (tcpdump syntax), ANDed with --port.")
@click.option(
    "-w", "--write", "write", type=click.Path(dir_okay=False), help="Also save to FILE.pcapng."
)
@click.option("--count", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("--duration", type=click.FloatRange(min=0), help="Stop after S seconds.")
@filter_options
@click.pass_obj
@guarded
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
    strict: bool,
    quiet: bool,
) -> None:
    """Capture on IFACE and print WebSocket (and wsp) messages as they are decoded.

    Needs root (or CAP_NET_RAW) and libpcap or tcpdump for BPF filters. On
    loopback the outgoing copy of each packet is dropped. Ends after --count
    messages, --duration seconds or Ctrl-C (exit status 0), then prints the summary with the
    packets the kernel dropped.

    Exit status: 0 ok; 1 with --strict when violations were found; 3 the
    interface cannot be captured on.
    """
    from wsproto_tools.capture import CaptureDecoder, CapturedMessage
    from wsproto_tools.capture.live import LiveCapture, bpf_for
    from wsproto_tools.capture.writer import PcapngWriter

    accept = make_filter(conns, direction, opcodes, types, topic, grep)
    printer = Printer(env, mode="ndjson" if ndjson else "table", show_hex=show_hex,
                      accept=accept)
    ports = set(ws_ports)
    if port is not None:
        ports.add(port)
    capture = LiveCapture(iface, bpf_for(port, bpf))
    decoder = CaptureDecoder(ws_ports=ports)
    seen = 0

    def enough() -> bool:
        return count is not None and seen >= count

    started = time.time()
    out: IO[bytes] | None = None
    writer = None
    try:
        if write:
            out = open(write, "wb")  # noqa: SIM115
            writer = PcapngWriter(out, capture.linktype, name=iface)
        if not quiet:
            filt = bpf_for(port, bpf) or "everything"
            click.echo(f"wsp: tapping {iface} ({filt}); Ctrl-C to stop", err=True)
        try:
            for pkt in capture.packets(duration=duration, stop=enough):
                if writer is not None:
                    writer.write(pkt[1], pkt[3])
                events = decoder.packet(pkt)
                if events:
                    seen += sum(1 for e in events if type(e) is CapturedMessage and accept(e))
                    printer.events(events)
                    if ndjson:
                        printer.flush()
                        env.stdout.flush()
                if enough():
                    break
        except KeyboardInterrupt:
            pass  # Ctrl-C is the ordinary way to stop a tap
        printer.events(decoder.finish())
        kernel_packets, kernel_drops = capture.kernel_counters()
        if writer is not None:
            writer.statistics(time.time(), kernel_packets, kernel_drops)
    finally:
        capture.close()
        if out is not None:
            out.close()
    stats = capture.stats
    outcome = Outcome(
        printer.stats, decoder.connections, decoder.packets, decoder.tcp_packets,
        decoder.first_ts if decoder.first_ts is not None else started, decoder.last_ts,
        f"live:{iface}", kernel_drops, printer.violations,
    )
    summary: dict[str, Any] = outcome.stats.summary(
        outcome.connections,
        packets=outcome.packets,
        tcp_packets=outcome.tcp_packets,
        capture_format=outcome.capture_format,
        first_ts=outcome.first_ts,
        last_ts=outcome.last_ts,
        dropped=kernel_drops,
    )
    summary["kernel_packets"] = kernel_packets
    summary["loopback_duplicates"] = stats.duplicates
    printer.finish(outcome.connections, summary)
    with contextlib.suppress(OSError):
        env.stdout.flush()
    if strict and outcome.violations:
        raise SystemExit(int(ExitStatus.PROBLEMS_FOUND))
