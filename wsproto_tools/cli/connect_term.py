"""``wsp connect``'s input and output: lines from a pipe or a prompt, records to print.

Interactive sessions (stdin and stdout are terminals) read lines with
prompt_toolkit — line editing, history kept in ``$XDG_STATE_HOME/wsp/connect_history``
(``~/.local/state/wsp/…``; in memory when that is not writable) — and print what
arrives above the prompt (``patch_stdout``). Otherwise lines come from stdin through
a daemon thread, so Ctrl-C never waits for a blocked read.
"""

from __future__ import annotations

__all__ = [
    "LineSource",
    "Output",
    "PipeSource",
    "PromptSource",
    "history_path",
    "interactive_terminal",
    "parse_hex_line",
    "stop_reading",
]

import asyncio
import contextlib
import json
import os
import string
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import click

from wsproto_tools.exceptions import DecodeError

_HEX = frozenset(string.hexdigits)


def interactive_terminal() -> bool:
    """True when both stdin and stdout are terminals (a person is typing)."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def parse_hex_line(text: str, where: str) -> bytes:
    """Hex digits (spaces allowed between bytes) -> bytes; DecodeError naming ``where``."""
    digits = "".join(text.split())
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    for column, char in enumerate(digits, 1):
        if char not in _HEX:
            raise DecodeError(
                f"{where}: not hex: {char!r} at digit {column} "
                f"(give pairs of hex digits, e.g. 48656c6c6f)"
            )
    if len(digits) % 2:
        raise DecodeError(
            f"{where}: not hex: an odd number of hex digits ({len(digits)}); "
            "each byte is two digits"
        )
    return bytes.fromhex(digits)


def history_path() -> Path:
    """``$XDG_STATE_HOME/wsp/connect_history``, else ``~/.local/state/wsp/connect_history``."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "wsp" / "connect_history"


def _history() -> Any:
    """A FileHistory when the state directory is writable, else an InMemoryHistory."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError:
        return InMemoryHistory()
    return FileHistory(str(path))


class LineSource(Protocol):
    """Where the lines typed or piped in come from."""

    interactive: bool
    number: int  # lines read so far

    async def read(self) -> str | None:
        """The next line (without its newline); None at the end of input."""
        ...

    def screen(self) -> contextlib.AbstractContextManager[None]:
        """The block within which the session prints."""
        ...


async def stop_reading(reading: asyncio.Future[str | None] | None) -> None:
    """Stop reading input (the prompt gives the terminal back)."""
    if reading is not None and not reading.done():
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


class PipeSource:
    """Lines of stdin, read by a daemon thread (the end of input is None).

    Lines are decoded as UTF-8 here, so a line that is not says so (DecodeError
    naming the line) instead of reaching the connection.
    """

    interactive = False

    def __init__(self) -> None:
        self.number = 0  # lines read so far
        self._lines: asyncio.Queue[bytes | None] | None = None

    def screen(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def _start(self) -> asyncio.Queue[bytes | None]:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[bytes | None] = asyncio.Queue()

        def put(item: bytes | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(lines.put_nowait, item)

        def pump() -> None:
            # os.read, not sys.stdin: a daemon thread blocked in a buffered read holds
            # its lock, and the interpreter aborts when it exits meanwhile.
            try:
                fd = sys.stdin.fileno()
            except (AttributeError, OSError, ValueError):
                put(None)
                return
            partial: list[bytes] = []  # the line being read, in pieces (long lines stay linear)
            while True:
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                *complete, rest = chunk.split(b"\n")
                if complete:
                    complete[0] = b"".join(partial) + complete[0]
                    partial.clear()
                    for line in complete:
                        put(line + b"\n")
                if rest:
                    partial.append(rest)
            if partial:
                put(b"".join(partial))
            put(None)

        threading.Thread(target=pump, name="wsp-connect-stdin", daemon=True).start()
        return lines

    async def read(self) -> str | None:
        if self._lines is None:
            self._lines = self._start()
        raw = await self._lines.get()
        if raw is None:
            self._lines.put_nowait(None)  # the end stays the end
            return None
        self.number += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DecodeError(
                f"line {self.number}: not UTF-8 (byte {error.start + 1} is "
                f"0x{raw[error.start]:02x}); send bytes with --binary and hex lines"
            ) from None
        return line.removesuffix("\n").removesuffix("\r")


class PromptSource:
    """A prompt with line editing and history; Ctrl-D and Ctrl-C end the input."""

    interactive = True

    def __init__(self, prompt: str, colour: bool) -> None:
        self.prompt = prompt
        self.colour = colour
        self.number = 0
        self._session: Any = None

    async def read(self) -> str | None:
        if self._session is None:
            from prompt_toolkit import PromptSession

            self._session = PromptSession(history=_history())
        message: Any = self.prompt
        if self.colour:
            from prompt_toolkit.formatted_text import FormattedText

            message = FormattedText([("ansibrightblue bold", self.prompt)])
        try:
            line: str = await self._session.prompt_async(message)
        except (EOFError, KeyboardInterrupt):
            return None
        self.number += 1
        return line

    @contextlib.contextmanager
    def screen(self) -> Iterator[None]:
        """While in this block, what is printed appears above the prompt."""
        from prompt_toolkit.patch_stdout import patch_stdout

        with patch_stdout(raw=True):
            yield


_STYLES: dict[str, dict[str, Any]] = {
    "in": {"fg": "green"},
    "binary": {"fg": "cyan"},
    "out": {"fg": "blue"},
    "note": {"fg": "yellow"},
    "error": {"fg": "red", "bold": True},
    "dim": {"dim": True},
}


class Output:
    """Everything ``wsp connect`` prints: data on stdout, the rest on stderr.

    Streams are looked up at each write, so what is printed while a prompt is
    shown goes through prompt_toolkit's stdout proxy.
    """

    def __init__(self, *, as_json: bool, colour: bool) -> None:
        self.as_json = as_json
        self.colour = colour

    def style(self, text: str, kind: str) -> str:
        return click.style(text, **_STYLES[kind]) if self.colour else text

    def line(self, text: str) -> None:
        """One line of data on stdout."""
        out = sys.stdout
        out.write(text + "\n")
        out.flush()

    def record(self, record: dict[str, Any]) -> None:
        """One NDJSON record on stdout."""
        self.line(json.dumps(record, ensure_ascii=False))

    def note(self, text: str, kind: str = "note") -> None:
        """A line for people, on stderr (``wsp: …``)."""
        err = sys.stderr
        err.write(self.style(f"wsp: {text}", kind) + "\n")
        err.flush()

    def error(self, text: str) -> None:
        self.note(f"error: {text}", "error")

    def help(self, text: str) -> None:
        """Help text: on stderr with --json (stdout carries only records)."""
        stream = sys.stderr if self.as_json else sys.stdout
        stream.write(text.rstrip("\n") + "\n")
        stream.flush()
