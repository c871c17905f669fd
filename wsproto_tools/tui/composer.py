"""The composer of ``wsp tui --connect``: what to send, and what was sent.

A side panel that drives an :class:`~wsproto_tools.client.interactive.InteractiveClient`:

- a wsp type picker and the type's fields as a form (one Input each, from the
  codec's schema) or, with the JSON switch, as a JSON object in a TextArea;
  flag checkboxes; Send (``ctrl+s``, ``ctrl+enter``);
- raw text, or binary as hex, for servers that do not speak wsp (or hand-made
  wire bytes for one that does);
- Subscribe and Publish in one step (topic, data);
- the history of what was sent: Enter on an entry sends it again.

Each send runs in a worker; a mistake (bad field, unknown flag, no connection)
is shown on the panel's error line, never raised. A successful send posts
:class:`Composer.Sent`. The records of what goes and comes go from the client's
``on_record`` to the app's list, not through here.
"""

from __future__ import annotations

__all__ = ["Composer"]

import json
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    ListItem,
    ListView,
    Select,
    Static,
    Switch,
    TextArea,
)

from wsproto_tools.client.interactive import (
    HistoryEntry,
    InteractiveClient,
    field_value,
    type_fields,
    type_names,
)
from wsproto_tools.codec.schema import Flags
from wsproto_tools.exceptions import WspError

#: The flags a message can be sent with, in bit order.
FLAG_NAMES = tuple(flag.name for flag in Flags if flag and flag.name)
#: The type the picker starts on.
FIRST_TYPE = "Publish"


class Composer(Vertical):
    """Compose and send wsp or raw messages through an InteractiveClient."""

    DEFAULT_CSS = """
    Composer {
        width: 1fr;
        height: 1fr;
        padding: 0 1;
        overflow-y: auto;
    }
    Composer .composer-title {
        text-style: bold;
        margin-top: 1;
    }
    Composer #composer-status {
        color: $text-muted;
        height: auto;
    }
    Composer #composer-error {
        color: $error;
        height: auto;
    }
    Composer #composer-error.ok {
        color: $success;
    }
    Composer Horizontal, Composer Vertical {
        height: auto;
    }
    Composer #type {
        width: 1fr;
    }
    Composer .switch-label {
        padding: 1 1 0 1;
    }
    Composer #form {
        height: auto;
    }
    Composer #form Input {
        width: 1fr;
    }
    Composer #json {
        height: 8;
        display: none;
    }
    Composer.json-mode #json {
        display: block;
    }
    Composer.json-mode #form {
        display: none;
    }
    Composer #flags {
        layout: grid;
        grid-size: 2;
        grid-rows: 1;
        height: auto;
    }
    Composer.raw-only .wsp-only {
        display: none;
    }
    Composer #raw, Composer #topic, Composer #data {
        width: 1fr;
    }
    Composer #history {
        height: 10;
        min-height: 4;
        border: round $primary-background;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s,ctrl+enter", "send", "Send", priority=True),
    ]

    class Sent(Message):
        """Something was sent: ``entry`` is its history entry."""

        def __init__(self, composer: Composer, entry: HistoryEntry) -> None:
            super().__init__()
            self.composer = composer
            self.entry = entry

        @property
        def control(self) -> Composer:
            return self.composer

    def __init__(
        self,
        client: InteractiveClient,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.client = client
        self.type_name = FIRST_TYPE
        self._kinds: dict[str, str] = {}  # field name -> wire kind of the form's fields
        self._shown_history = 0
        self._mode_shown: str | None = "?"  # the mode the status line shows

    # ---------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield Static("connecting…", id="composer-status")
        yield Static("", id="composer-error")
        with Vertical(classes="wsp-only"):
            yield Label("wsp message", classes="composer-title")
            with Horizontal():
                yield Select([(name, name) for name in type_names()], value=FIRST_TYPE,
                             allow_blank=False, id="type")
                yield Label("JSON", classes="switch-label")
                yield Switch(False, id="as-json", tooltip="the fields as one JSON object")
            yield Vertical(id="form")
            yield TextArea("{}", language=None, id="json")
            with Vertical(id="flags"):
                for flag in FLAG_NAMES:
                    yield Checkbox(flag, id=f"flag-{flag}", compact=True,
                                   tooltip="with flags the message is sent as is")
            yield Button("Send", id="send", variant="primary")
        yield Label("raw WebSocket message", classes="composer-title")
        with Horizontal():
            yield Input(placeholder="text, or hex bytes", id="raw")
            yield Checkbox("hex", id="raw-hex", tooltip="send the hex as a binary message")
        yield Button("Send raw", id="send-raw")
        with Vertical(classes="wsp-only"):
            yield Label("subscribe / publish", classes="composer-title")
            yield Input(placeholder="topic", id="topic")
            yield Input(placeholder="data (text)", id="data")
            with Horizontal():
                yield Button("Subscribe", id="subscribe")
                yield Button("Publish", id="publish")
        yield Label("history (Enter: send again)", classes="composer-title")
        yield ListView(id="history")

    async def on_mount(self) -> None:
        await self._build_form(self.type_name)
        self.set_interval(0.25, self._refresh_state)

    # ---------------------------------------------------------------- the form
    async def _build_form(self, type_name: str) -> None:
        form = self.query_one("#form", Vertical)
        await form.remove_children()
        fields = type_fields(type_name)
        self._kinds = {name: kind for name, kind, _ in fields}
        inputs = [
            Input(placeholder=f"{name} ({'hex' if kind == 'bytes' else kind})"
                  + ("" if required else ", optional"),
                  id=f"field-{name}", tooltip=f"{name}: {kind}")
            for name, kind, required in fields
        ]
        if inputs:
            await form.mount_all(inputs)
        else:
            await form.mount(Label("(no fields)", classes="no-fields"))
        self.query_one("#json", TextArea).text = "{}"

    def _form_fields(self) -> dict[str, Any]:
        """The fields in their JSON form, from the form or the JSON TextArea."""
        if self.query_one("#as-json", Switch).value:
            text = self.query_one("#json", TextArea).text.strip() or "{}"
            try:
                fields = json.loads(text)
            except ValueError as error:
                raise ValueError(f"the fields are not JSON: {error}") from None
            if not isinstance(fields, dict):
                raise ValueError("the fields must be one JSON object")
            return fields
        fields = {}
        for name, kind in self._kinds.items():
            value = self.query_one(f"#field-{name}", Input).value
            try:
                parsed = field_value(kind, value)
            except WspError as error:
                raise ValueError(f"{name}: {error}") from None
            if parsed is not None:
                fields[name] = parsed
        return fields

    def _flags(self) -> list[str]:
        return [flag for flag in FLAG_NAMES if self.query_one(f"#flag-{flag}", Checkbox).value]

    @on(Select.Changed, "#type")
    async def _type_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.type_name:
            self.type_name = event.value
            await self._build_form(event.value)

    @on(Switch.Changed, "#as-json")
    def _json_toggled(self, event: Switch.Changed) -> None:
        area = self.query_one("#json", TextArea)
        if event.value:
            try:
                fields = {}
                for name, kind in self._kinds.items():
                    value = field_value(kind, self.query_one(f"#field-{name}", Input).value)
                    if value is not None:
                        fields[name] = value
            except WspError:
                fields = {}
            area.text = json.dumps(fields, indent=1)
        else:
            try:
                fields = json.loads(area.text or "{}")
            except ValueError:
                fields = {}
            for name, kind in self._kinds.items():
                value = fields.get(name) if isinstance(fields, dict) else None
                if value is not None:
                    shown = value if isinstance(value, str) else json.dumps(value)
                    if kind == "array of str" and isinstance(value, list):
                        shown = ", ".join(map(str, value))
                    self.query_one(f"#field-{name}", Input).value = shown
        self.set_class(event.value, "json-mode")

    # ---------------------------------------------------------------- state
    def _refresh_state(self) -> None:
        mode = self.client.active_mode
        if mode != self._mode_shown:
            self._mode_shown = mode
            status = self.query_one("#composer-status", Static)
            if mode is None:
                status.update(f"connecting to {self.client.url}…")
            elif mode == "raw":
                status.update(f"raw WebSocket: {self.client.url}")
            else:
                status.update(f"wsp: {self.client.url}")
            self.set_class(mode == "raw", "raw-only")
        history = self.client.history
        if len(history) != self._shown_history:
            self._show_history()

    def _show_history(self) -> None:
        view = self.query_one("#history", ListView)
        entries = self.client.history
        shown = self._shown_history
        if len(entries) < shown:
            view.clear()
            shown = 0
        view.extend(ListItem(Label(entry.label, markup=False)) for entry in entries[shown:])
        self._shown_history = len(entries)

    def _say(self, text: str, *, error: bool = True) -> None:
        line = self.query_one("#composer-error", Static)
        line.update(text)
        line.set_class(not error, "ok")

    def _sent(self) -> None:
        entries = self.client.history
        if entries:
            self._say(f"sent: {entries[-1].label}", error=False)
            self.post_message(self.Sent(self, entries[-1]))
        self._show_history()

    # ---------------------------------------------------------------- actions
    def action_send(self) -> None:
        """Send the composed wsp message (ctrl+s, ctrl+enter)."""
        if self.client.active_mode == "raw":
            self._send_raw()
            return
        try:
            fields = self._form_fields()
        except ValueError as error:
            self._say(str(error))
            return
        self._run(self.client.send_wsp(self.type_name, fields, self._flags()))

    @on(Button.Pressed, "#send")
    def _send_pressed(self) -> None:
        self.action_send()

    @on(Button.Pressed, "#send-raw")
    @on(Input.Submitted, "#raw")
    def _send_raw(self, event: Input.Submitted | Button.Pressed | None = None) -> None:
        if isinstance(event, Input.Submitted):
            text = event.value  # what was submitted, even if the Input changed since
        else:
            text = self.query_one("#raw", Input).value
        if self.query_one("#raw-hex", Checkbox).value:
            try:
                data = bytes.fromhex(text)
            except ValueError:
                self._say(f"{text!r} is not hex")
                return
            self._run(self.client.send_raw_binary(data))
        else:
            self._run(self.client.send_raw_text(text))

    @on(Button.Pressed, "#subscribe")
    def _subscribe(self) -> None:
        topic = self.query_one("#topic", Input).value.strip()
        self._run(self.client.subscribe(topic))

    @on(Button.Pressed, "#publish")
    @on(Input.Submitted, "#data")
    def _publish(self) -> None:
        topic = self.query_one("#topic", Input).value.strip()
        data = self.query_one("#data", Input).value
        self._run(self.client.publish(topic, data))

    @on(Input.Submitted, "#form Input")
    def _field_submitted(self) -> None:
        self.action_send()

    @on(ListView.Selected, "#history")
    def _resend(self, event: ListView.Selected) -> None:
        index = event.list_view.index
        if index is not None:
            self._run(self.client.resend(index))

    @work(group="composer")
    async def _run(self, send: Any) -> None:
        """One send, in a worker; its failure goes on the error line."""
        try:
            await send
        except WspError as error:
            self._say(str(error))
            return
        except OSError as error:
            self._say(f"send failed: {error.strerror or error}")
            return
        self._sent()
