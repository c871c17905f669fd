"""Snapshots of the main screens at 120x40 (pytest-textual-snapshot).

The SVGs under ``__snapshots__/`` were looked at by a person when they were made
(``pytest tests/tui/test_snapshots.py --snapshot-update``); a change in what a
screen shows fails here until it is looked at again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from wsproto_tools.tui.app import WspTui
from wsproto_tools.tui.messages import MessageList
from wsproto_tools.tui.sources import SourceSpec

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = "captures/wsp-session-v2.pcap"
SIZE = (120, 40)


@pytest.fixture(autouse=True)
def in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # the header shows the path as given: relative, so it is the same on every machine
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("TZ", "UTC")


async def loaded(pilot: Any) -> None:
    app = pilot.app
    for _ in range(400):
        await pilot.pause(0.05)
        runner = app.runner
        if (runner is not None and runner.done and app.book.done == app.store.count
                and app.query_one(MessageList).count == app.store.count):
            break
    await pilot.pause(0.2)


def app() -> WspTui:
    assert os.path.exists(SAMPLE)
    return WspTui(SourceSpec("file", SAMPLE))


def test_messages_and_sessions(snap_compare: Any) -> None:
    async def before(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("home", *["down"] * 12)

    assert snap_compare(app(), terminal_size=SIZE, run_before=before)


def test_detail_of_a_subscribe(snap_compare: Any) -> None:
    async def before(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("home", "slash", *"type:Subscribe", "enter", "enter")
        await pilot.pause(0.2)

    assert snap_compare(app(), terminal_size=SIZE, run_before=before)


def test_filtered_to_publishes(snap_compare: Any) -> None:
    async def before(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("f", *"type:Publish | type:Deliver", "enter")
        for _ in range(100):
            await pilot.pause(0.05)
            if pilot.app._view_done >= 0:
                break
        await pilot.pause(0.2)

    assert snap_compare(app(), terminal_size=SIZE, run_before=before)


def test_stats(snap_compare: Any) -> None:
    async def before(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("t")
        await pilot.pause(0.3)

    assert snap_compare(app(), terminal_size=SIZE, run_before=before)


def test_help(snap_compare: Any) -> None:
    async def before(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(app(), terminal_size=SIZE, run_before=before)


def test_start_screen(snap_compare: Any) -> None:
    assert snap_compare(WspTui(None), terminal_size=SIZE)
