"""`wsp serve --inspect` and `wsp inspect` as real processes, with a real client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from wsproto_tools.client import Client

from .processes import WSP, clean_env, start_server, stop, wsp

SECRET = "s3cret"
ADMIN = "adm1n"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc, url, _ = start_server("--secret", SECRET, "--inspect", "--admin-secret", ADMIN)
    try:
        yield url
    finally:
        assert stop(proc) == 0


def start_inspect(*args: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.Popen(
        [WSP, "inspect", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(env),
    )


async def publish(url: str, topic: str, messages: list[str]) -> None:
    async with Client(url, secret=SECRET.encode()) as client:
        for text in messages:
            await client.publish(topic, text)


def connected_to(pid: int, port: int) -> bool:
    """Whether process ``pid`` has an established TCP connection to 127.0.0.1:``port``
    (Linux: its socket inodes in /proc/PID/fd, matched in /proc/net/tcp)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        inodes = {
            link[8:-1]
            for link in (os.readlink(fd) for fd in fds.iterdir())
            if link.startswith("socket:[")
        }
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in table:
        fields = row.split()
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if remote_port == port and fields[3] == "01" and fields[9] in inodes:
            return True
    return False


def wait_for_feed(url: str, proc: Any) -> None:
    """Wait until `wsp inspect` (``proc``) is attached to the feed: it holds a
    connection to the server, and the upgrade has had time to finish."""
    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 15
    while not connected_to(proc.pid, port):
        assert proc.poll() is None, "wsp inspect ended before attaching"
        if not Path("/proc/net/tcp").exists():  # not Linux: a generous pause instead
            time.sleep(2.0)
            return
        assert time.monotonic() < deadline, "wsp inspect did not attach within 15 s"
        time.sleep(0.05)
    time.sleep(0.3)


def test_ndjson_lines(server: str) -> None:
    proc = start_inspect(server, "--ndjson", env={"WSP_ADMIN_SECRET": ADMIN})
    try:
        wait_for_feed(server, proc)
        asyncio.run(publish(server, "prices", [f"px {i}" for i in range(10)]))
        time.sleep(1.0)
    finally:
        assert stop(proc) == 0
    assert proc.stdout is not None and proc.stderr is not None
    records = [json.loads(line) for line in proc.stdout.read().splitlines()]
    err = proc.stderr.read().strip().splitlines()
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "connected" and "authenticated" in kinds and kinds[-1] == "closed"
    published = [
        r
        for r in records
        if r.get("wsp", {}).get("type") == "Publish" and r["direction"] == "client"
    ]
    assert [bytes.fromhex(r["wsp"]["payload"]["data"]).decode() for r in published] == [
        f"px {i}" for i in range(10)
    ]
    assert all(r["wsp"]["payload"]["topic"] == "prices" for r in published)
    assert len(err) == 1 and err[0] == f"wsp inspect: {len(records)} records, 0 dropped"


def test_table_with_filter(server: str) -> None:
    proc = start_inspect(server, "--type", "Publish", "--topic", "a", "--admin-secret", ADMIN)
    try:
        wait_for_feed(server, proc)
        asyncio.run(publish(server, "a", ["one", "two"]))
        asyncio.run(publish(server, "b", ["three"]))
        time.sleep(1.0)
    finally:
        assert stop(proc) == 0
    assert proc.stdout is not None
    lines = proc.stdout.read().splitlines()
    assert len(lines) == 2, lines
    assert all("->  Publish" in line and "topic=a" in line for line in lines)
    assert "'one'" in lines[0] and "'two'" in lines[1]


def test_wrong_secret_exits_5(server: str) -> None:
    result = wsp("inspect", server, "--admin-secret", "wrong")
    assert result.returncode == 5
    assert result.stderr.strip().splitlines() == [
        "wsp: error: the server refused the admin secret (HTTP 403)"
    ]


def test_server_going_away_exits_4() -> None:
    proc_server, url, _ = start_server("--no-auth", "--inspect", "--admin-secret", ADMIN)
    proc = start_inspect(url, "--admin-secret", ADMIN)
    try:
        time.sleep(1.0)
        assert stop(proc_server) == 0
        assert proc.wait(timeout=10) == 4
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    assert proc.stderr.read().strip().splitlines() == [
        "wsp: error: the server closed the inspector feed"
    ]


# ---------------------------------------------------------------------- JWT admin claim
JWT_KEY = "k" * 32


def admin_token(
    claims: dict[str, Any] | None = None, lifetime: float = 300.0, key: str = JWT_KEY
) -> str:
    body: dict[str, Any] = {"sub": "ops", "exp": int(time.time() + lifetime)}
    body.update({"wsp": {"admin": True}} if claims is None else claims)
    return jwt.encode(body, key, "HS256")


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`wsp serve --jwt-key FILE --inspect`: JWT sessions, and no admin secret at all."""
    key_file = tmp_path_factory.mktemp("jwt") / "hs256.key"
    key_file.write_text(JWT_KEY)
    proc, url, _ = start_server("--jwt-key", str(key_file), "--inspect")
    try:
        yield url
    finally:
        assert stop(proc) == 0


async def publish_with_token(url: str, topic: str, messages: list[str]) -> None:
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 300}, JWT_KEY, "HS256")
    async with Client(url, token=token) as client:
        for text in messages:
            await client.publish(topic, text)


@pytest.mark.parametrize("how", ["option", "env"])
def test_token_with_the_admin_claim_streams(jwt_server: str, how: str) -> None:
    token = admin_token()
    if how == "option":
        proc = start_inspect(jwt_server, "--ndjson", "--type", "Publish", "--token", token)
    else:
        proc = start_inspect(
            jwt_server, "--ndjson", "--type", "Publish", env={"WSP_ADMIN_TOKEN": token}
        )
    try:
        wait_for_feed(jwt_server, proc)
        asyncio.run(publish_with_token(jwt_server, "prices", ["one", "two"]))
        time.sleep(1.0)
    finally:
        assert stop(proc) == 0
    assert proc.stdout is not None and proc.stderr is not None
    records = [json.loads(line) for line in proc.stdout.read().splitlines()]
    assert [bytes.fromhex(r["wsp"]["payload"]["data"]) for r in records] == [b"one", b"two"]
    assert {r["identity"] for r in records} == {"jwt:alice"}
    assert proc.stderr.read().strip().splitlines() == ["wsp inspect: 2 records, 0 dropped"]


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(admin_token({}), id="no-claim"),
        pytest.param(admin_token(lifetime=-5), id="expired"),
        pytest.param(admin_token(key="w" * 32), id="wrong-key"),
    ],
)
def test_refused_token_exits_5(jwt_server: str, token: str) -> None:
    result = wsp("inspect", jwt_server, "--token", token)
    assert result.returncode == 5
    assert result.stderr.strip().splitlines() == [
        "wsp: error: the server refused the admin token (HTTP 403)"
    ]
    assert result.stdout == ""


def test_the_admin_secret_is_refused_where_none_is_set(jwt_server: str) -> None:
    result = wsp("inspect", jwt_server, "--admin-secret", JWT_KEY)
    assert result.returncode == 5
    assert result.stderr.strip().splitlines() == [
        "wsp: error: the server refused the admin secret (HTTP 403)"
    ]


def test_expiring_token_exits_5(jwt_server: str) -> None:
    result = wsp("inspect", jwt_server, "--token", admin_token(lifetime=1.5), timeout=15)
    assert result.returncode == 5
    assert result.stderr.strip().splitlines() == [
        "wsp: error: the server closed the inspector feed: "
        "admin token expired; attach with a new one"
    ]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            (),
            {},
            "--admin-secret (or WSP_ADMIN_SECRET) or --token (or WSP_ADMIN_TOKEN) is required",
        ),
        (("--token", "t", "--admin-secret", "s"), {}, "give --admin-secret or --token, not both"),
        (("--token", "t"), {"WSP_ADMIN_SECRET": "s"}, "give --admin-secret or --token, not both"),
    ],
)
def test_credential_usage(args: tuple[str, ...], env: dict[str, str], message: str) -> None:
    result = wsp("inspect", "ws://127.0.0.1:9", *args, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"wsp: error: {message}"]


def test_serve_inspect_needs_a_credential() -> None:
    result = wsp("serve", "--port", "0", "--secret", SECRET, "--inspect")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "wsp: error: --inspect needs --admin-secret (or WSP_ADMIN_SECRET), or --jwt-key "
        'for tokens with the admin claim "wsp": {"admin": true}'
    ]
