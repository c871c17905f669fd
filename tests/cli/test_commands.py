"""``wsp serve``, ``wsp pub``, ``wsp sub`` and ``wsp connect`` as real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

WSP = os.path.join(os.path.dirname(sys.executable), "wsp")


def wsp(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("WSP_SECRET", "WSP_TOKEN")}
    full_env.update(env or {})
    return subprocess.run(
        [WSP, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )


def start_server(*args: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "WSP_SECRET"}
    proc = subprocess.Popen(
        [WSP, "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    lines = []
    for _ in range(10):
        line = proc.stderr.readline()
        lines.append(line)
        if "listening on" in line:
            break
    match = re.search(r"listening on (ws://\S+)", "".join(lines))
    assert match, lines
    return proc, match.group(1), lines


@pytest.fixture
def server() -> Iterator[tuple[str, str]]:
    proc, url, _ = start_server("--secret", "cli-secret")
    try:
        yield url, "cli-secret"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_serve_generates_a_secret_and_prints_a_client_command() -> None:
    proc, url, _ = start_server()
    assert proc.stderr is not None
    lines = [proc.stderr.readline() for _ in range(4)]
    text = "".join(lines)
    assert "generated" in text
    command = re.search(r"(WSP_SECRET=(\S+) wsp sub (\S+) demo)", text)
    assert command and command.group(3) == url
    secret = command.group(2)
    done = wsp("pub", url, "demo", "x", env={"WSP_SECRET": secret})
    assert done.returncode == 0, done.stderr
    refused = wsp("pub", url, "demo", "x", "--secret", "wrong")
    assert refused.returncode == 5 and "wrong secret" in refused.stderr
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "shutting down" in proc.stderr.read()


def test_serve_no_auth_and_usage_errors() -> None:
    proc, url, lines = start_server("--no-auth")
    try:
        assert "auth: none" in "".join(lines)
        assert wsp("pub", url, "t", "free").returncode == 0
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    bad = wsp("serve", "--no-auth", "--secret", "x")
    assert bad.returncode == 2 and "--no-auth cannot be combined" in bad.stderr


def test_pub_and_sub_json_lines(server: tuple[str, str]) -> None:
    url, secret = server
    env = {"WSP_SECRET": secret}
    published = wsp("pub", url, "news", "one", "zwei", env=env)
    assert published.returncode == 0, published.stderr
    lines = wsp("pub", url, "news", "-", stdin="three\nfour\n", env=env)
    assert lines.returncode == 0
    binary = wsp("pub", "--hex", url, "news", "00ff", env=env)
    assert binary.returncode == 0
    # a fresh subscriber gets what is published after it subscribed
    sub = subprocess.Popen(
        [WSP, "sub", url, "news", "--json", "--count", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert sub.stdout is not None
    first = json.loads(sub.stdout.readline())
    assert first["event"] == "connected"
    assert wsp("pub", url, "news", "live", env=env).returncode == 0
    assert wsp("pub", "--hex", url, "news", "c3", env=env).returncode == 0
    out, err = sub.communicate(timeout=20)
    assert sub.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    deliveries = [r for r in records if "topic" in r]
    assert [d["offset"] for d in deliveries] == [6, 7]
    assert deliveries[0]["data"] == "live" and isinstance(deliveries[0]["epoch"], int)
    assert deliveries[1]["data_b64"] == "ww=="  # 0xC3 is not UTF-8


def test_pub_exit_statuses(server: tuple[str, str]) -> None:
    url, secret = server
    assert wsp("pub", url, "t").returncode == 2
    bad_hex = wsp("pub", "--hex", url, "t", "zz", "--secret", secret)
    assert bad_hex.returncode == 3 and "not hex" in bad_hex.stderr
    unreachable = wsp("pub", "ws://127.0.0.1:1", "t", "x", "--secret", secret)
    assert unreachable.returncode == 4 and "cannot connect" in unreachable.stderr
    both = wsp("pub", url, "t", "x", "--secret", "a", "--token", "b")
    assert both.returncode == 2
    assert "Traceback" not in bad_hex.stderr + unreachable.stderr + both.stderr


def test_connect_reads_commands_from_stdin(server: tuple[str, str]) -> None:
    url, secret = server
    script = "ping\necho hello\nsub room\npub room said-hi\ntext plain\nhex 0a0b\nnope\nquit\n"
    done = wsp("connect", url, "--json", "--secret", secret, stdin=script)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [r["kind"] for r in records]
    for kind in ("pong", "echo", "sub", "ack", "deliver", "text", "binary", "error"):
        assert kind in kinds, (kind, kinds)
    echo = next(r for r in records if r["kind"] == "echo")
    assert echo["data"] == "hello" and echo["rtt_ms"] > 0
    deliver = next(r for r in records if r["kind"] == "deliver")
    assert deliver["topic"] == "room" and deliver["data"] == "said-hi"
    binary = next(r for r in records if r["kind"] == "binary")
    assert binary["data"] == "\n\x0b"
