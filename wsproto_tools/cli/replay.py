"""``wsp replay``: play recorded WebSocket traffic again and diff the answers (docs/replay.md)."""

from __future__ import annotations

__all__ = ["replay"]

import sys
from typing import Any

import click

from wsproto_tools.cli.params import WS_URL, client_ssl, tls_client_options, tls_server_options
from wsproto_tools.cli.status import CommandExit, ExitStatus


def _headers(values: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{value!r}: expected 'Name: value'", param_hint="-H")
        out.append((name.strip(), rest.strip()))
    return out


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.argument("url", required=False, type=WS_URL)
@click.option("--conn", "conns", multiple=True, type=click.IntRange(1), metavar="N",
              help="Only connection N of INPUT (repeatable).")
@click.option("--to-cassette", metavar="FILE",
              help="Write INPUT as a cassette to FILE ('-': stdout) and stop.")
@click.option("--serve", is_flag=True,
              help="Play the recorded server side to the clients that connect.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve: address.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="With --serve: port (0: any free one).")
@click.option("--secret", envvar="WSP_SECRET", metavar="S",
              help="Shared secret to authenticate wsp sessions with (--serve: to accept "
              "them). Env: WSP_SECRET.")
@click.option("--token", envvar="WSP_TOKEN", metavar="JWT",
              help="A JWT to authenticate wsp sessions with. Env: WSP_TOKEN.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="Add (or replace) a header of every upgrade request (repeatable).")
@click.option("--timing", type=click.Choice(["causal", "original", "fast"]), default="causal",
              show_default=True,
              help="causal: wait for the recorded answer before the next message; original: "
              "the recorded gaps (--speed); fast: as fast as flow control allows.")
@click.option("--speed", type=click.FloatRange(0, min_open=True), default=1.0,
              show_default=True, metavar="X", help="With --timing original: X times faster.")
@click.option("--wait", type=click.FloatRange(0), default=5.0, show_default=True, metavar="S",
              help="Longest wait for a recorded answer (causal) and for the last answers.")
@click.option("--connections", type=click.IntRange(1), default=1, show_default=True,
              metavar="N", help="Load test: N copies of each connection at once.")
@click.option("--loop", is_flag=True, help="Load test: play each copy again until --duration.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), metavar="R",
              help="Load test: R messages/s in all.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), metavar="S",
              help="Load test: stop after S seconds (needed with --loop).")
@click.option("--ignore", "ignores", multiple=True, metavar="PATH",
              help="Do not compare this field (payload.ts, header.timestamp, "
              "Deliver:payload.data.ts); repeatable.")
@click.option("--ignore-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Ignore rules, one a line (# comments).")
@click.option("--learn", type=click.IntRange(0), default=0, show_default=True, metavar="N",
              help="Replay N times first and ignore the fields that differ between those runs.")
@click.option("--json", "json_file", metavar="FILE",
              help="Also write the report as JSON to FILE ('-': stdout, instead of the table).")
@click.option("--open-timeout", type=click.FloatRange(0, min_open=True), default=10.0,
              show_default=True, metavar="S", help="Longest wait for each opening handshake.")
@tls_client_options
@tls_server_options
@click.pass_obj
def replay(env: Any, input_path: str, url: str | None, conns: tuple[int, ...],
           to_cassette: str | None, serve: bool, host: str, port: int, secret: str | None,
           token: str | None, headers: tuple[str, ...], timing: str, speed: float,
           wait: float, connections: int, loop: bool, rate: float | None,
           duration: float | None, ignores: tuple[str, ...], ignore_file: str | None,
           learn: int, json_file: str | None, open_timeout: float, cafile: str | None,
           insecure: bool, certfile: str | None, keyfile: str | None) -> None:
    """Replay the WebSocket connections of INPUT against URL and diff the answers.

    \b
    INPUT: a pcap/pcapng capture (also gzipped; what wsp serve --record writes),
    a cassette (docs/replay.md), or the NDJSON of wsp decode / wsp inspect.
    wsp sessions are replayed through the engine with the credentials given
    (--secret/--token): ids, sequences, acks, nonces and encryption are new.

    Exit status: 0 no difference beyond the ignored and learned noise (load
    test: every connection played); 1 differences; 2 wrong usage; 3 INPUT is
    unreadable; 4 the target cannot be reached; 5 it refuses the credentials.
    """
    from wsproto_tools.cli.replay_input import load_input

    load = connections > 1 or loop or rate is not None
    if loop and duration is None:
        raise click.UsageError("--loop needs --duration S (a load test that stops by itself)")
    if serve and url:
        raise click.UsageError("--serve takes no URL: it listens (--host, --port)")
    if not serve and not url and to_cassette is None:
        raise click.UsageError("give the URL to replay against, --serve, or --to-cassette FILE")
    if secret and token:
        raise click.UsageError("give --secret or --token, not both")
    extra = _headers(headers)
    rules = list(ignores)
    if ignore_file:
        from wsproto_tools.replay.ignore import read_ignore_file

        rules += read_ignore_file(ignore_file)
    cassette = load_input(input_path, conns)
    if to_cassette is not None:
        _write_cassette(cassette, to_cassette)
        return
    if not cassette.connections:
        raise CommandExit(ExitStatus.BAD_INPUT, f"{input_path}: no WebSocket connection to replay")
    if serve:
        from wsproto_tools.cli.replay_serve import serve_recording

        if token:
            raise click.UsageError("--serve authenticates wsp sessions with --secret, not --token")
        serve_recording(env, cassette, host=host, port=port, secret=secret,
                        timing=timing, speed=speed, certfile=certfile, keyfile=keyfile)
        return
    assert url is not None
    from wsproto_tools.replay.player import PlayOptions

    options = PlayOptions(
        timing=timing, speed=speed, wait=wait, open_timeout=open_timeout, headers=extra,
        secret=secret.encode() if secret else None, token=token,
        ssl_context=client_ssl(url, cafile, insecure),
    )
    if load:
        from wsproto_tools.cli.replay_run import run_load_test

        run_load_test(env, cassette, url, options, copies=connections, loop=loop, rate=rate,
                      duration=duration, json_file=json_file)
        return
    from wsproto_tools.cli.replay_run import run_diff

    run_diff(env, cassette, url, options, rules=rules, learn=learn, json_file=json_file)


def _write_cassette(cassette: Any, target: str) -> None:
    if target == "-":
        sys.stdout.writelines(cassette.lines())
        sys.stdout.flush()
        return
    with open(target, "w", encoding="utf-8") as out:
        out.writelines(cassette.lines())
