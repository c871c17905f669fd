"""``wsp fuzz --serve``: the fuzzing server that tests WebSocket *clients*.

It speaks Autobahn|Testsuite's fuzzingserver URL scheme, so client harnesses
written for Autobahn work unchanged:

- ``/getCaseCount`` — one text message with the number of cases, then close;
- ``/runCase?case=N&agent=A`` — run case N (1-based, in id order) against the
  connecting client, which must echo every message it gets;
- ``/getCaseInfo?case=N`` — one text message with the case's id and
  description as JSON;
- ``/updateReports?agent=A`` — hand agent A's results to the report writer.

The cases are the same as in client mode with the roles swapped: this side
sends unmasked frames and expects the client's frames masked.
"""

from __future__ import annotations

__all__ = ["FuzzServer", "choose_deflate_answer"]

import asyncio
import contextlib
import json
import ssl as _ssl
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import InvalidHeader
from websockets.headers import parse_extension

from wsproto_tools.exceptions import ConnectionFailed, FrameError, HandshakeError
from wsproto_tools.fuzz.model import Case, CaseResult
from wsproto_tools.fuzz.runner import RunOptions, drive
from wsproto_tools.transports.raw import RawWebSocket, accept_raw_websocket
from wsproto_tools.ws import FrameParser, Opcode, UpgradeRequest, encode_close, encode_frame


def choose_deflate_answer(offers_header: str | None, answers: tuple[str, ...]) -> str | None:
    """The ``Sec-WebSocket-Extensions`` answer to a client's offers, or None.

    ``answers`` are tried in order; an answer that sets ``client_max_window_bits``
    fits only an offer that allows it. The offer's own requests for the server
    (``server_no_context_takeover``, ``server_max_window_bits``) are honoured.
    """
    if not offers_header or not answers:
        return None
    try:
        offers = [params for name, params in parse_extension(offers_header)]
        names = [name for name, params in parse_extension(offers_header)]
    except InvalidHeader:
        return None
    for answer in answers:
        wanted = [part.strip() for part in answer.split(";")][1:]
        for name, params in zip(names, offers, strict=True):
            if name != "permessage-deflate":
                continue
            offered = dict(params)
            if any(p.startswith("client_max_window_bits") for p in wanted) and (
                "client_max_window_bits" not in offered
            ):
                continue
            parts = ["permessage-deflate", *wanted]
            if "server_no_context_takeover" in offered:
                parts.append("server_no_context_takeover")
            bits = offered.get("server_max_window_bits")
            if bits:
                parts.append(f"server_max_window_bits={bits}")
            return "; ".join(parts)
    return None


class FuzzServer:
    """Serves the cases to clients; results are kept per agent."""

    def __init__(
        self,
        cases: list[Case],
        options: RunOptions,
        *,
        on_result: Callable[[str, CaseResult], None] | None = None,
        on_update_reports: Callable[[str, list[CaseResult]], None] | None = None,
    ) -> None:
        self.cases = cases
        self.options = options
        self.on_result = on_result
        self.on_update_reports = on_update_reports
        self.results: dict[str, dict[str, CaseResult]] = {}
        self.reports_updated = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(
        self, host: str = "127.0.0.1", port: int = 9001, *, ssl: _ssl.SSLContext | None = None
    ) -> int:
        """Listen on ``host:port`` (0: any free port), over TLS with ``ssl``; returns the port."""
        if ssl is None:
            self._server = await asyncio.start_server(self._handle, host, port)
        else:
            self._server = await asyncio.start_server(
                self._handle,
                host,
                port,
                ssl=ssl,
                ssl_handshake_timeout=max(self.options.timeout, 0.1),
            )
        sockname = self._server.sockets[0].getsockname()
        return int(sockname[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()

    def _case_for(self, request: UpgradeRequest) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(request.path)
        return parts.path.rstrip("/") or "/", parse_qs(parts.query)

    def _index(self, query: dict[str, list[str]]) -> int | None:
        try:
            index = int(query.get("case", [""])[0])
        except ValueError:
            return None
        return index - 1 if 1 <= index <= len(self.cases) else None

    def _choose(self, request: UpgradeRequest) -> str | None:
        path, query = self._case_for(request)
        if path != "/runCase":
            return None
        index = self._index(query)
        if index is None:
            return None
        return choose_deflate_answer(request.extensions, self.cases[index].accept)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = await accept_raw_websocket(
                reader, writer, choose_extensions=self._choose, timeout=self.options.timeout
            )
        except (HandshakeError, ConnectionFailed, TimeoutError):
            writer.close()
            return
        path, query = self._case_for(conn.request)
        agent = query.get("agent", ["unknown"])[0]
        if path == "/getCaseCount":
            await _say_and_close(conn, str(len(self.cases)))
        elif path == "/getCaseInfo":
            index = self._index(query)
            info = {}
            if index is not None:
                case = self.cases[index]
                info = {"id": case.id, "description": case.description}
            await _say_and_close(conn, json.dumps(info))
        elif path == "/runCase":
            index = self._index(query)
            if index is None:
                await _say_and_close(conn, None, code=1008)
                return
            result = await drive(self.cases[index], conn, self.options)
            self.results.setdefault(agent, {})[result.case.id] = result
            if self.on_result is not None:
                self.on_result(agent, result)
        elif path == "/updateReports":
            if self.on_update_reports is not None:
                self.on_update_reports(agent, self.agent_results(agent))
            await _say_and_close(conn, None)
            self.reports_updated.set()
        else:
            await _say_and_close(conn, None, code=1008)

    def agent_results(self, agent: str) -> list[CaseResult]:
        """The latest result of each case for ``agent``, in id order."""
        found = self.results.get(agent, {})
        return sorted(found.values(), key=lambda r: r.case.key)


async def _say_and_close(conn: RawWebSocket, text: str | None, code: int = 1000) -> None:
    """Send an optional text message and a close frame, wait (bounded) for the reply."""
    data = b""
    if text is not None:
        data += encode_frame(1, text.encode())
    data += encode_frame(8, encode_close(code))
    with contextlib.suppress(ConnectionFailed):
        await conn.send(data)
    parser = FrameParser(max_payload=1 << 20)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        chunk = await conn.read(deadline - time.monotonic())
        if not chunk:
            break
        try:
            if any(frame.opcode == Opcode.CLOSE for frame in parser.feed(chunk)):
                break
        except FrameError:
            break
    await conn.wait_closed(0.5)
