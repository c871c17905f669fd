"""Reproducers that ``wsp fuzz --suite wsp`` wrote for bugs it found in this
project's server, kept as regression tests (``tests/fuzz/reproducers/*.json``).

Each is run again against the reference server, in-process on 127.0.0.1 with
the reproducer's credentials: the finding must not come back. (The client bugs
that ``--serve --suite wsp`` found are kept in ``test_wsp_serve.py``.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wsproto_tools.fuzz.wsp.findings import Finding
from wsproto_tools.fuzz.wsp.reproduce import replay_finding
from wsproto_tools.fuzz.wsp.steps import Case
from wsproto_tools.server import ServerConfig, WspServer

REPRODUCERS = sorted((Path(__file__).parent / "reproducers").glob("*.json"))


@pytest.mark.parametrize("path", REPRODUCERS, ids=[p.stem for p in REPRODUCERS])
async def test_finding_does_not_come_back(path: Path) -> None:
    data = json.loads(path.read_text())
    secret = data["target"]["secret"]
    server = WspServer(ServerConfig(host="127.0.0.1", port=0, secret=secret.encode()))
    await server.start()
    try:
        url = f"ws://127.0.0.1:{server.port}/"
        case = Case.from_json(data["case"])
        finding = Finding.from_json(data["finding"])
        for _ in range(3):
            again = await replay_finding(case, finding, url=url, secret=secret)
            assert not again, [f.to_json() for f in again]
    finally:
        await server.shutdown()


def test_there_are_reproducers() -> None:
    assert REPRODUCERS
