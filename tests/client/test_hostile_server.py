"""The client against hostile servers (issue 10, section 2): real sockets on 127.0.0.1.

``HostileServer`` is a raw asyncio server: the WebSocket upgrade is answered by the
``websockets`` sans-I/O protocol (selecting ``wsp.v2``), the wsp handshake by a real
:class:`ServerSession`, and then it misbehaves — it stays silent, sends an oversized
message, an RSV1 frame or a Batch of too many items, or a Challenge with a huge nonce —
and it never answers the client's close nor closes TCP itself, so the client must
end the connection on its own, promptly, and say what was wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from wsproto_tools.client import Client, ClientOptions, ServerMisbehaved
from wsproto_tools.codec import BinaryData, Challenge, Message, encode, encode_batch
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.server_session import ServerSession
from wsproto_tools.engine.session import Credentials, ServerAuth
from wsproto_tools.exceptions import ConnectionFailed, HandshakeError, RemoteProtocolError

WSP = os.path.join(os.path.dirname(sys.executable), "wsp")
SECRET = b"hostile-secret"


def frame(opcode: int, payload: bytes, *, rsv1: bool = False, length: int | None = None) -> bytes:
    """An unmasked server frame, written by hand (``length`` may lie)."""
    n = len(payload) if length is None else length
    head = bytes((0x80 | (0x40 if rsv1 else 0) | opcode,))
    if n < 126:
        head += bytes((n,))
    elif n < 1 << 16:
        head += bytes((126,)) + struct.pack("!H", n)
    else:
        head += bytes((127,)) + struct.pack("!Q", n)
    return head + payload


def oversized(_: ServerSession) -> bytes:
    """The header of a 50 MiB binary message and its first bytes (the rest never comes)."""
    return frame(2, b"\0" * 1024, length=50 << 20)


def rsv1_frame(_: ServerSession) -> bytes:
    """A binary frame with RSV1 set, though no extension was negotiated."""
    return frame(2, b"hello", rsv1=True)


def huge_batch(server: ServerSession) -> bytes:
    """A ~1 MB Batch of 2,000 items (the limit is 1,024 items per Batch)."""
    item = encode(Message(BinaryData(b"x" * 480), sequence=1))
    data = encode_batch([item] * 2000, server.session_id)
    assert 900_000 < len(data) < 1 << 20
    return frame(2, data)


class HostileServer:
    """A wsp server on 127.0.0.1 (port 0) that misbehaves as ``mode`` says.

    ``mode``: ``"silent"`` (accepts the upgrade, then sends nothing), ``"nonce"``
    (a Challenge whose nonce has ``nonce_size`` bytes), or a function that, once the
    wsp handshake is done, returns the raw bytes to send.
    """

    def __init__(self, mode: str | Callable[[ServerSession], bytes], nonce_size: int = 16) -> None:
        self.mode = mode
        self.nonce_size = nonce_size
        self.port = 0
        self.accepted = 0
        self.misbehaved = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        self.accepted += 1
        ws = ServerProtocol(subprotocols=[Subprotocol("wsp.v2")], max_size=None)
        wsp = ServerSession(ServerAuth(secret=SECRET, token_key=b"k" * 32))
        speaking = True  # False once it misbehaved: it never writes (nor closes) again

        def write() -> None:
            out = b"".join(ws.data_to_send())
            if speaking and out:
                writer.write(out)

        def send_wsp() -> None:
            for chunk in wsp.data_to_send():
                ws.send_binary(chunk)
            write()

        with contextlib.suppress(OSError, ConnectionError):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                ws.receive_data(data)
                for event in ws.events_received():
                    if isinstance(event, Request):
                        ws.send_response(ws.accept(event))
                        write()
                        if self.mode == "silent":
                            speaking = False
                        elif self.mode == "nonce":
                            nonce = (bytes(range(256)) * (self.nonce_size // 256 + 1))[
                                : self.nonce_size
                            ]
                            ws.send_binary(encode(Message(Challenge(nonce, ("hmac",)))))
                            write()
                            speaking = False
                        else:
                            wsp.connection_made(time.time(), version=2, nonce=os.urandom(16))
                            send_wsp()
                    elif isinstance(event, Frame) and event.opcode is Opcode.BINARY and speaking:
                        for happened in wsp.receive_data(bytes(event.data), time.time()):
                            if isinstance(happened, ev.AuthSucceeded):
                                wsp.accept(7, time.time())
                                send_wsp()
                                assert callable(self.mode)
                                writer.write(self.mode(wsp))
                                self.misbehaved += 1
                                speaking = False
                write()


@pytest.fixture
async def hostile() -> AsyncIterator[Callable[..., Any]]:
    made: list[HostileServer] = []

    async def make(mode: str | Callable[[ServerSession], bytes], **kw: Any) -> HostileServer:
        server = HostileServer(mode, **kw)
        await server.start()
        made.append(server)
        return server

    yield make
    for server in made:
        await server.stop()


async def run_wsp(*args: str, timeout: float = 30) -> tuple[int, str, str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("WSP_SECRET", "WSP_TOKEN")}
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        WSP, *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"wsp {' '.join(args)} still running after {timeout} s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - started


# ---------------------------------------------------------------- 7. handshake timeout


@pytest.mark.parametrize("command", ["pub", "sub", "connect"])
async def test_silent_server_after_upgrade_ends_with_handshake_timeout(
    hostile: Any, command: str
) -> None:
    server = await hostile("silent")
    args = [server.url] + {"pub": ["news", "hello"], "sub": ["news"], "connect": []}[command]
    status, out, err, elapsed = await run_wsp(
        command, *args, "--secret", "s", "--handshake-timeout", "0.5", timeout=20
    )
    assert status == 4, (out, err)
    assert err.splitlines() == [
        f"wsp: error: cannot connect to {server.url}: no wsp handshake answer within 0.5 s"
    ], err
    assert elapsed < 5
    assert "Traceback" not in err


async def test_handshake_timeout_is_retried_as_a_connection_failure(hostile: Any) -> None:
    server = await hostile("silent")
    events: list[str] = []
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        async with Client(
            server.url,
            secret=b"s",
            open_timeout=0.3,
            connect_attempts=3,
            backoff_base=0.01,
            on_event=lambda name, fields: events.append(name),
        ):
            pass
    why = "no wsp handshake answer within 0.3 s"
    assert str(info.value) == f"cannot connect to {server.url}: {why}"
    assert server.accepted == 3
    assert events.count("reconnecting") == 2
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------- 8. prompt, explained close


CASES = {
    "oversized": (oversized, 1009, "the server sent a message larger than 1 MiB (1009)"),
    "rsv1": (
        rsv1_frame,
        1002,
        "the server broke the WebSocket protocol: reserved bits must be 0 (1002)",
    ),
    "batch": (huge_batch, 1009, "the server broke the wsp protocol: "),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_client_fails_a_bad_server_promptly_and_says_why(hostile: Any, case: str) -> None:
    misbehave, code, message = CASES[case]
    server = await hostile(misbehave)
    events: list[str] = []
    started = time.monotonic()
    with pytest.raises(ServerMisbehaved) as info:
        async with Client(
            server.url,
            ClientOptions(secret=SECRET, backoff_base=0.01),
            on_event=lambda name, fields: events.append(name),
        ) as client:
            await client.subscribe("news")
            await asyncio.wait_for(client.subscriptions["news"].get(), 20)
    elapsed = time.monotonic() - started
    assert server.misbehaved == 1
    assert elapsed < 5, elapsed
    assert str(info.value).startswith(message), str(info.value)
    assert str(info.value).endswith(f"({code})")
    assert info.value.close_code == code
    assert "reconnecting" not in events  # it cannot heal: not retried


@pytest.mark.parametrize("case", list(CASES))
async def test_sub_command_ends_promptly_naming_the_problem(hostile: Any, case: str) -> None:
    misbehave, code, message = CASES[case]
    server = await hostile(misbehave)
    status, out, err, elapsed = await run_wsp(
        "sub", server.url, "news", "--secret", SECRET.decode()
    )
    assert status == 4, (out, err)
    assert elapsed < 5, elapsed
    lines = [line for line in err.splitlines() if line.startswith("wsp:")]
    assert len(lines) == 1 and lines[0].startswith(f"wsp: error: {message}"), err
    assert lines[0].endswith(f"({code})")
    assert "Traceback" not in err


# ---------------------------------------------------------------- 9. nonce length

NONCE_ERROR = (
    "the server broke the wsp protocol: Challenge nonce of 70000 bytes (16 to 256 allowed) (1002)"
)


def test_challenge_nonce_length_is_checked_before_the_proof() -> None:
    for size, ok in ((15, False), (16, True), (256, True), (257, False), (70_000, False)):
        client = ClientSession(Credentials(secret=b"s"))
        client.connection_made(0.0, nonce=b"c" * 16)
        challenge = Message(Challenge(b"n" * size, ("hmac",)))
        if ok:
            client.receive(challenge, 0.0)
            assert len(client.data_to_send()) == 2  # Handshake, Authenticate
            continue
        with pytest.raises(HandshakeError) as info:
            client.receive(challenge, 0.0)
        assert info.value.close_code == 1002
        assert str(info.value) == f"Challenge nonce of {size} bytes (16 to 256 allowed)"


async def test_challenge_with_a_70000_byte_nonce_is_a_protocol_error(hostile: Any) -> None:
    server = await hostile("nonce", nonce_size=70_000)
    started = time.monotonic()
    with pytest.raises(ServerMisbehaved) as info:
        async with Client(server.url, secret=b"s", backoff_base=0.01, connect_attempts=3):
            pass
    assert time.monotonic() - started < 5
    assert isinstance(info.value, RemoteProtocolError)
    assert isinstance(info.value.__cause__, HandshakeError)
    assert info.value.close_code == 1002
    assert str(info.value) == NONCE_ERROR
    assert server.accepted == 1  # a protocol error is not retried
    status, out, err, elapsed = await run_wsp("pub", server.url, "news", "hi", "--secret", "s")
    assert status == 4, (out, err)
    assert elapsed < 5
    assert err.splitlines() == [f"wsp: error: {NONCE_ERROR}"], err
