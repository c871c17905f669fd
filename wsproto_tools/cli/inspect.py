"""``wsp inspect URL``: print the inspector feed of a ``wsp serve --inspect``."""

from __future__ import annotations

__all__ = ["inspect"]

import json
import sys

import click

from wsproto_tools.cli.params import WS_URL, client_ssl, tls_client_options


@click.command()
@click.argument("url", type=WS_URL)
@click.option("--ndjson", is_flag=True, help="One JSON record per line (docs/inspect.md).")
@click.option(
    "--session", type=click.IntRange(1), metavar="ID", help="Only this session's records."
)
@click.option(
    "--topic", "topics", multiple=True, metavar="T", help="Only messages on topic T (repeatable)."
)
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="NAME",
    help="Only this wsp message type or event kind (repeatable), e.g. Publish, closed.",
)
@click.option(
    "--admin-secret",
    envvar="WSP_ADMIN_SECRET",
    metavar="S",
    help="The server's admin secret. Env: WSP_ADMIN_SECRET.",
)
@click.option(
    "--token",
    envvar="WSP_ADMIN_TOKEN",
    metavar="JWT",
    help='Instead of the secret: a JWT with the claim "wsp": {"admin": true}, signed for '
    "the server's --jwt-key. Env: WSP_ADMIN_TOKEN.",
)
@tls_client_options
def inspect(
    url: str,
    ndjson: bool,
    session: int | None,
    topics: tuple[str, ...],
    types: tuple[str, ...],
    admin_secret: str | None,
    token: str | None,
    cafile: str | None,
    insecure: bool,
) -> None:
    """Print the inspector feed of a wsp server started with --inspect: session
    events and every wsp message in both directions, decoded, until Ctrl-C.

    URL is the server's ws:// or wss:// address; /inspect is added. The filters
    are applied by the server. The credential is the server's admin secret
    (--admin-secret) or a JWT with the admin claim (--token); one of the two.
    A line per record by default (time, session, direction, type, summary);
    --ndjson prints the records as they come.

    \b
    Exit status:
      0  stopped with Ctrl-C or SIGTERM (records and dropped counts on stderr)
      2  usage error (neither or both of --admin-secret and --token, a URL
         that is not ws:// or wss://)
      4  cannot connect, the feed is off, or the server went away
      5  the credential was refused (HTTP 403), or the token expired (4001)
    """
    from wsproto_tools.cli.env import run_async
    from wsproto_tools.cli.status import CommandExit, ExitStatus

    if admin_secret and token:
        raise CommandExit(ExitStatus.USAGE, "give --admin-secret or --token, not both")
    if not admin_secret and not token:
        raise CommandExit(
            ExitStatus.USAGE,
            "--admin-secret (or WSP_ADMIN_SECRET) or --token (or WSP_ADMIN_TOKEN) is required",
        )
    from wsproto_tools.client.inspect import feed_url, inspector_feed
    from wsproto_tools.render.inspect import record_line

    context = client_ssl(url, cafile, insecure)
    target = feed_url(url, session=session, topics=topics, types=types)
    counts = {"records": 0, "dropped": 0}
    out = sys.stdout

    async def run() -> None:
        async for record in inspector_feed(
            target, admin_secret or None, token=token or None, ssl_context=context
        ):
            if record.get("kind") == "dropped":
                counts["dropped"] += int(record.get("count", 0))
            else:
                counts["records"] += 1
            if ndjson:
                out.write(json.dumps(record, separators=(",", ":")) + "\n")
            else:
                out.write(record_line(record) + "\n")
            out.flush()

    try:
        run_async(run())
    except KeyboardInterrupt:
        click.echo(
            f"wsp inspect: {counts['records']} records, {counts['dropped']} dropped", err=True
        )
        raise CommandExit(ExitStatus.OK) from None
