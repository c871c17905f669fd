"""The child processes of ``benchmarks/tui.py`` (not run by hand).

``server``: a real ``wsp serve --inspect`` (the project's WspServer), prints its port
and runs until its standard input closes. ``load``: echo callers against a server
for a fixed time (bounded in time and, per caller, in count), prints a JSON summary.
``ingest``: a capture into a RowStore (read_file + CaptureSink, no app).
``file``: the TUI on a capture, under Textual's pilot; prints a JSON summary with
its own peak RSS (VmHWM), so each figure is this process's alone.
"""

from __future__ import annotations

import os
import sys

# this file's folder comes first on sys.path when it runs as a script, and
# benchmarks/inspector.py would hide the standard library's ``inspect`` (asyncio needs it)
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and sys.path[0] == _HERE:
    sys.path.pop(0)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

SECRET = b"bench-secret"
ADMIN = "bench-admin"
SIZE = (120, 40)


def vm_hwm_kib() -> int:
    """Peak resident set size of this process (KiB), from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------- server
async def server(budget: float, queue: int) -> None:
    from wsproto_tools.server import ServerConfig, WspServer

    srv = WspServer(
        ServerConfig(
            port=0,
            secret=SECRET,
            history=1000,
            rate=0,
            max_buffer=64 << 20,
            inspect=True,
            admin_secret=ADMIN.encode(),
            inspect_budget=budget,
            inspect_queue=queue,
        )
    )
    await srv.start()
    print(srv.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await srv.shutdown()


# ---------------------------------------------------------------------- replay
async def replay(lines_path: str, count: int, batch: int = 256) -> None:
    """A stand-in for a server's /inspect (any path): sends ``count`` records, cycling
    through the NDJSON lines of ``lines_path`` (recorded from a real feed), ``batch``
    a text message as the real feed does, as fast as the connection takes them, then
    keeps the connection open (a closed feed ends the viewers) until the viewer goes.
    Prints its port; runs until its standard input closes."""
    from websockets.asyncio.server import serve

    with open(lines_path, encoding="utf-8") as source:
        lines = [line.rstrip("\n") for line in source if line.strip()]
    usable = max(batch, len(lines) // batch * batch)
    lines = (lines * (usable // max(1, len(lines)) + 1))[:usable]
    texts = ["\n".join(lines[i:i + batch]) for i in range(0, usable, batch)]

    async def handler(ws: Any) -> None:
        sent = 0
        i = 0
        while sent < count:
            text = texts[i % len(texts)]
            if count - sent < batch:
                text = "\n".join(text.split("\n")[:count - sent])
            await ws.send(text)
            sent += batch
            i += 1
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, max_size=None, ping_interval=None) as srv:
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# ---------------------------------------------------------------------- load
async def load(url: str, seconds: float, callers: int, start_at: float) -> dict[str, Any]:
    """``callers`` concurrent echo requests (64-byte payloads) until ``seconds`` have
    passed; at most 10 million requests per caller (a bound besides the time)."""
    from wsproto_tools.client import Client

    done = 0
    async with Client(url, secret=SECRET) as client:
        delay = start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        started = time.perf_counter()
        deadline = started + seconds

        async def caller() -> None:
            nonlocal done
            payload = b"e" * 64
            for _ in range(10_000_000):
                if time.perf_counter() >= deadline:
                    break
                await client.echo(payload, timeout=30)
                done += 1

        await asyncio.gather(*(caller() for _ in range(callers)))
        elapsed = time.perf_counter() - started
    return {"echoes": done, "seconds": elapsed, "started": time.time() - elapsed}


# ---------------------------------------------------------------------- ingest
def ingest(path: str) -> dict[str, Any]:
    from wsproto_tools.capture.source import FileProgress, read_file
    from wsproto_tools.render.rowstore import CaptureSink, RowStore

    before = vm_hwm_kib()
    store = RowStore()
    progress = FileProgress(0)
    started = time.perf_counter()
    read_file(path, CaptureSink(store), progress=progress)
    elapsed = time.perf_counter() - started
    result = {"seconds": elapsed, "rows": store.count, "memory": store.memory(),
              "spilled": store.spilled(), "hwm_before_kib": before, "hwm_kib": vm_hwm_kib()}
    store.close()
    return result


# ---------------------------------------------------------------------- the app on a file
async def file_app(path: str, timeout: float, spill_dir: str | None,
                   extra: float = 30.0) -> dict[str, Any]:
    from wsproto_tools.tui.app import WspTui
    from wsproto_tools.tui.messages import MessageList
    from wsproto_tools.tui.sources import SourceSpec

    before = vm_hwm_kib()
    state: dict[str, Any] = {"drawn_row": False, "max_line": -1, "frames": 0}
    marks: dict[str, float] = {}
    original = MessageList.render_line

    def render_line(self: MessageList, y: int) -> Any:
        strip = original(self, y)
        line = self.scroll_offset.y + y
        if 0 <= line < self.count:
            state["drawn_row"] = True
            state["max_line"] = max(state["max_line"], line)
        return strip

    MessageList.render_line = render_line  # type: ignore[method-assign]
    app = WspTui(SourceSpec("file", path), spill_dir=spill_dir)
    display = app._display

    def timed_display(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        if renderable is None:
            return
        now = time.perf_counter()
        state["frames"] += 1
        if state["drawn_row"] and "first_rows" not in marks:
            marks["first_rows"] = now
            marks["first_rows_wall"] = time.time()
            marks["first_rows_count"] = app.store.count
        runner = app.runner
        if (runner is not None and runner.done and "indexed" not in marks
                and app.store.count > 0 and state["max_line"] == app.store.count - 1):
            marks["indexed"] = now
            marks["indexed_wall"] = time.time()

    app._display = timed_display  # type: ignore[method-assign]
    started = time.perf_counter()
    result: dict[str, Any] = {}
    async with app.run_test(size=SIZE) as pilot:
        result["mounted"] = time.perf_counter() - started
        deadline = started + timeout
        peak_memory = 0
        def analysed() -> tuple[int, int]:
            return app.book.done, app._stats_done

        while "indexed" not in marks and time.perf_counter() < deadline:
            await pilot.pause(0.02)
            peak_memory = max(peak_memory, app.store.memory())
            if app.runner is not None and app.runner.done and "source_done" not in marks:
                marks["source_done"] = time.perf_counter()
            if app._exception is not None or app._exit:
                break  # the app stopped (run_test re-raises its exception below)
        # the session book and the statistics read the rows within a time budget per
        # refresh: where they are when the list is complete, and when they catch up
        result["analysed_at_indexed"] = analysed()
        catch_up = min(deadline, time.perf_counter() + extra)
        while (min(analysed()) < app.store.count and time.perf_counter() < catch_up
               and app._exception is None and not app._exit):
            await pilot.pause(0.05)
        if min(analysed()) >= app.store.count:
            result["analysed"] = time.perf_counter() - started
        result["analysed_at_end"] = analysed()
        runner = app.runner
        messages = app.query_one(MessageList)
        result.update(
            rows=app.store.count,
            shown=messages.count,
            done=bool(runner and runner.done),
            error=repr(runner.error) if runner and runner.error else None,
            memory=app.store.memory(),
            spilled=app.store.spilled(),
            frames=state["frames"],
        )
        # a key on the loaded list: the list is usable at once
        await pilot.press("home")
        result["cursor_after_home"] = messages.cursor
    for name in ("first_rows", "indexed"):
        if name in marks:
            result[name] = marks[name] - started
            result[name + "_wall"] = marks[name + "_wall"]
    if "source_done" in marks:
        result["source_done"] = marks["source_done"] - started
    result["first_rows_count"] = marks.get("first_rows_count", 0)
    result["hwm_before_kib"] = before
    result["hwm_kib"] = vm_hwm_kib()
    return result


def decode_rss(path: str) -> None:
    """``wsp decode --ndjson -q FILE`` in this process, its output to /dev/null, then
    this process's VmHWM on stderr (wait4's ru_maxrss would include the parent's)."""
    from wsproto_tools.cli.main import main as wsp

    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    try:
        wsp(["decode", "--ndjson", "-q", path])
    except SystemExit:
        pass
    finally:
        print(json.dumps({"hwm_kib": vm_hwm_kib()}), file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("server", "replay", "load", "ingest", "file",
                                         "decode-rss"))
    parser.add_argument("target", nargs="?", default="")
    parser.add_argument("--budget", type=float, default=0.02)
    parser.add_argument("--queue", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--spill-dir")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--catch-up", type=float, default=30.0)
    args = parser.parse_args()
    if args.mode == "decode-rss":
        decode_rss(args.target)
        return
    if args.mode == "server":
        asyncio.run(server(args.budget, args.queue))
        return
    if args.mode == "replay":
        asyncio.run(replay(args.target, args.count))
        return
    if args.mode == "load":
        out = asyncio.run(load(args.target, args.seconds, args.callers, args.start_at))
    elif args.mode == "ingest":
        out = ingest(args.target)
    else:
        out = asyncio.run(file_app(args.target, args.timeout, args.spill_dir, args.catch_up))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
