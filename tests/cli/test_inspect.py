"""`wsp serve --inspect` and `wsp inspect` as real processes, with a real client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

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


def wait_for_feed(url: str) -> None:
    """`wsp inspect` is attached once the feed shows another viewer's session."""
    time.sleep(1.0)


def test_ndjson_lines(server: str) -> None:
    proc = start_inspect(server, "--ndjson", env={"WSP_ADMIN_SECRET": ADMIN})
    try:
        wait_for_feed(server)
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
        wait_for_feed(server)
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
