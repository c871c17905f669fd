"""``wsp tui``: sessions, messages and their detail, from a file, the tap, a server or a client.

Every source appends to one :class:`~wsproto_tools.render.rowstore.RowStore`;
the screen reads it ten times a second (a coalesced refresh): new rows go
through the filter into the list, the session book and the statistics. Ingest
never waits for drawing, and a key never waits for ingest.
"""

from __future__ import annotations

__all__ = ["WspTui"]

import asyncio
import bisect
import calendar
import contextlib
import os
import signal
import time
from array import array
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Header, Input, Static

from wsproto_tools.exceptions import FilterError
from wsproto_tools.render.filterexpr import compile_filter
from wsproto_tools.render.livestats import LiveStats
from wsproto_tools.render.rowstore import RowStore
from wsproto_tools.render.sessionbook import SessionBook
from wsproto_tools.tui.messages import MessageList
from wsproto_tools.tui.screens import ExportScreen, HelpScreen, JumpScreen, StartScreen, StatsScreen
from wsproto_tools.tui.sources import SourceRunner, SourceSpec

#: seconds between two refreshes of the screen while rows arrive
REFRESH = 0.1
#: rows the UI thread filters per refresh, at most
ROWS_PER_TICK = 40_000
#: seconds of each refresh the session book, and the statistics, may take each
ANALYSIS_BUDGET = 0.015

_SESSION_COLUMNS = (
    ("conn", "conn"), ("peer", "peer"), ("proto", "proto"), ("state", "state"),
    ("identity", "identity"), ("msgs in/out", "msgs"), ("bytes in/out", "bytes"),
    ("rtt ms", "rtt"), ("unacked", "unacked"), ("window", "window"), ("retx", "retx"),
    ("resumes", "resumes"), ("close", "close"),
)


def _human(n: int) -> str:
    for unit in ("", "k", "M", "G"):
        if n < 1000:
            return f"{n}{unit}"
        n //= 1000
    return f"{n}T"


class WspTui(App[None]):
    """The ``wsp tui`` application."""

    TITLE = "wsp tui"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("f,ctrl+f", "focus_filter", "Filter"),
        Binding("slash", "search", "Search"),
        Binding("n", "search_next(1)", "Next match", show=False),
        Binding("N", "search_next(-1)", "Previous match", show=False),
        Binding("b", "bookmark", "Bookmark"),
        Binding("apostrophe", "next_bookmark(1)", "Next bookmark", show=False),
        Binding("quotation_mark", "next_bookmark(-1)", "Previous bookmark", show=False),
        Binding("space,p", "pause", "Pause"),
        Binding("d", "toggle_detail", "Detail pane", show=False),
        Binding("s", "toggle_sessions", "Sessions"),
        Binding("a", "all_sessions", "All sessions", show=False),
        Binding("t", "stats", "Stats"),
        Binding("e", "export", "Export"),
        Binding("g", "jump", "Jump to time"),
        Binding("c", "toggle_composer", "Composer", show=False),
        Binding("escape", "escape", "Back", show=False),
    ]

    def __init__(self, spec: SourceSpec | None = None, *, spill_dir: str | None = None,
                 filter_expr: str = "") -> None:
        super().__init__()
        self.spec = spec
        self.store = RowStore(spill_dir)
        self.book = SessionBook(self.store)
        self.stats = LiveStats()
        self.runner: Any = None  # a SourceRunner, or a ProcessRunner
        self.client: Any = None
        #: the error that ended the source (the CLI turns it into its exit status)
        self.failure: BaseException | None = None
        self.paused = False
        self.filter_expr = filter_expr
        self._filter: Any = None
        self._session: int | None = None
        self._view_done = 0  # store rows the current view has looked at
        self._stats_done = 0
        self._view_job = 0
        self._search: Any = None
        self._search_expr = ""
        self._sessions_version = -1
        self._detail_index = -1

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="body"):
            yield MessageList(self.store, id="messages")
            with VerticalScroll(id="detail"):
                yield Static("Select a message: its header, payload, hex and frame.",
                             id="detail-body")
            yield Vertical(id="side")
        yield Input(placeholder="filter: type:Publish topic:prices dir:client conn:3 "
                                "size>1000 text~ACME violation  (! negates, | or)",
                    id="filter", value=self.filter_expr)
        yield Input(placeholder="search (same language as the filter; n / N)", id="search")
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sessions", DataTable)
        for label, key in _SESSION_COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#search", Input).display = False
        self.query_one("#side").display = False
        if self.filter_expr:
            self._apply_filter(self.filter_expr)
        self.set_interval(REFRESH, self._tick)
        # SIGTERM ends the app as q does: the terminal is restored, the status is 0
        self._sigterm_before = signal.getsignal(signal.SIGTERM)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.exit)
        if self.spec is None:
            self.push_screen(StartScreen(), self._started)
        else:
            self._start(self.spec)
        self.query_one(MessageList).focus()

    def _started(self, spec: SourceSpec | None) -> None:
        if spec is None:
            self.exit()
            return
        self.spec = spec
        self._start(spec)

    def _start(self, spec: SourceSpec) -> None:
        self.sub_title = spec.title
        if spec.kind == "connect":
            self._start_client(spec)
            return
        if spec.ssl_context is None and not os.environ.get("WSP_TUI_ONE_PROCESS"):
            # decoding in a process of its own: the screen keeps a core to itself
            from wsproto_tools.tui.ingest import ProcessRunner

            self.runner = ProcessRunner(spec, self.store)
        else:
            self.runner = SourceRunner(spec, self.store)
        self.runner.start()

    # ------------------------------------------------------------ --connect

    def _start_client(self, spec: SourceSpec) -> None:
        from wsproto_tools.client.interactive import InteractiveClient
        from wsproto_tools.tui.composer import Composer

        self.client = InteractiveClient(spec.target, on_record=self._client_record,
                                        **spec.client_options)
        side = self.query_one("#side", Vertical)
        side.display = True
        side.mount(Composer(self.client))
        self._connect_client()

    def _client_record(self, record: dict[str, Any]) -> None:
        self.store.add_record(record)

    @work(exclusive=True, group="client")
    async def _connect_client(self) -> None:
        try:
            await self.client.start()
        except Exception as error:
            self.failure = error
            self._status_note = f"[red]{error}[/]"
            self.exit(return_code=1, message=str(error))

    _status_note = ""

    # ------------------------------------------------------------ the refresh

    def _tick(self) -> None:
        with contextlib.suppress(NoMatches):  # the app is closing: its widgets are gone
            self._refresh_rows()

    def request_stop(self) -> None:
        """Quit at the next refresh (safe from a signal handler)."""
        self._stop_requested = True

    _stop_requested = False
    _sigterm_before: Any = signal.SIG_DFL

    def _refresh_rows(self) -> None:
        if self._stop_requested:
            self.exit()
            return
        runner = self.runner
        if runner is not None and runner.error is not None and self.failure is None:
            self.failure = runner.error
            self.exit(return_code=1, message=str(runner.error))
            return
        store = self.store
        # the session book and the statistics catch up within a time budget, so a
        # burst of rows (a large file) never holds a key press back
        deadline = time.perf_counter() + ANALYSIS_BUDGET
        while self.book.update(2_000) and time.perf_counter() < deadline:
            pass
        deadline = time.perf_counter() + ANALYSIS_BUDGET
        while self._feed_stats(2_000) and time.perf_counter() < deadline:
            pass
        if not self.paused:
            messages = self.query_one(MessageList)
            if self._filter is None and self._session is None:
                messages.grew()
            else:
                self._extend_view(messages)
        if self.book.version != self._sessions_version:
            self._sessions_version = self.book.version
            self._draw_sessions()
        self._draw_status(store)

    def _feed_stats(self, limit: int) -> int:
        store = self.store
        start = self._stats_done
        end = min(store.count, start + limit)
        add = self.stats.add
        row = store.row
        for i in range(start, end):
            add(row(i), None)
        self._stats_done = end
        return end - start

    def _extend_view(self, messages: MessageList) -> None:
        view = messages.view
        if view is None or self._view_done < 0:
            return  # the whole view is being made by a worker
        store = self.store
        end = min(store.count, self._view_done + ROWS_PER_TICK)
        if end <= self._view_done:
            return
        added = 0
        passes = self._passes
        for i in range(self._view_done, end):
            if passes(i):
                view.append(i)
                added += 1
        self._view_done = end
        if added:
            messages.grew(added)

    def _passes(self, i: int) -> bool:
        if self._session is not None and self.store.conn[i] != self._session:
            return False
        return self._filter is None or bool(self._filter(self.store.row(i)))

    def _draw_status(self, store: RowStore) -> None:
        messages = self.query_one(MessageList)
        parts = [f"{_human(store.count)} rows"]
        if messages.view is not None:
            parts.append(f"{_human(len(messages.view))} shown")
        if self._view_done < 0:
            parts.append("[yellow]filtering…[/]")
        if self.runner is not None:
            progress = self.runner.progress
            if self.spec is not None and self.spec.kind == "file":
                if not progress.finished and progress.size:
                    parts.append(f"reading {100 * progress.done // max(1, progress.size)}%")
                elif progress.finished:
                    parts.append("read")
            if self.runner.dropped:
                parts.append(f"[red]{self.runner.dropped} dropped by the server[/]")
        if self.paused:
            waiting = store.count - (messages.view[-1] + 1 if messages.view else messages.count)
            parts.append(f"[reverse] PAUSED [/] {max(0, waiting)} waiting")
        elif messages.unseen:
            parts.append(f"[b]{messages.unseen} new[/] (End to follow)")
        elif messages.follow and messages.cursor >= messages.count - 1:
            parts.append("following")
        if self._session is not None:
            parts.append(f"session #{self._session} (a: all)")
        if self._search_expr:
            parts.append(f"search: {self._search_expr}")
        if messages.bookmarks:
            parts.append(f"{len(messages.bookmarks)} bookmarks")
        if self._status_note:
            parts.append(self._status_note)
        self.query_one("#status", Static).update("  ·  ".join(p for p in parts if p))

    def _draw_sessions(self) -> None:
        table = self.query_one("#sessions", DataTable)
        for conn, info in sorted(self.book.sessions.items()):
            cells = {
                "conn": f"#{conn}", "peer": info.peer,
                "proto": info.subprotocol + (f" v{info.version}" if info.version else ""),
                "state": info.state, "identity": info.identity,
                "msgs": f"{info.messages[0]}/{info.messages[1]}",
                "bytes": f"{_human(info.bytes[0])}/{_human(info.bytes[1])}",
                "rtt": "" if info.rtt_ms is None else f"{info.rtt_ms:.1f}",
                "unacked": str(info.unacked), "window": "" if info.window is None else str(
                    info.window),
                "retx": str(info.retransmits), "resumes": str(info.resumes),
                "close": "" if info.close_code is None else
                f"{info.close_code} {info.close_reason}".strip(),
            }
            key = str(conn)
            if key in table.rows:
                for column, value in cells.items():
                    table.update_cell(key, column, value)
            else:
                table.add_row(*cells.values(), key=key)

    # ------------------------------------------------------------ filter

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._apply_filter(event.value)
            self.query_one(MessageList).focus()
        elif event.input.id == "search":
            self._set_search(event.value)
            event.input.display = False
            self.query_one(MessageList).focus()

    def _apply_filter(self, expr: str) -> None:
        try:
            self._filter = compile_filter(expr) if expr.strip() else None
        except FilterError as error:
            self._status_note = f"[red]filter: {error}[/]"
            self.bell()
            return
        self.filter_expr = expr
        self._status_note = ""
        self._remake_view()

    def _remake_view(self) -> None:
        messages = self.query_one(MessageList)
        if self._filter is None and self._session is None:
            self._view_done = 0
            messages.set_view(None)
            return
        self._view_job += 1
        self._view_done = -1
        self._make_view(self._view_job)

    @work(thread=True, exclusive=True, group="view")
    def _make_view(self, job: int) -> None:
        """Filter every row already in the store (a thread: a million rows take seconds)."""
        store = self.store
        end = store.count
        view = array("I")
        passes = self._passes
        for i in range(end):
            if passes(i):
                view.append(i)
            if i & 0xFFFF == 0 and job != self._view_job:
                return
        self.call_from_thread(self._view_made, job, view, end)

    def _view_made(self, job: int, view: array[int], end: int) -> None:
        if job != self._view_job:
            return
        self._view_done = end
        self.query_one(MessageList).set_view(view)

    # ------------------------------------------------------------ selection

    def on_message_list_selected(self, event: MessageList.Selected) -> None:
        if self.query_one("#detail").display:
            self._show_detail(event.index)

    def on_message_list_opened(self, event: MessageList.Opened) -> None:
        detail = self.query_one("#detail")
        detail.display = True
        self._show_detail(event.index)

    def _show_detail(self, index: int) -> None:
        from rich.console import Group
        from rich.rule import Rule

        from wsproto_tools.render.detail import detail_sections

        if index == self._detail_index:
            return
        self._detail_index = index
        try:
            record = self.store.record(index)
            parts: list[Any] = []
            for title, renderable in detail_sections(record):
                parts += [Rule(title, align="left", style="cyan"), renderable]
            body: Any = Group(*parts)
        except Exception as error:
            body = f"[red]cannot show this record: {error}[/]"
        self.query_one("#detail-body", Static).update(body)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is None:
            return
        self._session = int(key)
        self._remake_view()
        self.query_one(MessageList).focus()

    # ------------------------------------------------------------ actions

    def action_help(self) -> None:
        keys: list[tuple[str, str]] = []
        seen: set[str] = set()
        for source in (self.BINDINGS, MessageList.BINDINGS):
            for b in source:
                if isinstance(b, Binding) and b.description and b.key not in seen:
                    seen.add(b.key)
                    keys.append((b.key.replace("question_mark", "?").replace("slash", "/")
                                 .replace("apostrophe", "'").replace("quotation_mark", '"'),
                                 b.description))
        keys.append(("ctrl+p", "command palette (themes, keys)"))
        self.push_screen(HelpScreen(keys))

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_escape(self) -> None:
        search = self.query_one("#search", Input)
        if search.display:
            search.display = False
        elif self.query_one("#detail").display:
            self.query_one("#detail").display = False
        self.query_one(MessageList).focus()

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True
        search.focus()

    def _set_search(self, expr: str) -> None:
        try:
            self._search = compile_filter(expr) if expr.strip() else None
        except FilterError as error:
            self._status_note = f"[red]search: {error}[/]"
            self.bell()
            return
        self._search_expr = expr.strip()
        self._status_note = ""
        self.action_search_next(1)

    def action_search_next(self, step: int) -> None:
        if self._search is None:
            return
        messages = self.query_one(MessageList)
        count = messages.count
        line = messages.cursor
        for _ in range(count):
            line += step
            if not 0 <= line < count:
                break
            if self._search(self.store.row(messages.index_at(line))):
                messages.follow = False
                messages.move_to(line)
                return
        self._status_note = f"no more matches for {self._search_expr}"
        self.bell()

    def action_bookmark(self) -> None:
        messages = self.query_one(MessageList)
        if 0 <= messages.cursor < messages.count:
            index = messages.index_at(messages.cursor)
            messages.bookmarks ^= {index}
            messages.invalidate()

    def action_next_bookmark(self, step: int) -> None:
        messages = self.query_one(MessageList)
        marks = sorted(messages.bookmarks)
        if not marks:
            self.bell()
            return
        here = messages.index_at(messages.cursor) if messages.count else 0
        at = bisect.bisect_right(marks, here) if step > 0 else bisect.bisect_left(marks, here) - 1
        index = marks[at % len(marks)]
        line = messages.line_of(index)
        if line is not None:
            messages.follow = False
            messages.move_to(line)

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self._tick()

    def action_toggle_detail(self) -> None:
        detail = self.query_one("#detail")
        detail.display = not detail.display
        messages = self.query_one(MessageList)
        if detail.display and 0 <= messages.cursor < messages.count:
            self._detail_index = -1
            self._show_detail(messages.index_at(messages.cursor))

    def action_toggle_sessions(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.display = not table.display
        if table.display:
            table.focus()
        else:
            self.query_one(MessageList).focus()

    def action_toggle_composer(self) -> None:
        side = self.query_one("#side")
        if self.client is not None:
            side.display = not side.display

    def action_all_sessions(self) -> None:
        if self._session is not None:
            self._session = None
            self._remake_view()

    def action_stats(self) -> None:
        self.push_screen(StatsScreen(self.stats, self._session))

    def action_jump(self) -> None:
        self.push_screen(JumpScreen(), self._jump)

    def _jump(self, when: str | None) -> None:
        if not when:
            return
        messages = self.query_one(MessageList)
        if not messages.count:
            return
        first = self.store.ts[messages.index_at(0)]
        try:
            if when.startswith("+"):
                target = first + float(when[1:])
            else:
                day = time.gmtime(first)
                clock, _, frac = when.partition(".")
                h, m, s = (int(x) for x in [*clock.split(":"), "0", "0"][:3])
                target = calendar.timegm((day.tm_year, day.tm_mon, day.tm_mday, h, m, s)) + (
                    float("0." + frac) if frac else 0.0)
        except ValueError:
            self._status_note = f"[red]not a time: {when}[/]"
            return
        lo, hi = 0, messages.count
        ts = self.store.ts
        while lo < hi:  # the first line at or after the time
            mid = (lo + hi) // 2
            if ts[messages.index_at(mid)] < target:
                lo = mid + 1
            else:
                hi = mid
        messages.follow = False
        messages.move_to(min(lo, messages.count - 1))

    def action_export(self) -> None:
        self.push_screen(ExportScreen(), self._export)

    def _export(self, choice: tuple[str, str, str] | None) -> None:
        if choice is None:
            return
        fmt, scope, path = choice
        messages = self.query_one(MessageList)
        if scope == "selection":
            indices: Any = [messages.index_at(messages.cursor)] if messages.count else []
        elif scope == "all":
            indices = range(self.store.count)
        else:
            indices = list(messages.view) if messages.view is not None else range(messages.count)
        self._write_export(fmt, path, indices)

    @work(thread=True, group="export")
    def _write_export(self, fmt: str, path: str, indices: Any) -> None:
        records = (self.store.record(i) for i in indices)
        try:
            from wsproto_tools.render import export

            if fmt == "pcapng":
                with open(path, "wb") as out:
                    for chunk in export.export_pcapng(records):
                        out.write(chunk)
            else:
                lines = (export.export_ndjson(records) if fmt == "ndjson"
                         else export.export_cassette(records))
                with open(path, "w", encoding="utf-8") as text:
                    for line in lines:
                        text.write(line if line.endswith("\n") else line + "\n")
        except Exception as error:
            note = f"[red]export failed: {error}[/]"
        else:
            note = f"wrote {Path(path).resolve()}"
        self.call_from_thread(setattr, self, "_status_note", note)

    async def action_quit(self) -> None:
        self._stop_source()
        self.exit()

    def _stop_source(self) -> None:
        if self.runner is not None:
            self.runner.stop()

    def on_unmount(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
            # the handler from before the app (the command's: no death by signal
            # while the app winds down)
            signal.signal(signal.SIGTERM, self._sigterm_before)
        self._stop_source()
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()
        self.store.close()
