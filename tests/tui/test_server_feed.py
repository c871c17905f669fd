"""wsp tui --server end to end: a real wsp serve --inspect, real clients, TUI and wsp inspect."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from wsproto_tools.client import Client
from wsproto_tools.exceptions import AuthenticationError
from wsproto_tools.tui.app import WspTui
from wsproto_tools.tui.sources import SourceSpec

SECRET = b"tui-secret"
ADMIN = "tui-admin"
SIZE = (120, 40)
ROOT = Path(__file__).resolve().parents[2]
WSP = str(Path(sys.executable).parent / "wsp")

_spec = importlib.util.spec_from_file_location("cli_terminal", ROOT / "tests/cli/terminal.py")
assert _spec is not None and _spec.loader is not None
terminal = importlib.util.module_from_spec(_spec)
sys.modules["cli_terminal"] = terminal
_spec.loader.exec_module(terminal)


def url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


def kinds(app: WspTui, direction: str | None, wsp_type: str) -> int:
    store = app.store
    return sum(1 for i in range(store.count)
               if store.row(i).wsp_type == wsp_type
               and (direction is None or store.row(i).direction == direction))


async def wait_for(pilot: Any, check: Any, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await pilot.pause(0.05)
    assert check()


async def test_tui_and_wsp_inspect_see_every_message(serve: Any) -> None:
    count = 300
    async with serve(secret=SECRET, inspect=True, admin_secret=ADMIN.encode()) as server:
        viewer = await asyncio.create_subprocess_exec(
            WSP, "inspect", url(server), "--ndjson", "--admin-secret", ADMIN,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        app = WspTui(SourceSpec("server", url(server), admin_secret=ADMIN))
        async with app.run_test(size=SIZE) as pilot:
            await asyncio.sleep(0.5)  # both viewers attached
            async with (
                Client(url(server), secret=SECRET) as subscriber,
                Client(url(server), secret=SECRET) as publisher,
            ):
                sub = await subscriber.subscribe("prices")
                for i in range(count):
                    await publisher.publish("prices", f"px {i}")
                got = [await asyncio.wait_for(sub.get(), 10) for _ in range(count)]
                assert len(got) == count
            await wait_for(pilot, lambda: kinds(app, "client", "Publish") >= count
                           and kinds(app, None, "Deliver") >= count)
            assert kinds(app, "client", "Publish") == count
            assert kinds(app, None, "Deliver") == count
            assert app.runner is not None and app.runner.dropped == 0
            # the sessions screen knows both sessions, with their identity
            # (the book reads the store on its own timer: wait until it has caught up)
            def identities() -> set[str]:
                return {s.identity for s in app.book.sessions.values() if s.conn}

            await wait_for(pilot, lambda: app.book.done == app.store.count
                           and "hmac" in identities())
            assert len(app.book.sessions) >= 2 and "hmac" in identities()
            await wait_for(pilot, lambda: app.query_one("#messages").count == app.store.count)
        # wsp inspect reads on at its own pace: wait (bounded) until it has them all
        assert viewer.stdout is not None
        records: list[dict[str, Any]] = []

        def seen(kind: str) -> int:
            return sum(1 for r in records if (r.get("wsp") or {}).get("type") == kind)

        async def read() -> None:
            assert viewer.stdout is not None
            while seen("Publish") < count or seen("Deliver") < count:
                line = await viewer.stdout.readline()
                if not line:
                    return
                if line.startswith(b"{"):
                    records.append(json.loads(line))

        await asyncio.wait_for(read(), 20)
        viewer.send_signal(signal.SIGTERM)
        await asyncio.wait_for(viewer.communicate(), 10)
        assert viewer.returncode == 0
    assert not [r for r in records if r["kind"] == "dropped"]
    publishes = [r for r in records if (r.get("wsp") or {}).get("type") == "Publish"]
    delivers = [r for r in records if (r.get("wsp") or {}).get("type") == "Deliver"]
    assert len(publishes) == count and len(delivers) == count


async def test_the_drop_record_reaches_the_tui(serve: Any) -> None:
    """A viewer queue of 4 records and a burst of publishes: the server drops, the TUI says so."""
    # a tiny time budget makes the sender pause long after each send, so a burst
    # overflows the queue however fast the machine; bursts repeat (at most 10) until
    # the server has dropped some
    async with serve(secret=SECRET, inspect=True, admin_secret=ADMIN.encode(),
                     inspect_queue=4, inspect_budget=0.001) as server:
        app = WspTui(SourceSpec("server", url(server), admin_secret=ADMIN))
        async with app.run_test(size=SIZE) as pilot:
            await asyncio.sleep(0.3)
            async with Client(url(server), secret=SECRET) as publisher:
                for _ in range(10):
                    await asyncio.gather(*(publisher.publish("burst", b"x" * 16)
                                           for _ in range(500)))
                    if sum(v.dropped_total for v in server.feed.viewers):
                        break
            await wait_for(pilot, lambda: app.runner is not None and app.runner.dropped > 0)
            dropped = [app.store.record(i) for i in range(app.store.count)
                       if app.store.kinds.names[app.store.kind[i]] == "dropped"]
            assert dropped and sum(r["count"] for r in dropped) == app.runner.dropped
            await pilot.pause(0.2)
            assert "dropped by the server" in str(app.query_one("#status").content)


async def test_a_wrong_admin_secret_is_refused(serve: Any) -> None:
    async with serve(secret=SECRET, inspect=True, admin_secret=ADMIN.encode()) as server:
        app = WspTui(SourceSpec("server", url(server), admin_secret="wrong"))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.failure is not None)
        assert isinstance(app.failure, AuthenticationError)


def test_wsp_tui_in_a_terminal_exits_5_on_a_refused_secret(tmp_path: Path) -> None:
    """The command as a user runs it: a real server process, wsp tui in a pseudo-terminal."""
    server = subprocess.Popen(
        [WSP, "serve", "--port", "0", "--secret", "s", "--inspect", "--admin-secret", ADMIN],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        port = None
        assert server.stdout is not None
        for _ in range(50):
            line = server.stdout.readline()
            if "127.0.0.1:" in line:
                port = int(line.split("127.0.0.1:")[1].split()[0].strip("/,"))
                break
        assert port, "the server did not say its port"
        command = f"wsp tui --server ws://127.0.0.1:{port} --admin-secret wrong"
        for colours in ("256", "truecolor"):
            run = terminal.run_in_terminal(command, colours=colours, columns=80, timeout=20)
            assert run.status == 5, run.output
            assert run.crash() is None, run.output
            assert "wsp: error: the server refused the admin secret" in run.output
        # a terminal that cannot move the cursor, and a pipe: one line, status 2
        run = terminal.run_in_terminal(command, colours="none", columns=80, timeout=20)
        assert run.status == 2 and "TERM is dumb" in run.output and run.crash() is None
        run = terminal.run_in_pipe(command, timeout=20)
        assert run.status == 2 and "needs a terminal" in run.output and run.crash() is None
    finally:
        server.terminate()
        server.wait(10)
