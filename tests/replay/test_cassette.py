"""Cassettes: hand-written text read, written back unchanged, and refused with line numbers."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wsproto_tools.cli.main import cli
from wsproto_tools.codec import TextData, decode, detect_version
from wsproto_tools.exceptions import ConfigError
from wsproto_tools.replay.cassette import (
    Cassette,
    cassette_of_records,
    read_cassette,
    write_cassette,
)

CAPTURES = Path(__file__).resolve().parents[2] / "captures"

# Canonical form: the key order and number formatting write_cassette uses.
CASSETTE = """\
{"conn":1,"ts":1700000000.5,"path":"/feed","subprotocols":["wsp.v1"],"extensions":null,"headers":{"Origin":"https://example.com"}}
{"conn":2,"ts":1700000001.0,"path":"/","subprotocols":[],"extensions":"permessage-deflate","headers":{}}
{"conn":1,"direction":"client","t":0.0,"opcode":"binary","wsp":{"version":1,"type":"TextData","type_code":257,"flags":[],"sequence":1,"session_id":9,"timestamp":0,"payload":{"text":"hi"}}}
{"conn":1,"direction":"server","t":0.25,"opcode":"text","text":"héllo"}
{"conn":2,"direction":"client","t":0.0,"opcode":"binary","base64":"AAEC/w=="}
{"conn":2,"direction":"server","t":0.125,"opcode":"ping","text":""}
{"conn":1,"direction":"client","t":1.5,"opcode":"close","close_code":1000,"close_reason":"bye"}
{"conn":2,"direction":"server","t":1.0,"opcode":"close","base64":"Aw=="}
{"conn":2,"direction":"client","t":1.0,"opcode":"close","close_code":null,"close_reason":""}
"""


def v1_header(msg_type: int, session_id: int, sequence: int, payload: bytes) -> bytes:
    # docs/DESIGN: magic u16 0xC0D1, version u8 1, flags u8, msg_type u16, session_id u64,
    # sequence u32, timestamp u64, payload_len u32 -- little-endian, packed.
    return struct.pack("<HBBHQIQI", 0xC0D1, 1, 0, msg_type, session_id, sequence, 0,
                       len(payload)) + payload


def test_read_then_write_gives_the_same_text() -> None:
    cassette = read_cassette(CASSETTE.splitlines())
    assert "".join(cassette.lines()) == CASSETTE


def test_what_a_cassette_says() -> None:
    cassette = read_cassette(CASSETTE.splitlines(keepends=True))
    one, two = cassette.connections[1], cassette.connections[2]
    assert (one.path, one.subprotocols, one.headers, one.ts) == (
        "/feed", ("wsp.v1",), (("Origin", "https://example.com"),), 1700000000.5)
    assert (two.extensions, two.wsp_version) == ("permessage-deflate", None)
    payloads = [(m.conn, m.direction, m.t, m.opcode, m.payload()) for m in cassette.messages]
    assert payloads == [
        (1, "client", 0.0, "binary", v1_header(0x0101, 9, 1, b"hi")),
        (1, "server", 0.25, "text", "héllo".encode()),
        (2, "client", 0.0, "binary", b"\x00\x01\x02\xff"),
        (2, "server", 0.125, "ping", b""),
        (1, "client", 1.5, "close", b"\x03\xe8bye"),
        (2, "server", 1.0, "close", b"\x03"),
        (2, "client", 1.0, "close", b""),
    ]
    assert [m.direction for m in cassette.messages_of(2)] == ["client", "server", "server",
                                                              "client"]


def test_hand_edited_text_is_normalized_and_means_the_same() -> None:
    loose = [
        '{"path": "/x", "conn": 3, "subprotocols": ["wsp.v2"]}',
        "",
        '  {"t": 2, "conn": 3, "direction": "client", "wsp": {"type": "textdata",'
        ' "sequence": 4, "payload": {"text": "yo"}}}',
        '{"conn": 3, "direction": "server", "t": 3, "opcode": "close", "close_code": 1001}',
    ]
    cassette = read_cassette(loose)
    written = list(cassette.lines())
    assert [json.loads(line) for line in written] == [
        {"conn": 3, "ts": 0.0, "path": "/x", "subprotocols": ["wsp.v2"], "extensions": None,
         "headers": {}},
        {"conn": 3, "direction": "client", "t": 2.0, "opcode": "binary",
         "wsp": {"version": 2, "type": "TextData", "type_code": 257, "flags": [],
                 "sequence": 4, "session_id": 0, "timestamp": 0, "payload": {"text": "yo"}}},
        {"conn": 3, "direction": "server", "t": 3.0, "opcode": "close", "close_code": 1001,
         "close_reason": ""},
    ]
    assert read_cassette(written) == cassette


BAD = [
    (["{"], 1, "not JSON"),
    (["[1, 2]"], 1, "JSON object"),
    (['{"conn": 0}'], 1, "connection number"),
    (['{"conn": 1}', '{"conn": 1}'], 2, "declared twice"),
    (['{"conn": 1, "pth": "/"}'], 1, "no key 'pth'"),
    (['{"conn": 1, "path": "x"}'], 1, "starting with '/'"),
    (['{"conn": 1, "headers": {"A": 1}}'], 1, "headers"),
    (['{"conn": 1}', '', '{"conn": 2, "direction": "client", "t": 0, "opcode": "text"}'], 3,
     "connection 2 has no connection line"),
    (['{"conn": 1}', '{"conn": 1, "direction": "up", "t": 0, "opcode": "text"}'], 2,
     "direction"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "opcode": "text"}'], 2, "needs 't'"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": -1, "opcode": "text"}'], 2,
     "negative"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 0, "opcode": "txt"}'], 2,
     "'opcode' must be one of"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 0, "opcode": "text",'
      ' "text": "a", "base64": "YQ=="}'], 2, "one payload"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 0, "opcode": "binary",'
      ' "base64": "!!"}'], 2, "not valid base64"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 0, "opcode": "binary",'
      ' "text": "a"}'], 2, "'text' is a string"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 0, "opcode": "text",'
      ' "wsp": {"type": "TextData", "payload": {"text": "a"}}}'], 2, "binary message"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 0, "wsp": {"type": "Nope"}}'],
     2, "'wsp': unknown message type"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 0, "wsp": {"type": "TextData",'
      ' "version": 3, "payload": {"text": "a"}}}'], 2, "version must be 1 or 2"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 0, "opcode": "text",'
      ' "close_code": 1000}'], 2, "belong to a close"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 0, "opcode": "close",'
      ' "close_code": 70000}'], 2, "0-65535"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 0, "opcode": "close",'
      ' "close_reason": "why"}'], 2, "needs a close code"),
    (['{"conn": 1}', '{"conn": 1, "direction": "client", "t": 2, "opcode": "text"}',
      '{"conn": 1, "direction": "server", "t": 1, "opcode": "text"}'], 3, "back in time"),
]


@pytest.mark.parametrize(("lines", "lineno", "match"), BAD, ids=[b[2] for b in BAD])
def test_errors_name_the_line(lines: list[str], lineno: int, match: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_cassette(lines)
    message = str(caught.value)
    assert message.startswith(f"cassette line {lineno}: "), message
    assert match in message, message


def decode_records(name: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(cli, ["decode", "--ndjson", "-q", str(CAPTURES / name)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def record_bytes(record: dict[str, Any]) -> bytes:
    return record["text"].encode() if "text" in record else bytes.fromhex(record["hex"])


@pytest.mark.parametrize("name", ["wsp-session-v1.pcap", "ws-basic.pcap", "violations.pcap",
                                  "ws-deflate.pcapng"])
def test_a_decoded_capture_as_a_cassette(name: str) -> None:
    records = decode_records(name)
    text = list(write_cassette(records))
    cassette = read_cassette(text)  # what a replayer would read: no raw bytes kept
    messages = [r for r in records if "direction" in r]
    assert len(cassette.messages) == len(messages)
    for record, message in zip(messages, cassette.messages, strict=True):
        assert (message.conn, message.direction, message.opcode) == (
            record["conn"], record["direction"], record["opcode"])
        assert message.payload() == record_bytes(record)
        assert message.t == pytest.approx(record["ts"] - cassette.connections[record["conn"]].ts,
                                          abs=2e-6)
        if "wsp" in record:
            assert message.wsp is not None and message.version == record["wsp"]["version"]
    connections = [r for r in records if r.get("record") == "connection"]
    for conn in connections:
        got = cassette.connections[conn["conn"]]
        assert (got.path, got.ts) == (conn["path"] or "/", conn["first_ts"])
        assert got.subprotocols == ((conn["subprotocol"],) if conn["subprotocol"] else ())
        assert got.extensions == conn["extensions"]


def feed_records() -> list[dict[str, Any]]:
    hello = {"version": 2, "type": "TextData", "type_code": 257, "flags": [], "sequence": 1,
             "session_id": 77, "timestamp": 0, "payload": {"text": "hi"}}
    hb = {"version": 2, "type": "Heartbeat", "type_code": 3, "flags": [], "sequence": 0,
          "session_id": 0, "timestamp": 0, "payload": {}}
    return [
        {"kind": "connected", "ts": 10.0, "session": 0, "peer": "127.0.0.1:5000",
         "identity": None, "subprotocol": "wsp.v2", "version": 2},
        {"kind": "message", "ts": 10.5, "session": 0, "peer": "127.0.0.1:5000",
         "identity": None, "direction": "server", "length": 4, "wsp": hb},
        {"kind": "authenticated", "ts": 10.6, "session": 77, "peer": "127.0.0.1:5000",
         "identity": "hmac", "capabilities": []},
        {"kind": "message", "ts": 11.0, "session": 77, "peer": "127.0.0.1:5000",
         "identity": "hmac", "direction": "client", "length": 6, "wsp": hello},
        {"kind": "message", "ts": 11.1, "session": None, "peer": None, "identity": None,
         "direction": "server", "length": 6, "wsp": hello, "subscribers": 3},
        {"kind": "message", "ts": 12.0, "session": 77, "peer": "127.0.0.1:6000",
         "identity": "hmac", "direction": "client", "length": 6, "wsp": hello},
        {"kind": "closed", "ts": 13.0, "session": 77, "peer": "127.0.0.1:6000",
         "identity": "hmac", "code": 1000, "reason": "", "resumable": False},
    ]


def test_inspector_records_as_a_cassette() -> None:
    cassette = read_cassette(list(write_cassette(feed_records())))
    # One connection per peer (the session id arrives mid-connection); the fan-out
    # record names no connection and is left out; events carry no messages.
    assert [(c.conn, c.ts, c.subprotocols) for c in cassette.connections.values()] == [
        (1, 10.0, ("wsp.v2",)), (2, 12.0, ("wsp.v2",))]
    got = [(m.conn, m.direction, m.t, m.wsp and m.wsp.sequence) for m in cassette.messages]
    assert got == [(1, "server", 0.5, 0), (1, "client", 1.0, 1), (2, "client", 0.0, 1)]
    # The feed's JSON encoded again: the codec's decoder reads back what the record said.
    payload = cassette.messages[1].payload()
    msg = decode(payload)
    assert (detect_version(payload), msg.sequence, msg.session_id, msg.payload) == (
        2, 1, 77, TextData("hi"))


def test_an_empty_selection_is_an_empty_cassette() -> None:
    assert list(write_cassette([])) == []
    assert cassette_of_records([{"record": "summary", "packets": 3}]) == Cassette()


def test_the_example_in_docs_replay_md_reads_and_writes_back() -> None:
    doc = (CAPTURES.parent / "docs" / "replay.md").read_text(encoding="utf-8")
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    cassette = read_cassette(example.splitlines())
    assert len(cassette.connections) == 1 and len(cassette.messages) == 4
    assert "".join(cassette.lines()) == example


def test_a_websocket_connection_without_messages_keeps_its_handshake() -> None:
    records = [
        {"record": "connection", "conn": 2, "kind": "websocket", "first_ts": 5.0,
         "path": "/p", "subprotocol": "chat", "extensions": None},
        {"record": "connection", "conn": 3, "kind": "http", "first_ts": 6.0, "path": "/x",
         "subprotocol": None, "extensions": None},
    ]
    assert [json.loads(line) for line in write_cassette(records)] == [
        {"conn": 2, "ts": 5.0, "path": "/p", "subprotocols": ["chat"], "extensions": None,
         "headers": {}}]


def test_a_message_the_inspector_decrypted_goes_as_plaintext() -> None:
    shown = {"version": 2, "type": "TextData", "type_code": 257, "flags": ["ENCRYPTED"],
             "sequence": 3, "session_id": 5, "timestamp": 0, "payload": {"text": "secret"}}
    records = [{"kind": "message", "ts": 1.0, "session": 5, "peer": "127.0.0.1:9",
                "direction": "client", "length": 40, "wsp": shown, "decrypted": True}]
    cassette = read_cassette(list(write_cassette(records)))
    msg = decode(cassette.messages[0].payload())
    assert (msg.payload, msg.sequence, msg.session_id, msg.flags) == (
        TextData("secret"), 3, 5, 0)
