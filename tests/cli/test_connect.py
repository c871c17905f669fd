"""``wsp connect`` as a real process against real servers: a plain websockets echo
server (which records what reached it: the oracle), a TLS one, and ``wsp serve``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .connect_echo import EchoServer
from .connect_pty import Terminal
from .processes import WSP, start_server, stop

SECRET = "connect-secret"
#: the greeting, then the prompt (its trailing space may be drawn as a cursor move)
PROMPT = r"connected to .*Ctrl-D to quit\s*>"
CRASHES = ("Traceback", "Task exception was never retrieved", "Exception ignored")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The user's environment, without wsp credentials; history goes to tmp_path."""
    base = {k: v for k, v in os.environ.items() if k not in ("WSP_SECRET", "WSP_TOKEN")}
    return {**base, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}


def connect(
    *args: str, stdin: str = "", env: dict[str, str], timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [WSP, "connect", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    for marker in CRASHES:
        assert marker not in done.stderr + done.stdout, done.stderr
    return done


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


@pytest.fixture(scope="module")
def wsp_server() -> Iterator[str]:
    """``wsp serve`` on a free port; its URL."""
    proc, url, _ = start_server("--secret", SECRET)
    try:
        yield url
    finally:
        stop(proc)


# ---------------------------------------------------------------------- plain, piped


def test_lines_in_echoes_out(echo: EchoServer, env: dict[str, str]) -> None:
    done = connect(echo.url, stdin="hello\nworld, with spaces\n", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello\nworld, with spaces\n"
    assert done.stderr == ""
    (seen,) = echo.connections
    assert seen.messages == ["hello", "world, with spaces"]
    assert seen.closed.wait(5) and seen.close_code == 1000  # closed cleanly after the input


def test_binary_lines_are_hex_both_ways(echo: EchoServer, env: dict[str, str]) -> None:
    done = connect(echo.url, "--binary", stdin="00ff10\n48 65 6c\n", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "00ff10\n48656c\n"
    assert echo.connections[0].messages == [b"\x00\xff\x10", b"Hel"]


def test_a_bad_hex_line_is_named_in_our_words(echo: EchoServer, env: dict[str, str]) -> None:
    done = connect(echo.url, "--binary", stdin="0a0b\nzz\n0c\n", env=env)
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines() == [
        "wsp: error: line 2: not hex: 'z' at digit 1 (give pairs of hex digits, e.g. 48656c6c6f)"
    ]
    assert "non-hexadecimal" not in done.stderr and "fromhex" not in done.stderr
    odd = connect(echo.url, "--binary", stdin="abc\n", env=env)
    assert odd.returncode == 3 and "line 1: not hex: an odd number" in odd.stderr
    assert echo.connections[0].messages == [b"\x0a\x0b"]  # nothing after the bad line


def test_a_line_that_is_not_utf8_is_named(echo: EchoServer, env: dict[str, str]) -> None:
    done = subprocess.run(
        [WSP, "connect", echo.url],
        input=b"fine\n\xff\xfe\n",
        capture_output=True,
        timeout=20,
        env=env,
        check=False,
    )
    assert done.returncode == 3
    assert done.stderr.decode().splitlines() == [
        "wsp: error: line 2: not UTF-8 (byte 1 is 0xff); send bytes with --binary and hex lines"
    ]
    assert echo.connections[0].messages == ["fine"]


def test_max_size_closes_with_1009(echo: EchoServer, env: dict[str, str]) -> None:
    done = connect(echo.url, "--max-size", "4", "--no-deflate", stdin="0123456789\n", env=env)
    assert done.returncode == 4
    assert done.stderr.splitlines() == [
        "wsp: the connection was closed: 1009 frame with 10 bytes exceeds limit of 4 bytes"
    ]
    assert echo.connections[0].closed.wait(5) and echo.connections[0].close_code == 1009


def test_json_records_have_direction_opcode_and_time(echo: EchoServer, env: dict[str, str]) -> None:
    before = time.time()
    done = connect(echo.url, "--json", stdin="héllo\n", env=env)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["direction"], r["opcode"]) for r in records] == [
        ("out", "text"),
        ("in", "text"),
        ("out", "close"),  # ours, at the end of the input
    ]
    assert records[2]["code"] == 1000
    for record in records[:2]:
        assert record["data"] == "héllo" and record["length"] == 6
        assert before <= record["time"] <= time.time()
    binary = connect(echo.url, "--json", "--binary", stdin="c3\n", env=env)
    last = json.loads(binary.stdout.splitlines()[1])
    assert last == {**last, "direction": "in", "opcode": "binary", "hex": "c3", "length": 1}


def test_headers_subprotocol_and_origin_reach_the_server(
    echo: EchoServer, env: dict[str, str]
) -> None:
    done = connect(
        echo.url,
        "-H", "X-Api-Key: k-123",
        "--header", "X-Trace:  two words ",
        "--subprotocol", "chat",
        "--origin", "https://app.example",
        "--no-deflate",
        stdin="hi\n",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = echo.connections[0]
    assert seen.headers["X-Api-Key"] == "k-123"
    assert seen.headers["X-Trace"] == "two words"
    assert seen.headers["Origin"] == "https://app.example"
    assert seen.headers["Sec-WebSocket-Protocol"] == "chat, wsp.v2, wsp.v1"
    assert seen.subprotocol == "chat"
    assert "Sec-WebSocket-Extensions" not in seen.headers and seen.extensions == []
    default = connect(echo.url, "--raw", stdin="", env=env)
    assert default.returncode == 0
    plain = echo.connections[1]
    assert "Sec-WebSocket-Protocol" not in plain.headers  # --raw offers no wsp
    assert plain.extensions == ["permessage-deflate"]  # offered by default
    bad = connect(echo.url, "-H", "no colon here", env=env)
    assert bad.returncode == 2 and "expected 'Name: value'" in bad.stderr


def test_the_servers_close_code_and_reason_are_printed(
    echo: EchoServer, env: dict[str, str]
) -> None:
    done = connect(echo.url, stdin="one\nbye\n", env=env)
    assert done.returncode == 4, done.stderr
    assert done.stdout == "one\n"
    assert done.stderr.splitlines() == ["wsp: the server closed the connection: 4000 bye"]
    as_json = connect(echo.url, "--json", stdin="bye\n", env=env)
    assert as_json.returncode == 4
    close = json.loads(as_json.stdout.splitlines()[-1])
    assert close == {**close, "direction": "in", "opcode": "close", "code": 4000, "reason": "bye"}


def test_a_refused_handshake_is_one_line_and_status_4(env: dict[str, str]) -> None:
    with EchoServer(refuse=403) as server:
        done = connect(server.url, stdin="x\n", env=env)
    assert done.returncode == 4
    assert done.stderr.splitlines() == [
        f"wsp: error: {server.url}: the server refused the WebSocket handshake: "
        "HTTP 403 Forbidden (refused by the test server (Forbidden))"
    ]


def test_sigterm_closes_like_ctrl_c(echo: EchoServer, env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [WSP, "connect", echo.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("still here\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "still here\n"  # connected, input still open
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["wsp: interrupted"]
    seen = echo.connections[0]
    assert seen.closed.wait(5) and seen.close_code == 1000  # a clean close first


# ---------------------------------------------------------------------- TLS


def test_wss_with_a_private_ca(tls_files: Any, env: dict[str, str]) -> None:
    with EchoServer(ssl_context=tls_files.server_context()) as server:
        done = connect(server.url, "--cafile", tls_files.cafile, stdin="secure\n", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "secure\n"
        untrusted = connect(server.url, stdin="secure\n", env=env)
        assert untrusted.returncode == 4
        assert untrusted.stderr.splitlines() == [
            f"wsp: error: cannot connect to {server.url}: TLS certificate verification "
            "failed: unable to get local issuer certificate"
        ]
        insecure = connect(server.url, "--insecure", stdin="anyway\n", env=env)
        assert insecure.returncode == 0 and insecure.stdout == "anyway\n"
        assert "--insecure" in insecure.stderr and "not verified" in insecure.stderr


def test_wss_to_a_wsp_server(tls_files: Any, env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [WSP, "serve", "--port", "0", "--secret", SECRET, "--certfile", tls_files.certfile,
         "--keyfile", tls_files.keyfile],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        match = re.search(r"listening on (wss://\S+)", proc.stderr.readline())
        assert match
        url = match.group(1)
        done = connect(
            url, "--cafile", tls_files.cafile, "--secret", SECRET, stdin="text sealed\n", env=env
        )
        assert done.returncode == 0, done.stderr
        assert re.search(r"text +sealed", done.stdout)
    finally:
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------------- wsp servers


def test_a_wsp_server_still_gets_wsp(wsp_server: str, env: dict[str, str]) -> None:
    script = "text hi there\nhex 0a0b\nping\nhelp\n"
    done = connect(wsp_server, "--json", "--secret", SECRET, stdin=script, env=env)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]  # help is not here
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "event" and records[0]["event"] == "connected"
    assert {"sent", "text", "binary", "pong"} <= set(kinds)
    assert next(r for r in records if r["kind"] == "text")["data"] == "hi there"
    assert "commands" in done.stderr and "quit" in done.stderr  # help went to stderr
    bad = connect(wsp_server, "--secret", SECRET, stdin="hex 0g\n", env=env)
    assert bad.returncode == 3 and "line 1: not hex: 'g' at digit 2" in bad.stdout


def test_origin_and_headers_reach_a_wsp_server(env: dict[str, str]) -> None:
    """A server that allows one Origin (4010 for others) is the oracle: the wsp session
    carries --origin, not only the first, plain connection."""
    proc, url, _ = start_server("--secret", SECRET, "--origin", "https://app.example")
    try:
        allowed = connect(url, "--origin", "https://app.example", "-H", "X-Api-Key: k",
                          "--secret", SECRET, stdin="text hi\n", env=env)
        assert allowed.returncode == 0, allowed.stderr
        assert "hi" in allowed.stdout
        refused = connect(url, "--origin", "https://evil.example", "--secret", SECRET,
                          stdin="text hi\n", env=env)
        assert refused.returncode in (4, 5), refused.stderr
    finally:
        stop(proc)


def test_raw_forces_plain_websocket_on_a_wsp_server(wsp_server: str, env: dict[str, str]) -> None:
    refused = connect(wsp_server, "--raw", stdin="hello\n", env=env)
    assert refused.returncode == 4
    assert refused.stderr.splitlines() == [
        f"wsp: error: {wsp_server}: the server refused the WebSocket handshake: "
        "HTTP 400 Bad Request (no wsp subprotocol: offer Sec-WebSocket-Protocol wsp.v2 or "
        "wsp.v1)"
    ]
    wire = connect(
        wsp_server, "--raw", "--subprotocol", "wsp.v2", "--binary", "--wait", "0.5", env=env
    )
    assert wire.returncode == 0, wire.stderr
    (challenge,) = wire.stdout.split()  # the server's first wsp message, as hex
    assert re.fullmatch(r"[0-9a-f]+", challenge)


def test_help_has_examples_and_exit_status(env: dict[str, str]) -> None:
    done = connect("--help", env=env)
    assert done.returncode == 0
    assert "Examples:" in done.stdout and "Exit status:" in done.stdout
    assert "  wsp connect wss://example.org/ws -H" in done.stdout  # not rewrapped


# ---------------------------------------------------------------------- at a terminal


def terminal(env: dict[str, str], *args: str) -> Terminal:
    return Terminal(
        [WSP, "connect", *args],
        {**env, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"},
        columns=80,
    )


def no_crash(screen: str) -> None:
    for marker in CRASHES:
        assert marker not in screen, screen


def test_prompt_line_editing_history_and_ctrl_d(echo: EchoServer, env: dict[str, str]) -> None:
    term = terminal(env, echo.url)
    try:
        term.expect(PROMPT)
        term.write(b"helo\x1b[D\x1b[Dl\r")  # two steps left, insert an 'l': hello
        term.expect(r"< hello")
        term.write(b"\x1b[A\r")  # Up: the previous line again
        term.expect(r"< hello", count=2)
        term.write(b"/ping\r")
        term.expect(r"pong in [0-9.]+ ms")
        term.write(b"\x04")  # Ctrl-D
        assert term.wait(10) == 0
    finally:
        term.close()
    no_crash(term.text)
    assert "^[[A" not in term.text
    assert echo.connections[0].messages == ["hello", "hello"]
    assert echo.connections[0].close_code == 1000
    history = Path(env["XDG_STATE_HOME"], "wsp", "connect_history").read_text()
    assert "+hello" in history and "+/ping" in history


def test_ctrl_c_at_the_prompt_closes_cleanly(echo: EchoServer, env: dict[str, str]) -> None:
    term = terminal(env, echo.url, "--binary")
    try:
        term.expect(PROMPT)
        term.write(b"c0ffee\r")
        term.expect(r"< \[3 B\] c0ffee")
        term.write(b"xyz\r")
        term.expect(r"line 2: not hex")  # said, and the session goes on
        term.write(b"\x03")  # Ctrl-C
        assert term.wait(10) == 0
    finally:
        term.close()
    no_crash(term.text)
    assert echo.connections[0].messages == [b"\xc0\xff\xee"]
    assert echo.connections[0].closed.wait(5) and echo.connections[0].close_code == 1000


def test_close_command_sends_its_code(echo: EchoServer, env: dict[str, str]) -> None:
    term = terminal(env, echo.url)
    try:
        term.expect(PROMPT)
        term.write(b"/close 4321 done here\r")
        assert term.wait(10) == 0
    finally:
        term.close()
    no_crash(term.text)
    assert echo.connections[0].closed.wait(5) and echo.connections[0].close_code == 4321


def test_server_close_at_the_prompt_is_status_4(echo: EchoServer, env: dict[str, str]) -> None:
    term = terminal(env, echo.url)
    try:
        term.expect(PROMPT)
        term.write(b"bye\r")
        assert term.wait(10) == 4
    finally:
        term.close()
    no_crash(term.text)
    assert "the server closed the connection: 4000 bye" in term.text


def test_sigterm_at_the_prompt_closes_cleanly(echo: EchoServer, env: dict[str, str]) -> None:
    term = terminal(env, echo.url)
    try:
        term.expect(PROMPT)
        term.proc.send_signal(signal.SIGTERM)
        assert term.wait(10) == 0
    finally:
        term.close()
    no_crash(term.text)
    assert "closed: 1000" in term.text
    assert echo.connections[0].closed.wait(5) and echo.connections[0].close_code == 1000


def test_wsp_session_at_a_terminal(wsp_server: str, env: dict[str, str]) -> None:
    term = terminal(env, wsp_server, "--secret", SECRET)
    try:
        term.expect(r"connected to .*\(wsp, wsp\.v2\)")
        term.write(b"text over wsp\r")
        term.expect(r"text +over wsp")
        term.write(b"/ping\r")
        term.expect(r"pong +rtt")
        term.write(b"\x03")
        assert term.wait(10) == 0
    finally:
        term.close()
    no_crash(term.text)
