"""``wsp replay INPUT --serve``: play the recorded server side to clients that connect."""

from __future__ import annotations

__all__ = ["serve_recording"]

import secrets
from typing import Any

import click

from wsproto_tools.cli.env import run_async


def serve_recording(env: Any, cassette: Any, *, host: str, port: int, secret: str | None,
                    timing: str, speed: float, certfile: str | None,
                    keyfile: str | None) -> None:
    """Listen until SIGTERM or Ctrl-C; one line on stderr per client when it is done."""
    from wsproto_tools.cli.params import server_ssl
    from wsproto_tools.replay import serve as replay_serve
    from wsproto_tools.replay.plan import is_wsp_connection

    wsp = any(is_wsp_connection(c, cassette.messages_of(n))
              for n, c in cassette.connections.items())
    generated = None
    if wsp and not secret:
        generated = secret = secrets.token_urlsafe(24)
    context = server_ssl(certfile, keyfile)
    options = replay_serve.ServeOptions(
        host=host, port=port, timing="original" if timing == "original" else "fast",
        speed=speed, secret=secret.encode() if secret else None, ssl=context,
        on_client=lambda log: click.echo(f"wsp replay: {log.line()}", err=True),
    )

    def ready(server: Any) -> None:
        count = len(cassette.connections)
        click.echo(f"wsp replay: serving {count} recorded connection"
                   f"{'s' if count != 1 else ''} on {server.url}", err=True)
        if generated:
            click.echo("wsp replay: no --secret given, so this one was generated for the "
                       f"wsp sessions: {generated}", err=True)

    run_async(replay_serve.serve_recording(cassette, options, ready=ready))
