"""``wsp serve --certfile/--keyfile`` and ``wsp pub``/``wsp sub`` over wss://, as processes.

Certificates are made for the run by trustme (the ``tls_files`` fixture).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from .processes import WSP, clean_env, start_server, stop, wsp


@pytest.fixture
def tls_server(tls_files: Any) -> Iterator[str]:
    proc, url, _ = start_server(
        "--no-auth", "--certfile", tls_files.certfile, "--keyfile", tls_files.keyfile
    )
    try:
        yield url
    finally:
        stop(proc)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("wsp: error:")]


def test_serve_with_a_certificate_listens_on_wss_and_answers_https(
    tls_server: str, tls_files: Any
) -> None:
    assert tls_server.startswith("wss://127.0.0.1:")
    https = tls_server.replace("wss://", "https://")
    context = ssl.create_default_context(cafile=tls_files.cafile)
    with urllib.request.urlopen(f"{https}/healthz", context=context, timeout=5) as answer:
        assert answer.status == 200 and answer.read() == b"ok\n"
    with urllib.request.urlopen(f"{https}/metrics", context=context, timeout=5) as answer:
        assert b"wsp_connections" in answer.read()


def test_certificate_from_the_environment(tls_files: Any) -> None:
    proc, url, _ = start_server(
        "--no-auth", env={"WSP_CERTFILE": tls_files.certfile, "WSP_KEYFILE": tls_files.keyfile}
    )
    try:
        assert url.startswith("wss://")
        done = wsp("pub", url, "t", "m", env={"WSP_CAFILE": tls_files.cafile})
        assert done.returncode == 0, done.stderr
    finally:
        stop(proc)


def test_pub_and_sub_over_wss_end_to_end(tls_server: str, tls_files: Any) -> None:
    sub = subprocess.Popen(
        [WSP, "sub", tls_server, "news", "--json", "--count", "2", "--cafile", tls_files.cafile],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert sub.stdout is not None
        first = json.loads(sub.stdout.readline())
        assert first["event"] == "connected", first
        published = wsp("pub", tls_server, "news", "one", "two", "--cafile", tls_files.cafile)
        assert published.returncode == 0, published.stderr
        assert "all acknowledged" in published.stderr
        out, err = sub.communicate(timeout=20)
    finally:
        if sub.poll() is None:
            sub.kill()
    assert sub.returncode == 0, err
    deliveries = [json.loads(line) for line in out.splitlines()]
    assert [d["data"] for d in deliveries] == ["one", "two"]
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["pub", "sub"])
@pytest.mark.parametrize("trust", ["system store", "other CA"])
def test_certificate_verification_failure_is_status_4_and_one_line(
    tls_server: str, tls_files: Any, command: str, trust: str
) -> None:
    args = [command, tls_server, "news"] + (["m"] if command == "pub" else [])
    if trust == "other CA":
        args += ["--cafile", tls_files.other_cafile]
    done = wsp(*args, "--max-attempts", "100", timeout=15)  # no retry loop, still
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"wsp: error: cannot connect to {tls_server}: TLS certificate verification "
        "failed: unable to get local issuer certificate"
    ]


def test_insecure_skips_verification_with_a_warning(tls_server: str) -> None:
    done = wsp("pub", tls_server, "news", "m", "--insecure")
    assert done.returncode == 0, done.stderr
    assert "wsp: warning: --insecure" in done.stderr
    assert "not verified" in done.stderr


def test_bad_certificate_files_are_one_line(tmp_path: Any, tls_files: Any) -> None:
    not_pem = tmp_path / "cert.pem"
    not_pem.write_text("this is not a certificate\n")
    done = wsp("serve", "--port", "0", "--no-auth", "--certfile", str(not_pem))
    assert done.returncode == 3, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "cannot load the certificate" in done.stderr and str(not_pem) in done.stderr
    mismatched = wsp(
        "serve", "--port", "0", "--no-auth", "--certfile", tls_files.certfile,
        "--keyfile", str(not_pem),
    )  # fmt: skip
    assert mismatched.returncode == 3 and len(mismatched.stderr.strip().splitlines()) == 1
    missing = wsp("serve", "--port", "0", "--no-auth", "--certfile", str(tmp_path / "nope.pem"))
    assert missing.returncode in (2, 3) and "nope.pem" in missing.stderr
    alone = wsp("serve", "--port", "0", "--no-auth", "--keyfile", tls_files.keyfile)
    assert alone.returncode == 2 and "--keyfile needs --certfile" in alone.stderr
    bad_ca = wsp("pub", "wss://127.0.0.1:1/", "t", "m", "--cafile", str(not_pem))
    assert bad_ca.returncode == 3 and "cannot load CA certificates" in bad_ca.stderr
    for done in (mismatched, missing, alone, bad_ca):
        assert "Traceback" not in done.stderr


def test_plain_ws_url_to_a_tls_server_says_so(tls_server: str) -> None:
    plain = tls_server.replace("wss://", "ws://")
    done = wsp("pub", plain, "news", "m")
    assert done.returncode == 4
    assert error_lines(done.stderr) == [
        f"wsp: error: cannot connect to {plain}: did not receive a valid HTTP response "
        "(is it a wss:// server?)"
    ]
