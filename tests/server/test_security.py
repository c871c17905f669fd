"""Resume bound to the identity that authenticated, JWT expiry enforced for the
whole life of a session, and JWT keys loaded or refused at start (issue 10, §4).

Real servers on 127.0.0.1 (``WspServer`` and ``wsp serve`` processes), real
sockets, JWTs made here with PyJWT and keys made here with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from wsproto_tools.client import Client
from wsproto_tools.codec import HandshakeResponse, decode
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.session import Credentials
from wsproto_tools.exceptions import AuthenticationError

SECRET = b"test-secret"
JWT_KEY = b"j" * 32
WSP = str(Path(sys.executable).parent / "wsp")


def url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


def token(sub: str, lifetime: float | None = 300.0, key: Any = JWT_KEY, alg: str = "HS256") -> str:
    claims: dict[str, Any] = {"sub": sub}
    if lifetime is not None:
        claims["exp"] = int(time.time() + lifetime)
    return jwt.encode(claims, key, alg)


async def handshake(
    ws: ClientConnection, creds: Credentials, resume: tuple[int, bytes] | None = None
) -> tuple[ClientSession, HandshakeResponse]:
    """The wsp handshake by hand (the engine, no Client machinery), optionally a
    resume of ``(session_id, resume_token)``; the session and the server's answer."""
    session = ClientSession(creds)
    if resume is not None:
        session.session_id, session.resume_token = resume
    session.connection_made(0.0, nonce=os.urandom(16))
    answer: HandshakeResponse | None = None
    while not session.active:
        data = await ws.recv()
        assert isinstance(data, bytes)
        payload = decode(data).payload  # the handshake is never encrypted
        if isinstance(payload, HandshakeResponse):
            answer = payload
        session.receive_data(data, 0.0)
        for chunk in session.data_to_send():
            await ws.send(chunk)
    assert answer is not None
    return session, answer


async def closed_with(ws: ClientConnection, timeout: float = 6.0) -> tuple[int, str]:
    try:
        async with asyncio.timeout(timeout):
            async for _ in ws:
                pass
    except ConnectionClosed:
        pass
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


async def open_session(server: Any, creds: Credentials) -> tuple[int, bytes]:
    """Authenticate, then drop the connection: a detached, resumable session."""
    async with connect(url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
        session, answer = await handshake(ws, creds)
        assert not answer.resumed
        return session.session_id, session.resume_token


async def try_resume(server: Any, creds: Credentials, resume: tuple[int, bytes]) -> bool:
    """Whether the server resumed ``resume`` for a connection authenticated with ``creds``."""
    async with connect(url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
        _, answer = await handshake(ws, creds, resume)
        if answer.resumed:
            assert answer.session_id == resume[0]
        else:
            assert answer.session_id != resume[0]
        return bool(answer.resumed)


# ---------------------------------------------------------------- 13. resume binding
async def test_resume_with_another_identitys_token_is_refused(serve: Any) -> None:
    async with serve(secret=SECRET, jwt_key=JWT_KEY) as server:
        alice = Credentials(token=token("alice"))
        bob = Credentials(token=token("bob"))
        held = await open_session(server, alice)
        await asyncio.sleep(0.05)
        # another JWT subject, and the shared-secret identity: a new session each
        assert not await try_resume(server, bob, held)
        assert not await try_resume(server, Credentials(secret=SECRET), held)
        # the same subject (even with a fresh token) resumes it
        assert await try_resume(server, Credentials(token=token("alice")), held)
        # and the other way round: a secret holder's session is not a JWT subject's
        hmac_held = await open_session(server, Credentials(secret=SECRET))
        await asyncio.sleep(0.05)
        assert not await try_resume(server, alice, hmac_held)
        assert await try_resume(server, Credentials(secret=SECRET), hmac_held)
        assert server.metrics.auth_rejected == 0


async def test_live_session_is_not_taken_over_with_its_token(serve: Any) -> None:
    async with (
        serve(secret=None, jwt_key=JWT_KEY) as server,
        Client(url(server), token=token("alice")) as alice,
    ):
        assert await alice.echo(b"hi") == b"hi"
        stolen = (alice.session.session_id, alice.session.resume_token)
        assert not await try_resume(server, Credentials(token=token("mallory")), stolen)
        assert await alice.echo(b"still mine") == b"still mine"
        assert alice.resumes == 0 and alice.connections == 1


# ---------------------------------------------------------------- 14. exp required
async def test_token_without_exp_is_refused(serve: Any) -> None:
    async with serve(secret=None, jwt_key=JWT_KEY) as server:
        with pytest.raises(AuthenticationError, match="exp") as info:
            async with Client(url(server), token=token("alice", lifetime=None)):
                pass
        assert info.value.close_code == 4001
        async with Client(url(server), token=token("alice")) as fine:
            assert await fine.echo(b"ok") == b"ok"
    async with (
        serve(secret=None, jwt_key=JWT_KEY, jwt_allow_no_exp=True) as server,
        Client(url(server), token=token("alice", lifetime=None)) as allowed,
    ):
        assert await allowed.echo(b"ok") == b"ok"


def start_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSP_")}
    proc = subprocess.Popen(
        [WSP, "serve", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"listening on (wss?://\S+)", line)
    if not match:
        proc.kill()
        pytest.fail(f"wsp serve did not start: {line}{proc.stderr.read()}")
    return proc, match.group(1)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture
def hs256_file(tmp_path: Path) -> Path:
    path = tmp_path / "hs256.key"
    path.write_bytes(JWT_KEY)
    return path


async def test_wsp_serve_requires_exp_unless_allowed(hs256_file: Path) -> None:
    no_exp = token("alice", lifetime=None)
    proc, address = start_server("--jwt-key", str(hs256_file))
    try:
        with pytest.raises(AuthenticationError, match="exp"):
            async with Client(address, token=no_exp):
                pass
    finally:
        stop(proc)
    proc, address = start_server("--jwt-key", str(hs256_file), "--jwt-allow-no-exp")
    try:
        async with Client(address, token=no_exp) as client:
            assert await client.echo(b"ok") == b"ok"
    finally:
        stop(proc)


# ---------------------------------------------------------------- 14. PEM keys
@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(private: Any, fmt: serialization.PublicFormat) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM, fmt)


def hs256_with_key(pem: bytes) -> str:
    """A token MACed with the public key's bytes as an HS256 secret (PyJWT refuses to)."""

    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    body = (
        part(b'{"alg":"HS256","typ":"JWT"}')
        + b"."
        + part(b'{"sub":"x","exp":%d}' % int(time.time() + 60))
    )
    return (body + b"." + part(hmac.new(pem, body, hashlib.sha256).digest())).decode()


PKCS1 = serialization.PublicFormat.PKCS1
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


async def test_pkcs1_rsa_public_key_loads(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    pem = public_pem(rsa_key, PKCS1)
    assert pem.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    path = tmp_path / "pkcs1.pem"
    path.write_bytes(pem)
    proc, address = start_server("--jwt-key", str(path))
    try:
        good = token("alice", key=rsa_key, alg="RS256")
        async with Client(address, token=good) as client:
            assert await client.echo(b"ok") == b"ok"
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with pytest.raises(AuthenticationError, match="forged or wrong key"):
            async with Client(address, token=token("alice", key=other, alg="RS256")):
                pass
        # an HS256 token signed with the public key's bytes (key confusion): refused
        with pytest.raises(AuthenticationError, match="alg"):
            async with Client(address, token=hs256_with_key(pem)):
                pass
    finally:
        stop(proc)


async def test_spki_rsa_and_ec_public_keys_load(serve: Any, rsa_key: rsa.RSAPrivateKey) -> None:
    async with (
        serve(secret=None, jwt_key=public_pem(rsa_key, SPKI)) as server,
        Client(url(server), token=token("a", key=rsa_key, alg="RS256")) as client,
    ):
        assert await client.echo(b"ok") == b"ok"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    async with (
        serve(secret=None, jwt_key=public_pem(ec_key, SPKI)) as server,
        Client(url(server), token=token("a", key=ec_key, alg="ES256")) as client,
    ):
        assert await client.echo(b"ok") == b"ok"


@pytest.mark.parametrize("kind", ["private", "garbage"])
def test_unusable_pem_key_is_refused_at_start(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, kind: str
) -> None:
    path = tmp_path / f"{kind}.pem"
    if kind == "private":
        path.write_bytes(
            rsa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    else:
        path.write_bytes(b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSP_")}
    done = subprocess.run(
        [WSP, "serve", "--port", "0", "--jwt-key", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=15,
        env=env,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wsp: error: --jwt-key"), done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- 15. expiry in session
async def test_session_is_closed_with_4001_when_its_token_expires(serve: Any) -> None:
    async with serve(secret=None, jwt_key=JWT_KEY, sweep_interval=0.1) as server:
        short = token("alice", lifetime=2.0)
        async with connect(url(server), subprotocols=["wsp.v2"]) as ws:  # type: ignore[list-item]
            session, _ = await handshake(ws, Credentials(token=short))
            held = (session.session_id, session.resume_token)
            started = time.monotonic()
            code, reason = await closed_with(ws, timeout=6.0)
            assert code == 4001 and "expired" in reason, (code, reason)
            assert time.monotonic() - started < 4.0
        # a fresh token of the same subject cannot bring the expired session back
        assert not await try_resume(server, Credentials(token=token("alice")), held)


async def test_resume_past_the_tokens_exp_is_refused(serve: Any) -> None:
    async with serve(secret=None, jwt_key=JWT_KEY) as server:
        held = await open_session(server, Credentials(token=token("alice", lifetime=2.0)))
        await asyncio.sleep(0.1)
        assert await try_resume(server, Credentials(token=token("alice")), held)
        held2 = await open_session(server, Credentials(token=token("bob", lifetime=1.5)))
        await asyncio.sleep(2.5)  # detached while its token expires
        assert not await try_resume(server, Credentials(token=token("bob")), held2)


async def test_client_library_stops_on_the_expiry_close(serve: Any) -> None:
    async with (
        serve(secret=None, jwt_key=JWT_KEY, sweep_interval=0.1) as server,
        Client(url(server), token=token("alice", lifetime=2.0)) as client,
    ):
        assert await client.echo(b"ok") == b"ok"
        for _ in range(60):
            if client.error is not None:
                break
            await asyncio.sleep(0.1)
        assert isinstance(client.error, AuthenticationError), client.error
        assert client.error.close_code == 4001
