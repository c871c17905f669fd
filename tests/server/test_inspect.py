"""The inspector feed of a real WspServer on 127.0.0.1: real clients, a real viewer."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wsproto_tools.client import Client
from wsproto_tools.engine.session import DEFAULT_CAPABILITIES

SECRET = b"test-secret"
ADMIN = "admin-s3cret"
JWT_KEY = b"k" * 32
AUDIENCE = "wsp-test"
ADMIN_CLAIM = {"wsp": {"admin": True}}


def admin_token(
    claims: dict[str, Any] | None = None,
    *,
    lifetime: float | None = 300.0,
    key: Any = JWT_KEY,
    alg: str = "HS256",
) -> str:
    """A JWT for ``sub`` "ops", ``aud`` AUDIENCE, with ``claims`` (default: the admin claim)."""
    body: dict[str, Any] = {
        "sub": "ops",
        "aud": AUDIENCE,
        **(ADMIN_CLAIM if claims is None else claims),
    }
    if lifetime is not None:
        body["exp"] = int(time.time() + lifetime)
    return jwt.encode(body, key, alg)


def url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.port}"


def viewer(server: Any, query: str = "", secret: str | None = ADMIN, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    return connect(f"{url(server)}/inspect{query}", additional_headers=headers, **kwargs)


async def attached(server: Any, viewers: int = 1) -> None:
    """Wait until the server's feed has ``viewers`` viewers (their handlers have run,
    or have ended)."""
    for _ in range(500):
        if len(server.feed.viewers) == viewers:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(server.feed.viewers)} viewers attached, not {viewers}")


async def read_until_quiet(ws: ClientConnection, quiet: float = 0.5) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        try:
            text = await asyncio.wait_for(ws.recv(), quiet)
        except TimeoutError:
            return out
        out.extend(json.loads(line) for line in str(text).splitlines())


def types(records: list[dict[str, Any]], direction: str | None = None) -> Counter[str]:
    return Counter(
        r["wsp"]["type"]
        for r in records
        if "wsp" in r and (direction is None or r["direction"] == direction)
    )


def entries(records: list[dict[str, Any]]) -> int:
    """Queue entries behind the records (a Batch gives one record per message)."""
    return sum(1 for r in records if r["kind"] != "dropped" and r.get("batch", 0) == 0)


async def test_events_and_every_message(serve: Any) -> None:
    async with (
        serve(secret=SECRET, inspect=True, admin_secret=ADMIN.encode()) as server,
        viewer(server) as ws,
    ):
        await attached(server)
        async with (
            Client(url(server), secret=SECRET) as subscriber,
            Client(url(server), secret=SECRET) as publisher,
        ):
            sub = await subscriber.subscribe("prices")
            for i in range(20):
                await publisher.publish("prices", f"px {i}")
            for i in range(5):
                assert await publisher.echo(b"e%d" % i) == b"e%d" % i
            got = [await asyncio.wait_for(sub.get(), 5) for _ in range(20)]
            assert len(got) == 20
            pub_sid = publisher.session.session_id
        records = await read_until_quiet(ws)
    kinds = Counter(r["kind"] for r in records)
    assert kinds["connected"] == 2 and kinds["authenticated"] == 2 and kinds["closed"] == 2
    connected = next(r for r in records if r["kind"] == "connected")
    assert connected["subprotocol"] == "wsp.v2" and connected["peer"].startswith("127.0.0.1:")
    assert {r["identity"] for r in records if r["kind"] == "authenticated"} == {"hmac"}
    client = types(records, "client")
    server_side = types(records, "server")
    assert client["Publish"] == 20 and client["Request"] == 5 and client["Subscribe"] == 1
    assert server_side["Response"] == 5 and server_side["Subscribed"] == 1
    delivers = [r for r in records if "wsp" in r and r["wsp"]["type"] == "Deliver"]
    assert len(delivers) == 20  # once per topic message, with the subscriber count
    assert all(r["subscribers"] == 1 and r["session"] is None for r in delivers)
    assert [r["wsp"]["payload"]["offset"] for r in delivers] == list(range(1, 21))
    publishes = [r for r in records if "wsp" in r and r["wsp"]["type"] == "Publish"]
    assert {r["session"] for r in publishes} == {pub_sid}
    assert all(r["identity"] == "hmac" and r["peer"] for r in publishes)
    assert bytes.fromhex(publishes[3]["wsp"]["payload"]["data"]) == b"px 3"


async def test_filters(serve: Any) -> None:
    async with (
        serve(secret=SECRET, inspect=True, admin_secret=ADMIN.encode()) as server,
        viewer(server, "?type=Publish&topic=a") as only_a,
        viewer(server, "?type=Publish&type=Request") as two_types,
        Client(url(server), secret=SECRET) as quiet,
        Client(url(server), secret=SECRET) as busy,
    ):
        sid = busy.session.session_id
        async with viewer(server, f"?session={sid}") as one_session:
            await attached(server, 3)
            for topic in "aab":
                await busy.publish(topic, "x")
                await quiet.publish(topic, "y")
            await busy.echo(b"z")
            a = await read_until_quiet(only_a)
            both = await read_until_quiet(two_types)
            mine = await read_until_quiet(one_session)
    assert len(a) == 4 and {r["wsp"]["payload"]["topic"] for r in a} == {"a"}
    assert types(both) == Counter({"Publish": 6, "Request": 1})
    assert mine and {r["session"] for r in mine} == {busy.session.session_id}
    assert types(mine, "client") == Counter({"Publish": 3, "Request": 1})


async def test_decrypted_messages_are_marked(serve: Any) -> None:
    async with (
        serve(secret=SECRET, inspect=True, admin_secret=ADMIN.encode()) as server,
        viewer(server, "?type=TextData") as ws,
    ):
        await attached(server)
        caps = (*DEFAULT_CAPABILITIES, "encrypt")
        async with Client(url(server), secret=SECRET, capabilities=caps) as client:
            await client.send_text("secret hello")
            await asyncio.wait_for(client.data.get(), 5)
        records = await read_until_quiet(ws)
    assert [r["direction"] for r in records] == ["client", "server"]
    assert all(r["decrypted"] is True for r in records)
    assert "ENCRYPTED" in records[0]["wsp"]["flags"]
    assert {r["wsp"]["payload"]["text"] for r in records} == {"secret hello"}


@pytest.mark.parametrize("secret", [None, "wrong", ""])
async def test_refused_credentials(serve: Any, secret: str | None) -> None:
    async with serve(secret=SECRET, inspect=True, admin_secret=ADMIN.encode()) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with viewer(server, secret=secret):
                pass
        assert refused.value.response.status_code == 403
        async with Client(url(server), secret=SECRET) as client:  # still serving
            assert await client.echo(b"ok") == b"ok"


async def test_off_by_default(serve: Any) -> None:
    async with serve(secret=SECRET) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with viewer(server):
                pass
        assert refused.value.response.status_code == 404
        assert not server.feed.viewers


async def test_inspect_needs_an_admin_secret() -> None:
    from wsproto_tools.exceptions import ConfigError
    from wsproto_tools.server import ServerConfig, WspServer

    with pytest.raises(ConfigError, match=r"admin-secret.*jwt-key"):
        WspServer(ServerConfig(port=0, secret=SECRET, inspect=True))


# ---------------------------------------------------------------------- JWT admin claim
async def test_jwt_with_the_admin_claim_streams_records(serve: Any) -> None:
    async with (
        serve(secret=None, jwt_key=JWT_KEY, inspect=True) as server,  # no admin secret at all
        viewer(server, "?type=authenticated&type=Publish", secret=admin_token()) as ws,
    ):
        await attached(server)
        user = jwt.encode({"sub": "alice", "exp": int(time.time()) + 300}, JWT_KEY, "HS256")
        async with Client(url(server), token=user) as client:
            await client.publish("prices", "px 1")
        records = await read_until_quiet(ws)
    assert [r["kind"] for r in records] == ["authenticated", "message"]
    assert records[0]["identity"] == "jwt:alice"
    assert bytes.fromhex(records[1]["wsp"]["payload"]["data"]) == b"px 1"


async def test_jwt_signed_with_an_ec_key(serve: Any) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    async with (
        serve(secret=None, jwt_key=public, inspect=True) as server,
        viewer(server, "?type=connected", secret=admin_token(key=private, alg="ES256")) as ws,
    ):
        await attached(server)
        async with connect(url(server), subprotocols=["wsp.v2"]) as peer:  # type: ignore[list-item]
            await peer.recv()  # the Challenge: the connection has been reported
        records = await read_until_quiet(ws)
    assert [r["kind"] for r in records] == ["connected"]
    async with serve(secret=None, jwt_key=JWT_KEY, inspect=True) as other:
        with pytest.raises(InvalidStatus) as refused:  # the same token under HS256: refused
            async with viewer(other, secret=admin_token(key=private, alg="ES256")):
                pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param(admin_token({}), id="no-claim"),
        pytest.param(admin_token({"wsp": {"pub": ["*"], "sub": ["*"]}}), id="session-claims"),
        pytest.param(admin_token({"wsp": {"admin": "true"}}), id="admin-string"),
        pytest.param(admin_token({"wsp": {"admin": 1}}), id="admin-one"),
        pytest.param(admin_token({"wsp_admin": True}), id="other-spelling"),
        pytest.param(admin_token(lifetime=-5), id="expired"),
        pytest.param(admin_token(lifetime=None), id="no-exp"),
        pytest.param(admin_token(key=b"w" * 32), id="wrong-key"),
        pytest.param(admin_token({"aud": "elsewhere", **ADMIN_CLAIM}), id="wrong-audience"),
        pytest.param(
            jwt.encode({"sub": "ops", "exp": int(time.time()) + 300, **ADMIN_CLAIM}, JWT_KEY),
            id="no-audience",
        ),
        pytest.param(jwt.encode({"sub": "ops", **ADMIN_CLAIM}, "", "none"), id="alg-none"),
        pytest.param(admin_token()[:-4] + "AAAA", id="tampered"),
        pytest.param("not.a.jwt", id="garbage"),
    ],
)
async def test_refused_tokens(serve: Any, credential: str) -> None:
    async with serve(
        secret=SECRET,
        jwt_key=JWT_KEY,
        jwt_audience=AUDIENCE,
        inspect=True,
        admin_secret=ADMIN.encode(),
    ) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with viewer(server, secret=credential):
                pass
        assert refused.value.response.status_code == 403
        assert not server.feed.viewers
        # the admin secret and a good token are accepted by the same server
        for accepted in (ADMIN, admin_token()):
            async with viewer(server, "?type=connected", secret=accepted) as ws:
                await attached(server)
                await ws.close()
            await attached(server, 0)


async def test_jwt_is_not_admitted_without_jwt_verification(serve: Any) -> None:
    async with serve(secret=SECRET, inspect=True, admin_secret=ADMIN.encode()) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with viewer(server, secret=admin_token()):
                pass
        assert refused.value.response.status_code == 403


async def test_viewer_is_closed_when_its_token_expires(serve: Any) -> None:
    async with (
        serve(secret=None, jwt_key=JWT_KEY, inspect=True) as server,
        viewer(server, secret=admin_token(lifetime=1.5)) as ws,
    ):
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        elapsed = time.monotonic() - started
        assert ws.close_code == 4001 and "expired" in (ws.close_reason or "")
        assert 0.2 < elapsed < 4
        assert not server.feed.viewers and not server.inspectors


def small_socket(port: int) -> socket.socket:
    """A client socket with a tiny receive buffer: a viewer that does not read
    soon stops the server's sends to it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_slow_viewer_gets_a_dropped_record(serve: Any) -> None:
    n = 3000
    async with (
        serve(
            secret=SECRET,
            inspect=True,
            admin_secret=ADMIN.encode(),
            inspect_queue=200,
            inspect_budget=1.0,
        ) as server,
        viewer(server) as fast,
        viewer(server, sock=small_socket(server.port), max_queue=1) as slow,
    ):
        fast_records: list[dict[str, Any]] = []

        async def keep_reading() -> None:
            async for text in fast:
                fast_records.extend(json.loads(line) for line in str(text).splitlines())

        reader = asyncio.create_task(keep_reading())
        await attached(server, 2)
        started = time.perf_counter()
        async with Client(url(server), secret=SECRET) as client:
            for i in range(n):  # one at a time: the fast viewer keeps up
                await client.publish("t", b"x" * 200 + str(i).encode())
        elapsed = time.perf_counter() - started
        assert elapsed < 20  # the server's clients are not held up by the slow viewer
        await asyncio.sleep(0.5)
        slow_records = await read_until_quiet(slow, 1.0)
        await asyncio.sleep(0.2)
        reader.cancel()
    assert not any(r["kind"] == "dropped" for r in fast_records)
    assert types(fast_records, "client")["Publish"] == n
    drops = [r for r in slow_records if r["kind"] == "dropped"]
    assert drops, "the slow viewer lost nothing"
    dropped = sum(r["count"] for r in drops)
    assert entries(slow_records) + dropped == entries(fast_records)
    # the records after a drop record are the newest ones, in order
    assert slow_records[-1] == fast_records[-1]


async def test_violation_record(serve: Any) -> None:
    async with (
        serve(secret=SECRET, inspect=True, admin_secret=ADMIN.encode()) as server,
        viewer(server, "?type=violation&type=closed") as ws,
    ):
        await attached(server)
        async with connect(url(server), subprotocols=["wsp.v2"]) as peer:  # type: ignore[list-item]
            await peer.recv()  # the Challenge
            await peer.send("a text frame")
            await peer.wait_closed()
        records = await read_until_quiet(ws)
    assert [r["kind"] for r in records] == ["violation", "closed"]
    assert records[0]["code"] == 1003 and "text frame" in records[0]["message"]
    assert records[1]["code"] == 1003
