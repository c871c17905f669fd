"""``wsp connect`` against a wsp server: one command per line, a wsp session underneath."""

from __future__ import annotations

__all__ = ["WSP_HELP", "run_wsp"]

import asyncio
import contextlib
import json
import shlex
import time
from typing import Any

from wsproto_tools.cli.connect_term import LineSource, Output, parse_hex_line, stop_reading
from wsproto_tools.cli.status import ExitStatus
from wsproto_tools.client import Client, ClientClosed, ClientOptions
from wsproto_tools.codec import TextData
from wsproto_tools.engine.events import Delivery
from wsproto_tools.exceptions import ConnectionFailed, DecodeError, WspError
from wsproto_tools.render.session import data_fields, delivery_json, delivery_line

WSP_HELP = """commands (a leading '/' is allowed: /ping, /quit):
  text TEXT...         send a TextData message (the server echoes it)
  binary HEX | hex HEX send a BinaryData message given as hex
  sub TOPIC            subscribe; deliveries are shown as they arrive
  unsub TOPIC          unsubscribe
  pub TOPIC TEXT...    publish and wait for the acknowledgment
  echo TEXT...         the server's echo request, with its round-trip time
  ping                 a Heartbeat probe, with its round-trip time
  close [CODE [REASON]] close the session with this code and exit
  help                 this text
  quit                 close the session and exit (Ctrl-D, Ctrl-C)"""

_KIND_STYLE = {"error": "error", "event": "note", "sent": "out", "text": "in", "binary": "binary"}


class WspConsole:
    """Lines ``HH:MM:SS.mmm kind text``, or NDJSON records ``{"ts", "kind", ...}``."""

    def __init__(self, out: Output) -> None:
        self.out = out

    def show(self, kind: str, text: str, fields: dict[str, Any] | None = None) -> None:
        now = time.time()
        out = self.out
        if out.as_json:
            record = {"ts": round(now, 6), "kind": kind, **(fields or {})}
            if "text" not in record and text:
                record["text"] = text
            out.line(json.dumps(record))
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"
        label = out.style(f"{kind:<9}", _KIND_STYLE.get(kind, "dim"))
        out.line(f"{out.style(stamp, 'dim')} {label} {text}")

    def event(self, name: str, fields: dict[str, Any]) -> None:
        self.show(
            "event",
            f"{name} " + " ".join(f"{k}={v}" for k, v in fields.items()),
            {"event": name, **fields},
        )


async def run_wsp(
    url: str, options: ClientOptions, source: LineSource, out: Output, *, wait: float
) -> ExitStatus:
    """A wsp session driven by commands; the exit status."""
    console = WspConsole(out)
    show = console.show
    client = Client(url, options, on_event=console.event)
    await client.connect()
    tasks: dict[str, asyncio.Task[None]] = {}
    status = ExitStatus.OK

    async def watch() -> None:
        with contextlib.suppress(ClientClosed):
            while True:
                payload = await client.data.get()
                if isinstance(payload, TextData):
                    show("text", payload.text, {"data": payload.text})
                else:
                    show("binary", payload.data.hex(), data_fields(payload.data))

    async def follow(topic: str) -> None:
        with contextlib.suppress(ClientClosed):
            subscription = await client.subscribe(topic)
            show("sub", f"subscribed to {topic}", {"topic": topic})
            async for item in subscription:
                if isinstance(item, Delivery):
                    show("deliver", delivery_line(item), delivery_json(item))
                # ContinuityLostNotice: shown through the client's events

    async def command(line: str) -> bool:
        """Run one command line; False to stop."""
        nonlocal status
        try:
            words = shlex.split(line)
        except ValueError as error:
            show("error", f"cannot parse: {error}")
            return True
        if not words:
            return True
        verb, args = words[0].lower().removeprefix("/"), words[1:]
        rest = " ".join(args)
        if verb in ("quit", "exit", "q"):
            return False
        if verb == "help":
            out.help(WSP_HELP)
        elif verb == "text" and args:
            await client.send_text(rest)
            show("sent", f"text {rest}")
        elif verb in ("binary", "hex") and args:
            data = parse_hex_line(rest, f"line {source.number}")
            await client.send_binary(data)
            show("sent", f"binary {data.hex()}")
        elif verb == "sub" and len(args) == 1:
            if args[0] not in tasks:
                tasks[args[0]] = asyncio.create_task(follow(args[0]))
                await client.subscribe(args[0])
        elif verb == "unsub" and len(args) == 1:
            await client.unsubscribe(args[0])
            task = tasks.pop(args[0], None)
            if task is not None:
                task.cancel()
            show("unsub", f"unsubscribed from {args[0]}", {"topic": args[0]})
        elif verb == "pub" and len(args) >= 2:
            await client.publish(args[0], " ".join(args[1:]))
            show("ack", f"published to {args[0]}", {"topic": args[0]})
        elif verb == "echo":
            t0 = time.perf_counter()
            reply = await client.echo(rest.encode())
            rtt = (time.perf_counter() - t0) * 1000
            text = reply.decode(errors="replace")
            show("echo", f"{text} ({rtt:.2f} ms)", {"data": text, "rtt_ms": round(rtt, 3)})
        elif verb == "ping":
            rtt = await client.ping() * 1000
            show("pong", f"rtt {rtt:.2f} ms", {"rtt_ms": round(rtt, 3)})
        elif verb == "close":
            code = int(args[0]) if args and args[0].isdigit() else 1000
            await client.close(code, " ".join(args[1:]))
            return False
        else:
            show("error", f"unknown or incomplete command {line.strip()!r}; type 'help'")
        return True

    watcher = asyncio.create_task(watch(), name="wsp-connect-watch")
    interrupted = False
    reading: asyncio.Future[str | None] | None = None
    try:
        while True:
            reading = asyncio.ensure_future(source.read())
            done, _ = await asyncio.wait({reading, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if reading not in done:  # the client ended (a fatal close, gave up reconnecting)
                break
            line = None
            try:
                line = reading.result()
                if line is None:
                    if not source.interactive and wait > 0:
                        await asyncio.wait({watcher}, timeout=wait)  # late deliveries
                    break
                if not await command(line):
                    break
            except DecodeError as error:
                show("error", str(error))
                if not source.interactive:
                    status = ExitStatus.BAD_INPUT
            except ValueError as error:
                show("error", str(error))
            except TimeoutError:
                show("error", f"{(line or '?').split()[0]}: no answer in time")
            except ConnectionFailed:
                if client.error is not None:
                    break  # the client ended: raised below
                raise
    except asyncio.CancelledError:
        interrupted = True
    await stop_reading(reading)
    failure = client.error  # set before our close() only when the client failed
    for task in (*tasks.values(), watcher):
        task.cancel()
    with contextlib.suppress(WspError, asyncio.CancelledError, TimeoutError):
        async with asyncio.timeout(3):
            await client.close()
    for task in (*tasks.values(), watcher):
        with contextlib.suppress(asyncio.CancelledError, WspError):
            await task
    if interrupted and not source.interactive:
        raise asyncio.CancelledError
    if failure is not None:
        raise failure  # cli.env.end: one line, its status (4 network, 5 refused)
    if source.interactive:
        out.note("closed", "dim")
    return status
