"""``wsp fuzz``: RFC 6455 / RFC 7692 conformance fuzzing of a server or a client.

Exit status: 0 when no case failed; 1 when a case's verdict is FAILED or its
close verdict is FAILED, WRONG CODE or UNCLEAN; 2 usage error; 3 unreadable
certificate or key files; 4 the server cannot be reached, its TLS certificate
is refused, or it does not upgrade; 130 interrupted (Ctrl-C or SIGTERM: the
reports of the cases that finished are written first).
"""

from __future__ import annotations

__all__ = ["fuzz"]

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from wsproto_tools.cli.env import Environment, run_async
from wsproto_tools.cli.params import (
    LISTEN_PORT,
    WS_URL,
    client_ssl,
    server_ssl,
    tls_client_options,
    tls_server_options,
)
from wsproto_tools.cli.status import CommandExit, ExitStatus

#: Without a terminal on stderr, one progress line at most this often (seconds).
PIPE_PROGRESS_EVERY = 30.0


@click.command("fuzz")
@click.argument("url", required=False, type=WS_URL)
@click.option(
    "--suite",
    type=click.Choice(["rfc6455", "wsp"]),
    default="rfc6455",
    show_default=True,
    help="The case suite: rfc6455 (WebSocket conformance) or wsp (stateful wsp protocol).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Be the fuzzing server for a WebSocket client (Autobahn URL scheme).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="--serve: address to bind.")
@click.option(
    "--port",
    type=LISTEN_PORT,
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
@click.option("--secret", envvar="WSP_SECRET", metavar="S",
              help="wsp suite: the server's shared secret (hmac). Env: WSP_SECRET.")
@click.option("--token", envvar="WSP_TOKEN", metavar="JWT",
              help="wsp suite: a JWT to authenticate with. Env: WSP_TOKEN.")
@click.option("--jwt-key", metavar="FILE",
              help="wsp suite: the server's HS256 JWT key file; the fuzzer mints its own tokens.")
@click.option("--jwt-audience", metavar="AUD", help="wsp suite: 'aud' of minted tokens.")
@click.option("--token-key", envvar="WSP_TOKEN_KEY", metavar="K",
              help="wsp suite: the server's resume-token key (forged and expired resumes).")
@click.option("--target-cmd", metavar="CMD",
              help="wsp suite: start the server with CMD ({port}: a free port), restart it "
              "after a crash, watch its memory.")
@click.option("--duration", type=click.FloatRange(min=0.1), metavar="S",
              help="wsp suite: stop after S seconds.")
@click.option("--coverage", "use_coverage", is_flag=True,
              help="wsp suite: run this project's server in-process and keep the cases "
              "that reach new code.")
@click.option("--reproducers", type=click.Path(file_okay=False, path_type=Path),
              default=Path("wsp-fuzz-reproducers"), show_default=True,
              help="wsp suite: where reproducers of findings are written.")
@click.option("--max-rss-growth", type=click.IntRange(min=1), default=1024, show_default=True,
              metavar="MIB", help="wsp suite: the memory oracle's bound, in MiB.")
@click.option("--no-shrink", is_flag=True, help="wsp suite: keep failing cases as they are.")
@tls_client_options
@tls_server_options
@click.pass_obj
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
    cafile: str | None,
    insecure: bool,
    certfile: str | None,
    keyfile: str | None,
    **wsp_options: Any,
) -> None:
    """Run conformance cases against an echo server at URL, or (--serve) a client;
    with --suite wsp, fuzz a wsp server (URL, --target-cmd or --coverage) or client.

    URL is ws://HOST[:PORT]/PATH or wss://… (TLS: the certificate is checked
    against the system's CAs, plus --cafile; --insecure skips the check).
    --serve --certfile F --keyfile F serves wss:// to the client under test.

    Case ids follow Autobahn|Testsuite. By default every case except the
    performance area 9 runs (463 cases, a few minutes); --cases
    '1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*' is the 247-case core without
    compression. On a terminal a progress bar on stderr shows the cases done,
    the failures so far and an estimate of the time left. Ctrl-C (or SIGTERM)
    stops the run and still writes the reports of the cases that finished.
    See docs/fuzz.md.

    \b
    Exit status:
      0  no case failed
      1  a case FAILED, or its close verdict is FAILED, WRONG CODE or UNCLEAN
      2  usage error (bad URL, port out of range, no case selected)
      3  the --cafile, --certfile or --keyfile cannot be loaded
      4  the server cannot be reached, its TLS certificate is refused, or it
         does not upgrade
      130  interrupted (Ctrl-C or SIGTERM), after writing the reports of the
         cases that finished

    The wsp suite (docs/fuzz.md, "The wsp suite") runs sessions made of valid
    steps and mutations from the codec's schema and the rule book, checks close
    codes, processing, security, delivery, liveness, crashes and memory, and
    shrinks each finding into a pytest reproducer and a cassette. --cases N is
    then a number of cases; exit 1 means findings, 4 an unreachable target.

    \b
    Examples:
      wsp fuzz ws://127.0.0.1:8765/ --suite wsp --secret s3 --cases 2000 --jobs 8
      wsp fuzz wss://echo.example.net/ --cafile ca.pem --cases '1.*,2.*,7.*'
      wsp fuzz --serve --port 9001 --certfile cert.pem --keyfile key.pem --exit-after-report
    """
    if suite == "wsp":
        from wsproto_tools.cli.fuzz_wsp import run_wsp_suite

        status = run_wsp_suite(
            env, url=url, serve=serve, host=host, port=port, cases=include, seed=seed,
            jobs=jobs, timeout=timeout, json_report=json_report, html_report=html_report,
            as_json=as_json, cafile=cafile, insecure=insecure, **wsp_options,
        )  # fmt: skip
        if status:
            raise CommandExit(status)
        return
    from wsproto_tools.fuzz.catalog import select_cases
    from wsproto_tools.fuzz.runner import RunOptions

    if serve == bool(url):
        raise click.UsageError("give either URL (test a server) or --serve (test a client)")
    ctx = click.get_current_context()
    if serve and (_given(ctx, "cafile") or insecure):
        raise click.UsageError("--cafile/--insecure are for wss:// URLs, not for --serve")
    if not serve and (_given(ctx, "certfile") or _given(ctx, "keyfile")):
        raise click.UsageError("--certfile/--keyfile are for --serve, not for a URL")
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
        context = server_ssl(certfile, keyfile)
        status = _serve(env, cases, options, host, port, context, writer, exit_after_report)
    else:
        assert url is not None
        status = _client(env, cases, options, url, client_ssl(url, cafile, insecure), writer)
    if status:
        raise CommandExit(status)


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the option was given on the command line (not by its environment variable)."""
    from click.core import ParameterSource

    source = ctx.get_parameter_source(name)
    return ctx.params.get(name) is not None and source is not ParameterSource.ENVIRONMENT


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

    def write(
        self,
        results: list[Any],
        mode: str,
        target: str,
        started: str,
        secs: float,
        interrupted_of: int | None = None,
    ) -> int:
        """Write every report asked for; returns how many cases failed."""
        from wsproto_tools.fuzz.report import build_report

        report = build_report(
            results,
            mode=mode,
            target=target,
            started=started,
            duration=secs,
            options=self.meta,
            interrupted_of=interrupted_of,
        )
        if self.json_path is not None:
            self.json_path.write_text(json.dumps(report, indent=1) + "\n")
        if self.html_path is not None:
            from wsproto_tools.render.fuzz_html import render_html

            self.html_path.write_text(render_html(report), encoding="utf-8")
        if self.as_json:
            self.env.stdout.write(json.dumps(report) + "\n")
            self.env.stdout.flush()
        else:
            self._tables(report, secs)
        failed_cases: int = report["summary"]["failed"]
        return failed_cases

    def _tables(self, report: dict[str, Any], secs: float) -> None:
        from wsproto_tools.render.fuzz import problems_table, summary, summary_table

        console = self.env.console
        if console.is_terminal:
            console.print(summary(report))
            problems = problems_table(report)
            if problems is not None:
                console.print(problems)
        else:
            # No terminal: nothing is cut, every table is printed at its own width.
            table = summary_table(report)
            _print_uncut(console, table, _natural_width(console, table))
            problems = problems_table(report)
            if problems is not None:
                _print_uncut(console, problems, min(_natural_width(console, problems), 240))
        failed = report["summary"]["failed"]
        count = f"{report['summary']['cases']} cases"
        stopped = report.get("interrupted")
        if stopped:
            count = f"{stopped['finished']} of {stopped['selected']} cases (interrupted)"
        console.print(
            f"{count} in {secs:.2f} s: "
            + ("no case failed" if not failed else f"[bold red]{failed} failed[/]")
        )


def _print_uncut(console: Any, renderable: Any, width: int) -> None:
    """Print at ``width`` columns, without the padding rich adds at the ends of lines."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    wide = Console(
        file=buffer,
        width=width,
        highlight=False,
        force_terminal=console.is_terminal,
        color_system=console.color_system,
    )
    wide.print(renderable)
    console.file.write("".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines()))


def _natural_width(console: Any, renderable: Any) -> int:
    options = console.options.update_width(10_000)
    return max(int(console.measure(renderable, options=options).maximum), console.width)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class _Progress:
    """Cases done of the total, failures so far and the time left, on stderr.

    On a terminal: a rich progress bar (removed when the run ends). Otherwise
    one plain line at most every :data:`PIPE_PROGRESS_EVERY` seconds, so a
    short run prints nothing and a CI log still shows a long run moving.
    """

    def __init__(self, env: Environment, total: int, label: str = "fuzz") -> None:
        self.env = env
        self.total = total
        self.label = label
        self.done = 0
        self.failed = 0
        self.begin = time.monotonic()
        self.last_line = self.begin
        self.live: Any = None
        self.task: Any = None
        if bool(getattr(env.stderr, "isatty", lambda: False)()):
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.live = Progress(
                TextColumn(label),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[last]}"),
                console=env.err_console,
                transient=True,
            )
            self.task = self.live.add_task(label, total=total, failed="· 0 failed ·", last="")

    def __enter__(self) -> _Progress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()

    def print(self, line: str) -> None:
        """A line on stderr, above the bar when there is one."""
        if self.live is not None:
            self.live.console.print(line, markup=False, highlight=False)
        else:
            click.echo(line, err=True)

    def advance(self, result: Any) -> None:
        self.done += 1
        self.failed += bool(result.failed)
        if self.live is not None:
            style = "bold red" if self.failed else "green"
            self.live.update(
                self.task,
                advance=1,
                failed=f"· [{style}]{self.failed} failed[/] ·",
                last=f"{result.case.id} {result.behavior.value}",
            )
            return
        now = time.monotonic()
        if now - self.last_line >= PIPE_PROGRESS_EVERY and self.done < self.total:
            self.last_line = now
            left = (now - self.begin) / self.done * (self.total - self.done)
            click.echo(
                f"wsp fuzz: {self.label}: {self.done} of {self.total} cases, "
                f"{self.failed} failed, about {_clock(left)} left",
                err=True,
            )


def _interrupted(done: int, total: int) -> NoReturn:
    click.echo(f"wsp: interrupted after {done} of {total} cases", err=True)
    raise CommandExit(ExitStatus.INTERRUPTED)


def _client(
    env: Environment,
    cases: list[Any],
    options: Any,
    url: str,
    context: Any,
    writer: _ReportWriter,
) -> ExitStatus:
    from wsproto_tools.exceptions import ConnectionFailed, HandshakeError
    from wsproto_tools.fuzz.runner import run_against_server
    from wsproto_tools.transports.raw import open_raw_websocket
    from wsproto_tools.transports.tls import parse_ws_url

    target = parse_ws_url(url)
    host, port, path = target.host, target.port, target.resource

    async def preflight() -> None:
        conn = await open_raw_websocket(
            host, port, path, timeout=options.timeout, ssl=context, host_header=target.host_header
        )
        await conn.wait_closed(0.5)

    try:
        run_async(preflight())
    except ConnectionFailed as error:
        raise CommandExit(ExitStatus.NETWORK, str(error)) from None
    except HandshakeError as error:
        raise CommandExit(ExitStatus.NETWORK, f"{url}: {error}") from None
    started = _now()
    begin = time.monotonic()
    finished: list[Any] = []
    stopped = False
    try:
        with _Progress(env, len(cases)) as progress:

            def on_result(result: Any) -> None:
                finished.append(result)
                progress.advance(result)

            run_async(run_against_server(cases, host, port, path, options, on_result, ssl=context))
    except KeyboardInterrupt:
        stopped = True
    secs = time.monotonic() - begin
    if stopped:
        writer.write(finished, "client", url, started, secs, interrupted_of=len(cases))
        _interrupted(len(finished), len(cases))
    failed = writer.write(finished, "client", url, started, secs)
    return ExitStatus.PROBLEMS_FOUND if failed else ExitStatus.OK


def _serve(
    env: Environment,
    cases: list[Any],
    options: Any,
    host: str,
    port: int,
    context: Any,
    writer: _ReportWriter,
    exit_after_report: bool,
) -> ExitStatus:
    from wsproto_tools.fuzz.serve import FuzzServer

    started = _now()
    begin = time.monotonic()
    state: dict[str, Any] = {"failed": 0, "agent": None}
    unwritten: set[str] = set()  # agents with results that no report holds yet
    progress: dict[str, _Progress] = {}
    terminal = bool(getattr(env.stderr, "isatty", lambda: False)())

    def stop_progress() -> None:
        for bar in progress.values():
            bar.stop()
        progress.clear()

    def on_result(agent: str, result: Any) -> None:
        state["agent"] = agent
        unwritten.add(agent)
        bar = progress.get(agent)
        if bar is None:
            stop_progress()
            bar = progress[agent] = _Progress(env, len(cases), label=agent)
            bar.__enter__()
        mark = "FAILED" if result.failed else "ok"
        if not terminal or result.failed:
            bar.print(
                f"{agent} {result.case.id}: {result.behavior.value} / {result.close.value} ({mark})"
            )
        bar.advance(result)

    def on_update(agent: str, results: list[Any]) -> None:
        stop_progress()
        unwritten.discard(agent)
        state["failed"] = writer.write(results, "serve", agent, started, time.monotonic() - begin)

    server = FuzzServer(cases, options, on_result=on_result, on_update_reports=on_update)

    async def main() -> None:
        bound = await server.start(host, port, ssl=context)
        scheme = "wss" if context is not None else "ws"
        click.echo(
            f"wsp fuzz: serving {len(cases)} cases on {scheme}://{host}:{bound} "
            "(/getCaseCount, /runCase?case=N&agent=A, /updateReports?agent=A)",
            err=True,
        )
        sys.stderr.flush()
        try:
            if exit_after_report:
                await server.reports_updated.wait()
            else:
                import asyncio

                await asyncio.Event().wait()
        finally:
            await server.close()

    try:
        run_async(main())
    except KeyboardInterrupt:
        stop_progress()
        agent = state["agent"]
        if agent is None or agent not in unwritten:
            raise  # nothing run, or every result is already in a report (/updateReports)
        results = server.agent_results(agent)
        secs = time.monotonic() - begin
        writer.write(results, "serve", agent, started, secs, interrupted_of=len(cases))
        others = sorted(unwritten - {agent})
        if others:
            click.echo(
                f"wsp fuzz: reports written for agent {agent} only, not for " + ", ".join(others),
                err=True,
            )
        _interrupted(len(results), len(cases))
    stop_progress()
    return ExitStatus.PROBLEMS_FOUND if state["failed"] else ExitStatus.OK
