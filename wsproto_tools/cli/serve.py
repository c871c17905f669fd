"""``wsp serve``: the reference wsp server."""

from __future__ import annotations

__all__ = ["serve"]

import asyncio
import contextlib
import secrets
import signal
from pathlib import Path
from typing import Any

import click

from wsproto_tools.cli.params import LISTEN_PORT, server_ssl, tls_server_options
from wsproto_tools.cli.status import CommandExit, ExitStatus
from wsproto_tools.exceptions import ConfigError, WspError


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as error:
        raise CommandExit(
            ExitStatus.BAD_INPUT,
            f"--jwt-key {path}: {error.strerror or error}") from None
    if not key:
        raise CommandExit(ExitStatus.BAD_INPUT, f"--jwt-key {path}: the file is empty")
    from wsproto_tools.engine.auth import JwtVerifier
    from wsproto_tools.exceptions import ConfigError

    try:
        JwtVerifier(key)  # a PEM key that cannot verify tokens is refused now, not per token
    except ConfigError as error:
        raise CommandExit(ExitStatus.BAD_INPUT, f"--jwt-key {path}: {error}") from None
    return key


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=LISTEN_PORT,
    help="Port to listen on, 0-65535 (0: any free port).",
)
@click.option(
    "--secret",
    envvar="WSP_SECRET",
    metavar="S",
    help="Shared secret for challenge-response auth. Env: WSP_SECRET.",
)
@click.option(
    "--jwt-key",
    type=click.Path(readable=False, path_type=Path),
    help="JWT verification key: a PEM public key (RS256/ES256) or a file holding the HS256 secret.",
)
@click.option("--jwt-audience", metavar="AUD", help="Required JWT 'aud' claim.")
@click.option(
    "--jwt-allow-no-exp",
    is_flag=True,
    help="Accept JWTs without an 'exp' claim (they never expire; default: refused, 4001).",
)
@click.option("--no-auth", is_flag=True, help="Accept clients without credentials.")
@click.option(
    "--token-key",
    envvar="WSP_TOKEN_KEY",
    metavar="K",
    help="Key signing resume tokens; give every node the same one. "
    "Env: WSP_TOKEN_KEY (default: random per process).",
)
@click.option(
    "--history",
    default=1000,
    show_default=True,
    type=click.IntRange(0),
    help="Messages kept per topic for replay.",
)
@click.option("--history-age", type=float, metavar="S", help="Drop history older than S s.")
@click.option(
    "--history-bytes",
    default=64 << 20,
    show_default=True,
    type=click.IntRange(0),
    metavar="B",
    help="History bytes kept per topic (the oldest messages go first).",
)
@click.option(
    "--history-total",
    default=256 << 20,
    show_default=True,
    type=click.IntRange(0),
    metavar="B",
    help="History bytes kept over all topics (the oldest messages of any topic go first).",
)
@click.option(
    "--max-topics",
    default=100_000,
    show_default=True,
    type=click.IntRange(1),
    help="More topics are refused (1008).",
)
@click.option(
    "--max-topics-per-session",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="Topics one session may make, and subscriptions it may hold; more: 1008.",
)
@click.option(
    "--max-detached",
    default=10_000,
    show_default=True,
    type=click.IntRange(0),
    help="Disconnected sessions held for resume; the oldest are dropped first.",
)
@click.option(
    "--max-detached-bytes",
    default=64 << 20,
    show_default=True,
    type=click.IntRange(0),
    metavar="B",
    help="What disconnected sessions hold, all together; the oldest are dropped first.",
)
@click.option("--max-connections", default=10_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--max-message-size",
    default=1 << 20,
    show_default=True,
    type=click.IntRange(64),
    metavar="B",
    help="Larger messages are closed with 1009.",
)
@click.option(
    "--rate-limit",
    default=50_000.0,
    show_default=True,
    type=float,
    metavar="N",
    help="WebSocket messages per second per connection (0: off).",
)
@click.option(
    "--burst",
    default=100_000.0,
    show_default=True,
    type=float,
    help="Token bucket depth for the rate limit.",
)
@click.option(
    "--handshake-timeout",
    default=10.0,
    show_default=True,
    type=float,
    metavar="S",
    help="Clients that have not finished the handshake are cut.",
)
@click.option("--heartbeat-interval", default=15.0, show_default=True, type=float, metavar="S")
@click.option("--heartbeat-timeout", default=45.0, show_default=True, type=float, metavar="S")
@click.option(
    "--resume-lifetime",
    default=300.0,
    show_default=True,
    type=float,
    metavar="S",
    help="How long a disconnected session can be resumed.",
)
@click.option(
    "--max-buffer",
    default=4 << 20,
    show_default=True,
    type=click.IntRange(1024),
    metavar="B",
    help="Output budget per session: unsent plus unacknowledged bytes; over it: 4005.",
)
@click.option(
    "--origin", "origins", multiple=True, help="Allowed Origin header (repeatable; default: any)."
)
@click.option("--deflate", is_flag=True, help="Offer permessage-deflate (RFC 7692).")
@click.option(
    "--inspect",
    is_flag=True,
    help="Serve the inspector feed at /inspect (needs --admin-secret, or --jwt-key for "
    'tokens with "wsp": {"admin": true}; docs/inspect.md).',
)
@click.option(
    "--admin-secret",
    envvar="WSP_ADMIN_SECRET",
    metavar="S",
    help="The inspector feed's credential (Authorization: Bearer S). Env: WSP_ADMIN_SECRET.",
)
@click.option(
    "--inspect-queue",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    metavar="N",
    help="Records queued per inspector; when full, the oldest are dropped (and counted).",
)
@click.option(
    "--inspect-budget",
    default=0.02,
    show_default=True,
    type=click.FloatRange(0.001, 1.0),
    metavar="F",
    help="Share of the server's time the inspector feed may take (1: no limit); "
    "over it, records are dropped.",
)
@click.option(
    "--record",
    "record_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Record every WebSocket session, as it happens, to a pcapng file in DIR "
    "(made if missing; docs/replay.md, \"Recording with wsp serve --record\").",
)
@click.option(
    "--record-max-bytes",
    default=64 << 20,
    show_default=True,
    type=click.IntRange(1024),
    metavar="B",
    help="A session's file that passes B bytes goes on in a new file (...-part2.pcapng).",
)
@click.option(
    "--record-max-files",
    default=1000,
    show_default=True,
    type=click.IntRange(0),
    metavar="K",
    help="DIR keeps at most K recordings; the oldest closed ones are deleted "
    "(0: no limit). With both limits DIR holds about K x B bytes at most.",
)
@click.option(
    "--record-plaintext",
    is_flag=True,
    help="Also record TLS sessions, as their decrypted WebSocket stream "
    "(without it they are not recorded). wsp-encrypted messages stay ciphertext.",
)
@click.option(
    "--broker",
    envvar="WSP_BROKER",
    default="memory",
    show_default=True,
    metavar="URL",
    help="Where topics live: 'memory' (this process) or nats://HOST:PORT[,nats://…] "
    "(NATS JetStream: several nodes share topics, sessions resume on any node; "
    "give every node the same --token-key and credentials). Env: WSP_BROKER.",
)
@click.option(
    "--nats-creds",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="NATS credentials file (JWT and NKey seed) for --broker nats://.",
)
@click.option(
    "--nats-prefix",
    default="wsp",
    show_default=True,
    metavar="P",
    help="Prefix of this cluster's JetStream streams, subjects and buckets.",
)
@click.option(
    "--nats-replicas",
    default=1,
    show_default=True,
    type=click.IntRange(1, 5),
    metavar="N",
    help="JetStream replicas of every stream and bucket (3 on a NATS cluster).",
)
@tls_server_options
def serve(
    host: str,
    port: int,
    secret: str | None,
    jwt_key: Path | None,
    jwt_audience: str | None,
    jwt_allow_no_exp: bool,
    no_auth: bool,
    token_key: str | None,
    history: int,
    history_age: float | None,
    history_bytes: int,
    history_total: int,
    max_topics: int,
    max_topics_per_session: int,
    max_detached: int,
    max_detached_bytes: int,
    max_connections: int,
    max_message_size: int,
    rate_limit: float,
    burst: float,
    handshake_timeout: float,
    heartbeat_interval: float,
    heartbeat_timeout: float,
    resume_lifetime: float,
    max_buffer: int,
    origins: tuple[str, ...],
    deflate: bool,
    inspect: bool,
    admin_secret: str | None,
    inspect_queue: int,
    inspect_budget: float,
    record_dir: Path | None,
    record_max_bytes: int,
    record_max_files: int,
    record_plaintext: bool,
    broker: str,
    nats_creds: Path | None,
    nats_prefix: str,
    nats_replicas: int,
    certfile: str | None,
    keyfile: str | None,
) -> None:
    """Run the reference wsp server (pub/sub, echo, /healthz, /metrics).

    Authentication is on by default: with neither --secret, WSP_SECRET nor
    --jwt-key, a secret is generated and printed with a command to connect.
    With --certfile (and --keyfile, unless the key is in the same file) it serves
    wss://, and /healthz and /metrics over https. SIGINT/SIGTERM shut down
    gracefully: clients are told to reconnect (1001).

    \b
    Exit status: 0 after a graceful shutdown; 2 bad options (a port out of
    0-65535, --keyfile without --certfile); 3 a certificate or key, or a
    --jwt-key file, that cannot be loaded or used, or a --record directory that
    cannot be made or written; 4 the port cannot be bound, or NATS cannot be
    reached at start-up (--broker).

    \b
    Examples:
      wsp serve --port 0 --no-auth
      wsp serve --certfile cert.pem --keyfile key.pem   # wss://
      wsp serve --no-auth --record recordings/   # every session to pcapng
      WSP_SECRET=s3cret wsp serve --broker nats://127.0.0.1:4222 --token-key K   # a node
    """
    from wsproto_tools.server import ServerConfig, WspServer

    if no_auth and (secret or jwt_key):
        raise CommandExit(
            ExitStatus.USAGE,
            "--no-auth cannot be combined with --secret/WSP_SECRET or --jwt-key")
    if inspect and not admin_secret and jwt_key is None:
        raise CommandExit(
            ExitStatus.USAGE,
            "--inspect needs --admin-secret (or WSP_ADMIN_SECRET), or --jwt-key "
            'for tokens with the admin claim "wsp": {"admin": true}',
        )
    if record_plaintext and record_dir is None:
        raise CommandExit(ExitStatus.USAGE, "--record-plaintext needs --record DIR")
    nats_options = None
    if broker != "memory":
        nats_options = _nats_options(broker, nats_creds, nats_prefix, nats_replicas,
                                     history, history_age, history_bytes, resume_lifetime)
        if not token_key:
            raise CommandExit(
                ExitStatus.USAGE,
                "--broker nats://… needs --token-key (or WSP_TOKEN_KEY), the same on every "
                "node, so that a session resumes on any of them")
    context = server_ssl(certfile, keyfile)
    generated = None
    if not no_auth and not secret and jwt_key is None:
        generated = secret = secrets.token_urlsafe(24)
    config = ServerConfig(
        host=host,
        port=port,
        secret=secret.encode() if secret else None,
        jwt_key=_read_key(jwt_key) if jwt_key else None,
        jwt_audience=jwt_audience,
        jwt_allow_no_exp=jwt_allow_no_exp,
        no_auth=no_auth,
        token_key=token_key.encode() if token_key else None,
        history=history,
        history_age=history_age,
        history_bytes=history_bytes,
        history_total=history_total,
        max_topics=max_topics,
        max_topics_per_session=max_topics_per_session,
        max_detached=max_detached,
        max_detached_bytes=max_detached_bytes,
        max_connections=max_connections,
        max_message_size=max_message_size,
        rate=rate_limit,
        burst=burst,
        handshake_timeout=handshake_timeout,
        heartbeat_interval=heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout,
        resume_lifetime=resume_lifetime,
        max_buffer=max_buffer,
        origins=origins or None,
        compression=deflate,
        ssl=context,
        inspect=inspect,
        admin_secret=admin_secret.encode() if inspect and admin_secret else None,
        inspect_queue=inspect_queue,
        inspect_budget=inspect_budget,
        record_dir=str(record_dir) if record_dir is not None else None,
        record_max_bytes=record_max_bytes,
        record_max_files=record_max_files,
        record_plaintext=record_plaintext,
    )
    async def run() -> None:
        # signals count from the start: importing and reaching NATS can take seconds
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        network = None
        if nats_options is not None:
            from wsproto_tools.server.nats_broker import NatsBroker

            network = NatsBroker(nats_options)
        server = WspServer(config, network)
        starting = asyncio.ensure_future(server.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # stopped while starting: bounded, whatever NATS does
            starting.cancel()
            await asyncio.wait({starting}, timeout=2.0)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await server.shutdown()
            raise KeyboardInterrupt
        try:
            starting.result()
        except WspError as error:
            stopping.cancel()
            if type(error).__name__ == "BrokerUnavailable":
                raise CommandExit(ExitStatus.NETWORK, str(error)) from None
            raise
        if network is not None:
            click.echo(f"wsp serve: broker {broker} (node {network.node}, prefix "
                       f"{nats_prefix})", err=True)
        url = server.url
        methods = ", ".join(server.auth.methods)
        click.echo(
            f"wsp serve: listening on {url} (auth: {methods}; GET /healthz, /metrics)", err=True
        )
        if record_dir is not None:
            limit = f"at most {record_max_files} files" if record_max_files else "no file limit"
            tls = (
                "; TLS sessions are not recorded (--record-plaintext records them)"
                if context is not None and not record_plaintext
                else ""
            )
            click.echo(
                f"wsp serve: recording sessions to {record_dir} (pcapng, {limit} of "
                f"{record_max_bytes:,} bytes{tls})",
                err=True,
            )
        if inspect:
            click.echo(f"wsp serve: inspector feed on {url}/inspect (wsp inspect {url})", err=True)
        if generated is not None:
            click.echo(
                "wsp serve: no credentials configured, so this secret was generated "
                "(set WSP_SECRET or --secret to choose one):",
                err=True,
            )
            click.echo(f"    {generated}", err=True)
            click.echo("    connect with:", err=True)
            click.echo(f"    WSP_SECRET={generated} wsp sub {url} demo", err=True)
            if url.startswith("wss://"):
                click.echo("    (add --cafile CA.pem when a private CA signed the certificate)",
                           err=True)
        await stopping
        click.echo("wsp serve: shutting down (clients told to reconnect)", err=True)
        await server.shutdown()

    asyncio.run(run())


def _nats_options(
    broker: str, creds: Path | None, prefix: str, replicas: int, history: int,
    history_age: float | None, history_bytes: int, lifetime: float,
) -> Any:
    """--broker nats://… and its options, checked (status 2 when they are wrong)."""
    from wsproto_tools.server.nats_options import NatsOptions

    servers = [part.strip() for part in broker.split(",") if part.strip()]
    try:
        return NatsOptions(
            servers, prefix=prefix, creds=str(creds) if creds else None, history=history,
            history_age=history_age, history_bytes=history_bytes, dedup_window=lifetime,
            replicas=replicas,
        )
    except ConfigError as error:
        raise CommandExit(ExitStatus.USAGE, str(error)) from None
