"""InProcessTarget: a server traced in its own thread, new coverage counted per case."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import hmac
import importlib.util
import os
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType

import coverage
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

import wsproto_tools
from wsproto_tools import codec
from wsproto_tools.codec import (
    Authenticate,
    BinaryData,
    Challenge,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Message,
    Publish,
    Subscribe,
)
from wsproto_tools.exceptions import WspError
from wsproto_tools.fuzz.coverage_feedback import InProcessTarget, TargetError
from wsproto_tools.server import ServerConfig, WspServer

PACKAGE = Path(wsproto_tools.__file__).parent
SOURCE = [str(PACKAGE / d) for d in ("server", "engine", "codec", "transports", "ws")]
SECRET = b"s"
WSP_V2 = Subprotocol("wsp.v2")


# ---------------------------------------------------------------- the wsp server
def wsp_target(**settings: object) -> InProcessTarget:
    server = WspServer(ServerConfig(port=0, secret=SECRET, **settings))  # type: ignore[arg-type]

    async def start() -> int:
        await server.start()
        return server.port

    return InProcessTarget(start, server.shutdown, source=SOURCE)


@pytest.fixture
def wsp() -> Iterator[InProcessTarget]:
    with wsp_target() as target:
        yield target


async def garbage_case(port: int) -> None:
    """Read the Challenge, send bytes that are no wsp message; the server closes."""
    async with connect(f"ws://127.0.0.1:{port}/", subprotocols=[WSP_V2]) as ws:
        assert isinstance(codec.decode(await ws.recv()).payload, Challenge)  # type: ignore[arg-type]
        await ws.send(b"\xff\x00garbage")
        with contextlib.suppress(Exception):
            while True:
                await asyncio.wait_for(ws.recv(), 2.0)


async def handshake_case(port: int) -> None:
    """A full hmac handshake, then a heartbeat."""
    async with connect(f"ws://127.0.0.1:{port}/", subprotocols=[WSP_V2]) as ws:
        challenge = codec.decode(await ws.recv()).payload  # type: ignore[arg-type]
        assert isinstance(challenge, Challenge)
        nonce, mine = challenge.nonce, os.urandom(16)
        signed = b"wsp-auth-v1" + len(nonce).to_bytes(2, "big") + nonce + mine
        proof = hmac.new(SECRET, signed, hashlib.sha256).digest()
        hello = Handshake(capabilities=("ack",), client_id="t", auth="hmac", client_nonce=mine)
        await ws.send(codec.encode(Message(hello)))
        await ws.send(codec.encode(Message(Authenticate("hmac", proof))))
        reply = codec.decode(await ws.recv())  # type: ignore[arg-type]
        assert isinstance(reply.payload, HandshakeResponse)
        await ws.send(codec.encode(Message(Heartbeat(id=1), session_id=reply.session_id)))
        await asyncio.sleep(0.05)


def test_new_behaviour_counts_and_a_repeat_barely_does(wsp: InProcessTarget) -> None:
    start_up = wsp.total
    assert start_up > 0  # the server's start-up, kept out of the first take()
    assert wsp.take() == 0

    asyncio.run(garbage_case(wsp.port))
    first = wsp.take()
    assert first > 100
    repeats = []
    for _ in range(3):
        asyncio.run(garbage_case(wsp.port))
        repeats.append(wsp.take())
    # The same traffic again: at most a few timing-dependent arcs (which side of a
    # close race ran), and it settles.
    assert max(repeats) <= first // 10, (first, repeats)
    assert repeats[-1] <= 5, (first, repeats)

    asyncio.run(handshake_case(wsp.port))
    handshake = wsp.take()
    assert handshake > 100  # authentication, sessions, heartbeats: new code
    assert wsp.total == start_up + first + sum(repeats) + handshake


def test_summary_counts_statements_per_measured_file(wsp: InProcessTarget) -> None:
    asyncio.run(handshake_case(wsp.port))
    summary = wsp.summary()
    assert summary
    assert all(path.startswith(tuple(SOURCE)) for path in summary)
    app = str(PACKAGE / "server" / "app.py")
    assert summary[app] > 50
    wsp.take()
    assert wsp.total > sum(summary.values())  # arcs outnumber statements


def test_calls_from_the_main_thread_do_not_count() -> None:
    with wsp_target(sweep_interval=0.01) as target:
        time.sleep(0.1)  # let the idle sweeper's path be reached
        target.take()
        before = target.summary()

        def use_the_codec() -> None:
            for payload in (
                Handshake(capabilities=("ack", "pubsub"), client_id="main", auth="hmac"),
                Subscribe(topic="a", from_offset=3, epoch=1),
                Publish(topic="a", data=b"x" * 300),
                BinaryData(b"\x00" * 5000),
            ):
                wire = codec.encode(Message(payload, sequence=7))
                assert codec.decode(wire).payload == payload
            for bad in (b"", b"\xff\x00garbage", b"\x40\x01\x00\x84\xff"):
                with pytest.raises(WspError):
                    codec.decode(bad)

        use_the_codec()
        worker = threading.Thread(target=use_the_codec)  # a thread started after open()
        worker.start()
        worker.join()
        assert target.take() == 0
        assert target.summary() == before


# ---------------------------------------------------------------- a toy server
TOY = """
def work(kind):
    if kind == "a":
        return 1
    elif kind == "b":
        total = 0
        for i in range(3):
            total += i
        return total
    return -1
"""


def toy_module(tmp_path: Path, name: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(TOY)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def toy_target(module: ModuleType, source: str, *, branch: bool = True) -> InProcessTarget:
    """A line server that answers ``module.work(line)``."""
    servers: list[asyncio.Server] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        kind = (await reader.readline()).decode().strip()
        writer.write(f"{module.work(kind)}\n".encode())
        await writer.drain()
        writer.close()

    async def start() -> int:
        servers.append(await asyncio.start_server(handle, "127.0.0.1", 0))
        return int(servers[0].sockets[0].getsockname()[1])

    async def stop() -> None:
        servers[0].close()
        await servers[0].wait_closed()

    return InProcessTarget(start, stop, source=[source], branch=branch)


def ask(port: int, kind: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(kind.encode() + b"\n")
        return sock.makefile().readline().strip()


def test_only_the_server_thread_is_traced(tmp_path: Path) -> None:
    toy = toy_module(tmp_path, "toy_traced")
    tracer, hook = sys.gettrace(), threading.gettrace()  # None unless under coverage run
    with toy_target(toy, str(tmp_path)) as target:
        assert sys.gettrace() is tracer and threading.gettrace() is hook
        assert target.total == 0  # the toy module runs nothing at start-up

        assert toy.work("a") == 1  # the main thread: not counted
        assert target.take() == 0
        assert ask(target.port, "a") == "1"  # the server thread: counted
        reached_a = target.take()
        assert reached_a > 0
        assert ask(target.port, "a") == "1"
        assert target.take() == 0  # nothing new

        side = threading.Thread(target=toy.work, args=("b",))
        side.start()
        side.join()
        assert target.take() == 0
        assert ask(target.port, "b") == "3"
        assert target.take() > 0
        assert ask(target.port, "z") == "-1"
        summary = target.summary()
        assert summary == {str(tmp_path / "toy_traced.py"): 8}  # all of work() but its def
        assert target.take() > 0
        assert target.summary() == summary  # taken or not, the same


def test_no_files_no_atexit_no_leftovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    hook, current = threading.gettrace(), coverage.Coverage.current()  # set under coverage run
    registered: list[Callable[..., object]] = []
    unregistered: list[Callable[..., object]] = []
    register, unregister = atexit.register, atexit.unregister

    def spy_register(f: Callable[..., object], *args: object, **kwargs: object) -> object:
        registered.append(f)
        return register(f, *args, **kwargs)

    def spy_unregister(f: Callable[..., object]) -> None:
        unregistered.append(f)
        unregister(f)

    monkeypatch.setattr(atexit, "register", spy_register)
    monkeypatch.setattr(atexit, "unregister", spy_unregister)
    target = wsp_target()
    target.open()
    asyncio.run(garbage_case(target.port))
    target.close()
    assert registered  # coverage.py's save-at-exit ...
    assert all(f in unregistered for f in registered)  # ... taken back at once
    assert os.listdir(tmp_path) == []
    assert threading.gettrace() is hook
    assert coverage.Coverage.current() is current  # never on coverage.py's stack of instances


def test_lines_instead_of_arcs(tmp_path: Path) -> None:
    toy = toy_module(tmp_path, "toy_lines")
    with toy_target(toy, str(tmp_path), branch=False) as target:
        assert ask(target.port, "b") == "3"
        assert target.take() == 6  # if, elif, total = 0, for, total += i, return total
        assert ask(target.port, "a") == "1"
        assert target.take() == 1  # return 1
        assert target.summary() == {str(tmp_path / "toy_lines.py"): 7}


def test_two_targets_at_once_close_in_any_order(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = toy_module(tmp_path / "one", "toy_first")
    second = toy_module(tmp_path / "two", "toy_second")
    one = toy_target(first, str(tmp_path / "one"))
    two = toy_target(second, str(tmp_path / "two"))
    one.open()
    two.open()
    assert ask(one.port, "a") == "1"
    assert ask(two.port, "b") == "3"
    assert one.take() > 0
    assert two.take() > one.total  # the loop in "b" makes more arcs than "a"
    one.close()
    assert ask(two.port, "z") == "-1"
    assert two.take() > 0
    two.close()
    assert set(one.summary()) == {str(tmp_path / "one" / "toy_first.py")}
    assert set(two.summary()) == {str(tmp_path / "two" / "toy_second.py")}


# ---------------------------------------------------------------- lifecycle
def served(
    start: Callable[[], Awaitable[int]], stop: Callable[[], Awaitable[None]]
) -> InProcessTarget:
    return InProcessTarget(start, stop, source=SOURCE)


async def _nothing() -> None:
    return None


def test_a_failing_start_is_a_target_error() -> None:
    async def start() -> int:
        raise OSError("address in use")

    target = served(start, _nothing)
    with pytest.raises(TargetError, match="failed to start") as caught:
        target.open(timeout=5)
    assert isinstance(caught.value.__cause__, OSError)
    assert isinstance(caught.value, WspError)
    target.close()  # nothing to do, no error


def test_a_hanging_start_is_a_target_error_in_bounded_time() -> None:
    async def start() -> int:
        await asyncio.Event().wait()
        return 0

    target = served(start, _nothing)
    began = time.monotonic()
    with pytest.raises(TargetError, match="did not start within"):
        target.open(timeout=0.3)
    assert time.monotonic() - began < 2
    assert target._thread is not None and not target._thread.is_alive()


def test_close_is_bounded_and_idempotent() -> None:
    async def start() -> int:
        return 1

    async def stop() -> None:
        await asyncio.Event().wait()  # never returns

    target = served(start, stop)
    assert target.open() == 1
    began = time.monotonic()
    with pytest.raises(TargetError, match="failed to stop"):
        target.close(timeout=0.4)
    assert time.monotonic() - began < 1.5
    target.close()  # a second call does nothing
    with pytest.raises(TargetError):
        target.open()


def test_close_gives_up_on_a_blocked_thread() -> None:
    async def start() -> int:
        return 1

    async def stop() -> None:
        time.sleep(1.0)  # blocks the loop: wait_for cannot help

    target = served(start, stop)
    target.open()
    began = time.monotonic()
    with pytest.raises(TargetError, match="did not end within"):
        target.close(timeout=0.2)
    assert time.monotonic() - began < 0.5
    target.close()


def test_closing_the_real_server_is_quick(wsp: InProcessTarget) -> None:
    asyncio.run(garbage_case(wsp.port))
    began = time.monotonic()
    wsp.close()
    assert time.monotonic() - began < 2
    wsp.close()
    assert wsp.take() >= 0  # what was left undrained can still be taken
    assert wsp.take() == 0
