"""wsp tui -i lo: the live tap as a source (a real wsp serve, a real client, loopback)."""

from __future__ import annotations

import ctypes.util
import os
import shutil
from typing import Any

import pytest

from wsproto_tools.client import Client
from wsproto_tools.tui.app import WspTui
from wsproto_tools.tui.messages import MessageList
from wsproto_tools.tui.sources import SourceSpec

SECRET = b"tap-secret"


def _missing() -> str:
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    if shutil.which("tcpdump") is None:
        missing.append("tcpdump")
    if ctypes.util.find_library("pcap") is None:
        missing.append("libpcap (Debian: libpcap0.8)")
    return ", ".join(missing)


@pytest.mark.skipif(bool(_missing()),
                    reason=f"the tap needs root, libpcap and tcpdump; missing: {_missing()}")
async def test_tap_on_loopback_shows_the_session(serve: Any) -> None:
    async with serve(secret=SECRET) as server:
        app = WspTui(SourceSpec("tap", "lo", port=server.port))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(1.0)  # the capture is open
            async with Client(f"ws://127.0.0.1:{server.port}", secret=SECRET) as client:
                for i in range(20):
                    assert await client.echo(b"tap %d" % i) == b"tap %d" % i

            def rows(wsp_type: str) -> int:
                store = app.store
                return sum(1 for i in range(store.count) if store.row(i).wsp_type == wsp_type)

            for _ in range(200):
                if rows("Request") >= 20 and rows("Response") >= 20:
                    break
                await pilot.pause(0.05)
            assert rows("Request") == 20 and rows("Response") == 20
            assert rows("HandshakeResponse") == 1
            assert app.runner is not None and app.runner.error is None
            messages = app.query_one(MessageList)
            for _ in range(40):
                if messages.count == app.store.count:
                    break
                await pilot.pause(0.05)
            assert messages.count == app.store.count
            session = next(iter(app.book.sessions.values()))
            assert session.subprotocol == "wsp.v2"
            await pilot.press("q")
