"""``wsp connect URL``: a WebSocket client for any server, and a wsp session for wsp servers.

The connection offers the wsp subprotocols (``wsp.v2, wsp.v1``) beside the user's
``--subprotocol`` values: when the server selects a wsp one, the session speaks wsp
(:mod:`~wsproto_tools.cli.connect_wsp`); otherwise, or with ``--raw``, it is a plain
WebSocket client (:mod:`~wsproto_tools.cli.connect_plain`). See ``docs/connect.md``.
"""

from __future__ import annotations

__all__ = ["connect"]

import os
from typing import Any

import click
from click.core import ParameterSource

from wsproto_tools.cli.env import run_async
from wsproto_tools.cli.params import WS_URL, client_ssl
from wsproto_tools.cli.session_common import client_options, make_options
from wsproto_tools.cli.status import CommandExit, ExitStatus


def _headers(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    from wsproto_tools.client.plain import parse_header
    from wsproto_tools.exceptions import ConfigError

    try:
        return tuple(parse_header(value) for value in values)
    except ConfigError as error:
        raise click.BadParameter(str(error), ctx, param) from None


@click.command()
@click.argument("url", type=WS_URL)
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    metavar='"NAME: VALUE"',
    callback=_headers,
    help="Add this header to the opening handshake (repeatable).",
)
@click.option(
    "--subprotocol",
    "subprotocols",
    multiple=True,
    metavar="NAME",
    help="Offer this subprotocol (repeatable); wsp.v2 and wsp.v1 are offered too unless --raw.",
)
@click.option("--origin", metavar="URL", help="Send this Origin header.")
@click.option(
    "--raw",
    is_flag=True,
    help="Plain WebSocket even if the server speaks wsp (offer only --subprotocol values).",
)
@click.option(
    "--binary",
    is_flag=True,
    help="Plain mode: each input line is hex, sent as a binary message.",
)
@click.option("--json", "as_json", is_flag=True, help="Print NDJSON records instead of text lines.")
@click.option(
    "--ping-interval",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    metavar="S",
    help="Plain mode: keepalive Ping every S seconds (0: none).",
)
@click.option(
    "--max-size",
    type=click.IntRange(min=0),
    default=1 << 20,
    show_default=True,
    metavar="B",
    help="Plain mode: largest message accepted, in bytes (0: no limit).",
)
@click.option("--no-deflate", is_flag=True, help="Plain mode: do not offer permessage-deflate.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    metavar="S",
    help="At the end of piped input, wait S seconds for replies before closing.",
)
@client_options
def connect(
    url: str,
    headers: tuple[tuple[str, str], ...],
    subprotocols: tuple[str, ...],
    origin: str | None,
    raw: bool,
    binary: bool,
    as_json: bool,
    ping_interval: float,
    max_size: int,
    no_deflate: bool,
    wait: float,
    **opts: Any,
) -> None:
    """Talk to a WebSocket server: a line is a message, a message is a line.

    If the server selects a wsp subprotocol, each line is a wsp command (type
    'help'); otherwise each line is a text message (hex for a binary one with
    --binary) and each message received is printed on its own line (binary as
    hex). At a terminal: a prompt with line editing and history, and /ping,
    /close CODE REASON, /help, /quit. From a pipe: lines until the end of input,
    then a normal close. The server's close code and reason go to stderr.

    \b
    Exit status:
      0  closed normally: end of input, /quit, /close, Ctrl-D or Ctrl-C at
         the prompt, or the server closed with 1000
      2  usage error (e.g. a URL that is not ws:// or wss://, a bad -H)
      3  bad input (a --binary line that is not hex; the session closes)
      4  cannot connect (refused, unknown host, TLS certificate), the server
         refused the handshake (HTTP status), the server closed with another
         code than 1000, or the connection was lost
      5  wsp credentials refused (4001), origin refused (4010)
      130  interrupted (Ctrl-C or SIGTERM without a prompt), after a clean close

    \b
    Examples:
      printf 'hello\\nworld\\n' | wsp connect ws://127.0.0.1:9001/ --json
      wsp connect wss://example.org/ws -H "Authorization: Bearer $TOKEN" --subprotocol chat
      echo 48656c6c6f | wsp connect --raw --binary ws://127.0.0.1:9001/
    """
    from wsproto_tools.cli.connect_term import (
        LineSource,
        Output,
        PipeSource,
        PromptSource,
        interactive_terminal,
    )
    from wsproto_tools.client.plain import PlainOptions, PlainSession
    from wsproto_tools.codec import SUBPROTOCOLS

    wsp_options = make_options(**opts)
    ctx = click.get_current_context()
    given_credentials = any(
        opts.get(name) and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
        for name in ("secret", "token")
    )
    ssl_context = client_ssl(url, opts.get("cafile"), bool(opts.get("insecure")))
    interactive = interactive_terminal()
    colour = interactive and not as_json and "NO_COLOR" not in os.environ
    out = Output(as_json=as_json, colour=colour)
    names = SUBPROTOCOLS if wsp_options.version == 2 else tuple(reversed(SUBPROTOCOLS))
    offered = tuple(dict.fromkeys((*subprotocols, *(() if raw else names))))
    session = PlainSession(
        url,
        PlainOptions(
            headers=headers,
            subprotocols=offered,
            origin=origin,
            ping_interval=ping_interval or None,
            ping_timeout=ping_interval or None,
            max_size=max_size or None,
            deflate=not no_deflate,
            ssl=ssl_context,
        ),
    )
    source: LineSource = PromptSource("> ", colour) if interactive else PipeSource()

    async def main() -> int:
        await session.open()
        chosen = session.subprotocol
        screen = source.screen()
        if chosen in SUBPROTOCOLS and not raw:
            from wsproto_tools.cli.connect_wsp import run_wsp

            await session.close()  # the wsp client opens its own connection
            wsp_options.headers = headers
            wsp_options.origin = origin
            wsp_options.ssl_context = ssl_context
            with screen:
                if interactive:
                    out.note(f"connected to {url} (wsp, {chosen}); type 'help', Ctrl-D to quit")
                return await run_wsp(url, wsp_options, source, out, wait=wait)
        from wsproto_tools.cli.connect_plain import run_plain

        if not raw and given_credentials:
            out.note("the server selected no wsp subprotocol: plain WebSocket, credentials unused")
        with screen:
            if interactive:
                details = [f"subprotocol {chosen}"] if chosen else []
                details += session.extensions
                extra = f" ({', '.join(details)})" if details else ""
                out.note(f"connected to {url}{extra}; type /help, Ctrl-D to quit")
            return await run_plain(session, source, out, binary=binary, wait=wait)

    status = run_async(main())
    if status:
        raise CommandExit(ExitStatus(status))
