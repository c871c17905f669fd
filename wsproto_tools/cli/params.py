"""Click parameter types and option groups shared by several commands.

URLs and ports are checked while the command line is parsed, so a wrong one is a
usage error (status 2) with one line naming it, never a traceback later. Files are
checked when they are opened: missing, unreadable or a directory is bad input (3).
"""

from __future__ import annotations

__all__ = [
    "LISTEN_PORT",
    "WS_URL",
    "check_names",
    "client_ssl",
    "did_you_mean",
    "server_ssl",
    "tls_client_options",
    "tls_server_options",
]

import ssl
from collections.abc import Callable
from typing import Any

import click

from wsproto_tools.exceptions import ConfigError

#: A port to listen on: 0 asks the system for a free one.
LISTEN_PORT = click.IntRange(0, 65535)


class WsUrlType(click.ParamType):
    """A ``ws://`` or ``wss://`` URL, checked (scheme, host, port range)."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from wsproto_tools.transports.tls import parse_ws_url

        try:
            return parse_ws_url(str(value)).url
        except ConfigError as error:
            self.fail(str(error), param, ctx)


WS_URL = WsUrlType()


def tls_client_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--cafile F`` and ``--insecure`` for commands that connect to ``wss://`` URLs."""
    options = [
        click.option(
            "--cafile",
            type=click.Path(readable=False),
            envvar="WSP_CAFILE",
            help="Trust the CA certificates in this PEM file (wss://), besides the "
            "system's. Env: WSP_CAFILE.",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            help="Do not verify the server's TLS certificate (wss://); prints a warning.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def tls_server_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--certfile F --keyfile F`` (WSP_CERTFILE/WSP_KEYFILE): serve over TLS."""
    options = [
        click.option(
            "--certfile",
            type=click.Path(readable=False),
            envvar="WSP_CERTFILE",
            help="Serve wss:// with this PEM certificate chain. Env: WSP_CERTFILE.",
        ),
        click.option(
            "--keyfile",
            type=click.Path(readable=False),
            envvar="WSP_KEYFILE",
            help="The certificate's private key (PEM), if not in --certfile. Env: WSP_KEYFILE.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def client_ssl(url: str, cafile: str | None, insecure: bool) -> ssl.SSLContext | None:
    """The TLS context for ``url`` (None for ws://); warns on stderr with --insecure."""
    from wsproto_tools.transports.tls import client_context, parse_ws_url

    if not parse_ws_url(url).secure:
        if cafile or insecure:
            click.echo("wsp: warning: --cafile/--insecure have no effect on ws:// URLs", err=True)
        return None
    if insecure:
        click.echo(
            "wsp: warning: --insecure: the server's TLS certificate is not verified", err=True
        )
    return client_context(cafile, insecure)


def server_ssl(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """The server's TLS context, or None without --certfile."""
    from wsproto_tools.transports.tls import server_context

    if certfile is None:
        if keyfile is not None:
            raise click.UsageError("--keyfile needs --certfile")
        return None
    return server_context(certfile, keyfile)


def did_you_mean(word: str, choices: list[str]) -> str:
    """``"; did you mean X?"`` for the closest choice (case-insensitive), or ``""``."""
    import difflib

    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]}?" if close else ""


def check_names(values: tuple[str, ...], choices: list[str], option: str, what: str) -> None:
    """Refuse names that are not ``choices`` (case-insensitive), suggesting the closest."""
    known = {choice.lower() for choice in choices}
    for value in values:
        if value.lower() not in known:
            raise click.BadParameter(
                f"unknown {what} {value!r}{did_you_mean(value, choices)} "
                f"(known: {', '.join(choices)})",
                param_hint=option,
            )
