"""``wsp pub URL TOPIC [MESSAGE ...]``: publish and wait for every acknowledgment."""

from __future__ import annotations

__all__ = ["pub"]

import asyncio
import sys
from typing import Any

import click

from wsproto_tools.cli.params import WS_URL, client_ssl
from wsproto_tools.cli.session_common import client_options, make_options, run_async
from wsproto_tools.cli.status import CommandExit, ExitStatus


@click.command()
@click.argument("url", type=WS_URL)
@click.argument("topic")
@click.argument("messages", nargs=-1)
@click.option("--hex", "as_hex", is_flag=True, help="MESSAGEs (or stdin lines) are hex bytes.")
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=float,
    metavar="S",
    help="How long to wait for the acknowledgments.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary line.")
@client_options
def pub(
    url: str,
    topic: str,
    messages: tuple[str, ...],
    as_hex: bool,
    timeout: float,
    as_json: bool,
    **opts: Any,
) -> None:
    """Publish each MESSAGE to TOPIC (or each stdin line with '-').

    URL is ws://HOST[:PORT][/PATH] or wss://… (TLS: the certificate is verified
    against the system's CAs, plus --cafile; --insecure skips the check).

    \b
    Exit status:
      0  every message was acknowledged by the server
      1  some were not acknowledged within --timeout
      2  usage error (e.g. a URL that is not ws:// or wss://, a port out of range)
      3  bad input (--hex MESSAGE that is not hex)
      4  cannot connect (refused, unknown host, TLS certificate, no wsp
         handshake answer within --handshake-timeout), connection lost, the
         server refused the publish (e.g. 1008: an invalid topic) or broke
         the protocol (e.g. a message over 1 MiB)
      5  credentials refused (4001), topic forbidden (4003), origin refused (4010)
      130  interrupted (Ctrl-C or SIGTERM)

    \b
    Examples:
      wsp pub ws://127.0.0.1:8765 news hello world
      printf 'a\\nb\\n' | wsp pub ws://127.0.0.1:8765 news -
      wsp pub --cafile ca.pem wss://example.net/ws news --hex 00ff
    """
    import json

    from wsproto_tools.client import Client

    if not messages:
        raise CommandExit(
            ExitStatus.USAGE,
            "give at least one MESSAGE, or '-' to read lines from stdin")
    lines: list[str] = []
    for message in messages:
        if message == "-":
            lines.extend(line.rstrip("\r\n") for line in sys.stdin)
        else:
            lines.append(message)
    payloads: list[bytes] = []
    for number, line in enumerate(lines, 1):
        if as_hex:
            try:
                payloads.append(bytes.fromhex(line))
            except ValueError:
                raise CommandExit(
                    ExitStatus.BAD_INPUT,
                    f"message {number} is not hex: {line[:40]!r}") from None
        else:
            payloads.append(line.encode("utf-8"))
    options = make_options(**opts)
    options.ssl_context = client_ssl(url, options.cafile, options.insecure)

    async def run() -> tuple[int, int]:
        async with Client(url, options) as client:
            futures = [await client.publish_nowait(topic, p) for p in payloads]
            done, _ = await asyncio.wait(futures, timeout=timeout) if futures else (set(), set())
            failures = [error for f in done if (error := f.exception()) is not None]
            if failures:  # refused by the server or the connection ended: say why
                raise client.error or failures[0]
            return len(done), len(payloads)

    acked, total = run_async(run())
    if as_json:
        click.echo(json.dumps({"topic": topic, "published": total, "acknowledged": acked}))
    if acked < total:
        click.echo(f"wsp: {total - acked} of {total} messages were not acknowledged", err=True)
        raise CommandExit(ExitStatus.PROBLEMS_FOUND)
    if not as_json:
        click.echo(
            f"published {total} message{'s' if total != 1 else ''} to {topic}, all acknowledged",
            err=True,
        )
