"""Every ``wsp`` command shown in README.md and docs/*.md, run as users run it.

Each runs in a real pseudo-terminal for each colour system (none, 8, 256,
truecolor) at 80 and 200 columns, and through a pipe: no traceback anywhere, and
an exit status from the documented list. Commands that keep running (a server, a
subscriber, a live tap) are stopped with SIGTERM, which must end them as Ctrl-C
does. URLs in the docs point at a `wsp serve` and an echo server started here.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from .terminal import ROOT, Run, environment, run_in_pipe, run_in_terminal

#: the statuses README.md documents
DOCUMENTED = {0, 1, 2, 3, 4, 5, 130}
SECRET = "tour-secret"


def _blocks(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of each fenced code block."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = re.match(r"^\s*```(\w*)", lines[index])
        if match:
            language = match.group(1)
            start = index + 1
            index += 1
            while index < len(lines) and not lines[index].lstrip().startswith("```"):
                index += 1
            yield language, start + 1, lines[start:index]
        index += 1


def doc_commands() -> list[tuple[str, str]]:
    """(where, command) for each shell command that runs wsp in the docs."""
    found: list[tuple[str, str]] = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for language, first, lines in _blocks(doc.read_text(encoding="utf-8")):
            if language not in ("", "console", "sh", "bash", "shell"):
                continue
            pending = ""
            for offset, raw in enumerate(lines):
                line = raw.rstrip()
                if language == "console" or line.startswith("$ "):
                    if not line.startswith("$ ") and not pending:
                        continue  # output
                    line = line[2:] if line.startswith("$ ") else line
                if pending:
                    line = pending + " " + line.strip()
                    pending = ""
                if line.endswith("\\"):
                    pending = line[:-1].rstrip()
                    continue
                if language == "" and not pending and not raw.startswith(("$ ", "wsp ")):
                    continue  # a plain block: only lines that start as commands do
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                if not re.search(r"(^|[|;&]\s*|\s)wsp\s", line) and not line.startswith("wsp "):
                    continue
                if line.startswith(("pip ", "python ", "cd ", "export ")) or "pip install" in line:
                    continue
                if re.search(r"(wss?|nats|tls)://(?!127\.0\.0\.1|localhost|\[::1\])", line):
                    continue  # tests send traffic to loopback only
                found.append((f"{doc.name}:{first + offset}", line))
    return found


COMMANDS = doc_commands()
LONG_RUNNING = re.compile(
    r"(^|\|\s*)wsp serve\b|wsp tap\b(?!.*--(count|duration))|wsp fuzz --serve|"
    r"wsp replay\b.*--serve\b|"
    r"tcpdump|&\s*$|wsp sub\b|^wsp connect\b(?!.*<)|\bwsp tui\b"
)


def _wait_for(proc: subprocess.Popen[bytes], pattern: str, timeout: float = 20.0) -> str:
    assert proc.stderr is not None
    seen = b""
    fd = proc.stderr.fileno()
    end = os.times().elapsed + timeout
    while os.times().elapsed < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
            match = re.search(pattern.encode(), seen)
            if match:
                return match.group(1).decode()
    raise AssertionError(f"no {pattern!r} in {seen!r}")


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A `wsp serve` and a `websockets` echo server on 127.0.0.1, and a folder to run in."""
    server = subprocess.Popen(
        [sys.executable, "-m", "wsproto_tools.cli.main", "serve", "--port", "0",
         "--secret", SECRET],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=environment(),
    )
    echo_code = (
        "import asyncio, sys\n"
        "from websockets.asyncio.server import serve\n"
        "async def echo(ws):\n"
        "    try:\n"
        "        async for m in ws: await ws.send(m)\n"
        "    except Exception: pass\n"
        "async def main():\n"
        "    async with serve(echo, '127.0.0.1', 0, max_size=None) as s:\n"
        "        print('port', s.sockets[0].getsockname()[1], file=sys.stderr, flush=True)\n"
        "        await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    echo = subprocess.Popen([sys.executable, "-c", echo_code], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        server_port = _wait_for(server, r"ws://127\.0\.0\.1:(\d+)")
        echo_port = _wait_for(echo, r"port (\d+)")
        work = tmp_path_factory.mktemp("docs")
        for name in ("captures", "README.md", "docs"):
            os.symlink(ROOT / name, work / name)
        yield {"server": server_port, "echo": echo_port, "cwd": str(work)}
    finally:
        for proc in (server, echo):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def localize(command: str, peers: dict[str, str]) -> str:
    command = command.replace("127.0.0.1:8765", f"127.0.0.1:{peers['server']}")
    command = re.sub(r"(--serve\b.*--port )9001", r"\g<1>0", command)
    for echo_port in ("9001", "9000"):
        command = command.replace(f"127.0.0.1:{echo_port}", f"127.0.0.1:{peers['echo']}")
    command = re.sub(r"\s*&\s*$", "", command)
    if re.search(r"wsp serve\b", command) and "--port" not in command:
        command = command.replace("wsp serve", "wsp serve --port 0")
    command = re.sub(r"(^|\|\s*)sudo ", r"\1", command)  # the tests run as root, or say why not
    command = re.sub(r"--duration \d+", "--duration 1", command)
    if shutil.which("jq") is None:
        command = re.sub(r"\|\s*jq\b.*$", "| cat", command)
    # bash itself outlives a SIGTERM (its trap), so the status is the pipeline's
    return "trap true TERM; set -o pipefail; " + command


def check(run: Run, long_running: bool) -> None:
    crash = run.crash()
    assert crash is None, f"{run.command!r}: {crash}\n{run.output[-3000:]}"
    if run.stopped:
        assert long_running, f"{run.command!r} did not finish in time\n{run.output[-3000:]}"
        assert run.status in (0, 130), f"SIGTERM: status {run.status}\n{run.output[-3000:]}"
    assert run.status in DOCUMENTED, f"{run.command!r}: status {run.status}\n{run.output[-2000:]}"


def test_the_docs_have_commands() -> None:
    where = {w.split(":")[0] for w, _ in COMMANDS}
    assert "README.md" in where and len(COMMANDS) >= 15, COMMANDS


needs_tools = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

TERMINALS = [(c, w) for c in ("none", "8", "256", "truecolor") for w in (80, 200)]


@needs_tools
@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_in_terminals_and_a_pipe(where: str, command: str, peers: dict[str, str]) -> None:
    long_running = bool(LONG_RUNNING.search(command))
    timeout = 2.0 if long_running else 60.0
    line = localize(command, peers)
    env = {"WSP_SECRET": SECRET, "HOME": peers["cwd"]}


    def in_terminal(kind: tuple[str, int]) -> tuple[str, int, Run]:
        colours, columns = kind
        run = run_in_terminal(line, colours=colours, columns=columns, timeout=timeout,
                              cwd=peers["cwd"], env=env)
        return colours, columns, run

    # the eight terminals at once: no command here binds a fixed port
    with ThreadPoolExecutor(len(TERMINALS)) as pool:
        runs = list(pool.map(in_terminal, TERMINALS))
    for colours, _columns, run in runs:
        check(run, long_running)
        if colours != "none" and "wsp decode captures" in line and run.status == 0:
            assert "\x1b[" in run.output, "a colour terminal gets colour"
        if colours == "none":
            assert "\x1b[3" not in run.output, "TERM=dumb gets no colour"
    check(run_in_pipe(line, timeout=timeout, cwd=peers["cwd"], env=env), long_running)


def test_sigterm_stops_a_long_running_command_like_ctrl_c(peers: dict[str, str]) -> None:
    """In a backgrounded script SIGINT is ignored: SIGTERM still ends `wsp sub` cleanly."""
    url = f"ws://127.0.0.1:{peers['server']}"
    run = run_in_pipe(f"trap '' INT; exec wsp sub {url} room", timeout=2.0,
                      env={"WSP_SECRET": SECRET})
    assert run.stopped
    assert run.crash() is None, run.output
    assert run.status == 130, run.output
    assert "wsp: interrupted" in run.output


def test_every_help_ends_with_examples() -> None:
    """Every command's --help ends with two to four examples, after the options."""
    from click.testing import CliRunner

    from wsproto_tools.cli.main import COMMANDS as NAMES
    from wsproto_tools.cli.main import cli

    runner = CliRunner()
    paths = [[name] for name in NAMES] + [["msg", "encode"], ["msg", "decode"]]
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert result.output.rindex("Examples:") > result.output.index("Show this message")
        tail = result.output[result.output.rindex("Examples:"):]
        examples = [line.strip() for line in tail.splitlines()[1:]
                    if f"wsp {path[0]}" in line]
        assert 2 <= len(examples) <= 4, (path, tail)
