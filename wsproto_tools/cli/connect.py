"""``wsp connect URL``: an interactive wsp session (commands from stdin)."""

from __future__ import annotations

__all__ = ["HELP", "connect"]

import asyncio
import json
import shlex
import sys
import threading
import time
from typing import Any

import click

from wsproto_tools.cli.env import guarded
from wsproto_tools.cli.session_common import client_options, make_options, run_async

HELP = """commands:
  text TEXT...         send a TextData message (the server echoes it)
  binary HEX | hex HEX send a BinaryData message given as hex
  sub TOPIC            subscribe; deliveries are shown as they arrive
  unsub TOPIC          unsubscribe
  pub TOPIC TEXT...    publish and wait for the acknowledgment
  echo TEXT...         the server's echo request, with its round-trip time
  ping                 a Heartbeat probe, with its round-trip time
  help                 this text
  quit                 close the session and exit"""


@click.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print NDJSON instead of text lines.")
@client_options
@guarded
def connect(url: str, as_json: bool, **opts: object) -> None:
    """Open an interactive session with a wsp server.

    Reads commands from the terminal (or from stdin when it is not a terminal;
    the session closes at the end of input). Type 'help' for the commands.
    """
    from wsproto_tools.client import Client
    from wsproto_tools.codec import TextData
    from wsproto_tools.engine.events import ContinuityLostNotice, Delivery
    from wsproto_tools.render.session import data_fields, delivery_json, delivery_line

    interactive = sys.stdin.isatty()
    start = time.monotonic()

    def show(kind: str, text: str, fields: dict[str, Any] | None = None) -> None:
        stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
        if as_json:
            record = {"ts": round(time.time(), 6), "kind": kind, **(fields or {})}
            if "text" not in record and text:
                record["text"] = text
            click.echo(json.dumps(record))
        else:
            click.echo(f"{stamp} {kind:<9} {text}")

    def on_event(name: str, fields: dict[str, Any]) -> None:
        show(
            "event",
            f"{name} " + " ".join(f"{k}={v}" for k, v in fields.items()),
            {"event": name, **fields},
        )

    options = make_options(**opts)  # type: ignore[arg-type]

    async def watch(client: Client) -> None:
        while True:
            payload = await client.data.get()
            if isinstance(payload, TextData):
                show("text", payload.text, {"data": payload.text})
            else:
                show("binary", payload.data.hex(), data_fields(payload.data))

    async def follow(client: Client, topic: str) -> None:
        subscription = await client.subscribe(topic)
        show("sub", f"subscribed to {topic}", {"topic": topic})
        async for item in subscription:
            if isinstance(item, Delivery):
                show("deliver", delivery_line(item), delivery_json(item))
            elif isinstance(item, ContinuityLostNotice):
                pass  # shown through on_event

    def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
        """Lines of stdin from a daemon thread ('' at the end): Ctrl-C never waits for it."""
        lines: asyncio.Queue[str] = asyncio.Queue()

        def read() -> None:
            while True:
                line = sys.stdin.readline()
                loop.call_soon_threadsafe(lines.put_nowait, line)
                if not line:
                    return

        threading.Thread(target=read, name="wsp-connect-stdin", daemon=True).start()
        return lines

    async def run() -> None:
        loop = asyncio.get_running_loop()
        async with Client(url, options, on_event=on_event) as client:
            lines = stdin_lines(loop)
            tasks = {"": asyncio.create_task(watch(client))}
            if interactive:
                click.echo(f"connected to {url}; type 'help' for commands", err=True)
            while True:
                line = await lines.get()
                if not line:
                    break
                try:
                    words = shlex.split(line)
                except ValueError as error:
                    show("error", f"cannot parse: {error}")
                    continue
                if not words:
                    continue
                verb, args = words[0].lower(), words[1:]
                rest = " ".join(args)
                try:
                    if verb in ("quit", "exit"):
                        break
                    if verb == "help":
                        click.echo(HELP)
                    elif verb == "text" and args:
                        await client.send_text(rest)
                        show("sent", f"text {rest}")
                    elif verb in ("binary", "hex") and args:
                        data = bytes.fromhex("".join(args))
                        await client.send_binary(data)
                        show("sent", f"binary {data.hex()}")
                    elif verb == "sub" and len(args) == 1:
                        if args[0] not in tasks:
                            tasks[args[0]] = asyncio.create_task(follow(client, args[0]))
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
                        show(
                            "echo",
                            f"{reply.decode(errors='replace')} ({rtt:.2f} ms)",
                            {"data": reply.decode(errors="replace"), "rtt_ms": round(rtt, 3)},
                        )
                    elif verb == "ping":
                        rtt = await client.ping() * 1000
                        show("pong", f"rtt {rtt:.2f} ms", {"rtt_ms": round(rtt, 3)})
                    else:
                        show(
                            "error", f"unknown or incomplete command {line.strip()!r}; type 'help'"
                        )
                except ValueError as error:
                    show("error", str(error))
                except TimeoutError:
                    show("error", f"{verb}: no answer in time")
            await asyncio.sleep(0.05)  # let late deliveries print
            for task in tasks.values():
                task.cancel()
        if interactive:
            click.echo(f"closed after {time.monotonic() - start:.1f} s", err=True)

    run_async(run())
