"""Options and helpers shared by ``wsp pub``, ``wsp sub`` and ``wsp connect``."""

from __future__ import annotations

__all__ = ["client_options", "make_options", "run_async"]

from collections.abc import Callable
from typing import Any

import click

from wsproto_tools.cli.env import run_async
from wsproto_tools.cli.params import tls_client_options


def client_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--secret/--token (WSP_SECRET/WSP_TOKEN), --wire-version, back-off, TLS, handshake timeout."""
    options = [
        click.option(
            "--secret",
            envvar="WSP_SECRET",
            metavar="S",
            help="Shared secret (challenge-response). Env: WSP_SECRET.",
        ),
        click.option(
            "--token",
            envvar="WSP_TOKEN",
            metavar="JWT",
            help="A JWT to authenticate with. Env: WSP_TOKEN.",
        ),
        click.option(
            "--wire-version",
            type=click.Choice(["1", "2"]),
            default="2",
            show_default=True,
            help="Preferred wsp wire version (subprotocol).",
        ),
        click.option(
            "--max-attempts",
            type=int,
            default=None,
            metavar="N",
            help="Give up after N reconnect attempts in a row (default: never).",
        ),
        click.option(
            "--backoff-base",
            type=float,
            default=0.1,
            show_default=True,
            metavar="S",
            help="First reconnect delay ceiling (full jitter).",
        ),
        click.option(
            "--backoff-cap",
            type=float,
            default=30.0,
            show_default=True,
            metavar="S",
            help="Largest reconnect delay ceiling.",
        ),
        click.option("--seed", type=int, default=None, help="Seed for the back-off jitter."),
        click.option(
            "--handshake-timeout",
            default=10.0,
            show_default=True,
            type=click.FloatRange(min=0, min_open=True),
            metavar="S",
            help="Give up a connection attempt whose wsp handshake (TCP connect to "
            "HandshakeResponse) takes longer.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return tls_client_options(func)


def make_options(
    secret: str | None,
    token: str | None,
    wire_version: str,
    max_attempts: int | None,
    backoff_base: float,
    backoff_cap: float,
    seed: int | None,
    cafile: str | None = None,
    insecure: bool = False,
    handshake_timeout: float = 10.0,
    **extra: Any,
) -> Any:
    """A ClientOptions from the shared options (imports the client lazily)."""
    from wsproto_tools.client import ClientOptions

    if secret and token:
        raise click.UsageError("give --secret or --token, not both")
    return ClientOptions(
        secret=secret.encode("utf-8") if secret else None,
        token=token or None,
        version=int(wire_version),
        max_attempts=max_attempts,
        backoff_base=backoff_base,
        backoff_cap=backoff_cap,
        seed=seed,
        cafile=cafile,
        insecure=insecure,
        open_timeout=handshake_timeout,
        **extra,
    )
