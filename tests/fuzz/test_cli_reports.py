"""``wsp fuzz URL``: exit statuses, the JSON report's schema, the HTML page."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from wsproto_tools.cli.main import cli
from wsproto_tools.fuzz.report import load_schema

from .servers import websockets_echo


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """A websockets echo server in its own thread (the CLI runs its own event loop)."""
    ready: list[int] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = loop.create_future()

    async def main() -> None:
        async with websockets_echo() as port:
            ready.append(port)
            started.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    yield f"ws://127.0.0.1:{ready[0]}/"
    loop.call_soon_threadsafe(stop.set_result, None)
    thread.join(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.ids: set[str] = set()
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)


def test_reports_validate_and_render(echo_url: str, tmp_path: Path) -> None:
    json_path, html_path = tmp_path / "r.json", tmp_path / "r.html"
    result = CliRunner().invoke(
        cli,
        [
            "fuzz", echo_url, "--suite", "rfc6455", "--cases", "1.1.*,2.*,6.4.1,6.20.*,7.1.*",
            "--jobs", "8", "--json-report", str(json_path), "--html-report", str(html_path),
        ],
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # websockets fails 7.1.5
    assert "7.1.5" in result.output and "Total" in result.output
    report = json.loads(json_path.read_text())
    jsonschema.validate(report, load_schema())
    cases = {c["id"]: c for c in report["cases"]}
    assert len(cases) == 8 + 11 + 1 + 7 + 6
    failed = cases["7.1.5"]
    assert (failed["verdict"], failed["close_verdict"]) == ("FAILED", "WRONG CODE")
    assert failed["observed"]["remote_close_code"] == 1002
    assert failed["expected"]["close_codes"] == [1000]
    assert failed["wire"] and {"in", "out"} <= {e.get("dir") for e in failed["wire"]}
    assert cases["6.4.1"]["verdict"] == "NON-STRICT"
    assert report["summary"]["failed"] == 1
    page = html_path.read_text()
    parser = _Collector()
    parser.feed(page)
    parser.close()
    assert parser.tags.get("table", 0) >= 2
    assert {f"case-{case_id}" for case_id in cases} <= parser.ids
    assert parser.external == [] and "<script" not in page  # self-contained


def test_exit_zero_when_nothing_fails(echo_url: str) -> None:
    result = CliRunner().invoke(
        cli, ["fuzz", echo_url, "--cases", "1.*,7.1.*", "--exclude", "7.1.5", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["summary"] == {
        **report["summary"],
        "cases": 16 + 5,
        "failed": 0,
    }


def test_unreachable_server_exits_4() -> None:
    result = CliRunner().invoke(cli, ["fuzz", f"ws://127.0.0.1:{_free_port()}/", "--cases", "1.*"])
    assert result.exit_code == 4
    assert "cannot connect" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://127.0.0.1:1/"], "HTTP URL"),
        (["ftp://127.0.0.1:1/"], "not a WebSocket URL"),
        (["ws://127.0.0.1:99999/"], "port out of range"),
        (["--serve", "--port", "99999"], "99999"),
        (["--serve", "--cafile", "pyproject.toml"], "--cafile"),
        ([], "either URL"),
        (["ws://127.0.0.1:1/", "--cases", "99.*"], "no case matches"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["fuzz", *args])
    assert result.exit_code == 2
    assert message in result.output
