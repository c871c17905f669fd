"""``wsp fuzz`` as a user runs it: real ``wsp`` processes against real servers.

Ports out of range, interrupted runs (SIGINT and SIGTERM, client and serve
mode), progress in a real pseudo-terminal at 80 columns, uncut tables on a
pipe, ``wss://`` in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from websockets.asyncio.server import ServerConnection, serve

from wsproto_tools.fuzz.report import load_schema

from .servers import websockets_echo
from .test_serve import _harness

_WSP = Path(sys.executable).with_name("wsp")
_MAIN = "from wsproto_tools.cli.main import main; main()"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _wsp(*args: str) -> list[str]:
    if _WSP.exists():
        return [str(_WSP), *args]
    return [sys.executable, "-c", _MAIN, *args]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSP_")}
    env.update(extra)
    return env


def _run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _wsp(*args), capture_output=True, text=True, timeout=timeout, env=_env(**env)
    )


class _Threaded:
    """An asyncio server (an async context manager yielding its port) in its own thread."""

    def __init__(self, factory: Callable[[], contextlib.AbstractAsyncContextManager[int]]) -> None:
        self.factory = factory
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.stop: asyncio.Future[None] | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))
        self.thread.daemon = True

    async def _main(self) -> None:
        self.stop = self.loop.create_future()
        async with self.factory() as port:
            self.port = port
            self.started.set()
            await self.stop

    def __enter__(self) -> _Threaded:
        self.thread.start()
        assert self.started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set_result, None)
        self.thread.join(10)


class _SlowEcho:
    """A websockets echo server that waits ``delay`` before each echo and counts connections."""

    def __init__(self, delay: float, **kwargs: Any) -> None:
        self.delay = delay
        self.kwargs = kwargs
        self.connections = 0

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[int]:
        async def echo(ws: ServerConnection) -> None:
            self.connections += 1
            with contextlib.suppress(Exception):
                async for message in ws:
                    await asyncio.sleep(self.delay)
                    await ws.send(message)

        async with serve(echo, "127.0.0.1", 0, max_size=None, **self.kwargs) as server:
            yield int(next(iter(server.sockets)).getsockname()[1])

    def wait_for(self, connections: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.connections < connections:
            assert time.monotonic() < deadline, f"only {self.connections} connections"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    with _Threaded(websockets_echo) as server:
        yield server.port


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# ------------------------------------------------------------------ wrong input


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["ws://127.0.0.1:99999/"], "port out of range"),
        (["wss://127.0.0.1:70000/"], "port out of range"),
        (["--serve", "--port", "99999"], "--port"),
        (["--serve", "--port", "-1"], "--port"),
        (["http://127.0.0.1:9001/"], "HTTP URL"),
        (["ws://127.0.0.1:9001/", "--certfile", "pyproject.toml"], "--certfile"),
    ],
)
def test_bad_ports_and_urls_are_usage_errors(args: list[str], words: str) -> None:
    done = _run("fuzz", *args, "--cases", "1.1.1", timeout=30)
    assert done.returncode == 2, done.stderr
    assert words in _one_line(done.stderr)


def test_unreachable_server_is_one_line_and_status_4() -> None:
    done = _run("fuzz", f"ws://127.0.0.1:{_free_port()}/", "--cases", "1.1.1", timeout=30)
    assert done.returncode == 4, done.stderr
    assert "cannot connect to 127.0.0.1" in _one_line(done.stderr)


def test_help_ends_with_examples() -> None:
    done = _run("fuzz", "--help", timeout=30)
    assert done.returncode == 0
    examples = done.stdout.split("Examples:")[1].split("Options:")[0]
    lines = [line.strip() for line in examples.strip().splitlines()]
    assert 2 <= len(lines) <= 3 and all(line.startswith("wsp fuzz ") for line in lines)
    assert any("wss://" in line for line in lines) and any("--serve" in line for line in lines)


# -------------------------------------------------------------------- interrupt


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_reports_the_finished_cases(signum: int, tmp_path: Path) -> None:
    slow = _SlowEcho(0.4)
    json_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
    with _Threaded(slow) as server:
        process = subprocess.Popen(
            _wsp(
                "fuzz", f"ws://127.0.0.1:{server.port}/", "--cases", "1.1.*", "--jobs", "1",
                "--json-report", str(json_path), "--html-report", str(html_path),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )  # fmt: skip
        try:
            slow.wait_for(1 + 4)  # the reachability check, then three cases done, a 4th running
            process.send_signal(signum)
            out, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    found = re.search(r"interrupted after (\d+) of 8 cases", err)
    assert found, err
    finished = int(found.group(1))
    assert 3 <= finished < 8
    report = json.loads(json_path.read_text())
    jsonschema.validate(report, load_schema())
    assert report["interrupted"] == {"finished": finished, "selected": 8}
    assert len(report["cases"]) == report["summary"]["cases"] == finished
    assert [c["id"] for c in report["cases"]] == [f"1.1.{n}" for n in range(1, finished + 1)]
    assert all((c["verdict"], c["close_verdict"]) == ("OK", "OK") for c in report["cases"])
    assert f"interrupted after {finished} of 8 cases" in html_path.read_text()
    assert "Total" in out and f"{finished} of 8 cases (interrupted) in" in out


def test_interrupted_serve_mode_reports_the_finished_cases(tmp_path: Path) -> None:
    json_path = tmp_path / "serve.json"
    process = subprocess.Popen(
        _wsp(
            "fuzz", "--serve", "--port", "0", "--cases", "1.1.*", "--json-report", str(json_path),
            "--json",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        port = int(line.split("ws://127.0.0.1:")[1].split()[0])
        asyncio.run(_harness(f"ws://127.0.0.1:{port}", "half", limit=3, update=False))
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 130, err
    assert "interrupted after 3 of 8 cases" in err and "Traceback" not in err
    report = json.loads(json_path.read_text())
    jsonschema.validate(report, load_schema())
    assert report["mode"] == "serve" and report["target"] == "half"
    assert report["interrupted"] == {"finished": 3, "selected": 8}
    assert [c["id"] for c in report["cases"]] == ["1.1.1", "1.1.2", "1.1.3"]
    assert json.loads(out)["summary"]["cases"] == 3


# ---------------------------------------------------------- terminal and pipe


def _in_a_terminal(args: list[str], columns: int, timeout: float = 60) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr on a pseudo-terminal; (status, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = _env(COLUMNS=str(columns), LINES="40", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        os.close(master)
    return status, b"".join(chunks).decode("utf-8", "replace")


def test_progress_and_table_in_an_80_column_terminal() -> None:
    slow = _SlowEcho(0.15)
    with _Threaded(slow) as server:
        status, output = _in_a_terminal(
            _wsp("fuzz", f"ws://127.0.0.1:{server.port}/", "--cases", "1.1.*,7.1.5", "--jobs", "1"),
            80,
        )
    assert status == 1, output  # websockets fails 7.1.5
    assert "Traceback" not in output
    plain = _ANSI.sub("", output)
    # the progress bar: cases done of the total, failures so far, the time left
    assert "0/9" in plain and "ETA" in plain and "failed" in plain
    assert re.search(r"ETA \d+:\d\d:\d\d", plain), plain
    table = plain[plain.index("wsp fuzz --suite rfc6455") :]
    lines = [line.rstrip() for line in table.replace("\r", "").splitlines()]
    header = next(line for line in lines if line.lstrip().startswith("Area"))
    assert "Cases" in header and "OK" in header and "C:CODE" in header
    assert "…" not in table
    assert all(len(line) <= 80 for line in lines), lines
    assert "C:CODE wrong code" in table  # the legend of the abbreviations
    assert "Total" in table and "7.1.5" in table


def test_tables_are_not_cut_without_a_terminal(echo_port: int) -> None:
    done = _run(
        "fuzz", f"ws://127.0.0.1:{echo_port}/", "--cases", "1.1.*,7.1.5,7.1.6", COLUMNS="80"
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""  # no progress on a pipe for a short run
    assert "…" not in done.stdout
    header = next(line for line in done.stdout.splitlines() if "Area" in line)
    for label in ("Cases", "NON-STRICT", "INFO", "UNIMPL", "close: WRONG CODE", "close: UNCLEAN"):
        assert label in header
    assert all(line == line.rstrip() for line in done.stdout.splitlines())


# ---------------------------------------------------------------------------- TLS

_TLS_CASES = "1.*,2.*,6.2.*,7.1.*,7.7.*"


def _verdicts(stdout: str) -> dict[str, tuple[str, str]]:
    report = json.loads(stdout)
    jsonschema.validate(report, load_schema())
    return {c["id"]: (c["verdict"], c["close_verdict"]) for c in report["cases"]}


def test_wss_gives_the_same_verdicts_as_ws(echo_port: int, tls_files: Any) -> None:
    plain = _run("fuzz", f"ws://127.0.0.1:{echo_port}/", "--cases", _TLS_CASES, "--json")
    with _Threaded(lambda: websockets_echo(ssl=tls_files.server_context())) as server:
        url = f"wss://localhost:{server.port}/"
        secure = _run("fuzz", url, "--cases", _TLS_CASES, "--json", "--cafile", tls_files.cafile)
        insecure = _run("fuzz", url, "--cases", "1.1.1", "--json", "--insecure")
    assert plain.returncode == secure.returncode == 1, secure.stderr  # 7.1.5
    assert secure.stderr == ""
    assert _verdicts(secure.stdout) == _verdicts(plain.stdout)
    assert len(_verdicts(secure.stdout)) == 16 + 11 + 4 + 6 + 13
    assert insecure.returncode == 0, insecure.stderr
    assert "--insecure" in _one_line(insecure.stderr)
    assert _verdicts(insecure.stdout) == {"1.1.1": ("OK", "OK")}


@pytest.mark.parametrize("which", ["system", "other"])
def test_wss_certificate_refused_exits_4(tls_files: Any, which: str) -> None:
    extra = [] if which == "system" else ["--cafile", tls_files.other_cafile]
    with _Threaded(lambda: websockets_echo(ssl=tls_files.server_context())) as server:
        done = _run("fuzz", f"wss://127.0.0.1:{server.port}/", "--cases", "1.1.1", *extra)
    assert done.returncode == 4, done.stderr
    line = _one_line(done.stderr)
    assert "certificate" in line and "verif" in line, line


def test_serve_over_tls(tmp_path: Path, tls_files: Any) -> None:
    report = tmp_path / "serve.json"
    process = subprocess.Popen(
        _wsp(
            "fuzz", "--serve", "--port", "0", "--cases", "1.1.*,2.1,7.7.1", "--exit-after-report",
            "--json-report", str(report), "--json",
            "--certfile", tls_files.certfile, "--keyfile", tls_files.keyfile,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "serving 10 cases on wss://127.0.0.1:" in line, line
        port = int(line.split("wss://127.0.0.1:")[1].split()[0])
        asyncio.run(
            _harness(f"wss://127.0.0.1:{port}", "tls-agent", ssl=tls_files.client_context())
        )
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0, err
    data = json.loads(report.read_text())
    jsonschema.validate(data, load_schema())
    assert data["target"] == "tls-agent" and "interrupted" not in data
    assert [c["id"] for c in data["cases"]] == [f"1.1.{n}" for n in range(1, 9)] + ["2.1", "7.7.1"]
    assert all((c["verdict"], c["close_verdict"]) == ("OK", "OK") for c in data["cases"])
    assert json.loads(out)["summary"]["failed"] == 0


def test_wss_to_a_plain_server_is_one_line_and_status_4(echo_port: int) -> None:
    done = _run("fuzz", f"wss://127.0.0.1:{echo_port}/", "--cases", "1.1.1", timeout=30)
    assert done.returncode == 4, done.stderr
    assert "TLS handshake" in _one_line(done.stderr)
