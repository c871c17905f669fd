"""wsp tui with files: every sample opens, keys do what the help says (App.run_test pilots)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from wsproto_tools.tui.app import WspTui
from wsproto_tools.tui.messages import MessageList
from wsproto_tools.tui.sources import SourceSpec

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
WSP = str(Path(sys.executable).parent / "wsp")
SIZE = (120, 40)

_spec = importlib.util.spec_from_file_location("capture_samples", ROOT / "tests/capture/samples.py")
assert _spec is not None and _spec.loader is not None
samples_module = importlib.util.module_from_spec(_spec)
sys.modules["capture_samples"] = samples_module
_spec.loader.exec_module(samples_module)


def decoded(path: Path, *extra: str) -> list[dict[str, Any]]:
    """What ``wsp decode --ndjson`` prints for ``path`` (the oracle: another program)."""
    out = subprocess.run([WSP, "decode", str(path), "--ndjson", *extra], capture_output=True,
                         text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


async def loaded(pilot: Any, app: WspTui, timeout: float = 20.0) -> None:
    """Wait until the source has been read and the list shows it."""
    for _ in range(int(timeout / 0.05)):
        await pilot.pause(0.05)
        runner = app.runner
        if runner is not None and runner.done and app.book.done == app.store.count:
            await pilot.pause(0.15)
            return
    raise AssertionError("the file was not read in time")


def message_records(app: WspTui) -> list[dict[str, Any]]:
    store = app.store
    return [store.record(i) for i in range(store.count)
            if store.kinds.names[store.kind[i]] == "message"]


def rendered(widget: Any) -> str:
    """The text of what a Static shows (its content, drawn by rich)."""
    from rich.console import Console

    console = Console(record=True, width=100, color_system=None)
    console.print(widget.content)
    return console.export_text()


def screen_text(app: WspTui) -> str:
    messages = app.query_one(MessageList)
    return "\n".join(messages.render_line(y).text for y in range(messages.size.height))


@pytest.mark.parametrize("name,path,expected", samples_module.samples(),
                         ids=[s[0] for s in samples_module.samples()])
async def test_every_sample_opens_with_its_expected_messages(
    name: str, path: Path, expected: dict[str, Any]
) -> None:
    app = WspTui(SourceSpec("file", str(path)))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        records = message_records(app)
        store = app.store
        connections = [{**store.record(i), "record": "connection"} for i in range(store.count)
                       if store.kinds.names[store.kind[i]] == "connected"]
        want_doc = {k: v for k, v in expected.items() if k != "violations"}
        assert samples_module.compare(want_doc, records + connections) == []
        if "violations" in expected:  # marked on the rows ("!") as the summary counts them
            codes = Counter(c for i in store.violations for c in store.violations[i]
                            if not c.startswith("wsp-"))
            assert dict(codes) == expected["violations"]
        # the same messages as wsp decode --ndjson, in the same order
        want = [r for r in decoded(path) if "record" not in r]
        assert [(r["conn"], r["direction"], r.get("hex"), r.get("text")) for r in records] == [
            (r["conn"], r["direction"], r.get("hex"), r.get("text")) for r in want]
        messages = app.query_one(MessageList)
        assert messages.count == app.store.count
        # one session per connection with rows, the expected ones among them
        assert sorted(app.book.sessions) == sorted(set(store.conn[i] for i in range(store.count)))
        assert {c["conn"] for c in expected["connections"]} <= set(app.book.sessions)


async def test_ndjson_file_and_gz_show_the_same_rows(tmp_path: Path) -> None:
    path = CAPTURES / "wsp-session-v2.pcap"
    lines = subprocess.run([WSP, "decode", str(path), "--ndjson"], capture_output=True,
                           check=True).stdout
    ndjson = tmp_path / "session.ndjson"
    ndjson.write_bytes(lines)
    import gzip

    gz = tmp_path / "session.ndjson.gz"
    gz.write_bytes(gzip.compress(lines))
    seen = []
    for source in (ndjson, gz):
        app = WspTui(SourceSpec("file", str(source)))
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot, app)
            seen.append([r.get("hex") for r in message_records(app)])
    want = [r.get("hex") for r in decoded(path) if "record" not in r]
    assert seen[0] == want
    assert seen[1] == want


async def test_filter_bar_keeps_what_the_expression_says() -> None:
    path = CAPTURES / "wsp-session-v2.pcap"
    want = [r for r in decoded(path) if "record" not in r and (r.get("wsp") or {}).get("type")
            == "Publish"]
    assert want  # the sample has publishes
    app = WspTui(SourceSpec("file", str(path)))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("f")
        await pilot.press(*"type:Publish", "enter")
        for _ in range(100):
            await pilot.pause(0.05)
            if app.query_one(MessageList).view is not None and app._view_done >= 0:
                break
        messages = app.query_one(MessageList)
        assert messages.view is not None
        assert [app.store.record(i)["hex"] for i in messages.view] == [r["hex"] for r in want]
        assert "Publish" in screen_text(app)
        assert "Deliver" not in screen_text(app)
        # negation: everything else
        await pilot.press("f", "ctrl+a", "ctrl+k", *"!type:Publish", "enter")
        for _ in range(100):
            await pilot.pause(0.05)
            if app._view_done >= 0 and messages.view is not None and len(messages.view) == (
                    app.store.count - len(want)):
                break
        assert len(messages.view) == app.store.count - len(want)
        # a bad expression is refused on the status line, the view stays
        await pilot.press("f", "ctrl+a", "ctrl+k", *"type:Publsh", "enter")
        await pilot.pause(0.2)
        assert "Publish" in app._status_note  # did you mean
        assert len(messages.view) == app.store.count - len(want)


async def test_keys_search_bookmarks_detail_sessions_jump() -> None:
    path = CAPTURES / "wsp-session-v2.pcap"
    records = decoded(path)
    app = WspTui(SourceSpec("file", str(path)))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        messages = app.query_one(MessageList)
        assert messages.cursor == messages.count - 1  # following the end
        await pilot.press("home")
        assert messages.cursor == 0
        # search: the first Subscribe after the cursor
        await pilot.press("slash", *"type:Subscribe", "enter")
        await pilot.pause(0.1)
        first = messages.index_at(messages.cursor)
        assert app.store.row(first).wsp_type == "Subscribe"
        subscribes = [i for i in range(app.store.count) if app.store.row(i).wsp_type == "Subscribe"]
        assert first == subscribes[0]
        await pilot.press("n")
        assert messages.index_at(messages.cursor) == subscribes[1]
        await pilot.press("N")
        assert messages.index_at(messages.cursor) == subscribes[0]
        # bookmarks: b marks, ' goes to the next one
        await pilot.press("b")
        await pilot.press("end")
        await pilot.press("b")
        assert len(messages.bookmarks) == 2
        await pilot.press("apostrophe")
        assert messages.index_at(messages.cursor) == subscribes[0]
        # detail of the selected row (enter)
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.query_one("#detail").display
        detail = app.query_one("#detail-body")
        text = rendered(detail)
        assert "Subscribe" in text and "prices" in text
        await pilot.press("escape")
        assert not app.query_one("#detail").display
        # jump to time: +0 is the first row, a time after the end is the last
        await pilot.press("g", "plus", "0", "enter")
        await pilot.pause(0.05)
        assert messages.cursor == 0
        await pilot.press("g", *"23:59:59", "enter")
        await pilot.pause(0.05)
        last_ts = max(r["ts"] for r in records if "record" not in r)
        assert app.store.ts[messages.index_at(messages.cursor)] <= last_ts
        # sessions: selecting one keeps its rows only; a shows all again
        table = app.query_one("#sessions")
        table.focus()
        await pilot.press("down", "enter")  # the second session
        for _ in range(100):
            await pilot.pause(0.05)
            if messages.view is not None and app._view_done >= 0:
                break
        conns = {app.store.conn[i] for i in messages.view}
        assert conns == {2}
        assert len(messages.view) == sum(1 for i in range(app.store.count)
                                         if app.store.conn[i] == 2)
        await pilot.press("a")
        await pilot.pause(0.1)
        assert messages.view is None
        # help lists every key the app binds
        await pilot.press("question_mark")
        await pilot.pause(0.05)
        help_text = rendered(app.screen.query_one("#help").query_one("Static"))
        for key in ("/", "b", "t", "e", "g", "d", "s", "?"):
            assert key in help_text
        await pilot.press("escape")
        # stats screen and back
        await pilot.press("t")
        await pilot.pause(0.1)
        assert type(app.screen).__name__ == "StatsScreen"
        await pilot.press("escape")
        await pilot.press("q")


async def test_follow_mode_keeps_place_and_counts_new_rows() -> None:
    """Rows appended while scrolled up do not move the list; End follows again."""
    app = WspTui(SourceSpec("file", str(CAPTURES / "wsp-session-v2.pcap")))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        messages = app.query_one(MessageList)
        base = app.store.count
        await pilot.press("home")
        top = messages.scroll_offset.y
        for n in range(200):
            app.store.add_record({"kind": "message", "ts": 1.0 + n, "session": 7,
                                  "direction": "client", "length": 3,
                                  "wsp": {"type": "TextData", "type_code": 257, "sequence": n + 1,
                                          "payload": "abc"}})
        await pilot.pause(0.3)
        assert messages.cursor == 0 and messages.scroll_offset.y == top
        assert messages.unseen == 200
        assert "200 new" in rendered(app.query_one("#status"))
        await pilot.press("end")
        await pilot.pause(0.1)
        assert messages.cursor == base + 199
        assert messages.unseen == 0
        # pause: rows keep arriving in the store, the list does not move
        await pilot.press("space")
        for n in range(50):
            app.store.add_record({"kind": "message", "ts": 500.0 + n, "session": 7,
                                  "direction": "server", "length": 1})
        await pilot.pause(0.3)
        assert messages.count == base + 200
        assert "PAUSED" in rendered(app.query_one("#status"))
        await pilot.press("space")
        await pilot.pause(0.3)
        assert messages.count == base + 250
        assert messages.cursor == base + 249  # it was following


async def test_export_writes_ndjson_of_the_filtered_list(tmp_path: Path) -> None:
    path = CAPTURES / "wsp-session-v2.pcap"
    app = WspTui(SourceSpec("file", str(path)), filter_expr="type:Subscribe")
    target = tmp_path / "subs"
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        for _ in range(100):
            await pilot.pause(0.05)
            if app._view_done >= 0:
                break
        await pilot.press("e")
        await pilot.pause(0.1)
        screen = app.screen
        screen.query_one("#format").query("RadioButton")[1].value = True
        path_input = screen.query_one("#path")
        path_input.value = str(target)
        await pilot.click("#write")
        for _ in range(100):
            await pilot.pause(0.05)
            if "wrote" in app._status_note:
                break
    written = [json.loads(line) for line in (tmp_path / "subs.ndjson").read_text().splitlines()]
    want = [r for r in decoded(path) if (r.get("wsp") or {}).get("type") == "Subscribe"]
    assert [r["hex"] for r in written] == [r["hex"] for r in want]


async def test_start_screen_opens_a_file() -> None:
    app = WspTui(None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert type(app.screen).__name__ == "StartScreen"
        app.screen.query_one("#file").value = str(CAPTURES / "ws-basic.pcap")
        await pilot.click("#open-file")
        await loaded(pilot, app)
        assert app.store.count == len(decoded(CAPTURES / "ws-basic.pcap")) - 1  # not the summary


async def test_export_pcapng_of_every_row_decodes_to_the_same_messages(tmp_path: Path) -> None:
    path = CAPTURES / "wsp-session-v2.pcap"
    app = WspTui(SourceSpec("file", str(path)))
    target = tmp_path / "all"
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("e")
        await pilot.pause(0.1)
        screen = app.screen
        screen.query_one("#scope").query("RadioButton")[2].value = True  # every row
        screen.query_one("#path").value = str(target)
        await pilot.click("#write")
        for _ in range(100):
            await pilot.pause(0.05)
            if "wrote" in app._status_note:
                break
    again = [r for r in decoded(tmp_path / "all.pcapng") if "record" not in r]
    want = [r for r in decoded(path) if "record" not in r]
    assert [(r["direction"], r["opcode"], r.get("hex"), r.get("text")) for r in again] == [
        (r["direction"], r["opcode"], r.get("hex"), r.get("text")) for r in want]
