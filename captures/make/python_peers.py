"""Samples made with the ``websockets`` library on both ends (and raw sockets
for the protocol violations). Run as root: ``python captures/make/python_peers.py``.

Each peer logs every message it sends (and what it received where the library
answers by itself: pongs, close echoes); the logs become NAME.expected.json.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CAPTURES, Log, drop_packet_containing, free_port, recording

from wsproto_tools import codec

Script = Callable[[Any, Log, int], Awaitable[None]]


async def run_pair(
    port: int,
    log: Log,
    client_script: Script,
    server_script: Script,
    *,
    connections: int = 1,
    server_kwargs: dict[str, Any] | None = None,
    client_kwargs: dict[str, Any] | None = None,
) -> None:
    counter = {"n": 0}
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        counter["n"] += 1
        conn = counter["n"]
        log.connection(conn, subprotocol=ws.subprotocol)
        await server_script(ws, log, conn)
        await ws.wait_closed()
        if counter["n"] == connections:
            done.set()

    async with serve(handler, "127.0.0.1", port, ping_interval=None, **(server_kwargs or {})):
        for conn in range(1, connections + 1):
            async with connect(
                f"ws://127.0.0.1:{port}/sample", ping_interval=None, **(client_kwargs or {})
            ) as ws:
                await client_script(ws, log, conn)
                await ws.wait_closed()
        await asyncio.wait_for(done.wait(), 10)


async def echo_replies(ws: Any, log: Log, conn: int) -> None:
    """Server: answer every data message with a text reply it logs."""
    n = 0
    async for message in ws:
        n += 1
        reply = f"reply {n} to {len(message)} bytes"
        await ws.send(reply)
        log.sent(conn, "server", "text", reply)


async def close_from_client(ws: Any, log: Log, conn: int, code: int, reason: str) -> None:
    await ws.close(code, reason)
    log.sent(conn, "client", "close", close_code=code, close_reason=reason)
    rcvd = ws.protocol.close_rcvd  # what the server sent back, as the client received it
    log.sent(conn, "server", "close", close_code=rcvd.code, close_reason=rcvd.reason)


async def ping(ws: Any, log: Log, conn: int, data: bytes) -> None:
    waiter = await ws.ping(data)
    log.sent(conn, "client", "ping", data)
    await asyncio.wait_for(waiter, 5)
    log.sent(conn, "server", "pong", data)  # the pong arrived with this payload


# ------------------------------------------------------------------ scenarios


async def basic_client(ws: Any, log: Log, conn: int) -> None:
    items: list[tuple[str, Any]] = [
        ("text", "hello, capture"),
        ("binary", bytes(range(40))),
        ("text", '{"event": "quote", "symbol": "ACME", "price": 12.5}'),
        ("text", "unicode: żółw 🐢"),
    ]
    for kind, payload in items:
        await ws.send(payload)
        log.sent(conn, "client", kind, payload)
        await ws.recv()
    parts = ["frag-one ", "frag-two ", "frag-three"]
    await ws.send(parts)
    log.sent(conn, "client", "text", "".join(parts))
    await ws.recv()
    await ping(ws, log, conn, b"ping-1")
    await close_from_client(ws, log, conn, 1000, "bye")


async def deflate_client(ws: Any, log: Log, conn: int) -> None:
    for i in range(6):
        text = f"price update {i}: " + "ACME 12.50 up 0.25; " * 8
        await ws.send(text)
        log.sent(conn, "client", "text", text, compressed=True)
        await ws.recv()
    blob = b"\x00\x01\x02\x03" * 200
    await ws.send(blob)
    log.sent(conn, "client", "binary", blob, compressed=True)
    await ws.recv()
    parts = ["compressed fragment A " * 5, "compressed fragment B " * 5]
    await ws.send(parts)
    log.sent(conn, "client", "text", "".join(parts), compressed=True)
    await ws.recv()
    await close_from_client(ws, log, conn, 1001, "going away")


async def deflate_server(ws: Any, log: Log, conn: int) -> None:
    n = 0
    async for _message in ws:
        n += 1
        reply = f"ack {n}: " + "received and stored; " * 6
        await ws.send(reply)
        log.sent(conn, "server", "text", reply, compressed=True)


async def wsp_client(ws: Any, log: Log, conn: int) -> None:
    version = codec.subprotocol_version(ws.subprotocol)
    assert version is not None
    messages = [
        codec.Message(codec.Subscribe(topic="prices"), sequence=0, session_id=7),
        codec.Message(codec.TextData("hello over wsp"), sequence=1, session_id=7,
                      timestamp=1_700_000_000_000_000),
        codec.Message(codec.BinaryData(b"\x01\x02\x03"), sequence=2, session_id=7,
                      flags=codec.Flags.ACK_REQUESTED),
        codec.Message(codec.Heartbeat(id=1), sequence=0, session_id=7),
        codec.Message(codec.TextData("compressible " * 20), sequence=3, session_id=7,
                      flags=codec.Flags.COMPRESSED),
    ]
    for message in messages:
        wire = codec.encode(message, version=version)
        await ws.send(wire)
        # No wsp session handshake on purpose: every message breaks the session
        # rules (state), and COMPRESSED was never negotiated (flag).
        broken = ["wsp-state"]
        if message.flags & codec.Flags.COMPRESSED:
            broken.append("wsp-flag")
        log.sent(conn, "client", "binary", wire,
                 wsp={"type": message.type_name, "sequence": message.sequence,
                      "version": version}, violations=broken)
        await ws.recv()
    await close_from_client(ws, log, conn, 1000, "done")


async def wsp_server(ws: Any, log: Log, conn: int) -> None:
    version = codec.subprotocol_version(ws.subprotocol)
    assert version is not None
    n = 0
    async for raw in ws:
        n += 1
        received = codec.decode(raw)
        if received.type_name == "Heartbeat":
            reply = codec.Message(codec.Heartbeat(id=1, reply=True), session_id=7)
        else:
            reply = codec.Message(codec.Acknowledge(sequence=received.sequence),
                                  sequence=0, session_id=7)
        wire = codec.encode(reply, version=version)
        await ws.send(wire)
        log.sent(conn, "server", "binary", wire,
                 wsp={"type": reply.type_name, "sequence": reply.sequence, "version": version},
                 violations=["wsp-state"])


async def lost_client(ws: Any, log: Log, conn: int) -> None:
    await ws.send("send me ten")
    log.sent(conn, "client", "text", "send me ten")
    for _ in range(10):
        await ws.recv()
    await close_from_client(ws, log, conn, 1000, "")


async def lost_server(ws: Any, log: Log, conn: int) -> None:
    await ws.recv()
    for i in range(10):
        text = f"LOST-MARKER-{i:02d} " + "x" * 50
        await ws.send(text)
        log.sent(conn, "server", "text", text)
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ violations


def _frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    mbit = 0x80 if mask else 0
    head += bytes([mbit | len(payload)]) if len(payload) < 126 else (
        bytes([mbit | 126]) + struct.pack("!H", len(payload)))
    if mask:
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return head + mask + body
    return head + payload


async def raw_violator(port: int, log: Log, conn: int, frame: bytes, entry: dict[str, Any]) -> None:
    """A hand-written client that sends one broken frame, then reads the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /bad HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    writer.write(frame)
    await writer.drain()
    log.messages.append({"conn": conn, "direction": "client", **entry})
    head = await asyncio.wait_for(reader.readexactly(2), 5)
    body = await reader.readexactly(head[1] & 0x7F)
    code = struct.unpack("!H", body[:2])[0]
    log.sent(conn, "server", "close", close_code=code, close_reason=body[2:].decode())
    writer.close()


async def violations(port: int, log: Log) -> None:
    async def handler(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    cases = [
        (_frame(1, b"not masked"), {"opcode": "text", "text": "not masked",
                                    "violations": ["unmasked-client-frame"]}),
        (_frame(1, b"bad \xff utf8", mask=b"\x11\x22\x33\x44"),
         {"opcode": "text", "hex": b"bad \xff utf8".hex(), "violations": ["invalid-utf8"]}),
        (_frame(9, b"split ping", fin=False, mask=b"\x01\x02\x03\x04"),
         {"opcode": "ping", "hex": b"split ping".hex(), "violations": ["fragmented-control"]}),
    ]
    async with serve(handler, "127.0.0.1", port, ping_interval=None):
        for conn, (frame, entry) in enumerate(cases, 1):
            await raw_violator(port, log, conn, frame, entry)
            await asyncio.sleep(0.1)


# ------------------------------------------------------------------ mid-stream


async def midstream(name: str, how: str) -> None:
    """Connect first, start capturing, then talk wsp v1 (no handshake in the file)."""
    port = free_port()
    log = Log()
    path = CAPTURES / f"{name}.pcap"
    go = asyncio.Event()
    finished = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        n = 0
        async for raw in ws:
            n += 1
            received = codec.decode(raw)
            reply = codec.Message(codec.Acknowledge(sequence=received.sequence), session_id=9)
            wire = codec.encode(reply, version=1)
            await ws.send(wire)
            log.sent(1, "server", "binary", wire,
                     wsp={"type": "Acknowledge", "sequence": 0, "version": 1})
        finished.set()

    async with serve(handler, "127.0.0.1", port, ping_interval=None, compression=None):
        async with connect(f"ws://127.0.0.1:{port}/", ping_interval=None, compression=None,
                           subprotocols=["wsp.v1"]) as ws:
            # the handshake is done before the capture starts
            loop = asyncio.get_running_loop()
            cm = recording(path, port)
            await loop.run_in_executor(None, cm.__enter__)
            go.set()
            for seq in range(1, 6):
                msg = codec.Message(codec.TextData(f"mid-stream {seq}"), sequence=seq,
                                    session_id=9)
                wire = codec.encode(msg, version=1)
                await ws.send(wire)
                log.sent(1, "client", "binary", wire,
                         wsp={"type": "TextData", "sequence": seq, "version": 1})
                await ws.recv()
            await ws.close(1000, "end")
            log.sent(1, "client", "close", close_code=1000, close_reason="end")
            rcvd = ws.protocol.close_rcvd
            log.sent(1, "server", "close", close_code=rcvd.code, close_reason=rcvd.reason)
        await asyncio.wait_for(finished.wait(), 5)
        await loop.run_in_executor(None, cm.__exit__, None, None, None)
    log.connection(1, handshake=False)
    log.write(name, how)


# ------------------------------------------------------------------ main


async def sample(name: str, how: str, client: Script, server: Script, *, suffix: str = ".pcap",
                 tool: str = "tcpdump", iface: str = "lo", **kwargs: Any) -> tuple[Path, Log]:
    port = free_port()
    log = Log()
    path = CAPTURES / f"{name}{suffix}"
    loop = asyncio.get_running_loop()
    cm = recording(path, port, tool=tool, iface=iface)
    await loop.run_in_executor(None, cm.__enter__)
    try:
        await run_pair(port, log, client, server, **kwargs)
    finally:
        await loop.run_in_executor(None, cm.__exit__, None, None, None)
    log.write(name, how)
    return path, log


async def main() -> None:
    plain = {"compression": None}
    await sample(
        "ws-basic", "websockets client and server, no compression; tcpdump -i lo (pcap, Ethernet)",
        basic_client, echo_replies, server_kwargs=plain, client_kwargs=plain,
    )
    await sample(
        "ws-deflate", "websockets, permessage-deflate with context takeover; dumpcap -i lo "
        "(pcapng)", deflate_client, deflate_server, suffix=".pcapng", tool="dumpcap",
    )
    nocontext_server = {"compression": None, "extensions": [ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=11)]}
    nocontext_client = {"compression": None, "extensions": [ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        client_max_window_bits=10)]}
    path, _ = await sample(
        "ws-deflate-nocontext", "websockets, permessage-deflate without context takeover, "
        "window bits 11/10; tcpdump -i any (Linux cooked v2), gzip-compressed",
        deflate_client, deflate_server, iface="any",
        server_kwargs=nocontext_server, client_kwargs=nocontext_client,
    )
    with path.open("rb") as src, gzip.open(str(path) + ".gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    path.unlink()
    for version in (1, 2):
        await sample(
            f"wsp-bare-v{version}", f"websockets peers speaking wsp.v{version} without the wsp "
            "session handshake (messages encoded by the wsp codec, logged by the sender; the "
            "session observer must flag every one); tcpdump -i lo",
            wsp_client, wsp_server,
            server_kwargs={"subprotocols": [f"wsp.v{version}"], "compression": None},
            client_kwargs={"subprotocols": [f"wsp.v{version}"], "compression": None},
        )
    path, log = await sample(
        "lost-segment", "websockets, ten server messages, one packet removed from the file "
        "afterwards (the one carrying LOST-MARKER-05)", lost_client, lost_server,
        server_kwargs=plain, client_kwargs=plain,
    )
    number = drop_packet_containing(path, b"LOST-MARKER-05")
    log.messages = [m for m in log.messages if "LOST-MARKER-05" not in m.get("text", "")]
    log.extra["min_warnings"] = 1
    log.extra["dropped_packet"] = number
    log.write("lost-segment", "websockets, ten server messages; the packet carrying "
              f"LOST-MARKER-05 (packet {number}) was removed from the file afterwards")
    port = free_port()
    log = Log()
    path = CAPTURES / "violations.pcap"
    loop = asyncio.get_running_loop()
    cm = recording(path, port)
    await loop.run_in_executor(None, cm.__enter__)
    await violations(port, log)
    await loop.run_in_executor(None, cm.__exit__, None, None, None)
    log.write("violations", "hand-written raw-socket clients sending an unmasked frame, invalid "
              "UTF-8 and a fragmented ping to a websockets server, which closes with 1002/1007")
    await midstream("midstream-wsp-v1", "websockets peers speaking wsp.v1; tcpdump started "
                    "after the opening handshake")


if __name__ == "__main__":
    socket.setdefaulttimeout(10)
    asyncio.run(main())
