"""``wsp tui``: look at live and recorded WebSocket sessions (docs/tui.md)."""

from __future__ import annotations

__all__ = ["tui"]

import os

import click

from wsproto_tools.cli.params import WS_URL, client_ssl
from wsproto_tools.cli.session_common import client_options
from wsproto_tools.cli.status import CommandExit, ExitStatus


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("-i", "--iface", metavar="IFACE", help="Tap this interface (live).")
@click.option("--port", type=click.IntRange(0, 65535), help="With -i: only TCP port N.")
@click.option("--bpf", metavar="EXPR", help="With -i: a BPF filter (tcpdump syntax).")
@click.option("--server", metavar="URL", type=WS_URL,
              help="A wsp serve --inspect: show its inspector feed.")
@click.option("--admin-secret", envvar="WSP_ADMIN_SECRET", metavar="S",
              help="With --server: the admin secret. Env: WSP_ADMIN_SECRET.")
@click.option("--admin-token", envvar="WSP_ADMIN_TOKEN", metavar="JWT",
              help="With --server: a JWT with the admin claim. Env: WSP_ADMIN_TOKEN.")
@click.option("--connect", metavar="URL", type=WS_URL,
              help="Talk to a server: the composer sends, the list shows both directions.")
@click.option("--raw", is_flag=True, help="With --connect: plain WebSocket, no wsp.")
@click.option("--filter", "filter_expr", default="", metavar="EXPR",
              help="Start with this filter (docs/filter.md).")
@client_options
def tui(
    file: str | None,
    iface: str | None,
    port: int | None,
    bpf: str | None,
    server: str | None,
    admin_secret: str | None,
    admin_token: str | None,
    connect: str | None,
    raw: bool,
    filter_expr: str,
    secret: str | None,
    token: str | None,
    wire_version: str,
    max_attempts: int | None,
    backoff_base: float,
    backoff_cap: float,
    seed: int | None,
    handshake_timeout: float,
    cafile: str | None,
    insecure: bool,
) -> None:
    """Sessions, messages (decoded down to the bit) and statistics, in the terminal.

    \b
    wsp tui FILE            a pcap, pcapng, .gz, or NDJSON of wsp decode/inspect
    wsp tui -i IFACE        the live tap (--port N, --bpf EXPR)
    wsp tui --server URL    a wsp serve --inspect (--admin-secret S)
    wsp tui --connect URL   an interactive client (--secret S or --token JWT)
    wsp tui                 a start screen to choose

    Keys: ? lists them all. Exit status: 0 quit; 2 usage error; 3 the file
    cannot be read; 4 the server cannot be reached; 5 the credential was refused.
    Not in a terminal (a pipe), or with TERM=dumb, it says so and exits 2.
    NO_COLOR draws it without colours.
    """
    import sys

    from wsproto_tools.tui.sources import SourceSpec

    chosen = [name for name, value in (("FILE", file), ("-i", iface), ("--server", server),
                                       ("--connect", connect)) if value]
    if len(chosen) > 1:
        raise CommandExit(ExitStatus.USAGE, f"{' and '.join(chosen)} exclude each other")
    if filter_expr:
        from wsproto_tools.exceptions import FilterError
        from wsproto_tools.render.filterexpr import compile_filter

        try:
            compile_filter(filter_expr)
        except FilterError as error:
            raise CommandExit(ExitStatus.USAGE, f"--filter: {error}") from None
    spec: SourceSpec | None = None
    if file:
        if not os.path.exists(file):
            raise CommandExit(ExitStatus.BAD_INPUT,
                              f"cannot open {file}: No such file or directory")
        if not os.access(file, os.R_OK):
            raise CommandExit(ExitStatus.BAD_INPUT, f"cannot open {file}: Permission denied")
        spec = SourceSpec("file", file)
    elif iface:
        spec = SourceSpec("tap", iface, port=port, bpf=bpf)
    elif server:
        if admin_secret and admin_token:
            raise CommandExit(ExitStatus.USAGE,
                              "--admin-secret and --admin-token exclude each other")
        if not (admin_secret or admin_token):
            raise CommandExit(ExitStatus.USAGE, "--server needs --admin-secret (or "
                              "WSP_ADMIN_SECRET) or --admin-token (or WSP_ADMIN_TOKEN)")
        spec = SourceSpec("server", server, admin_secret=admin_secret, admin_token=admin_token,
                          ssl_context=client_ssl(server, cafile, insecure))
    elif connect:
        options = {
            "secret": secret, "token": token, "mode": "raw" if raw else "auto",
            "wire_version": int(wire_version), "ssl_context": client_ssl(connect, cafile, insecure),
        }
        spec = SourceSpec("connect", connect, client_options=options)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CommandExit(ExitStatus.USAGE, "wsp tui needs a terminal (for pipes: wsp decode "
                          "--ndjson FILE, wsp inspect --ndjson URL)")
    if os.environ.get("TERM", "") in ("dumb", "unknown"):
        raise CommandExit(ExitStatus.USAGE, "wsp tui needs a terminal that can move the cursor "
                          "(TERM is dumb); wsp decode and wsp inspect print lines")
    import signal

    from wsproto_tools.tui.app import WspTui

    app = WspTui(spec, filter_expr=filter_expr)
    # SIGTERM before the app has its own handler (while it starts): a flag it reads
    signal.signal(signal.SIGTERM, lambda signum, frame: app.request_stop())
    app.run()
    if app.failure is not None:
        raise app.failure
