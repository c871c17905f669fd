"""The sample made with headless Chromium (Debian's ``chromium``) as the client.

Run as root: ``python captures/make/browser_peers.py``. A small HTTP server (not
captured) serves a page whose script talks to a ``websockets`` server on the
captured port and logs every message it sends, and what it received in
``onclose``; the page posts its log back to the HTTP server. The server logs
what it sends. Both logs make ``browser-chromium.expected.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAPTURES, Log, free_port, recording

PAGE = """<!doctype html><title>wsp sample</title><script>
const log = [];
const ws = new WebSocket("ws://127.0.0.1:WSPORT/browser");
ws.binaryType = "arraybuffer";
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
let replies = 0;
ws.onopen = () => {
  const text = "hello from chromium";
  ws.send(text); log.push({direction: "client", opcode: "text", text});
  const json = JSON.stringify({kind: "subscribe", topics: ["prices", "news"], depth: 5});
  ws.send(json); log.push({direction: "client", opcode: "text", text: json});
  const bytes = new Uint8Array(64).map((_, i) => (i * 7) & 255);
  ws.send(bytes); log.push({direction: "client", opcode: "binary", hex: hex(bytes)});
  const big = "chromium compresses this long repetitive line. ".repeat(400);
  ws.send(big); log.push({direction: "client", opcode: "text", text: big});
};
ws.onmessage = () => {
  replies += 1;
  if (replies === 4) {
    ws.close(4000, "browser done");
    log.push({direction: "client", opcode: "close", close_code: 4000,
              close_reason: "browser done"});
  }
};
ws.onclose = (event) => {
  log.push({direction: "server", opcode: "close", close_code: event.code,
            close_reason: event.reason});
  fetch("/log", {method: "POST", body: JSON.stringify(log)});
};
</script>"""


def http_server(port: int, ws_port: int, received: list[Any], done: threading.Event) -> Any:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = PAGE.replace("WSPORT", str(ws_port)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers["Content-Length"])
            received.extend(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def main() -> None:
    name = "browser-chromium"
    ws_port, http_port = free_port(), free_port()
    log = Log()
    browser_log: list[Any] = []
    done = threading.Event()
    http = http_server(http_port, ws_port, browser_log, done)

    async def handler(ws: ServerConnection) -> None:
        n = 0
        with contextlib.suppress(ConnectionClosed):  # the browser closes with 4000
            async for message in ws:
                n += 1
                unit = "chars" if isinstance(message, str) else "bytes"
                reply = f"server reply {n}: got {len(message)} {unit}"
                await ws.send(reply)
                log.sent(1, "server", "text", reply, compressed=True)

    loop = asyncio.get_running_loop()
    cm = recording(CAPTURES / f"{name}.pcap", ws_port)
    await loop.run_in_executor(None, cm.__enter__)
    with tempfile.TemporaryDirectory() as profile:
        async with serve(handler, "127.0.0.1", ws_port, ping_interval=None):
            browser = subprocess.Popen(
                ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                 f"--user-data-dir={profile}", "--no-first-run",
                 f"http://127.0.0.1:{http_port}/"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                ok = await loop.run_in_executor(None, done.wait, 60)
            finally:
                browser.terminate()
                browser.wait(10)
            if not ok:
                raise SystemExit("the page did not report back")
    await loop.run_in_executor(None, cm.__exit__, None, None, None)
    http.shutdown()
    # the browser logged what it sent and, last, the close it received from the server
    sent = [{"conn": 1, **e} for e in browser_log if e["direction"] == "client"]
    heard = [{"conn": 1, **e} for e in browser_log if e["direction"] == "server"]
    log.messages = sent + log.messages + heard
    log.connection(1, handshake=True, path="/browser")
    log.write(name, "headless Chromium (Debian chromium 156) as the client, a websockets "
              "server; permessage-deflate as the browser negotiates it; close 4000")


if __name__ == "__main__":
    asyncio.run(main())
