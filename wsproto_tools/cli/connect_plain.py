"""``wsp connect`` against a plain WebSocket server: lines in, messages out.

Each line read is one message (text, or binary from hex with ``--binary``); each
message received is one line on stdout (text as is, binary as hex), or one NDJSON
record with ``--json``. At a prompt, lines starting with ``/`` are commands.
"""

from __future__ import annotations

__all__ = ["PLAIN_HELP", "run_plain"]

import asyncio
import shlex
import time
from typing import Any

from wsproto_tools.cli.connect_term import LineSource, Output, parse_hex_line, stop_reading
from wsproto_tools.cli.status import ExitStatus
from wsproto_tools.client.plain import CloseInfo, Direction, Message, PlainSession
from wsproto_tools.exceptions import ConnectionFailed, DecodeError

PLAIN_HELP = """commands (anything else is sent as a message):
  /ping [TEXT]           a Ping frame; prints the round-trip time
  /close [CODE [REASON]] close with this code (default 1000) and reason, and exit
  /help                  this text
  /quit                  close normally (1000) and exit; Ctrl-D and Ctrl-C do too
  //TEXT                 send a message that starts with '/'
lines are {mode}."""

#: Close codes an endpoint may send (RFC 6455 §7.4.1 and §7.4.2).
_SENDABLE = {*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)}


def _record(message: Message) -> dict[str, Any]:
    data = message.data
    record: dict[str, Any] = {
        "time": round(message.time, 6),
        "direction": str(message.direction),
        "opcode": str(message.kind),
    }
    if isinstance(data, str):
        record["data"] = data
        record["length"] = len(data.encode("utf-8"))
    else:
        record["hex"] = data.hex()
        record["length"] = len(data)
    return record


class PlainConsole:
    """Shows messages and events in the chosen form."""

    def __init__(self, out: Output, interactive: bool) -> None:
        self.out = out
        self.interactive = interactive

    def message(self, message: Message) -> None:
        out = self.out
        if out.as_json:
            out.record(_record(message))
            return
        if message.direction is Direction.OUT:
            return  # the prompt line, or the input itself, already shows it
        data = message.data
        if not self.interactive:
            out.line(data if isinstance(data, str) else data.hex())
        elif isinstance(data, str):
            out.line(out.style("< ", "in") + data)
        else:
            out.line(out.style(f"< [{len(data)} B] ", "binary") + out.style(data.hex(), "binary"))

    def pong(self, rtt: float) -> None:
        if self.out.as_json:
            self.out.record(
                {
                    "time": round(time.time(), 6),
                    "direction": "in",
                    "opcode": "pong",
                    "rtt_ms": round(rtt * 1000, 3),
                }
            )
        else:
            self.out.note(f"pong in {rtt * 1000:.2f} ms")

    def closed(self, info: CloseInfo) -> None:
        out = self.out
        if out.as_json:
            out.record(
                {
                    "time": round(time.time(), 6),
                    "direction": "in" if info.by_server else "out",
                    "opcode": "close",
                    "code": info.code,
                    "reason": info.reason,
                }
            )
        if info.by_server:
            out.note(
                f"the server closed the connection: {info.describe()}",
                "note" if info.clean else "error",
            )
        elif not info.requested:
            out.note(f"the connection was closed: {info.describe()}", "error")
        elif self.interactive:
            out.note(f"closed: {info.describe()}", "dim")


async def run_plain(
    session: PlainSession,
    source: LineSource,
    out: Output,
    *,
    binary: bool,
    wait: float,
) -> ExitStatus:
    """Drive an open session until the input ends or the server closes; the exit status."""
    console = PlainConsole(out, source.interactive)
    status = ExitStatus.OK
    close_with: tuple[int, str] = (1000, "")

    async def receive() -> None:
        while (message := await session.recv()) is not None:
            console.message(message)

    receiver = asyncio.create_task(receive(), name="wsp-connect-receive")

    async def send(line: str, number: int) -> None:
        data: str | bytes = parse_hex_line(line, f"line {number}") if binary else line
        console.message(await session.send(data))

    async def command(line: str) -> bool:
        """One line typed at the prompt; False to stop."""
        nonlocal close_with
        if line.startswith("//"):
            line = line[1:]
        elif line.startswith("/"):
            try:
                words = shlex.split(line[1:])
            except ValueError as error:
                out.error(f"cannot parse {line!r}: {error}")
                return True
            verb, args = (words[0].lower(), words[1:]) if words else ("", [])
            if verb in ("quit", "exit", "q"):
                return False
            if verb == "help":
                out.help(PLAIN_HELP.format(mode="hex bytes" if binary else "text messages"))
            elif verb == "ping":
                console.pong(await session.ping(" ".join(args).encode()))
            elif verb == "close":
                code = args[0] if args else "1000"
                if not code.isdigit() or int(code) not in _SENDABLE:
                    out.error(f"/close {code}: not a close code one may send (1000, 3000-4999)")
                    return True
                close_with = (int(code), " ".join(args[1:]))
                return False
            else:
                out.error(f"unknown command /{verb}; type /help (send '//…' for a leading '/')")
            return True
        if line:
            await send(line, source.number)
        return True

    interrupted = False
    reading: asyncio.Future[str | None] | None = None
    try:
        while True:
            reading = asyncio.ensure_future(source.read())
            done, _ = await asyncio.wait({reading, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if reading not in done:  # the connection ended first
                break
            try:
                line = reading.result()
                if line is None:  # end of input, Ctrl-D or Ctrl-C at the prompt
                    if not source.interactive and wait > 0:
                        await asyncio.wait({receiver}, timeout=wait)  # replies in flight
                    break
                if source.interactive:
                    if not await command(line):
                        break
                else:
                    await send(line, source.number)
            except DecodeError as error:
                out.error(str(error))
                if not source.interactive:
                    status = ExitStatus.BAD_INPUT
                    break
            except ConnectionFailed as error:
                if receiver.done() or session.close_info is not None:
                    break  # reported below, with the close code
                out.error(str(error))
    except asyncio.CancelledError:
        interrupted = True  # Ctrl-C outside the prompt, or SIGTERM
    await stop_reading(reading)
    info = session.close_info
    if info is None:
        info = await session.close(*close_with)
    try:
        async with asyncio.timeout(3):
            await receiver
    except (TimeoutError, asyncio.CancelledError):
        receiver.cancel()
    console.closed(info)
    if interrupted and not source.interactive:
        raise asyncio.CancelledError  # run_async reports it: 130
    if status is ExitStatus.OK and not info.clean:
        status = ExitStatus.NETWORK
    return status
