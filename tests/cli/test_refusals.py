"""Wrong ports, unreachable servers, refusals and SIGTERM for ``wsp serve/pub/sub``.

Each ends with one ``wsp: error:`` line and a documented status, never a
traceback and never a hang (every run has a timeout guard).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from .processes import WSP, clean_env, start_server, stop, wsp

SECRET = "refusal-secret"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc, url, _ = start_server("--secret", SECRET)
    try:
        yield url
    finally:
        assert stop(proc) == 0


def one_error(done: Any) -> str:
    """The one ``wsp: error:`` line; nothing else went wrong on stderr."""
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("wsp: error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--port", "70000"],
        ["serve", "--port", "-1"],
        ["pub", "ws://127.0.0.1:70000/x", "t", "m"],
        ["pub", "wss://127.0.0.1:99999/", "t", "m"],
        ["sub", "ws://127.0.0.1:70000/x", "t"],
        ["sub", "ws://127.0.0.1:0/", "t"],
        ["pub", "http://127.0.0.1:8765/", "t", "m"],
        ["sub", "127.0.0.1:8765", "t"],
    ],
)
def test_bad_ports_and_urls_are_usage_errors(args: list[str]) -> None:
    done = wsp(*args, timeout=10)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    line = one_error(done)
    assert "port" in line or "URL" in line


def test_port_in_use_is_a_network_error(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    done = wsp("serve", "--port", port, "--no-auth", timeout=10)
    assert done.returncode == 4, done.stderr
    one_error(done)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", ["pub", "sub"])
def test_unreachable_servers_are_status_4(command: str) -> None:
    for url, why in (
        (f"ws://127.0.0.1:{free_port()}/", "connection refused"),
        ("ws://host.invalid/", "host not found"),
    ):
        args = [command, url, "t"] + (["m"] if command == "pub" else [])
        done = wsp(*args, "--secret", SECRET, timeout=15)
        assert done.returncode == 4, done.stderr
        line = one_error(done)
        assert line.startswith(f"wsp: error: cannot connect to {url}: {why}"), line


REASON = "server closed the session: topic names have 1 to 256 characters, not 0 (1008)"


def test_sub_to_an_invalid_topic_ends_with_the_servers_reason(server: str) -> None:
    done = wsp("sub", server, "", "--secret", SECRET, timeout=15)
    assert done.returncode == 4, done.stderr
    assert one_error(done) == f"wsp: error: {REASON}"
    assert "reconnecting" not in done.stderr
    valid_too = wsp("sub", server, "news", "", "--json", "--secret", SECRET, timeout=15)
    assert valid_too.returncode == 4 and one_error(valid_too) == f"wsp: error: {REASON}"
    events = [json.loads(line)["event"] for line in valid_too.stdout.splitlines()]
    assert events == ["connected"]


def test_pub_to_an_invalid_topic_ends_with_the_servers_reason(server: str) -> None:
    done = wsp("pub", server, "", "m", "--secret", SECRET, timeout=15)
    assert done.returncode == 4, done.stderr
    assert one_error(done) == f"wsp: error: {REASON}"
    assert "not acknowledged" not in done.stderr


@pytest.mark.parametrize("command", ["pub", "sub"])
def test_refused_credentials_are_status_5(server: str, command: str) -> None:
    args = [command, server, "news"] + (["m"] if command == "pub" else [])
    done = wsp(*args, "--secret", "wrong", timeout=15)
    assert done.returncode == 5, done.stderr
    assert "wrong secret" in one_error(done)
    assert "4001" in done.stderr


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    key = tmp_path_factory.mktemp("jwt") / "hs256.key"
    key.write_text("jwt-test-key-of-32-bytes-or-more!!")
    proc, url, _ = start_server("--jwt-key", str(key))
    token = jwt.encode(
        {"exp": time.time() + 3600, "wsp": {"pub": ["public.*"], "sub": ["public.*"]}},
        Path(key).read_bytes().strip(),
        "HS256",
    )
    try:
        yield url, token
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("command", ["pub", "sub"])
def test_forbidden_topic_is_status_5(jwt_server: tuple[str, str], command: str) -> None:
    url, token = jwt_server
    args = [command, url, "private"] + (["m"] if command == "pub" else [])
    done = wsp(*args, "--token", token, timeout=15)
    assert done.returncode == 5, done.stderr
    line = one_error(done)
    assert "'private' is not allowed" in line and "(4003)" in line
    allowed = wsp("pub", url, "public.news", "m", "--token", token, timeout=15)
    assert allowed.returncode == 0, allowed.stderr


def sigterm_after(proc: Any, ready: Any) -> tuple[str, str]:
    ready()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    return out, err


def test_sub_stops_on_sigterm_like_ctrl_c(server: str) -> None:
    proc = subprocess.Popen(
        [WSP, "sub", server, "news", "--json", "--secret", SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert proc.stdout is not None
    try:
        _, err = sigterm_after(proc, proc.stdout.readline)  # the "connected" event
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == "wsp: interrupted"


def test_pub_stops_on_sigterm_like_ctrl_c() -> None:
    """A server that accepts TCP and never answers the upgrade: pub waits, then SIGTERM."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        proc = subprocess.Popen(
            [WSP, "pub", f"ws://127.0.0.1:{port}/", "t", "m", "--secret", SECRET],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        silent.settimeout(15)
        try:
            conn, _ = silent.accept()  # pub is inside its event loop, waiting for the upgrade
            with conn:
                conn.recv(4096)  # its HTTP request: it is now waiting for the answer
                _, err = sigterm_after(proc, lambda: None)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == "wsp: interrupted"


def test_help_documents_the_exit_statuses() -> None:
    for command in ("pub", "sub", "serve"):
        done = wsp(command, "--help", timeout=10)
        assert done.returncode == 0
        assert "Exit status:" in done.stdout
        assert "Examples:" in done.stdout
    assert "4  cannot connect" in wsp("pub", "--help").stdout
    assert "5  credentials refused" in wsp("sub", "--help").stdout
