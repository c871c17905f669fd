"""Each planted bug of tests/fuzz/planted.py is really there, and ``none`` is the reference.

Every server is a real ``planted.py BUG`` subprocess on 127.0.0.1; the tests speak
wsp by hand with the spec-only helpers of tests/conformance/wire.py, so they do
not depend on the fuzzer (nor on the package's own codec). Each symptom is
checked on the planted server and the same steps on ``planted.py none``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from .planted import BUGS, CRASH_STATUS, LEAK_BYTES, command


def _wire() -> Any:
    """tests/conformance/wire.py, loaded from its file (tests/ is not a package)."""
    name = "_planted_conformance_wire"
    module = sys.modules.get(name)
    if module is None:
        path = Path(__file__).resolve().parent.parent / "conformance" / "wire.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look themselves up there
        spec.loader.exec_module(module)
    return module


wire = _wire()
ACK = wire.ACK
ACK_REQUESTED = wire.ACK_REQUESTED
CONTINUITY_LOST = wire.CONTINUITY_LOST
DELIVER = wire.DELIVER
HEARTBEAT = wire.HEARTBEAT
PUBLISH = wire.PUBLISH
REQUEST = wire.REQUEST
RESPONSE = wire.RESPONSE
SECRET = wire.SECRET
SUBSCRIBE = wire.SUBSCRIBE
SUBSCRIBED = wire.SUBSCRIBED
Closed = wire.Closed
assert_closed = wire.assert_closed
b64 = wire.b64
challenged = wire.challenged
handshake = wire.handshake
session = wire.session

JWT_KEY = b"planted-jwt-key-0123456789abcdef-0123456789"  # HS256, >= 32 bytes
TOKEN_KEY = "planted-token-key"
START_TIMEOUT = 20.0  # a cold interpreter on a busy machine
EXIT_TIMEOUT = 5.0
#: leak-unacked: 300 publishes with ACK_REQUESTED must cost more than this...
LEAKED_AT_LEAST = 64 << 20
#: ...and the same publishes on the reference server (or without the flag) less than this
FLAT_AT_MOST = 16 << 20
PUBLISHES = 300


@dataclass
class Server:
    bug: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int:
        """Resident memory in bytes (VmRSS of /proc/PID/status)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for {self.bug} (pid {self.proc.pid})")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(
                    f"planted.py {self.bug} exited with {self.proc.returncode}: "
                    f"{self.log.read_text(errors='replace')}"
                )
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            time.sleep(0.05)
        raise AssertionError(f"planted.py {self.bug} not listening within {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(EXIT_TIMEOUT)


def start(bug: str, log: Path, *options: str) -> Server:
    """``planted.py bug`` on a free port of 127.0.0.1 (not yet waited for)."""
    port = free_port()
    with log.open("wb") as err:
        proc = subprocess.Popen(command(bug, port, *options), stdout=subprocess.DEVNULL, stderr=err)
    return Server(bug, port, proc, log)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """``none`` and every bug, started together (one each), stopped at the end."""
    tmp = tmp_path_factory.mktemp("planted")
    key = tmp / "jwt.key"
    key.write_bytes(JWT_KEY)
    options = ("--secret", SECRET.decode(), "--jwt-key", str(key), "--token-key", TOKEN_KEY)
    started: dict[str, Server] = {}
    try:
        for bug in ("none", *BUGS):
            started[bug] = start(bug, tmp / f"{bug}.log", *options)
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.stop()


def token(subject: str, scope: dict[str, list[str]] | None = None) -> str:
    """An HS256 JWT for ``subject``; ``scope`` is its ``wsp`` claim (pub/sub patterns)."""
    claims: dict[str, Any] = {"sub": subject, "exp": int(time.time()) + 300}
    if scope is not None:
        claims["wsp"] = scope
    return jwt.encode(claims, JWT_KEY, algorithm="HS256")


async def echo_barrier(peer: Any, request_id: int = 1) -> None:
    """Wait until the server has processed everything sent before (its echo answer)."""
    await peer.send(REQUEST, {"id": request_id, "method": "echo", "data": b"barrier"})
    answer = await peer.expect(RESPONSE, skip=(ACK, HEARTBEAT, DELIVER))
    assert answer.body["id"] == request_id


async def publish_many(peer: Any, topic: str, count: int, *, first: int, flags: int) -> None:
    await peer.send_many(
        [
            peer.wire(PUBLISH, {"topic": topic, "data": b"m%d" % seq}, seq=seq, flags=flags)
            for seq in range(first, first + count)
        ]
    )


async def subscribed(peer: Any, topic: str, **fields: Any) -> dict[str, Any]:
    await peer.send(SUBSCRIBE, {"topic": topic, **fields})
    answer = await peer.expect(SUBSCRIBED, skip=(ACK, HEARTBEAT, CONTINUITY_LOST))
    body: dict[str, Any] = answer.body
    assert body["topic"] == topic
    return body


# ---------------------------------------------------------------- crash-field
async def test_crash_field(servers: dict[str, Server]) -> None:
    for name in ("none", "crash-field"):
        server = servers[name]
        peer, _ = await session(server.port)
        await subscribed(peer, "crash.edge", from_offset=(1 << 63) - 1)  # just below: normal
        assert server.alive()
        await peer.send(SUBSCRIBE, {"topic": "crash.over", "from_offset": 1 << 63})
        if name == "none":
            await peer.expect(SUBSCRIBED, skip=(ACK, HEARTBEAT, CONTINUITY_LOST))
            await echo_barrier(peer)
            assert server.alive()
            await peer.drop()
            continue
        got = await peer.recv()
        assert isinstance(got, Closed) and got.code == 1006, f"not dropped: {got}"
        assert server.proc.wait(EXIT_TIMEOUT) == CRASH_STATUS


# ---------------------------------------------------------------- leak-unacked
async def rss_after(server: Server, peer: Any, *, first: int, flags: int, rid: int) -> int:
    """How much the server's RSS grew over ``PUBLISHES`` publishes (processed)."""
    before = server.rss()
    await publish_many(peer, "leak", PUBLISHES, first=first, flags=flags)
    await echo_barrier(peer, rid)
    return server.rss() - before


async def test_leak_unacked(servers: dict[str, Server]) -> None:
    none, leaky = servers["none"], servers["leak-unacked"]
    peer, _ = await session(none.port)
    grew = await rss_after(none, peer, first=1, flags=ACK_REQUESTED, rid=1)
    assert grew < FLAT_AT_MOST, f"the reference server grew by {grew} bytes"
    await peer.drop()

    peer, _ = await session(leaky.port)
    grew = await rss_after(leaky, peer, first=1, flags=0, rid=1)
    assert grew < FLAT_AT_MOST, f"publishes without ACK_REQUESTED leaked {grew} bytes"
    grew = await rss_after(leaky, peer, first=1 + PUBLISHES, flags=ACK_REQUESTED, rid=2)
    assert grew > LEAKED_AT_LEAST, f"only {grew} bytes for {PUBLISHES} x {LEAK_BYTES}"
    await peer.drop()
    before = leaky.rss()
    await asyncio.sleep(0.3)  # nothing frees it once the connection is gone
    assert leaky.rss() > before - FLAT_AT_MOST
    assert leaky.alive()


# ---------------------------------------------------------------- topic-leak
async def test_topic_leak(servers: dict[str, Server]) -> None:
    forbidden = "secret.plans"
    allowed = token("reader", {"sub": ["public.*"]})
    for name in ("none", "topic-leak"):
        port = servers[name].port
        writer, _ = await session(port)  # hmac: no topic limits
        await publish_many(writer, forbidden, 3, first=1, flags=ACK_REQUESTED)
        await echo_barrier(writer)
        await writer.drop()

        live, _ = await session(port, auth="jwt", token=allowed)
        await subscribed(live, "public.news")  # within the claim: fine everywhere
        await live.send(SUBSCRIBE, {"topic": forbidden})
        await assert_closed(live, 4003)

        replay, _ = await session(port, auth="jwt", token=allowed)
        if name == "none":
            await replay.send(SUBSCRIBE, {"topic": forbidden, "from_offset": 0})
            before = await assert_closed(replay, 4003)
            assert not [m for m in before if m.code in (SUBSCRIBED, DELIVER)], before
            continue
        await subscribed(replay, forbidden, from_offset=0)
        leaked = [(await replay.expect(DELIVER)).body for _ in range(3)]
        assert [d["data"] for d in leaked] == [b"m1", b"m2", b"m3"]
        assert all(d["topic"] == forbidden for d in leaked)
        await replay.drop()


# ---------------------------------------------------------------- foreign-resume
def forged(resume_token: bytes) -> bytes:
    """The same token body with a wrong signature (its last byte changed)."""
    body, _, sig = resume_token.decode("ascii").partition(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[-1] ^= 0x01
    return f"{body}.{b64(bytes(raw))}".encode("ascii")


async def resume_as(port: int, jwt_token: str, resume_token: bytes) -> dict[str, Any]:
    peer = await challenged(port)
    answer = await handshake(
        peer, auth="jwt", token=jwt_token, resume_token=resume_token, last_received=0
    )
    await peer.drop()
    return answer


async def test_foreign_resume(servers: dict[str, Server]) -> None:
    alice, mallory = token("alice"), token("mallory")
    for name in ("none", "foreign-resume"):
        port = servers[name].port
        owner, opened = await session(port, auth="jwt", token=alice)
        assert opened["resumed"] is False
        await owner.drop()

        answer = await resume_as(port, mallory, opened["resume_token"])
        if name == "none":
            assert answer["resumed"] is False
            assert answer["session_id"] != opened["session_id"]
            back = await resume_as(port, alice, opened["resume_token"])  # the owner still can
            assert back["resumed"] is True and back["session_id"] == opened["session_id"]
        else:
            assert answer["resumed"] is True, f"not resumed: {answer}"
            assert answer["session_id"] == opened["session_id"]

        owner, opened = await session(port, auth="jwt", token=alice)
        await owner.drop()
        answer = await resume_as(port, mallory, forged(opened["resume_token"]))
        assert answer["resumed"] is False  # forged: refused on both
        assert answer["session_id"] != opened["session_id"]


# ---------------------------------------------------------------- wrong-close
async def test_wrong_close(servers: dict[str, Server]) -> None:
    for name, code in (("none", 1002), ("wrong-close", 1008)):
        port = servers[name].port
        peer, _ = await session(port)
        await publish_many(peer, "gap", 2, first=1, flags=ACK_REQUESTED)
        await publish_many(peer, "gap", 1, first=2, flags=ACK_REQUESTED)  # a duplicate: fine
        await echo_barrier(peer)
        await publish_many(peer, "gap", 1, first=4, flags=ACK_REQUESTED)  # 3 is missing
        await assert_closed(peer, code)
        assert servers[name].alive()


# ---------------------------------------------------------------- the script itself
def test_command_and_usage() -> None:
    argv = command("wrong-close", "{port}", "--secret", "s")
    assert argv[2:] == ["wrong-close", "--host", "127.0.0.1", "--port", "{port}", "--secret", "s"]
    assert Path(argv[1]).is_file() and argv[0] == sys.executable
    with pytest.raises(ValueError):
        command("no-such-bug", 1)
    done = subprocess.run(
        [sys.executable, argv[1], "no-such-bug", "--port", "0"],
        capture_output=True,
        timeout=START_TIMEOUT,
    )
    assert done.returncode == 2 and b"usage" in done.stderr


def test_sigterm_ends_it_like_wsp_serve(tmp_path: Path) -> None:
    server = start("wrong-close", tmp_path / "serve.log", "--secret", "s")
    try:
        server.wait_ready()
        server.proc.terminate()
        assert server.proc.wait(EXIT_TIMEOUT) == 0
        assert b"shutting down" in server.log.read_bytes()
    finally:
        server.stop()
