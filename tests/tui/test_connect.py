"""wsp tui --connect: the app's own client against a real wsp serve; what it sends and
what comes back are rows of the list, and the composer drives it."""

from __future__ import annotations

from typing import Any

from wsproto_tools.client import Client
from wsproto_tools.exceptions import ConnectionFailed
from wsproto_tools.tui.app import WspTui
from wsproto_tools.tui.composer import Composer
from wsproto_tools.tui.messages import MessageList
from wsproto_tools.tui.sources import SourceSpec

SECRET = b"connect-secret"
SIZE = (140, 44)


def rows_of(app: WspTui, wsp_type: str, direction: str | None = None) -> list[Any]:
    store = app.store
    return [store.row(i) for i in range(store.count)
            if store.row(i).wsp_type == wsp_type
            and (direction is None or store.row(i).direction == direction)]


async def wait_for(pilot: Any, check: Any, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await pilot.pause(0.05)
    assert check()


async def test_connect_subscribe_and_see_the_delivery(serve: Any) -> None:
    async with serve(secret=SECRET) as server:
        url = f"ws://127.0.0.1:{server.port}"
        app = WspTui(SourceSpec("connect", url, client_options={"secret": SECRET.decode()}))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: rows_of(app, "HandshakeResponse", "server"))
            assert app.query_one("#side").display
            assert app.query(Composer)
            await app.client.subscribe("prices")
            await wait_for(pilot, lambda: rows_of(app, "Subscribed", "server"))
            async with Client(url, secret=SECRET) as publisher:
                for i in range(5):
                    await publisher.publish("prices", f"tick {i}")
            await wait_for(pilot, lambda: len(rows_of(app, "Deliver", "server")) == 5)
            delivered = [r.record()["wsp"]["payload"] for r in rows_of(app, "Deliver")]
            assert [p["topic"] for p in delivered] == ["prices"] * 5
            assert [p["offset"] for p in delivered] == [1, 2, 3, 4, 5]
            assert rows_of(app, "Subscribe", "client")[0].topic == "prices"
            # the rows are on the list, the newest last (following)
            messages = app.query_one(MessageList)
            await wait_for(pilot, lambda: messages.count == app.store.count)
            assert app.store.row(messages.index_at(messages.cursor)).wsp_type in (
                "Deliver", "Acknowledge", "Heartbeat")
            # c hides and shows the composer
            app.query_one(MessageList).focus()
            await pilot.press("c")
            assert not app.query_one("#side").display
            await pilot.press("c")
            assert app.query_one("#side").display
            await pilot.press("q")


async def test_connect_to_a_closed_port_ends_with_the_failure() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = WspTui(SourceSpec("connect", f"ws://127.0.0.1:{port}",
                            client_options={"secret": "x", "mode": "wsp"}))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.failure is not None, timeout=20)
    # the CLI turns this error into its one line and exit status 4
    assert isinstance(app.failure, ConnectionFailed), repr(app.failure)
    assert str(port) in str(app.failure)
