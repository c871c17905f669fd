"""``wsp fuzz --suite wsp``: the stateful wsp suite (docs/fuzz.md, "The wsp suite").

Exit status as the rfc6455 suite: 0 no finding; 1 findings; 2 usage error; 3 an
unreadable key file or reproducer directory; 4 the target cannot be reached (or
started) before the first case; 130 interrupted, after the reports.
"""

from __future__ import annotations

__all__ = ["run_wsp_suite"]

import datetime as dt
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from wsproto_tools.cli.env import Environment, run_async
from wsproto_tools.cli.status import CommandExit, ExitStatus

#: Without a terminal on stderr, one progress line at most this often (seconds).
PIPE_PROGRESS_EVERY = 30.0
#: Packages whose arcs --coverage counts (the server and the core it runs).
COVERAGE_PACKAGES = ("server", "engine", "codec", "transports", "ws")


def run_wsp_suite(
    env: Environment,
    *,
    url: str | None,
    serve: bool,
    host: str,
    port: int,
    cases: str | None,
    seed: int,
    jobs: int,
    timeout: float,
    json_report: Path | None,
    html_report: Path | None,
    as_json: bool,
    secret: str | None,
    token: str | None,
    jwt_key: str | None,
    jwt_audience: str | None,
    token_key: str | None,
    target_cmd: str | None,
    duration: float | None,
    use_coverage: bool,
    reproducers: Path,
    max_rss_growth: int,
    no_shrink: bool,
    cafile: str | None = None,
    insecure: bool = False,
) -> ExitStatus:
    """Parse the wsp suite's options, run it, write its reports; the exit status."""
    count = _count(cases)
    source = click.get_current_context().get_parameter_source("timeout")
    if source is None or not source.name.startswith("COMMAND"):
        timeout = 2.0  # the wsp suite's own default: seconds per answer
    if serve:
        if url or target_cmd or use_coverage:
            raise click.UsageError("--serve takes no URL, --target-cmd or --coverage")
        return _serve(
            env,
            host,
            port,
            secret,
            seed,
            count,
            duration,
            timeout,
            json_report,
            html_report,
            as_json,
        )
    given = [
        name
        for name, v in (("URL", url), ("--target-cmd", target_cmd), ("--coverage", use_coverage))
        if v
    ]
    if len(given) != 1:
        raise click.UsageError(
            "give one target: a URL, --target-cmd CMD or --coverage"
            + (f" (got {' and '.join(given)})" if given else "")
        )
    if count is None and duration is None:
        count = 1000
    from wsproto_tools.exceptions import ConfigError
    from wsproto_tools.fuzz.wsp.credentials import build_credentials, forbidden_topic

    try:
        creds = build_credentials(
            secret.encode() if secret else None,
            token,
            jwt_key,
            token_key.encode() if token_key else None,
            jwt_audience,
        )
    except ConfigError as error:
        raise CommandExit(ExitStatus.BAD_INPUT, str(error)) from None
    from wsproto_tools.fuzz.wsp.campaign import CampaignOptions
    from wsproto_tools.fuzz.wsp.steps import Generator

    gen = Generator(
        methods=creds.methods,
        mint=creds.mint is not None,
        token_key=creds.token_key is not None,
        claims=creds.sub is not None or creds.pub is not None,
    )
    opts = CampaignOptions(
        seed=seed,
        cases=count,
        duration=duration,
        jobs=jobs,
        timeout=timeout,
        max_rss_growth=max_rss_growth << 20,
        shrink=not no_shrink,
        generator=gen,
        forbidden=forbidden_topic(creds),
    )
    meta = {
        "seed": seed,
        "cases": count,
        "duration": duration,
        "jobs": jobs,
        "timeout": timeout,
        "target_cmd": target_cmd,
        "coverage": use_coverage,
        "max_rss_growth_mib": max_rss_growth,
        "shrink": not no_shrink,
        "methods": list(creds.methods),
    }
    repro_target: dict[str, Any] = {
        "secret": secret,
        "token": token,
        "jwt_key": jwt_key,
        "token_key": token_key,
    }
    job = _Job(env, opts, meta, repro_target, json_report, html_report, as_json, reproducers)
    if use_coverage:
        return _with_coverage(job, creds, secret, jwt_key, token_key)
    return _client(job, creds, url, target_cmd, (cafile, insecure))


@dataclass
class _Job:
    """What a client-mode run carries to its end: its options, the report's
    metadata, the reproducers' target, and where the reports go."""

    env: Environment
    opts: Any
    meta: dict[str, Any]
    repro_target: dict[str, Any]
    json_report: Path | None
    html_report: Path | None
    as_json: bool
    reproducers: Path


def _count(cases: str | None) -> int | None:
    if cases is None:
        return None
    try:
        value = int(cases)
    except ValueError:
        raise click.UsageError(
            f"--cases for the wsp suite is a number of cases, not {cases!r}"
        ) from None
    if value < 1:
        raise click.UsageError("--cases must be at least 1")
    return value


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class _Progress:
    """Cases done, findings so far, on stderr: a bar on a terminal, else a line
    at most every :data:`PIPE_PROGRESS_EVERY` seconds."""

    def __init__(self, env: Environment, total: int | None, duration: float | None) -> None:
        self.env, self.total, self.duration = env, total, duration
        self.begin = time.monotonic()
        self.last_line = self.begin
        self.live: Any = None
        if bool(getattr(env.stderr, "isatty", lambda: False)()):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.live = Progress(
                TextColumn("wsp suite"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                console=env.err_console,
                transient=True,
            )
            self.task = self.live.add_task("wsp", total=total or 0, info="")

    def __enter__(self) -> _Progress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def update(self, result: Any) -> None:
        findings = len(result.unique())
        elapsed = time.monotonic() - self.begin
        rate = result.steps / elapsed if elapsed > 0 else 0.0
        info = f"· {findings} findings · {rate:.0f} steps/s"
        if self.live is not None:
            total = self.total or max(result.cases, 1)
            if self.duration is not None and self.total is None:
                total = result.cases + 1
            self.live.update(self.task, completed=result.cases, total=total, info=info)
            return
        now = time.monotonic()
        if now - self.last_line >= PIPE_PROGRESS_EVERY:
            self.last_line = now
            of = f" of {self.total}" if self.total else ""
            click.echo(
                f"wsp fuzz: wsp suite: {result.cases}{of} cases, {findings} findings, "
                f"{rate:.0f} steps/s",
                err=True,
            )


def _run(env: Environment, target: Any, creds: Any, opts: Any, process: Any) -> tuple[Any, bool]:
    """Run the campaign; (its result, whether it was interrupted)."""
    from wsproto_tools.exceptions import WspError
    from wsproto_tools.fuzz.wsp.campaign import CampaignResult, TargetUnreachable, run_campaign

    holder: dict[str, Any] = {"result": CampaignResult()}

    async def main() -> Any:
        try:
            with _Progress(env, opts.cases, opts.duration) as bar:

                def progress(result: Any) -> None:
                    holder["result"] = result
                    bar.update(result)

                return await run_campaign(target, creds, opts, process=process, progress=progress)
        finally:
            if process is not None:
                await process.stop()

    try:
        return run_async(main()), False
    except TargetUnreachable as error:
        raise CommandExit(ExitStatus.NETWORK, str(error)) from None
    except KeyboardInterrupt:
        result = holder["result"]
        result.interrupted = True
        return result, True
    except WspError as error:
        raise CommandExit(ExitStatus.NETWORK, str(error)) from None


def _client(
    job: _Job, creds: Any, url: str | None, target_cmd: str | None, tls: tuple[str | None, bool]
) -> ExitStatus:
    from wsproto_tools.fuzz.wsp.campaign import TargetProcess
    from wsproto_tools.fuzz.wsp.runner import Target

    process = None
    if target_cmd is not None:
        if "{port}" not in target_cmd:
            raise click.UsageError("--target-cmd must contain {port}: where the server listens")
        process = TargetProcess(target_cmd)
        target = Target(process.host, process.port)
        shown = target_cmd
        job.repro_target["target_cmd"] = target_cmd
    else:
        assert url is not None
        from wsproto_tools.cli.params import client_ssl
        from wsproto_tools.transports.tls import parse_ws_url

        parsed = parse_ws_url(url)
        context = client_ssl(url, *tls)
        target = Target(parsed.host, parsed.port, parsed.resource, context)
        shown = url
        job.repro_target["url"] = url
    started = _now()
    result, stopped = _run(job.env, target, creds, job.opts, process)
    return _finish(job, result, stopped, shown, started)


def _with_coverage(
    job: _Job, creds: Any, secret: str | None, jwt_key: str | None, token_key: str | None
) -> ExitStatus:
    """--coverage: this project's server in-process, traced; new arcs grow the corpus."""
    import warnings

    import wsproto_tools
    from wsproto_tools.fuzz.coverage_feedback import InProcessTarget, TargetError
    from wsproto_tools.fuzz.wsp.runner import Target
    from wsproto_tools.server import ServerConfig, WspServer

    # the in-process server verifies tokens here: PyJWT's warning about a short key
    # would come once per case (the key is the user's choice, as with wsp serve)
    warnings.filterwarnings("ignore", message="The HMAC key is")
    key = Path(jwt_key).read_bytes().strip() if jwt_key else None
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        secret=secret.encode() if secret else None,
        jwt_key=key,
        token_key=token_key.encode() if token_key else None,
        no_auth=not (secret or key),
    )
    server = WspServer(config)

    async def start() -> int:
        await server.start()
        return int(server.port)

    root = Path(wsproto_tools.__file__).parent
    inproc = InProcessTarget(
        start, server.shutdown, source=[str(root / name) for name in COVERAGE_PACKAGES]
    )
    try:
        bound = inproc.open()
    except TargetError as error:
        raise CommandExit(ExitStatus.NETWORK, str(error)) from None
    job.opts.take_coverage = inproc.take
    job.opts.coverage_total = lambda: inproc.total
    started = _now()
    try:
        result, stopped = _run(job.env, Target("127.0.0.1", bound), creds, job.opts, None)
        files = {os.path.relpath(k, root.parent): v for k, v in inproc.summary().items()}
    finally:
        inproc.close()
    serve_cmd = [
        sys.executable,
        "-m",
        "wsproto_tools.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    if secret:
        serve_cmd += ["--secret", secret]
    if jwt_key:
        serve_cmd += ["--jwt-key", jwt_key]
    if token_key:
        serve_cmd += ["--token-key", token_key]
    if not (secret or jwt_key):
        serve_cmd += ["--no-auth"]
    import shlex

    job.repro_target["target_cmd"] = shlex.join(serve_cmd)
    shown = "in-process wsp serve (--coverage)"
    return _finish(job, result, stopped, shown, started, coverage_files=files)


def _finish(
    job: _Job,
    result: Any,
    stopped: bool,
    shown: str,
    started: str,
    coverage_files: dict[str, int] | None = None,
) -> ExitStatus:
    from wsproto_tools.fuzz.wsp.report import build_report

    files = _write_reproducers(result, job.repro_target, job.opts.seed, job.reproducers)
    report = build_report(
        result,
        target=shown,
        started=started,
        options=job.meta,
        files=files,
        coverage_files=coverage_files,
    )
    _write_reports(job.env, report, job.json_report, job.html_report, job.as_json)
    if stopped:
        click.echo(f"wsp: interrupted after {result.cases} cases", err=True)
        raise CommandExit(ExitStatus.INTERRUPTED)
    return ExitStatus.PROBLEMS_FOUND if result.findings else ExitStatus.OK


def _write_reproducers(
    result: Any, target: dict[str, Any], seed: int, directory: Path
) -> dict[Any, list[str]]:
    """The reproducer files of every kind of finding: case + pytest + cassette."""
    from wsproto_tools.fuzz.wsp.reproduce import reproducer_files

    out: dict[Any, list[str]] = {}
    unique = [(f, n) for f, n in result.unique() if f.key in result.reproducers]
    if not unique:
        return out
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for finding, _count in unique:
            case = result.reproducers[finding.key]
            written = reproducer_files(finding, case, target, seed=seed)
            trace = result.traces.get(finding.key)
            if trace:
                name = next(iter(written)).removesuffix(".json") + ".cassette.ndjson"
                written[name] = _cassette(trace)
            for name, text in written.items():
                (directory / name).write_text(text, encoding="utf-8")
            out[finding.key] = [str(directory / name) for name in written]
    except OSError as error:
        raise CommandExit(
            ExitStatus.BAD_INPUT, f"cannot write reproducers to {directory}: {error.strerror}"
        ) from None
    return out


def _cassette(recorded: tuple[list[Any], list[Any]]) -> str:
    """The wire traffic of a case as a cassette (wsp replay's format)."""
    from wsproto_tools.replay.cassette import Cassette, CassetteConnection, CassetteMessage

    trace, connections = recorded
    cassette = Cassette()
    for conn, started, version in connections:
        number = int(conn) + 1
        cassette.connections[number] = CassetteConnection(
            number, float(started), "/", (f"wsp.v{version}",)
        )
    for conn, direction, t, opcode, data in trace:
        number = int(conn) + 1
        if number not in cassette.connections:
            continue
        if opcode == 1:
            text = bytes(data).decode("utf-8", "replace")
            message = CassetteMessage(number, direction, float(t), "text", text=text)
        else:
            message = CassetteMessage(number, direction, float(t), "binary", data=bytes(data))
        cassette.messages.append(message)
    return "".join(cassette.lines())


def _write_reports(
    env: Environment,
    report: dict[str, Any],
    json_report: Path | None,
    html_report: Path | None,
    as_json: bool,
) -> None:
    try:
        if json_report is not None:
            json_report.write_text(json.dumps(report, indent=1) + "\n")
        if html_report is not None:
            from wsproto_tools.render.fuzz_wsp import render_wsp_html

            html_report.write_text(render_wsp_html(report), encoding="utf-8")
    except OSError as error:
        raise CommandExit(ExitStatus.BAD_INPUT, f"cannot write the report: {error}") from None
    if as_json:
        env.stdout.write(json.dumps(report) + "\n")
        env.stdout.flush()
        return
    from wsproto_tools.render.fuzz_wsp import wsp_summary

    env.console.print(wsp_summary(report))


def _serve(
    env: Environment,
    host: str,
    port: int,
    secret: str | None,
    seed: int,
    count: int | None,
    duration: float | None,
    timeout: float,
    json_report: Path | None,
    html_report: Path | None,
    as_json: bool,
) -> ExitStatus:
    """--serve --suite wsp: a malicious wsp server for the client under test."""
    from wsproto_tools.fuzz.wsp.report import build_serve_report
    from wsproto_tools.fuzz.wsp.serve import serve_wsp

    results: list[Any] = []
    started = _now()
    begin = time.monotonic()

    def listening(where: str) -> None:
        click.echo(f"wsp fuzz: serving the wsp suite on {where}", err=True)
        sys.stderr.flush()

    def on_result(result: Any) -> None:
        results.append(result)
        if not bool(getattr(env.stderr, "isatty", lambda: False)()) or result.findings:
            mark = f"{len(result.findings)} findings" if result.findings else "ok"
            click.echo(f"case {result.index} {result.scenario}: {mark}", err=True)

    stopped = False
    try:
        run_async(
            serve_wsp(
                host,
                port,
                secret=(secret or "").encode(),
                seed=seed,
                cases=count,
                duration=duration,
                on_listening=listening,
                on_result=on_result,
                timeout=timeout,
            )
        )
    except KeyboardInterrupt:
        stopped = True
    except OSError as error:
        raise CommandExit(
            ExitStatus.NETWORK, f"cannot listen on {host}:{port}: {error.strerror}"
        ) from None
    meta = {"seed": seed, "cases": count, "duration": duration, "timeout": timeout}
    report = build_serve_report(
        results,
        target=f"ws://{host}:{port}/",
        started=started,
        duration=time.monotonic() - begin,
        options=meta,
        interrupted=stopped,
    )
    _write_reports(env, report, json_report, html_report, as_json)
    if stopped:
        click.echo(f"wsp: interrupted after {len(results)} cases", err=True)
        raise CommandExit(ExitStatus.INTERRUPTED)
    return ExitStatus.PROBLEMS_FOUND if any(r.findings for r in results) else ExitStatus.OK
