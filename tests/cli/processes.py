"""`wsp` as a real process: run a command, start and stop `wsp serve` on a free port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

#: the `wsp` console script of the environment running the tests
WSP = str(Path(sys.executable).parent / "wsp")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tests' environment without any WSP_* setting of the user's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSP_")}
    env.update(extra or {})
    return env


def wsp(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``wsp ARGS`` to the end; stdout and stderr as text."""
    return subprocess.run(
        [WSP, *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(env),
        check=False,
    )


def start_server(*args: str, env: dict[str, str] | None = None) -> tuple[Any, str, str]:
    """Start ``wsp serve --port 0 ARGS``; (process, its ws:// or wss:// URL, its banner)."""
    proc = subprocess.Popen(
        [WSP, "serve", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=clean_env(env),
    )
    assert proc.stderr is not None
    lines = []
    for _ in range(10):
        line = proc.stderr.readline()
        lines.append(line)
        if "listening on" in line or not line:
            break
    match = re.search(r"listening on (wss?://\S+)", "".join(lines))
    assert match, lines
    return proc, match.group(1), "".join(lines)


def stop(proc: Any) -> int:
    """SIGTERM, as a service manager stops it; the exit status (0 for a clean stop)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return int(proc.wait(timeout=10))
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
