"""Wrong usage of every command, as a table: each gets one line on stderr that names
the problem, the documented exit status, no traceback, and leaves nothing behind.

Statuses (README.md, "Exit status"): 2 usage (bad option values, ports, URLs,
unknown names), 3 bad input (missing, empty, unreadable or directory files), 4
network (nothing listening), 5 credentials refused.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import WSP, start_server, stop
from .terminal import CRASH_MARKERS, environment

SECRET = "right-secret"


def _closed_port() -> int:
    """A loopback port where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A real `wsp serve` with a secret; yields its URL."""
    proc, url, _ = start_server("--secret", SECRET)
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "empty.pcap").write_bytes(b"")
    (folder / "text.pcap").write_text("not a capture\n")
    unreadable = folder / "unreadable.pcap"
    unreadable.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20))
    unreadable.chmod(0)
    (folder / "adir").mkdir()
    return {
        "EMPTY": str(folder / "empty.pcap"),
        "TEXT": str(folder / "text.pcap"),
        "UNREADABLE": str(unreadable),
        "DIR": str(folder / "adir"),
        "MISSING": str(folder / "missing.pcap"),
        "NOWHERE": str(folder / "no" / "such" / "dir" / "out.pcapng"),
    }


# (id, arguments, status, words the one line must contain)
# SERVER is the running server's URL, REFUSED a URL where nothing listens.
CASES: list[tuple[str, list[str], int, list[str]]] = [
    ("unknown-command", ["decod", "x"], 2, ["decod", "did you mean decode"]),
    ("unknown-option", ["decode", "--colour", "x"], 2, ["--colour"]),
    # serve
    ("serve-port-range", ["serve", "--port", "70000"], 2, ["70000"]),
    ("serve-port-negative", ["serve", "--port", "-1"], 2, ["-1"]),
    ("serve-certfile-missing", ["serve", "--certfile", "MISSING"], 3, ["missing.pcap"]),
    ("serve-certfile-dir", ["serve", "--certfile", "DIR"], 3, ["adir", "directory"]),
    ("serve-certfile-not-pem", ["serve", "--certfile", "TEXT"], 3, ["text.pcap"]),
    ("serve-keyfile-alone", ["serve", "--keyfile", "TEXT"], 2, ["--certfile"]),
    ("serve-jwt-key-missing", ["serve", "--jwt-key", "MISSING"], 3, ["--jwt-key"]),
    ("serve-jwt-key-empty", ["serve", "--jwt-key", "EMPTY"], 3, ["empty"]),
    ("serve-jwt-key-unreadable", ["serve", "--jwt-key", "UNREADABLE"], 3, ["denied"]),
    ("serve-inspect-no-secret", ["serve", "--inspect"], 2, ["--admin-secret"]),
    # pub
    ("pub-port-range", ["pub", "ws://127.0.0.1:70000/", "t", "m"], 2, ["70000"]),
    ("pub-http-url", ["pub", "http://127.0.0.1:8765/", "t", "m"], 2, ["did you mean ws://"]),
    ("pub-not-a-url", ["pub", "localhost", "t", "m"], 2, ["localhost"]),
    ("pub-refused", ["pub", "REFUSED", "t", "m"], 4, ["refused"]),
    ("pub-wrong-secret", ["pub", "SERVER", "t", "m", "--secret", "wrong"], 5, []),
    ("pub-cafile-missing", ["pub", "wss://127.0.0.1:9/", "t", "m", "--cafile", "MISSING"], 3,
     ["missing.pcap"]),
    ("pub-empty-topic", ["pub", "SERVER", "", "m", "--secret", SECRET], 4, ["topic"]),
    # sub
    ("sub-port-range", ["sub", "ws://127.0.0.1:99999/", "t"], 2, ["99999"]),
    ("sub-refused", ["sub", "REFUSED", "t"], 4, ["refused"]),
    ("sub-wrong-secret", ["sub", "SERVER", "t", "--secret", "wrong"], 5, []),
    ("sub-empty-topic", ["sub", "SERVER", "", "--secret", SECRET], 4, ["topic"]),
    # connect
    ("connect-port-range", ["connect", "ws://127.0.0.1:70000/"], 2, ["70000"]),
    ("connect-refused", ["connect", "REFUSED"], 4, ["refused"]),
    ("connect-wrong-secret", ["connect", "SERVER", "--secret", "wrong"], 5, []),
    # msg
    ("msg-unknown-type", ["msg", "encode", "--type", "Publsh"], 2, ["did you mean Publish"]),
    ("msg-not-hex", ["msg", "decode", "zz"], 3, ["hex"]),
    ("msg-too-short", ["msg", "decode", "d1c0"], 3, []),
    # decode
    ("decode-missing", ["decode", "MISSING"], 3, ["missing.pcap"]),
    ("decode-empty", ["decode", "EMPTY"], 3, ["empty"]),
    ("decode-dir", ["decode", "DIR"], 3, ["adir", "directory"]),
    ("decode-unreadable", ["decode", "UNREADABLE"], 3, ["unreadable.pcap", "denied"]),
    ("decode-not-a-capture", ["decode", "TEXT"], 3, ["not a pcap"]),
    ("decode-unknown-type", ["decode", "--type", "Publsh", "TEXT"], 2,
     ["Publsh", "did you mean Publish"]),
    ("decode-unknown-opcode", ["decode", "--opcode", "txt", "TEXT"], 2, ["txt"]),
    ("decode-bad-regex", ["decode", "--grep", "(", "TEXT"], 2, ["--grep"]),
    ("decode-io-error", ["decode", "/proc/self/mem"], 3, ["/proc/self/mem", "Input/output"]),
    # tap
    ("tap-port-range", ["tap", "-i", "lo", "--port", "70000"], 2, ["70000"]),
    ("tap-no-interface", ["tap", "-i", "nosuchif0", "--duration", "1"], 3, ["nosuchif0"]),
    ("tap-write-nowhere", ["tap", "-i", "lo", "--duration", "1", "-w", "NOWHERE"], 3,
     ["out.pcapng"]),
    # fuzz
    ("fuzz-port-range", ["fuzz", "ws://127.0.0.1:99999/"], 2, ["99999"]),
    ("fuzz-serve-port-range", ["fuzz", "--serve", "--port", "99999"], 2, ["99999"]),
    ("fuzz-refused", ["fuzz", "REFUSED", "--cases", "1.1.1"], 4, []),
    ("fuzz-unknown-suite", ["fuzz", "REFUSED", "--suite", "rfc645"], 2, ["rfc645"]),
    # inspect
    ("inspect-no-secret", ["inspect", "SERVER"], 2, ["--admin-secret"]),
    ("inspect-port-range", ["inspect", "ws://127.0.0.1:99999", "--admin-secret", "x"], 2,
     ["99999"]),
    ("inspect-bad-session", ["inspect", "SERVER", "--session", "x", "--admin-secret", "x"], 2,
     ["--session"]),
    ("inspect-refused", ["inspect", "REFUSED", "--admin-secret", "x"], 4, []),
    ("inspect-feed-off", ["inspect", "SERVER", "--admin-secret", "x"], 4, ["--inspect"]),
]

#: cases whose file must be unreadable: root reads everything, unless it drops the
#: capability to (setpriv, util-linux)
UNREADABLE = [case[0] for case in CASES if "UNREADABLE" in case[1]]
TAP = [case[0] for case in CASES if case[1][0] == "tap" and "70000" not in case[1]]


def _argv(args: list[str], files: dict[str, str], server: str) -> list[str]:
    values = {**files, "SERVER": server, "REFUSED": f"ws://127.0.0.1:{_closed_port()}/"}
    return [values.get(arg, arg) for arg in args]


@pytest.mark.parametrize(("name", "args", "status", "words"), CASES, ids=[c[0] for c in CASES])
def test_wrong_usage(
    name: str, args: list[str], status: int, words: list[str], files: dict[str, str],
    server: str, tmp_path: Path,
) -> None:
    argv = [WSP, *_argv(args, files, server)]
    if name in UNREADABLE and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) drops root's read-anything capability"
        argv = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--", *argv]
    if name in TAP and os.geteuid() != 0:
        pytest.skip("wsp tap needs root to open an interface (CI runs as root)")
    before = sorted(os.listdir(Path(files["MISSING"]).parent))
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, env=environment())
    # `wsp sub` reports session events on stderr ("-- connected ..."): not problems
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith("-- ")]
    for marker in CRASH_MARKERS:
        assert marker not in result.stderr, result.stderr
    assert result.returncode == status, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wsp: "), lines
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    # nothing left behind: no new files where it ran, or beside its inputs
    assert os.listdir(tmp_path) == []
    assert sorted(os.listdir(Path(files["MISSING"]).parent)) == before
