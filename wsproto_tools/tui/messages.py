"""The message list: one line per row of a :class:`~wsproto_tools.render.rowstore.RowStore`.

A line-based widget (Textual's line API): only the lines on screen are drawn,
whatever the number of rows, and a drawn line is cached until the filter or
the width changes. The list shows either every row or a *view* (the indices a
filter passed), grows as rows arrive, and follows the end only while the
cursor is on the last line: moving up keeps the place and counts what is new.
"""

from __future__ import annotations

__all__ = ["MessageList"]

import time
from array import array
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from wsproto_tools.render.detail import summary_line
from wsproto_tools.render.rowstore import RowStore

_STYLE_CLIENT = Style(color="cyan")
_STYLE_SERVER = Style(color="green")
_STYLE_EVENT = Style(color="yellow", dim=True)
_STYLE_VIOLATION = Style(color="red", bold=True)
_STYLE_TYPE = {
    "Publish": Style(color="bright_cyan"),
    "Deliver": Style(color="bright_green"),
    "Acknowledge": Style(color="grey62"),
    "Heartbeat": Style(color="grey50"),
    "Error": Style(color="red"),
    "Close": Style(color="magenta"),
    "close": Style(color="magenta"),
    "ping": Style(color="grey50"),
    "pong": Style(color="grey50"),
}
_STYLE_CURSOR = Style(reverse=True)
_STYLE_BOOKMARK = Style(color="bright_yellow", bold=True)
#: cached lines kept (about a hundred screens)
_CACHE = 5000


def _clock(ts: float) -> str:
    if not ts:
        return "--:--:--.---"
    t = time.gmtime(ts)
    return f"{t.tm_hour:02}:{t.tm_min:02}:{t.tm_sec:02}.{int(ts * 1000) % 1000:03}"


class MessageList(ScrollView, can_focus=True):
    """Rows of a store (or of a view of it), one line each, with a cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end,G", "last", "Last (follow)", show=False),
        Binding("enter", "open", "Detail"),
    ]

    DEFAULT_CSS = """
    MessageList { height: 1fr; }
    """

    cursor: reactive[int] = reactive(-1, always_update=True, repaint=False)

    class Selected(Message):
        """The cursor moved to a row (``index`` in the store)."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, MessageList.Selected)

    class Opened(Message):
        """Enter on a row."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, store: RowStore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        #: row indices shown, or None: every row of the store
        self.view: array[int] | None = None
        self.follow = True
        #: rows that arrived while the cursor was not on the last line
        self.unseen = 0
        self.bookmarks: set[int] = set()
        self._shown = 0
        self._cache: dict[tuple[int, int], Strip] = {}

    # ------------------------------------------------------------ the rows

    @property
    def count(self) -> int:
        return len(self.view) if self.view is not None else self._shown

    def index_at(self, line: int) -> int:
        """The store index of list line ``line``."""
        return self.view[line] if self.view is not None else line

    def line_of(self, index: int) -> int | None:
        """The list line of store index ``index`` (None when filtered out)."""
        if self.view is None:
            return index if index < self._shown else None
        import bisect

        at = bisect.bisect_left(self.view, index)
        return at if at < len(self.view) and self.view[at] == index else None

    def set_view(self, view: array[int] | None) -> None:
        """Show ``view`` (None: every row); the cursor stays on its row when shown."""
        keep = self.index_at(self.cursor) if 0 <= self.cursor < self.count else None
        self.view = view
        self._cache.clear()
        if view is None:
            self._shown = self.store.count
        self._set_virtual()
        line = self.line_of(keep) if keep is not None else None
        if line is not None:
            self.cursor = line
            self._show_line(line)
        else:
            self.cursor = self.count - 1 if self.follow else min(self.cursor, self.count - 1)
            if self.follow:
                self.scroll_end(animate=False, immediate=True)
        self.unseen = 0
        self.refresh()

    def grew(self, view_added: int = 0) -> int:
        """Rows were appended to the store (or ``view_added`` to the view);
        returns how many new lines the list has."""
        before = self.count
        if self.view is None:
            self._shown = self.store.count
        new = self.count - before
        if not new:
            return 0
        at_end = self.cursor >= before - 1
        self._set_virtual()
        if self.follow and at_end:
            self.cursor = self.count - 1
            self.scroll_end(animate=False, immediate=True)
        else:
            self.unseen += new
        self.refresh()
        return new

    def _set_virtual(self) -> None:
        self.virtual_size = Size(self.size.width or 80, self.count)

    # ------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        scroll_y = self.scroll_offset.y
        line = scroll_y + y
        width = self.size.width
        if line >= self.count or line < 0:
            return Strip.blank(width)
        index = self.index_at(line)
        key = (index, width)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._draw_line(index, width)
            if len(self._cache) >= _CACHE:
                self._cache.clear()
            self._cache[key] = strip
        if line == self.cursor:
            strip = strip.apply_style(_STYLE_CURSOR)
        return strip

    def _draw_line(self, index: int, width: int) -> Strip:
        store = self.store
        kind = store.kinds.names[store.kind[index]]
        ts = store.ts[index]
        conn = store.conn[index]
        marks = ("★" if index in self.bookmarks else " ") + (
            "!" if index in store.violations else " ")
        conn_text = f"#{conn}" if conn < 100_000 else f"#{conn:x}"[-8:]
        head = f"{marks}{_clock(ts)} {conn_text:>6} "
        segments: list[Segment] = []
        mark_style = _STYLE_VIOLATION if index in store.violations else _STYLE_BOOKMARK
        segments.append(Segment(head[:2], mark_style))
        segments.append(Segment(head[2:], Style(dim=True)))
        if kind != "message":
            try:
                text = summary_line(store.record(index), max(10, width - len(head) - 3))
            except Exception:
                text = ""
            segments.append(Segment("◆  ", _STYLE_EVENT))
            segments.append(Segment(text if text.startswith(kind) else f"{kind} {text}",
                                    _STYLE_EVENT))
        else:
            direction = store.dir[index]
            arrow = "→S" if direction == 1 else "←S" if direction == 2 else "  "
            dstyle = _STYLE_CLIENT if direction == 1 else _STYLE_SERVER
            tname = store.types.names[store.type[index]] or store.opcodes.names[store.opcode[index]]
            seq = store.seq[index]
            topic = store.topic[index]
            offset = store.offset[index]
            where = ""
            if topic:
                where = store.topics.names[topic] + (f"@{offset}" if offset >= 0 else "")
            seq_text = str(seq) if seq > 0 else ""
            size = store.size[index]
            segments.append(Segment(f"{arrow} ", dstyle))
            segments.append(Segment(f"{tname[:17]:<17} ", _STYLE_TYPE.get(tname, dstyle)))
            segments.append(Segment(f"{seq_text:>6} {where[:16]:<16} {size:>7} ", Style()))
            room = width - len(head) - 3 - 18 - 32
            if room > 8:
                try:
                    text = summary_line(store.record(index), room)
                except Exception:
                    text = ""
                style = _STYLE_VIOLATION if index in store.violations else Style(dim=False)
                segments.append(Segment(text, style))
        strip = Strip(segments)
        return strip.crop_pad(width, 0, 0, Style())

    def invalidate(self) -> None:
        """Draw every line again (the bookmarks changed)."""
        self._cache.clear()
        self.refresh()

    def on_resize(self) -> None:
        self._cache.clear()
        self._set_virtual()

    # ------------------------------------------------------------ moving

    def watch_cursor(self, old: int, new: int) -> None:
        if 0 <= new < self.count:
            self.post_message(self.Selected(self.index_at(new)))
            if new == self.count - 1:
                self.unseen = 0
        self.refresh()

    def _show_line(self, line: int) -> None:
        top = self.scroll_offset.y
        height = max(1, self.size.height)
        if line < top:
            self.scroll_to(y=line, animate=False, immediate=True)
        elif line >= top + height:
            self.scroll_to(y=line - height + 1, animate=False, immediate=True)

    def move_to(self, line: int) -> None:
        """Put the cursor on list line ``line`` (and show it)."""
        if not self.count:
            return
        line = max(0, min(self.count - 1, line))
        self.cursor = line
        self._show_line(line)

    def action_cursor(self, step: int) -> None:
        self.move_to(self.cursor + step)

    def action_page(self, step: int) -> None:
        self.move_to(self.cursor + step * max(1, self.size.height - 1))

    def action_first(self) -> None:
        self.move_to(0)

    def action_last(self) -> None:
        self.follow = True
        self.unseen = 0
        self.move_to(self.count - 1)

    def action_open(self) -> None:
        if 0 <= self.cursor < self.count:
            self.post_message(self.Opened(self.index_at(self.cursor)))

    def on_click(self, event: Any) -> None:
        line = self.scroll_offset.y + event.y
        if 0 <= line < self.count:
            self.move_to(line)
            if getattr(event, "chain", 1) >= 2:
                self.action_open()
