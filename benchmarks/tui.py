"""``wsp tui`` (issue 12, section 4): live ingest with key latency, and a capture of a
million messages, each against its baseline in the same run.

Run: ``python benchmarks/tui.py`` (``--quick``: 100,000 messages and 5 s of live load,
about a minute; the full run, 1,000,000 messages and 15 s, takes several minutes).
``--keep DIR [--reuse]`` keeps the generated capture (and reuses it). Needs root
(tcpdump on loopback records the capture). Network traffic goes to 127.0.0.1 only.

Live (``--skip-live`` leaves it out). A real ``wsp serve --inspect`` runs in a child
process (the project's WspServer, as in benchmarks/inspector.py), with an inspector
time budget of 1.0 (``--budget``: the feed is not throttled) and a viewer queue of
``--queue`` records (both printed); another child drives the load: ``--callers``
concurrent echo requests with 64-byte payloads for ``--seconds``. Every echo is
several records in the feed (request, reply, acknowledgments; the ratio is printed).

1. baseline: ``wsp inspect URL --ndjson`` in a subprocess, its output read by a
   thread of this process that only counts lines: records/s during the load.
2. the TUI: ``WspTui(SourceSpec("server", URL))`` in this process under
   ``App.run_test(size=(120, 40))``. After a short warm-up load, with no ingest (the
   idle baseline), then while the load runs, a key is pressed every ~50 ms,
   alternately ``down`` and ``up`` between the first two lines (``home`` first, so
   the cursor does not follow the end and each key really moves it). A key is sent
   the way ``Pilot.press`` sends it (an ``events.Key`` through the app's driver), but
   without the pilot's waits that follow (``wait_for_idle`` waits until the process's
   CPU time stops advancing, at most 1 s: under ingest it never does, so every
   ``pilot.press`` would take 1 s and few keys would be measured). The latency of a
   key is the time from sending it to the end of the first screen update
   (``App._display``, called by the screen after compositing) in which the message
   list drew the line of the new cursor *with* the cursor on it
   (``MessageList.render_line`` is wrapped in this process to see that; nothing in
   the package is changed). The headless driver writes nothing to a terminal, so the
   terminal's own time is not included. Ingest is ``app.store.count`` sampled at every
   key (records/s while the load runs, and until the feed is drained); drops are the
   server's, as reported in the feed (``app.runner.dropped``).
3. replay (capacity): on a small machine the load generator, the server and the
   viewer share the cores, so the offered rate may stay under 20,000 records/s. The
   first 10,240 records the baseline viewer got are replayed by a child process
   that serves them, 256 to a text message as the real feed does, ``--replay``
   records in all, as fast as the viewer reads them, then closes: ``wsp inspect
   --ndjson`` (records/s from its first line to its last) and the TUI (store.count,
   from its first rows to the last; keys timed as above meanwhile).

Files (``--skip-file`` leaves it out). A capture of ``--messages`` WebSocket messages
(a third are wsp.v2 TextData from four sessions, permessage-deflate, the server's
replies and the clients' acknowledgments the rest) is recorded with
``benchmarks/decode.py``'s ``record``. Timed, each in its own process (peak RSS is
the process's own /proc/self/status VmHWM: ``wait4``'s ru_maxrss would carry this
process's high-water mark over to the children it starts):

1. baseline: ``wsp decode --ndjson FILE > /dev/null`` (wall time, best of ``--repeat``;
   an untimed run first warms the page cache and counts the lines);
2. the RowStore alone: ``read_file`` + ``CaptureSink`` into a ``RowStore``, no app;
3. the TUI on the file under ``run_test``: the time until the first rows are on the
   screen (the first screen update that drew a row of the list) and until the file
   is fully indexed (the source is done and a screen update drew the store's last
   row), from the app's start and from the process's launch (which, like the decode
   baseline's wall time, includes the interpreter and imports). The ratio to decode
   uses the launch-based time. Goals: first rows <= 1 s, indexed <= 1.5x decode,
   peak RSS < 500 MB.
"""

from __future__ import annotations

import os
import sys

# run as a script, this file's folder comes first on sys.path, and benchmarks/inspector.py
# would hide the standard library's ``inspect`` (asyncio imports it): load the real one
# first, then put the folder back at the end for ``decode``
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and sys.path[0] == _HERE:
    sys.path.pop(0)
    import inspect  # noqa: F401

    sys.path.append(_HERE)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import decode  # noqa: E402  (benchmarks/decode.py: record, timed, count_lines, wsp_cmd)

CHILD = str(Path(_HERE) / "_tui_child.py")
ADMIN = "bench-admin"
WSP = str(Path(sys.executable).parent / "wsp")
SIZE = (120, 40)
#: seconds between two key presses
KEY_EVERY = 0.05


def child_cmd(*args: str) -> list[str]:
    return [sys.executable, CHILD, *args]


def run_child(args: list[str], timeout: float) -> tuple[dict[str, Any], float, int]:
    """A child's JSON result, its wall time and its peak RSS (KiB, from wait4)."""
    launched = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args[2]} child failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["launched"] = launched
    return result, elapsed, int(usage.ru_maxrss)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_line(values: list[float], missed: int = 0) -> str:
    if not values:
        return "no samples"
    ms = [v * 1000 for v in values]
    text = (f"p50 {pct(ms, 0.5):.1f} ms, p90 {pct(ms, 0.9):.1f} ms, p99 {pct(ms, 0.99):.1f} ms, "
            f"max {max(ms):.1f} ms ({len(ms)} keys")
    return text + (f", {missed} not seen within 5 s)" if missed else ")")


# ====================================================================== files
def capture_for(folder: Path, messages: int, reuse: bool) -> Path:
    """A capture of about ``messages`` WebSocket messages: messages/3 TextData, each
    with the server's reply (a Batch) and the client's Acknowledge."""
    path = folder / f"tui-{messages}.pcap"
    if reuse and path.exists():
        print(f"reusing {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return path
    texts = -(-messages // 3)
    started = time.perf_counter()
    print(f"recording {texts} TextData messages (about {messages} WebSocket messages) ...",
          flush=True)
    stats = decode.record(path, decode.small_texts(texts), [], "deflate")
    print(f"  tcpdump: {stats} ({time.perf_counter() - started:.0f} s, "
          f"{path.stat().st_size / 1e6:.1f} MB)")
    return path


def file_part(path: Path, repeat: int, timeout: float, catch_up: float) -> None:
    size = path.stat().st_size
    cmd = decode.wsp_cmd(path)
    lines = decode.count_lines(cmd)  # untimed: warms the page cache too
    # the three in turn, ``repeat`` times, each one's best kept (a shared machine)
    dec_runs, ing_runs, app_runs = [], [], []
    for _ in range(repeat):
        dec_runs.append(decode.timed(cmd)[0])
        ing_runs.append(run_child(child_cmd("ingest", str(path)), timeout)[:2])
        app_runs.append(run_child(child_cmd("file", str(path), "--timeout", str(timeout),
                                            "--catch-up", str(catch_up)),
                                  timeout + catch_up + 60)[:2])
    dec_time = min(dec_runs)
    ing, ing_wall = min(ing_runs, key=lambda r: r[1])
    app, app_wall = min(app_runs, key=lambda r: r[0].get("indexed", 1e9))
    rss = subprocess.run(child_cmd("decode-rss", str(path)), capture_output=True, check=True,
                         timeout=timeout)
    dec_rss = json.loads(rss.stderr.decode().strip().splitlines()[-1])["hwm_kib"]
    print(f"file: {path.name}, {size / 1e6:.1f} MB, {lines:,} records "
          f"(load average {os.getloadavg()[0]:.2f}; best of {repeat} of each, in turn)")
    print(f"  baseline wsp decode --ndjson > /dev/null: {dec_time:.2f} s wall "
          f"({lines / dec_time:,.0f} records/s), peak RSS {dec_rss / 1024:.0f} MiB"
          + (f"; runs {', '.join(f'{t:.2f}' for t in dec_runs)} s" if repeat > 1 else ""))
    print(f"  RowStore alone (read_file + CaptureSink, no app): {ing['seconds']:.2f} s "
          f"({ing['rows'] / ing['seconds']:,.0f} rows/s; {ing_wall:.2f} s with the process "
          f"start, {ing_wall / dec_time:.2f}x decode), {ing['rows']:,} rows, columns "
          f"{ing['memory'] / 1e6:.1f} MB, spill {ing['spilled'] / 1e6:.1f} MB, peak RSS "
          f"{ing['hwm_kib'] / 1024:.0f} MiB (interpreter and imports: "
          f"{ing['hwm_before_kib'] / 1024:.0f} MiB)")
    if repeat > 1:
        print(f"    runs: {', '.join(f'{r[1]:.2f}' for r in ing_runs)} s")
    launched = app["launched"]
    print(f"  wsp tui on the file (run_test {SIZE[0]}x{SIZE[1]}): app mounted in "
          f"{app['mounted']:.2f} s; {app['rows']:,} rows, {app['shown']:,} in the list, "
          f"source done: {app['done']}{', error ' + app['error'] if app['error'] else ''}")
    if "source_done" in app:
        print(f"    the source finished reading at {app['source_done']:.2f} s after the "
              f"app's start")
    if "first_rows" in app:
        since = app["first_rows_wall"] - launched
        print(f"    first rows on screen: {app['first_rows']:.3f} s after the app's start "
              f"({since:.2f} s after the launch; {app['first_rows_count']:,} rows in the "
              f"store then)  goal <= 1 s: {'ok' if app['first_rows'] <= 1.0 else 'MISSED'}")
    else:
        print("    first rows on screen: never seen")
    if "indexed" in app:
        since = app["indexed_wall"] - launched
        ratio = since / dec_time
        print(f"    fully indexed and its last row drawn: {app['indexed']:.2f} s after the "
              f"app's start, {since:.2f} s after the launch = {ratio:.2f}x decode "
              f"({app['indexed'] / dec_time:.2f}x from the app's start)  goal <= 1.5x: "
              f"{'ok' if ratio <= 1.5 else 'MISSED'}")
    else:
        print(f"    fully indexed: not within {timeout:.0f} s")
    print(f"    peak RSS {app['hwm_kib'] / 1024:.0f} MiB (VmHWM; "
          f"{app['hwm_before_kib'] / 1024:.0f} MiB before the app)  goal < 500 MB: "
          f"{'ok' if app['hwm_kib'] * 1024 < 500e6 else 'MISSED'}; store.memory() "
          f"{app['memory'] / 1e6:.1f} MB, spill file {app['spilled'] / 1e6:.1f} MB; "
          f"{app['frames']} screen updates; child wall {app_wall:.2f} s")
    rows = max(1, app["rows"])
    book, stats = app["analysed_at_indexed"]
    print(f"    when the list was complete, the session book had read {book / rows:.0%} of the "
          f"rows and the statistics {stats / rows:.0%}; " + (
              f"both caught up {app['analysed']:.2f} s after the app's start" if "analysed" in app
              else f"{app['analysed_at_end'][0] / rows:.0%} and "
                   f"{app['analysed_at_end'][1] / rows:.0%} {catch_up:.0f} s later"))
    if repeat > 1:
        print("    runs (first rows / fully indexed, from the app's start): " + ", ".join(
            f"{r[0].get('first_rows', float('nan')):.2f} / {r[0].get('indexed', float('nan')):.2f}"
            for r in app_runs) + " s")


# ====================================================================== live
def start_server(budget: float, queue: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(child_cmd("server", "--budget", str(budget), "--queue", str(queue)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"ws://127.0.0.1:{int(proc.stdout.readline())}"


def start_load(url: str, seconds: float, callers: int, start_at: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        child_cmd("load", url, "--seconds", str(seconds), "--callers", str(callers),
                  "--start-at", str(start_at)),
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def load_result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"load child failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


class LineCounter:
    """Counts the lines a viewer subprocess writes (with their arrival times) in a
    thread; keeps the first ``keep`` lines (to replay them later)."""

    def __init__(self, proc: subprocess.Popen[bytes], keep: int = 0) -> None:
        self.proc = proc
        self.keep = keep
        self.kept: list[bytes] = []
        self.samples: list[tuple[float, int]] = []
        self.thread = threading.Thread(target=self._count, daemon=True)
        self.thread.start()

    def _count(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        total = 0
        partial = b""
        while chunk := stream.read1(1 << 20):  # type: ignore[attr-defined]
            total += chunk.count(b"\n")
            self.samples.append((time.time(), total))
            if len(self.kept) < self.keep:
                parts = (partial + chunk).split(b"\n")
                partial = parts.pop()
                self.kept += parts[: self.keep - len(self.kept)]

    @property
    def total(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def at(self, t: float) -> int:
        before = [n for s, n in self.samples if s <= t]
        return before[-1] if before else 0

    def wait_quiet(self, quiet: float = 0.5, limit: float = 60.0) -> None:
        last, started = -1, time.time()
        while time.time() - started < limit:
            time.sleep(quiet)
            if self.total == last:
                return
            last = self.total


def start_viewer(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WSP_ADMIN_SECRET": ADMIN}
    return subprocess.Popen([WSP, "inspect", url, "--ndjson"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)


def stop_viewer(viewer: subprocess.Popen[bytes], counter: LineCounter) -> str:
    if viewer.poll() is None:
        viewer.terminate()
    _, err = viewer.communicate(timeout=30)
    counter.thread.join(10)
    lines = err.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


def ndjson_baseline(url: str, seconds: float, callers: int, keep: int) -> dict[str, Any]:
    """``wsp inspect --ndjson``'s rate for the load; its lines are counted by a thread
    here, its stderr gives the drop count; the first ``keep`` lines are kept."""
    viewer = start_viewer(url)
    counter = LineCounter(viewer, keep)
    time.sleep(1.0)  # attached
    load = load_result(start_load(url, seconds, callers, time.time() + 1.5), seconds + 120)
    counter.wait_quiet()
    summary = stop_viewer(viewer, counter)
    begin, end = load["started"], load["started"] + load["seconds"]
    total = counter.total
    drained_at = next((t for t, n in counter.samples if n == total), end)
    return {"load": load, "window_rate": (counter.at(end) - counter.at(begin)) / load["seconds"],
            "total": total, "drain_rate": total / max(1e-9, drained_at - begin),
            "drained_after": drained_at - end, "summary": summary, "kept": counter.kept}


def replay_baseline(url: str, count: int) -> dict[str, Any]:
    """``wsp inspect --ndjson`` on the replayed feed: records/s from its first line to
    its last (it exits when the feed closes)."""
    viewer = start_viewer(url)
    counter = LineCounter(viewer)
    started = time.time()
    while counter.total < count and viewer.poll() is None and time.time() - started < 600:
        time.sleep(0.01)
    summary = stop_viewer(viewer, counter)
    first = counter.samples[0] if counter.samples else (0.0, 0)
    last = counter.samples[-1] if counter.samples else (0.0, 0)
    rate = (last[1] - first[1]) / max(1e-9, last[0] - first[0])
    return {"total": counter.total, "rate": rate, "seconds": last[0] - first[0],
            "summary": summary}


class KeyProbe:
    """Times a key from the moment it is sent to the first screen update that drew
    the list's line of the new cursor with the cursor on it."""

    def __init__(self) -> None:
        self.target = -1
        self.drawn = False
        self.seen: float | None = None

    def install(self, app: Any, messages_cls: Any) -> Any:
        original = messages_cls.render_line
        probe = self

        def render_line(widget: Any, y: int) -> Any:
            strip = original(widget, y)
            if probe.target >= 0 and widget.scroll_offset.y + y == probe.target == widget.cursor:
                probe.drawn = True
            return strip

        messages_cls.render_line = render_line
        display = app._display

        def timed_display(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if renderable is not None and probe.drawn and probe.seen is None:
                probe.seen = time.perf_counter()

        app._display = timed_display
        return original

    async def press(self, app: Any, key: str, target: int) -> float | None:
        """Send ``key`` as ``Pilot.press`` does (a Key event through the app's driver),
        without the pilot's waits for an idle process and screen (under ingest the
        process is never idle: ``pilot.press`` returns after its 1 s cap)."""
        from textual import events

        self.target, self.drawn, self.seen = target, False, None
        event = events.Key(key, None)
        event.set_sender(app)
        pressed = time.perf_counter()
        app._driver.send_message(event)
        while self.seen is None and time.perf_counter() - pressed < 5.0:
            await asyncio.sleep(0.001)
        self.target = -1
        return None if self.seen is None else self.seen - pressed


async def key_loop(app: Any, pilot: Any, probe: KeyProbe, count: int | None,
                   until: float) -> tuple[list[float], int, list[tuple[float, int]]]:
    """Keys every KEY_EVERY seconds, alternately down (to line 1) and up (to line 0);
    returns the latencies, the keys never drawn within 5 s and (time, store.count)."""
    from wsproto_tools.tui.messages import MessageList

    messages = app.query_one(MessageList)
    lat: list[float] = []
    missed = 0
    samples: list[tuple[float, int]] = []
    i = 0
    while (count is None or i < count) and time.time() < until:
        key, target = ("down", 1) if i % 2 == 0 else ("up", 0)
        if messages.cursor != 1 - target:  # put it back on the other line
            messages.move_to(1 - target)
            await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        value = await probe.press(app, key, target)
        samples.append((time.time(), app.store.count))
        if value is None:
            missed += 1
        else:
            lat.append(value)
        i += 1
        rest = KEY_EVERY - (time.perf_counter() - t0)
        if rest > 0:
            await asyncio.sleep(rest)
    return lat, missed, samples


async def settle(app: Any, quiet: float = 0.5, limit: float = 60.0) -> float:
    """Wait until the store has not grown for ``quiet`` seconds; returns when it last grew."""
    last, grew = app.store.count, time.time()
    started = time.time()
    while time.time() - grew < quiet and time.time() - started < limit:
        await asyncio.sleep(0.05)
        if app.store.count != last:
            last, grew = app.store.count, time.time()
    return grew


async def tui_live(url: str, seconds: float, callers: int, idle_keys: int) -> dict[str, Any]:
    """The TUI on the real server: idle keys after a warm-up, then keys under the load."""
    from wsproto_tools.tui.app import WspTui
    from wsproto_tools.tui.messages import MessageList
    from wsproto_tools.tui.sources import SourceSpec

    app = WspTui(SourceSpec("server", url, admin_secret=ADMIN))
    probe = KeyProbe()
    original = probe.install(app, MessageList)
    out: dict[str, Any] = {}
    try:
        async with app.run_test(size=SIZE) as pilot:
            await asyncio.sleep(1.0)  # the feed is attached
            warm = start_load(url, 0.5, 4, time.time() + 1.0)  # rows for the list
            while warm.poll() is None:
                await asyncio.sleep(0.05)
            await settle(app)
            out["warm_rows"] = app.store.count
            await pilot.press("home")
            await pilot.pause(0.2)
            out["idle"], out["idle_missed"], _ = await key_loop(app, pilot, probe, idle_keys,
                                                                time.time() + 120)
            start_at = time.time() + 1.5
            load = start_load(url, seconds, callers, start_at)
            while time.time() < start_at:
                await asyncio.sleep(0.01)
            before = (time.time(), app.store.count)
            out["live"], out["live_missed"], samples = await key_loop(
                app, pilot, probe, None, start_at + seconds)
            while load.poll() is None:
                await asyncio.sleep(0.05)
            out["load"] = load_result(load, 30)
            drained_at = await settle(app)
            begin = out["load"]["started"]
            end = begin + out["load"]["seconds"]
            inside = [s for s in [before, *samples] if begin - 0.2 <= s[0] <= end + 0.1]
            if len(inside) >= 2:
                out["window_rate"] = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
            out["total"] = app.store.count - before[1]
            out["drain_rate"] = out["total"] / max(1e-9, drained_at - begin)
            out["drained_after"] = drained_at - end
            out["dropped"] = app.runner.dropped if app.runner is not None else -1
            out["rows"] = app.store.count
            out["shown"] = app.query_one(MessageList).count
            out["memory"] = app.store.memory()
            out["error"] = repr(app.runner.error) if app.runner and app.runner.error else None
    finally:
        MessageList.render_line = original
    return out


async def tui_replay(url: str, count: int) -> dict[str, Any]:
    """The TUI on the replayed feed (as fast as it takes it), with keys meanwhile."""
    from wsproto_tools.tui.app import WspTui
    from wsproto_tools.tui.messages import MessageList
    from wsproto_tools.tui.sources import SourceSpec

    app = WspTui(SourceSpec("server", url, admin_secret=ADMIN))
    probe = KeyProbe()
    original = probe.install(app, MessageList)
    out: dict[str, Any] = {}
    try:
        async with app.run_test(size=SIZE) as pilot:
            started = time.time()
            while app.store.count < 2 and time.time() - started < 30:
                await asyncio.sleep(0.005)
            first = (time.time(), app.store.count)
            await pilot.press("home")
            state = {"done": 0.0}

            async def watch() -> None:
                while app.store.count < count and time.time() - first[0] < 600:
                    await asyncio.sleep(0.005)
                state["done"] = time.time()

            watcher = asyncio.create_task(watch())
            out["keys"], out["missed"] = await _keys_until(app, pilot, probe, watcher)
            await watcher
            out["rate"] = (app.store.count - first[1]) / max(1e-9, state["done"] - first[0])
            out["seconds"] = state["done"] - first[0]
            out["rows"] = app.store.count
            await settle(app, quiet=0.3)
            out["shown"] = app.query_one(MessageList).count
            out["error"] = repr(app.runner.error) if app.runner and app.runner.error else None
    finally:
        MessageList.render_line = original
    return out


async def _keys_until(app: Any, pilot: Any, probe: KeyProbe,
                      watcher: asyncio.Task[None]) -> tuple[list[float], int]:
    lat: list[float] = []
    missed = 0
    while not watcher.done():
        got, miss, _ = await key_loop(app, pilot, probe, 2, time.time() + 60)
        lat += got
        missed += miss
    return lat, missed


def start_replay(lines: list[bytes], count: int, folder: Path) -> tuple[subprocess.Popen[str], str]:
    path = folder / "feed.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    proc = subprocess.Popen(child_cmd("replay", str(path), "--count", str(count)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"ws://127.0.0.1:{int(proc.stdout.readline())}"


def live_part(seconds: float, callers: int, budget: float, queue: int, idle_keys: int,
              replay_count: int) -> None:
    server, url = start_server(budget, queue)
    try:
        load_result(start_load(url, 0.3, callers, 0.0), 60)  # warm up the server
        print(f"live: wsp serve --inspect in a child process, inspect_budget={budget} "
              f"inspect_queue={queue}; load: {callers} echo callers, 64-byte payloads, "
              f"{seconds:.0f} s, in another child (load average {os.getloadavg()[0]:.2f}, "
              f"{os.cpu_count()} cores)", flush=True)
        base = ndjson_baseline(url, seconds, callers, keep=256 * 40)
        echo = base["load"]["echoes"] / base["load"]["seconds"]
        print(f"  baseline wsp inspect --ndjson > counter: {base['window_rate']:,.0f} records/s "
              f"during the load ({echo:,.0f} echoes/s offered, "
              f"{base['total'] / max(1, base['load']['echoes']):.2f} records per echo); "
              f"{base['total']:,} records, {base['drain_rate']:,.0f} records/s until drained "
              f"({base['drained_after']:.1f} s after the load); viewer: {base['summary']}",
              flush=True)
        tui = asyncio.run(tui_live(url, seconds, callers, idle_keys))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    echo = tui["load"]["echoes"] / tui["load"]["seconds"]
    rate = tui.get("window_rate", 0.0)
    print(f"  wsp tui --server (run_test {SIZE[0]}x{SIZE[1]}, this process): "
          f"{rate:,.0f} records/s ingested during the load ({echo:,.0f} echoes/s offered, "
          f"{tui['total'] / max(1, tui['load']['echoes']):.2f} records per echo); "
          f"{tui['total']:,} records, {tui['drain_rate']:,.0f} records/s until drained "
          f"({tui['drained_after']:.1f} s after the load); dropped by the server: "
          f"{tui['dropped']:,}; {tui['rows']:,} rows, {tui['shown']:,} in the list, "
          f"store.memory() {tui['memory'] / 1e6:.1f} MB"
          f"{'; source error ' + tui['error'] if tui['error'] else ''}")
    print(f"  key latency, idle app ({tui['warm_rows']:,} rows, no ingest): "
          f"{latency_line(tui['idle'], tui['idle_missed'])}")
    live = tui["live"]
    p99 = pct(live, 0.99) if live else float("inf")
    print(f"  key latency while ingesting: {latency_line(live, tui['live_missed'])}  "
          f"goal p99 <= 100 ms: {'ok' if p99 <= 0.1 and not tui['live_missed'] else 'MISSED'}",
          flush=True)
    if not base["kept"]:
        return
    # the feed as fast as the viewer takes it: the ingest capacity, whatever the load
    # generator and the server can offer on this machine
    with tempfile.TemporaryDirectory() as tmp:
        replayer, rurl = start_replay(base["kept"], replay_count, Path(tmp))
        try:
            print(f"replay: {replay_count:,} records of the feed above ({len(base['kept']):,} "
                  f"distinct, 256 a message) from a child process, as fast as the viewer "
                  f"reads them (one viewer at a time)", flush=True)
            rb = replay_baseline(rurl, replay_count)
            print(f"  baseline wsp inspect --ndjson > counter: {rb['rate']:,.0f} records/s "
                  f"({rb['total']:,} records in {rb['seconds']:.2f} s)", flush=True)
            rt = asyncio.run(tui_replay(rurl, replay_count))
        finally:
            assert replayer.stdin is not None
            replayer.stdin.close()
            replayer.wait(timeout=30)
    rate = rt["rate"]
    print(f"  wsp tui --server: {rate:,.0f} records/s ingested ({rt['rows']:,} records in "
          f"{rt['seconds']:.2f} s, {rt['shown']:,} in the list; {rate / rb['rate']:.2f}x "
          f"wsp inspect)  goal >= 20,000: {'ok' if rate >= 20_000 else 'MISSED'}"
          f"{'; source error ' + rt['error'] if rt['error'] else ''}")
    keys = rt["keys"]
    p99 = pct(keys, 0.99) if keys else float("inf")
    print(f"  key latency while ingesting at that rate: {latency_line(keys, rt['missed'])}  "
          f"goal p99 <= 100 ms: {'ok' if p99 <= 0.1 and not rt['missed'] else 'MISSED'}")


# ====================================================================== main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="100,000 messages and 5 s of live load (about a minute)")
    parser.add_argument("--messages", type=int, help="messages in the capture (1,000,000)")
    parser.add_argument("--seconds", type=float, help="seconds of live load (15)")
    parser.add_argument("--replay", type=int,
                        help="records of the replayed feed (200,000 with --quick, 1,000,000)")
    parser.add_argument("--callers", type=int, default=32, help="concurrent echo callers")
    parser.add_argument("--budget", type=float, default=1.0,
                        help="the server's inspect_budget (1.0: the feed is not throttled)")
    parser.add_argument("--queue", type=int, default=100_000,
                        help="the server's inspect_queue (records per viewer)")
    parser.add_argument("--repeat", type=int, default=1, help="decode baseline runs (best kept)")
    parser.add_argument("--keep", type=Path, help="keep the capture in this directory")
    parser.add_argument("--reuse", action="store_true", help="with --keep: reuse the capture")
    parser.add_argument("--skip-file", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    messages = args.messages or (100_000 if args.quick else 1_000_000)
    seconds = args.seconds or (5.0 if args.quick else 15.0)
    idle_keys = 40 if args.quick else 100
    replay = args.replay or (200_000 if args.quick else 1_000_000)
    timeout = 120.0 if args.quick else 600.0
    print(f"wsp tui benchmark: load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if not args.skip_live:
        live_part(seconds, args.callers, args.budget, args.queue, idle_keys, replay)
    if not args.skip_file:
        if shutil.which("tcpdump") is None and not args.reuse:
            raise SystemExit("tcpdump is needed to record the capture (Debian package 'tcpdump')")
        with tempfile.TemporaryDirectory() as tmp:
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            path = capture_for(folder, messages, args.reuse)
            file_part(path, args.repeat, timeout, 10.0 if args.quick else 30.0)


if __name__ == "__main__":
    main()
