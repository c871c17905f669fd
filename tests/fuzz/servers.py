"""Echo servers for the fuzzer's tests, on 127.0.0.1 with OS-assigned ports.

- :func:`websockets_echo` — the ``websockets`` library's asyncio server.
- :class:`HandRolledEcho` — a small, strict echo server written here on raw
  asyncio streams, with one switchable flaw at a time (see :class:`Flaw`). With
  no flaw it follows RFC 6455 closely (it fails fast on invalid UTF-8 at frame
  boundaries), which makes it a second reference besides ``websockets``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import AsyncIterator
from enum import Enum

from websockets.asyncio.server import ServerConnection, serve

from wsproto_tools.ws import (
    FrameParser,
    RawFrame,
    accept_key,
    encode_close,
    encode_frame,
    is_valid_close_code,
    parse_http_head,
)


@contextlib.asynccontextmanager
async def websockets_echo(**kwargs: object) -> AsyncIterator[int]:
    """A ``websockets`` echo server; yields its port."""

    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, max_size=None, **kwargs) as server:  # type: ignore[arg-type]
        yield int(next(iter(server.sockets)).getsockname()[1])


class Flaw(Enum):
    NONE = "none"
    # Text messages are echoed without checking that they are UTF-8.
    ACCEPTS_INVALID_UTF8 = "accepts-invalid-utf8"
    # RSV1-3 are ignored instead of failing the connection.
    IGNORES_RSV = "ignores-rsv"
    # Close payloads are not checked: every close is answered with 1000, even a
    # one-byte payload, an invalid code or a reason that is not UTF-8.
    CLOSE_ANSWERED_1000 = "close-answered-1000"
    # A control frame with FIN = 0 makes the server wait for "the rest" forever:
    # it stops reading and never answers nor closes.
    HANGS_ON_FRAGMENTED_CONTROL = "hangs-on-fragmented-control"
    # Control frames that arrive inside a fragmented message are queued and
    # handled only after the message's last fragment.
    DEFERS_CONTROL_IN_MESSAGE = "defers-control-in-message"


class _Fail(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class HandRolledEcho:
    """A strict echo server with at most one flaw."""

    def __init__(self, flaw: Flaw = Flaw.NONE, *, ping_first: bool = False) -> None:
        self.flaw = flaw
        self.ping_first = ping_first  # legal: a ping right after the handshake
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            async with asyncio.timeout(30):
                await self._session(reader, writer)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        while (head := parse_http_head(buf)) is None:
            chunk = await reader.read(4096)
            if not chunk:
                return
            buf += chunk
        key = head.get("sec-websocket-key") or ""
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
        )
        if self.ping_first:
            writer.write(encode_frame(9, b"keepalive"))
        parser = FrameParser()
        state = _State()
        pending = buf[head.length :]
        while True:
            data = pending or await reader.read(65536)
            pending = b""
            if not data:
                return
            try:
                for frame in parser.feed(data):
                    done = await self._frame(frame, state, writer)
                    if done:
                        await writer.drain()
                        return
            except _Fail as failure:
                writer.write(encode_frame(8, encode_close(failure.code)))
                await writer.drain()
                return
            await writer.drain()

    async def _frame(self, frame: RawFrame, state: _State, writer: asyncio.StreamWriter) -> bool:
        flaw = self.flaw
        if frame.mask is None:
            raise _Fail(1002)
        if frame.rsv and flaw is not Flaw.IGNORES_RSV:
            raise _Fail(1002)
        if frame.opcode not in (0, 1, 2, 8, 9, 10):
            raise _Fail(1002)
        if frame.opcode >= 8:
            if not frame.fin and flaw is Flaw.HANGS_ON_FRAGMENTED_CONTROL:
                await asyncio.sleep(3600)
            if not frame.fin or len(frame.payload) > 125:
                raise _Fail(1002)
            if state.opcode is not None and flaw is Flaw.DEFERS_CONTROL_IN_MESSAGE:
                state.deferred.append(frame)
                return False
            return self._control(frame, writer)
        if frame.opcode == 0:
            if state.opcode is None:
                raise _Fail(1002)
        else:
            if state.opcode is not None:
                raise _Fail(1002)
            state.opcode = frame.opcode
            state.decoder = codecs.getincrementaldecoder("utf-8")()
        state.chunks.append(frame.payload)
        if state.opcode == 1 and flaw is not Flaw.ACCEPTS_INVALID_UTF8:
            try:
                state.decoder.decode(frame.payload, final=frame.fin)
            except UnicodeDecodeError:
                raise _Fail(1007) from None
        if frame.fin:
            writer.write(encode_frame(state.opcode, b"".join(state.chunks)))
            state.opcode = None
            state.chunks = []
            deferred, state.deferred = state.deferred, []
            for control in deferred:
                if self._control(control, writer):
                    return True
        return False

    def _control(self, frame: RawFrame, writer: asyncio.StreamWriter) -> bool:
        if frame.opcode == 9:
            writer.write(encode_frame(10, frame.payload))
            return False
        if frame.opcode == 10:
            return False
        payload = frame.payload
        if self.flaw is Flaw.CLOSE_ANSWERED_1000:
            writer.write(encode_frame(8, encode_close(1000)))
            return True
        if len(payload) == 1:
            raise _Fail(1002)
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not is_valid_close_code(code):
                raise _Fail(1002)
            try:
                payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                raise _Fail(1007) from None
        writer.write(encode_frame(8, payload[:2]))
        return True


class _State:
    def __init__(self) -> None:
        self.opcode: int | None = None
        self.chunks: list[bytes] = []
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.deferred: list[RawFrame] = []
