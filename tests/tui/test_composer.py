"""The composer of ``wsp tui --connect``, mounted in a minimal app and driven with
the pilot against a real wsp server (and a plain ``websockets`` echo server)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Checkbox, Input, ListView, Static, Switch, TextArea

from wsproto_tools.client import Client
from wsproto_tools.client.interactive import InteractiveClient
from wsproto_tools.tui.composer import Composer

SECRET = b"test-secret"  # the serve fixture's (tests/conftest.py)
SIZE = (100, 60)


class ComposerApp(App[None]):
    """The composer alone, as the app's side panel would hold it."""

    def __init__(self, client: InteractiveClient) -> None:
        super().__init__()
        self.client = client
        self.sent: list[Composer.Sent] = []

    def compose(self) -> ComposeResult:
        yield Composer(self.client)

    def on_composer_sent(self, event: Composer.Sent) -> None:
        self.sent.append(event)


@contextlib.asynccontextmanager
async def started(url: str, **kwargs: Any) -> AsyncIterator[tuple[InteractiveClient, list[Any]]]:
    records: list[dict[str, Any]] = []
    client = InteractiveClient(url, on_record=records.append, **kwargs)
    await client.start()
    try:
        yield client, records
    finally:
        await client.close()


def wsp_types(records: list[dict[str, Any]], direction: str) -> list[str]:
    return [r["wsp"]["type"] for r in records
            if r["kind"] == "message" and "wsp" in r and r["direction"] == direction]


async def wait_for(pilot: Any, check: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError("the condition did not come true in time")


def shown(app: App[Any], selector: str) -> str:
    return str(app.query_one(selector, Static).content)


async def pick(pilot: Any, type_name: str) -> None:
    """Choose a type in the picker the way a user does: open it, type, Enter."""
    await pilot.click("#type")
    await pilot.press(*type_name.lower())
    await pilot.press("enter")
    await pilot.pause()


async def test_pick_subscribe_type_a_topic_send(serve: Any) -> None:
    async with serve() as server:
        url = f"ws://127.0.0.1:{server.port}"
        async with started(url, secret=SECRET) as (client, records):
            app = ComposerApp(client)
            async with app.run_test(size=SIZE) as pilot:
                composer = app.query_one(Composer)
                await pick(pilot, "Subscribe")
                assert composer.type_name == "Subscribe"
                fields = [i.id for i in app.query("#form Input")]
                assert fields == ["field-topic", "field-from_offset", "field-epoch"]
                await pilot.click("#field-topic")
                await pilot.press(*"news")
                await pilot.press("ctrl+s")
                await wait_for(pilot, lambda: "Subscribed" in wsp_types(records, "server"))
                assert wsp_types(records, "client")[-1] == "Subscribe"
                subscribed = next(r for r in records if r.get("wsp", {}).get("type")
                                  == "Subscribed")
                assert subscribed["wsp"]["payload"]["topic"] == "news"
                # a publish from another client arrives on that subscription
                async with Client(url, secret=SECRET) as other:
                    await other.publish("news", b"from elsewhere")
                await wait_for(pilot, lambda: "Deliver" in wsp_types(records, "server"))
                deliver = next(r for r in records if r.get("wsp", {}).get("type") == "Deliver")
                assert bytes.fromhex(deliver["wsp"]["payload"]["data"]) == b"from elsewhere"
                assert [e.entry.label for e in app.sent] == ['Subscribe {"topic":"news"}']
                history = app.query_one("#history", ListView)
                await wait_for(pilot, lambda: len(history.children) == 1)


async def test_form_json_flags_errors_and_resend(serve: Any) -> None:
    async with serve() as server:
        url = f"ws://127.0.0.1:{server.port}"
        async with started(url, secret=SECRET) as (client, records):
            app = ComposerApp(client)
            async with app.run_test(size=SIZE) as pilot:
                await pick(pilot, "Request")
                await pilot.click("#field-id")
                await pilot.press(*"ten")
                await pilot.click("#send")
                await pilot.pause()
                assert "id: 'ten' is not an integer" in shown(app, "#composer-error")
                assert wsp_types(records, "client").count("Request") == 0
                # the same request as JSON
                app.query_one("#as-json", Switch).value = True
                await pilot.pause()
                area = app.query_one("#json", TextArea)
                area.text = '{"id": 1, "method": "echo", "data": "6869"}'
                await pilot.click("#send")
                await wait_for(pilot, lambda: "Response" in wsp_types(records, "server"))
                response = next(r for r in records if r.get("wsp", {}).get("type") == "Response")
                assert response["wsp"]["payload"]["data"] == "6869"
                assert shown(app, "#composer-error").startswith("sent: Request")
                # JSON that is not an object: said inline, nothing sent
                area.text = "[1, 2]"
                await pilot.press("ctrl+s")
                await pilot.pause()
                assert "one JSON object" in shown(app, "#composer-error")
                # Enter on the history entry sends the request again
                history = app.query_one("#history", ListView)
                await wait_for(pilot, lambda: len(history.children) == 1)
                history.focus()
                history.index = 0
                await pilot.press("enter")
                await wait_for(pilot, lambda: wsp_types(records, "server").count("Response") == 2)
                assert len(client.history) == 2
                # a flag sends the message as is: a Heartbeat probe the server answers
                app.query_one("#as-json", Switch).value = False
                await pick(pilot, "Heartbeat")
                await pilot.click("#field-id")
                await pilot.press(*"77")
                app.query_one("#flag-ACK_REQUESTED", Checkbox).value = True
                await pilot.click("#send")
                await wait_for(pilot, lambda: any(
                    r.get("wsp", {}).get("payload") == {"id": 77, "reply": True}
                    for r in records))
                probe = [r for r in records if r.get("direction") == "client"
                         and r.get("wsp", {}).get("type") == "Heartbeat"][-1]
                assert probe["wsp"]["flags"] == ["ACK_REQUESTED"]


async def test_raw_mode_sends_text_and_hex(websockets_echo: Any) -> None:
    async with websockets_echo() as port, started(f"ws://127.0.0.1:{port}") as (client, records):
        app = ComposerApp(client)
        async with app.run_test(size=SIZE) as pilot:
            composer = app.query_one(Composer)
            await wait_for(pilot, lambda: composer.has_class("raw-only"))
            assert "raw WebSocket" in shown(app, "#composer-status")
            raw = app.query_one("#raw", Input)
            await pilot.pause()
            await pilot.click("#raw")
            await wait_for(pilot, lambda: app.focused is raw)
            await pilot.press(*"hello", "enter")
            await wait_for(pilot, lambda: len(client.history) == 1)
            raw.value = "00ff"
            app.query_one("#raw-hex", Checkbox).value = True
            await pilot.click("#send-raw")
            await wait_for(pilot, lambda: sum(r.get("direction") == "server"
                                              for r in records) == 2)
            await wait_for(pilot, lambda: len(client.history) == 2)
            await pilot.pause()
            await pilot.click("#raw")
            app.query_one("#raw", Input).value = "zz"
            await pilot.press("enter")
            await pilot.pause()
            assert "'zz' is not hex" in shown(app, "#composer-error")
            assert [e.label for e in client.history] == ["text hello", "binary 00ff"]
            echoed = [(r["opcode"], r.get("text", r.get("hex"))) for r in records
                      if r.get("direction") == "server"]
            assert echoed == [("text", "hello"), ("binary", "00ff")]
