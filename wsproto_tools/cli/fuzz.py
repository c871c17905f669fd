"""``wsp fuzz``: RFC 6455 / RFC 7692 conformance fuzzing of a server or a client.

Exit status: 0 when no case failed; 1 when a case's verdict is FAILED or its
close verdict is FAILED, WRONG CODE or UNCLEAN; 2 usage error; 4 the server
cannot be reached or does not upgrade; 130 interrupted.
"""

from __future__ import annotations

__all__ = ["fuzz"]

import asyncio
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from wsproto_tools.cli.env import Environment, fail, guarded
from wsproto_tools.cli.status import ExitStatus


def _parse_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme == "wss":
        raise click.BadParameter("wss:// is not supported; fuzz a ws:// endpoint", param_hint="URL")
    if parts.scheme != "ws" or not parts.hostname:
        raise click.BadParameter(f"expected ws://HOST:PORT/PATH, got {url!r}", param_hint="URL")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


@click.command("fuzz")
@click.argument("url", required=False)
@click.option(
    "--suite",
    type=click.Choice(["rfc6455"]),
    default="rfc6455",
    show_default=True,
    help="The case suite.",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Be the fuzzing server for a WebSocket client (Autobahn URL scheme).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="--serve: address to bind.")
@click.option(
    "--port",
    type=int,
    default=9001,
    show_default=True,
    help="--serve: port to listen on (0: any free port).",
)
@click.option(
    "--cases",
    "include",
    metavar="PATTERNS",
    help="Only these cases: comma-separated globs or prefixes, e.g. '1.*,6.4.*'.",
)
@click.option("--exclude", metavar="PATTERNS", help="Skip these cases, e.g. '12.*,13.*'.")
@click.option(
    "--timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds per case (compression and performance cases allow more).",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Cases run in parallel (client mode).",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Seed for masking keys and generated payloads.",
)
@click.option("--perf", is_flag=True, help="Include the performance cases (area 9).")
@click.option(
    "--json-report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON report here.",
)
@click.option(
    "--html-report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained HTML report here.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the JSON report on stdout instead of tables."
)
@click.option(
    "--exit-after-report", is_flag=True, help="--serve: stop after the first /updateReports."
)
@click.pass_obj
@guarded
def fuzz(
    env: Environment,
    url: str | None,
    suite: str,
    serve: bool,
    host: str,
    port: int,
    include: str | None,
    exclude: str | None,
    timeout: float,
    jobs: int,
    seed: int,
    perf: bool,
    json_report: Path | None,
    html_report: Path | None,
    as_json: bool,
    exit_after_report: bool,
) -> None:
    """Run conformance cases against an echo server at URL, or (--serve) a client.

    Case ids follow Autobahn|Testsuite. By default every case except the
    performance area 9 runs; --cases '1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*' is the
    247-case core without compression. See docs/fuzz.md.

    Exit status: 0 no case failed; 1 a case FAILED, or its close verdict is
    FAILED, WRONG CODE or UNCLEAN; 2 usage error; 4 the server cannot be
    reached or does not upgrade.
    """
    from wsproto_tools.fuzz.catalog import select_cases
    from wsproto_tools.fuzz.runner import RunOptions

    if serve == bool(url):
        raise click.UsageError("give either URL (test a server) or --serve (test a client)")
    cases = select_cases(include, exclude, perf=perf)
    if not cases:
        raise click.UsageError("no case matches --cases/--exclude")
    options = RunOptions(timeout=timeout, seed=seed, jobs=jobs)
    meta: dict[str, Any] = {
        "timeout": timeout, "jobs": jobs, "seed": seed, "perf": perf,
        "cases": include, "exclude": exclude,
    }  # fmt: skip
    writer = _ReportWriter(env, json_report, html_report, as_json, meta)
    if serve:
        status = _serve(env, cases, options, host, port, writer, exit_after_report)
    else:
        assert url is not None
        status = _client(env, cases, options, url, writer)
    sys.exit(int(status))


class _ReportWriter:
    def __init__(
        self,
        env: Environment,
        json_path: Path | None,
        html_path: Path | None,
        as_json: bool,
        meta: dict[str, Any],
    ) -> None:
        self.env = env
        self.json_path = json_path
        self.html_path = html_path
        self.as_json = as_json
        self.meta = meta

    def write(self, results: list[Any], mode: str, target: str, started: str, secs: float) -> int:
        from wsproto_tools.fuzz.report import build_report

        report = build_report(
            results, mode=mode, target=target, started=started, duration=secs, options=self.meta
        )
        if self.json_path is not None:
            self.json_path.write_text(json.dumps(report, indent=1) + "\n")
        if self.html_path is not None:
            from wsproto_tools.render.fuzz_html import render_html

            self.html_path.write_text(render_html(report), encoding="utf-8")
        if self.as_json:
            self.env.stdout.write(json.dumps(report) + "\n")
        else:
            from wsproto_tools.render.fuzz import problems_table, summary_table

            self.env.console.print(summary_table(report))
            problems = problems_table(report)
            if problems is not None:
                self.env.console.print(problems)
            failed = report["summary"]["failed"]
            self.env.console.print(
                f"{report['summary']['cases']} cases in {secs:.2f} s: "
                + ("no case failed" if not failed else f"[bold red]{failed} failed[/]")
            )
        failed_cases: int = report["summary"]["failed"]
        return failed_cases


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _progress(env: Environment) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=env.err_console,
        transient=True,
    )


def _client(
    env: Environment, cases: list[Any], options: Any, url: str, writer: _ReportWriter
) -> ExitStatus:
    from wsproto_tools.exceptions import ConnectionFailed, HandshakeError
    from wsproto_tools.fuzz.runner import run_against_server
    from wsproto_tools.transports.raw import open_raw_websocket

    host, port, path = _parse_url(url)

    async def preflight() -> None:
        conn = await open_raw_websocket(host, port, path, timeout=options.timeout)
        await conn.wait_closed(0.5)

    try:
        asyncio.run(preflight())
    except (ConnectionFailed, HandshakeError) as error:
        fail(f"{url}: {error}", ExitStatus.NETWORK)
    started = _now()
    begin = time.monotonic()
    with _progress(env) as progress:
        task = progress.add_task("fuzzing", total=len(cases), last="")
        failures = 0

        def on_result(result: Any) -> None:
            nonlocal failures
            failures += result.failed
            progress.update(
                task,
                advance=1,
                last=f"{result.case.id} {result.behavior.value}"
                + (f" · {failures} failed" if failures else ""),
            )

        results = asyncio.run(run_against_server(cases, host, port, path, options, on_result))
    failed = writer.write(results, "client", url, started, time.monotonic() - begin)
    return ExitStatus.PROBLEMS_FOUND if failed else ExitStatus.OK


def _serve(
    env: Environment,
    cases: list[Any],
    options: Any,
    host: str,
    port: int,
    writer: _ReportWriter,
    exit_after_report: bool,
) -> ExitStatus:
    from wsproto_tools.fuzz.serve import FuzzServer

    started = _now()
    begin = time.monotonic()
    state = {"failed": 0}

    def on_result(agent: str, result: Any) -> None:
        mark = "FAILED" if result.failed else "ok"
        click.echo(
            f"{agent} {result.case.id}: {result.behavior.value} / {result.close.value} ({mark})",
            err=True,
        )

    def on_update(agent: str, results: list[Any]) -> None:
        state["failed"] = writer.write(results, "serve", agent, started, time.monotonic() - begin)

    async def main() -> None:
        server = FuzzServer(cases, options, on_result=on_result, on_update_reports=on_update)
        bound = await server.start(host, port)
        click.echo(
            f"wsp fuzz: serving {len(cases)} cases on ws://{host}:{bound} "
            "(/getCaseCount, /runCase?case=N&agent=A, /updateReports?agent=A)",
            err=True,
        )
        sys.stderr.flush()
        try:
            if exit_after_report:
                await server.reports_updated.wait()
            else:
                await asyncio.Event().wait()
        finally:
            await server.close()

    asyncio.run(main())
    return ExitStatus.PROBLEMS_FOUND if state["failed"] else ExitStatus.OK
