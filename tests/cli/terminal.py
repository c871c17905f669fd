"""Run shell commands as a user would: in a real pseudo-terminal or through a pipe.

A command gets a terminal of the given size and colour system (TERM/COLORTERM, the
way terminals announce themselves), and is stopped with SIGTERM, then SIGKILL, if it
is still running after ``timeout`` seconds. Everything it wrote comes back with its
exit status.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)

#: colour system -> the environment a terminal of that kind gives its programs
COLOURS: dict[str, dict[str, str]] = {
    "none": {"TERM": "dumb"},
    "8": {"TERM": "xterm"},
    "256": {"TERM": "xterm-256color"},
    "truecolor": {"TERM": "xterm-256color", "COLORTERM": "truecolor"},
}

#: what a traceback or an unhandled asyncio error looks like in the output
CRASH_MARKERS = (
    "Traceback (most recent call last)",
    "Task exception was never retrieved",
    "Exception ignored",
    "was never awaited",
)


@dataclass
class Run:
    command: str
    output: str
    status: int
    stopped: bool  # it was still running after the timeout and was sent SIGTERM

    def crash(self) -> str | None:
        for marker in CRASH_MARKERS:
            if marker in self.output:
                return marker
        return None


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COLUMNS", "LINES", "TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR")
    }
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _finish(proc: subprocess.Popen[bytes], deadline: float, read: Callable[[float], None]) -> bool:
    """Read until the process ends; SIGTERM it (then SIGKILL) at the deadline."""
    stopped = False
    while proc.poll() is None:
        if time.monotonic() > deadline and not stopped:
            stopped = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
        elif time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        read(0.05)
    return stopped


def run_in_terminal(
    command: str,
    *,
    colours: str = "256",
    columns: int = 80,
    timeout: float = 30.0,
    cwd: Path | str = ROOT,
    env: dict[str, str] | None = None,
    stdin_text: str | None = None,
) -> Run:
    """Run ``command`` with bash in a new pseudo-terminal (stdin, stdout and stderr)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        ["bash", "-c", command],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=environment({**COLOURS[colours], **(env or {})}),
        start_new_session=True,  # its own process group and controlling terminal
    )
    os.close(slave)
    chunks: list[bytes] = []

    def read(wait: float) -> None:
        ready, _, _ = select.select([master], [], [], wait)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if data:
                chunks.append(data)

    if stdin_text is not None:
        os.write(master, stdin_text.encode())
    stopped = _finish(proc, time.monotonic() + timeout, read)
    for _ in range(20):  # what is still in the terminal's buffer
        before = len(chunks)
        read(0.02)
        if len(chunks) == before:
            break
    os.close(master)
    return Run(command, b"".join(chunks).decode("utf-8", "replace"), proc.returncode, stopped)


def run_in_pipe(
    command: str,
    *,
    timeout: float = 30.0,
    cwd: Path | str = ROOT,
    env: dict[str, str] | None = None,
) -> Run:
    """Run ``command`` with stdout and stderr to pipes and stdin from /dev/null."""
    proc = subprocess.Popen(
        ["bash", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=environment(env),
        start_new_session=True,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []

    def read(wait: float) -> None:
        ready, _, _ = select.select([fd], [], [], wait)
        if ready:
            data = os.read(fd, 65536)
            if data:
                chunks.append(data)

    stopped = _finish(proc, time.monotonic() + timeout, read)
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
    proc.stdout.close()
    return Run(command, b"".join(chunks).decode("utf-8", "replace"), proc.returncode, stopped)
