"""The TUI's dialogs and secondary screens: start, help, stats, export, jump to time."""

from __future__ import annotations

__all__ = ["ExportScreen", "HelpScreen", "JumpScreen", "StartScreen", "StatsScreen"]

import time
from typing import Any, ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, RadioButton, RadioSet, Sparkline, Static

from wsproto_tools.tui.sources import SourceSpec


class StartScreen(Screen[SourceSpec]):
    """``wsp tui`` with no argument: choose what to look at."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.quit", "Quit")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="start"):
            yield Static("[b]wsp tui[/b] — what to look at?", id="start-title")
            yield Label("A capture (pcap, pcapng, .gz) or an NDJSON file of wsp decode/inspect")
            with Horizontal(classes="start-row"):
                yield Input(placeholder="path/to/capture.pcapng", id="file")
                yield Button("Open", id="open-file", variant="primary")
            yield Label("A network interface (the live tap; needs CAP_NET_RAW)")
            with Horizontal(classes="start-row"):
                yield Input(placeholder="lo", id="iface")
                yield Input(placeholder="port", id="port", type="integer")
                yield Button("Tap", id="open-tap")
            yield Label("A running wsp serve --inspect (its inspector feed)")
            with Horizontal(classes="start-row"):
                yield Input(placeholder="ws://127.0.0.1:8765", id="server")
                yield Input(placeholder="admin secret", id="admin", password=True)
                yield Button("Inspect", id="open-server")
            yield Label("A server to talk to (interactive client)")
            with Horizontal(classes="start-row"):
                yield Input(placeholder="ws://127.0.0.1:8765", id="connect")
                yield Input(placeholder="secret", id="secret", password=True)
                yield Button("Connect", id="open-connect")
            yield Static("", id="start-error")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        value = {w.id: w.value.strip() for w in self.query(Input) if w.id}
        spec: SourceSpec | None = None
        if event.button.id == "open-file" and value["file"]:
            spec = SourceSpec("file", value["file"])
        elif event.button.id == "open-tap" and value["iface"]:
            port = int(value["port"]) if value["port"].isdigit() else None
            spec = SourceSpec("tap", value["iface"], port=port)
        elif event.button.id == "open-server" and value["server"]:
            spec = SourceSpec("server", value["server"], admin_secret=value["admin"])
        elif event.button.id == "open-connect" and value["connect"]:
            options = {"secret": value["secret"]} if value["secret"] else {}
            spec = SourceSpec("connect", value["connect"], client_options=options)
        if spec is None:
            self.query_one("#start-error", Static).update("[red]fill in the field first[/]")
            return
        self.dismiss(spec)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        button = {"file": "open-file", "iface": "open-tap", "port": "open-tap",
                  "server": "open-server", "admin": "open-server", "connect": "open-connect",
                  "secret": "open-connect"}.get(event.input.id or "")
        if button:
            self.query_one(f"#{button}", Button).press()


class HelpScreen(ModalScreen[None]):
    """``?``: every key of the screen below."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table(title="wsp tui — keys", expand=True, show_edge=False)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("what it does")
        for key, what in self.keys:
            table.add_row(key, what)
        with VerticalScroll(id="help"):
            yield Static(table)
            yield Static(
                "Filter language: docs/filter.md — e.g. [b]type:Publish topic:prices "
                "dir:client conn:3 size>1000 text~ACME violation[/b]; [b]![/b] negates, "
                "[b]|[/b] separates alternatives.\nThe mouse works: click a row, double-click "
                "for its detail, scroll with the wheel. Ctrl+P opens the command palette "
                "(themes, keys, quit)."
            )


class StatsScreen(Screen[None]):
    """``t``: rates, type breakdown, latencies, per session and overall."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,t,q", "dismiss", "Back"),
                Binding("a", "overall", "Overall")]

    def __init__(self, stats: Any, conn: int | None = None) -> None:
        super().__init__()
        self.stats = stats
        self.conn = conn

    def compose(self) -> ComposeResult:
        with Vertical(id="stats"):
            yield Static("", id="stats-title")
            yield Label("messages/s (last 120 s)")
            yield Sparkline([], id="spark-messages")
            yield Label("bytes/s (last 120 s)")
            yield Sparkline([], id="spark-bytes")
            with VerticalScroll():
                yield Static("", id="stats-body")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_stats()
        self.set_interval(0.5, self.refresh_stats)

    def action_overall(self) -> None:
        self.conn = None
        self.refresh_stats()

    def refresh_stats(self) -> None:
        from wsproto_tools.render.livestats import stats_renderables

        stats = self.stats
        where = "overall" if self.conn is None else f"session #{self.conn}"
        self.query_one("#stats-title", Static).update(f"[b]Stats[/b] — {where}")
        messages, nbytes = stats.series(self.conn)
        self.query_one("#spark-messages", Sparkline).data = messages or [0]
        self.query_one("#spark-bytes", Sparkline).data = nbytes or [0]
        self.query_one("#stats-body", Static).update(
            stats_renderables(stats, conn=self.conn, sparklines=False))


class ExportScreen(ModalScreen[tuple[str, str, str] | None]):
    """``e``: write the selection, the filtered list or everything to a file."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        with Vertical(id="export"):
            yield Static("[b]Export[/b]")
            with RadioSet(id="format"):
                yield RadioButton("pcapng (synthetic TCP/IP, opens in Wireshark)", value=True,
                                  name="pcapng")
                yield RadioButton("NDJSON (the records)", name="ndjson")
                yield RadioButton("cassette (for wsp replay)", name="cassette")
            with RadioSet(id="scope"):
                yield RadioButton("the filtered list", value=True, name="list")
                yield RadioButton("the selected row", name="selection")
                yield RadioButton("every row", name="all")
            yield Input(value=f"wsp-export-{stamp}", id="path")
            with Horizontal():
                yield Button("Write", id="write", variant="primary")
                yield Button("Cancel", id="cancel")

    def _chosen(self, set_id: str) -> str:
        pressed = self.query_one(f"#{set_id}", RadioSet).pressed_button
        return pressed.name if pressed is not None and pressed.name else ""

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "write":
            self.dismiss(None)
            return
        fmt = self._chosen("format") or "pcapng"
        path = self.query_one("#path", Input).value.strip()
        suffix = {"pcapng": ".pcapng", "ndjson": ".ndjson", "cassette": ".cassette.ndjson"}[fmt]
        if path and not path.endswith(suffix):
            path += suffix
        self.dismiss((fmt, self._chosen("scope") or "list", path))

    def on_input_submitted(self) -> None:
        self.query_one("#write", Button).press()

    def action_cancel(self) -> None:
        self.dismiss(None)


class JumpScreen(ModalScreen[str | None]):
    """``g``: jump to a time (``HH:MM:SS[.mmm]`` UTC, or ``+S`` seconds from the first row)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="jump"):
            yield Label("Jump to time: HH:MM:SS[.mmm] (UTC) or +SECONDS from the start")
            yield Input(placeholder="12:00:05.250  or  +30", id="when")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
