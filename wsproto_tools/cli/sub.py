"""``wsp sub URL TOPIC ...``: print deliveries; reconnects and resumes by itself."""

from __future__ import annotations

__all__ = ["sub"]

import asyncio
import contextlib
import json
import sys
from typing import Any

import click

from wsproto_tools.cli.params import WS_URL, client_ssl
from wsproto_tools.cli.session_common import client_options, make_options, run_async


@click.command()
@click.argument("url", type=WS_URL)
@click.argument("topics", nargs=-1, required=True)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per line: topic, offset, epoch, data (data_b64 for "
    "binary); events as objects with an 'event' key.",
)
@click.option(
    "--count", type=click.IntRange(1), default=None, metavar="N", help="Exit after N deliveries."
)
@client_options
def sub(
    url: str,
    topics: tuple[str, ...],
    as_json: bool,
    count: int | None,
    **opts: Any,
) -> None:
    """Subscribe to TOPICs and print each delivery, exactly once and in order.

    Connection losses are repaired by reconnecting (back-off with full jitter) and
    resuming; if the server's history no longer covers a gap, a continuity_lost
    event says which offsets are gone. A refusal by the server (an invalid or
    forbidden topic, refused credentials) ends the command with the server's
    reason. URL is ws://… or wss://… (see --cafile, --insecure).

    \b
    Exit status:
      0  --count deliveries were printed
      2  usage error (e.g. a URL that is not ws:// or wss://, a port out of range)
      4  cannot connect (refused, unknown host, TLS certificate, no wsp
         handshake answer within --handshake-timeout), gave up reconnecting
         (--max-attempts), the server refused the subscription or ended the
         session (e.g. 1008: an invalid topic), or broke the protocol (e.g. a
         message over 1 MiB)
      5  credentials refused (4001), topic forbidden (4003), origin refused (4010)
      130  interrupted (Ctrl-C or SIGTERM)

    \b
    Examples:
      wsp sub ws://127.0.0.1:8765 news
      wsp sub ws://127.0.0.1:8765 news chat --json --count 10
      wsp sub --cafile ca.pem wss://example.net/ws news
    """
    from wsproto_tools.client import Client
    from wsproto_tools.engine.events import ContinuityLostNotice, Delivery
    from wsproto_tools.exceptions import ConnectionFailed, WspError
    from wsproto_tools.render.session import (
        delivery_json,
        delivery_line,
        event_json,
        event_line,
    )

    out = sys.stdout

    def emit(name: str, fields: dict[str, Any]) -> None:
        if as_json:
            out.write(json.dumps(event_json(name, fields)) + "\n")
        else:
            click.echo(event_line(name, fields), err=True)
        out.flush()

    options = make_options(**opts)
    options.ssl_context = client_ssl(url, options.cafile, options.insecure)

    async def run() -> None:
        client = Client(url, options, on_event=emit)
        tasks: list[asyncio.Task[None]] = []
        failures: list[WspError] = []
        try:
            await client.connect()
            merged: asyncio.Queue[Any] = asyncio.Queue(1024)

            async def forward(topic: str) -> None:
                try:
                    subscription = await client.subscribe(topic)
                    async for item in subscription:
                        await merged.put(item)
                except TimeoutError:
                    failures.append(
                        ConnectionFailed(
                            f"the server did not confirm the subscription to {topic!r} "
                            f"within {options.open_timeout:g} s"
                        )
                    )
                except WspError as error:  # refused (client.error says why) or closed
                    failures.append(error)
                await merged.put(None)

            async def discard_data() -> None:
                # data messages are not deliveries: read and drop them, or the client
                # stops reading the socket once its data inbox is full (backpressure)
                with contextlib.suppress(WspError):
                    while True:
                        await client.data.get()

            tasks = [asyncio.create_task(forward(t)) for t in topics]
            tasks.append(asyncio.create_task(discard_data()))
            seen = 0
            ended = 0
            while count is None or seen < count:
                item = await merged.get()
                if item is None:
                    ended += 1
                    if ended == len(topics):
                        break
                    continue
                if isinstance(item, Delivery):
                    seen += 1
                    out.write(
                        (json.dumps(delivery_json(item)) if as_json else delivery_line(item)) + "\n"
                    )
                    out.flush()
                elif isinstance(item, ContinuityLostNotice):
                    pass  # already reported through on_event
            if count is None or seen < count:
                error = client.error or (failures[0] if failures else None)
                if error is not None:
                    raise error
        finally:
            for task in tasks:
                task.cancel()
            await client.close()

    run_async(run())
