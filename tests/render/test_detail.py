"""The Detail pane's sections and the list's summary line, on records of the committed
samples (decoded by ``wsp decode --ndjson``) and on records written by hand.

Every expectation is written out here from what the sample's programs sent
(captures/*.expected.json, captures/README.md), from the protocol's layout
(docs/protocol.md) or from arithmetic done by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from wsproto_tools.render.detail import detail_sections, hexdump, summary_line

ROOT = Path(__file__).resolve().parents[2]
WSP = str(Path(sys.executable).parent / "wsp")


@cache
def _decoded(name: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run([WSP, "decode", str(ROOT / "captures" / name), "--ndjson"],
                         capture_output=True, text=True, check=True).stdout
    return tuple(json.loads(line) for line in out.splitlines())


def messages(name: str) -> list[dict[str, Any]]:
    return [r for r in _decoded(name) if "record" not in r]


def find(name: str, **match: Any) -> dict[str, Any]:
    """The first message of sample ``name`` whose keys (``wsp_type``: its wsp type) match."""
    for rec in messages(name):
        wsp = rec.get("wsp") or {}
        if all((wsp.get("type") if k == "wsp_type" else rec.get(k)) == v
               for k, v in match.items()):
            return rec
    raise AssertionError(f"no message {match} in {name}")


def text_of(renderable: Any, width: int = 100) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


def sections(record: dict[str, Any], **kw: Any) -> dict[str, str]:
    return {title: text_of(r) for title, r in detail_sections(record, **kw)}


def squeeze(text: str) -> str:
    """Runs of spaces as one (tables pad their columns)."""
    return " ".join(text.split())


# ------------------------------------------------------------------ hex


def test_hexdump_of_a_known_binary_message() -> None:
    # ws-basic's client sent the bytes 0x00..0x27 (captures/ws-basic.expected.json)
    rec = find("ws-basic.pcap", opcode="binary")
    assert sections(rec)["hex"].splitlines() == [
        "00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|",
        "00000010  10 11 12 13 14 15 16 17  18 19 1a 1b 1c 1d 1e 1f  |................|",
        "00000020  20 21 22 23 24 25 26 27                           | !\"#$%&'|",
    ]


def test_hexdump_of_text_and_its_cap() -> None:
    data = b"hello, capture\x00\xff" + b"A" * 20
    assert hexdump(data, limit=16).splitlines() == [
        "00000000  68 65 6c 6c 6f 2c 20 63  61 70 74 75 72 65 00 ff  |hello, capture..|",
        "… 20 more bytes",
    ]
    # a whole second row, then the short third one
    assert hexdump(data).splitlines()[1:] == [
        "00000010  41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|",
        "00000020  41 41 41 41                                       |AAAA|",
    ]
    assert hexdump(b"") == ""


def test_hex_section_is_capped() -> None:
    record = {"ts": 1.0, "conn": 1, "direction": "server", "opcode": "binary",
              "length": 5000, "compressed": False, "hex": "ab" * 5000, "violations": []}
    lines = sections(record)["hex"].rstrip("\n").splitlines()
    assert lines[-1] == "… 904 more bytes"  # 5000 - 4096
    assert len(lines) == 4096 // 16 + 1


# ------------------------------------------------------------------ wsp header and payload


def test_wsp_header_of_a_publish() -> None:
    # the session's second connection publishes "tick 1" to prices with ACK_REQUESTED
    rec = find("wsp-session-v2.pcap", wsp_type="Publish")
    header = squeeze(sections(rec)["wsp header"])
    assert "version 2" in header
    assert "type Publish (0x0104)" in header  # docs/protocol.md section 6: Publish is 0x0104
    assert "flags ACK_REQUESTED (0x04 = 0b100)" in header  # ACK_REQUESTED is bit 2
    assert "sequence 1" in header  # the first sequenced message of the direction
    assert "timestamp 0 (unset)" in header


def test_session_id_in_decimal_and_hex() -> None:
    record = {"ts": 1.0, "conn": 1, "direction": "client", "opcode": "binary", "length": 8,
              "compressed": False, "hex": "00", "violations": [],
              "wsp": {"version": 2, "type": "Acknowledge", "type_code": 515, "flags": [],
                      "sequence": 0, "session_id": 255, "timestamp": 0,
                      "payload": {"sequence": 41}}}
    header = squeeze(sections(record)["wsp header"])
    assert "session id 255 (0xff)" in header
    assert "type Acknowledge (0x0203)" in header


def test_timestamp_as_utc() -> None:
    # wsp-bare-v2's TextData was built with timestamp 1700000000000000 µs
    rec = find("wsp-bare-v2.pcap", wsp_type="TextData")
    header = squeeze(sections(rec)["wsp header"])
    # 1,700,000,000 s after the epoch is 2023-11-14 22:13:20 UTC
    assert "timestamp 1700000000000000 µs = 2023-11-14 22:13:20.000000 UTC" in header


def test_flags_given_as_bits() -> None:
    record = {"kind": "message", "ts": 1.0, "session": 3, "direction": "client", "length": 30,
              "wsp": {"version": 2, "type": "Publish", "type_code": 260, "flags": 5,
                      "sequence": 2, "session_id": 0, "timestamp": 0,
                      "payload": {"topic": "t", "data": "", "id": 2}},
              "decrypted": True, "batch": 2}
    header = squeeze(sections(record)["wsp header"])
    assert "flags COMPRESSED | ACK_REQUESTED (0x05 = 0b101)" in header
    assert "decrypted True" in header
    assert "batch 2" in header


def test_payload_tree_of_a_subscribe_and_a_publish() -> None:
    tree = sections(find("wsp-session-v2.pcap", wsp_type="Subscribe"))["payload"]
    assert "Subscribe payload" in tree
    assert "topic: prices" in tree  # the subscriber's topic (captures/README.md)
    publish = sections(find("wsp-session-v2.pcap", wsp_type="Publish"))["payload"]
    # "tick 1" is 74 69 63 6b 20 31: bytes shown as hex, their length, and the text
    assert "data: 7469636b2031 (6 bytes)  tick 1" in publish
    assert "id: 1" in publish


def test_payload_tree_nests_lists() -> None:
    tree = sections(find("wsp-session-v2.pcap", wsp_type="Handshake"))["payload"]
    lines = [line.strip(" │├└─") for line in tree.splitlines()]
    # the client offered ack, batch and pubsub with hmac; its nonce is 16 bytes
    assert "capabilities [3]" in lines
    assert {"[0]: ack", "[1]: batch", "[2]: pubsub"} <= set(lines)
    assert "auth: hmac" in lines
    assert any(line.startswith("client_nonce: ") and line.endswith("(16 bytes)")
               for line in lines)


def test_wsp_decode_error_shown() -> None:
    record = {"ts": 1.0, "conn": 1, "direction": "client", "opcode": "binary", "length": 3,
              "compressed": False, "hex": "ffffff", "violations": [],
              "wsp": {"error": "bad header"}}
    got = sections(record)
    assert "error  bad header" in got["wsp header"]
    assert "payload" not in got


# ------------------------------------------------------------------ text and JSON


def test_json_text_pretty_printed() -> None:
    rec = find("ws-basic.pcap", text='{"event": "quote", "symbol": "ACME", "price": 12.5}')
    got = sections(rec)
    assert got["JSON"].splitlines() == [
        "{",
        '  "event": "quote",',
        '  "symbol": "ACME",',
        '  "price": 12.5',
        "}",
    ]
    assert "text" not in got


def test_text_shown_unescaped() -> None:
    rec = find("ws-basic.pcap", text="unicode: żółw 🐢")
    shown = sections(rec)["text"]
    assert "unicode: żółw 🐢" in shown
    assert "\\u" not in shown and "'" not in shown  # not a Python repr
    record = {"ts": 1.0, "conn": 1, "direction": "client", "opcode": "text", "length": 12,
              "compressed": False, "text": 'say "hi"\nbye', "violations": []}
    assert sections(record)["text"].splitlines() == ['say "hi"', "bye"]


def test_json_in_a_wsp_bytes_field() -> None:
    record = {"ts": 1.0, "conn": 1, "direction": "client", "opcode": "binary", "length": 30,
              "compressed": False, "hex": "00", "violations": [],
              "wsp": {"version": 2, "type": "Publish", "type_code": 260, "flags": [],
                      "sequence": 12, "session_id": 0, "timestamp": 0,
                      "payload": {"topic": "prices", "data": b'{"px":1.2}'.hex(), "id": 12}}}
    got = sections(record)
    assert got["JSON (payload.data)"].splitlines() == ["{", '  "px": 1.2', "}"]


# ------------------------------------------------------------------ WebSocket frame


def test_frame_of_client_and_server_messages() -> None:
    client = squeeze(sections(find("ws-basic.pcap", text="hello, capture"))["WebSocket frame"])
    assert "opcode text" in client
    assert "masked True" in client  # client frames are masked (RFC 6455 5.3)
    assert "payload 14 bytes" in client  # len("hello, capture")
    server = squeeze(sections(find("ws-basic.pcap", text="reply 1 to 14 bytes"))[
        "WebSocket frame"])
    assert "masked False" in server


def test_frame_of_a_fragmented_message_and_a_close() -> None:
    frag = squeeze(sections(find("ws-basic.pcap", text="frag-one frag-two frag-three"))[
        "WebSocket frame"])
    # the client sent it in pieces; the decoder counted 4 frames (a leading empty one)
    assert "fragments 4" in frag
    close = squeeze(sections(find("ws-basic.pcap", opcode="close", direction="client"))[
        "WebSocket frame"])
    assert "close code 1000" in close
    assert "close reason bye" in close


def test_frame_of_a_compressed_message() -> None:
    rec = find("ws-deflate.pcapng", direction="client", opcode="text")
    frame = squeeze(sections(rec)["WebSocket frame"])
    assert "RSV1 True (compressed)" in frame
    assert f"payload {len(rec['text'].encode())} bytes after inflation" in frame


def test_frame_details_from_the_decoder() -> None:
    rec = find("ws-basic.pcap", text="hello, capture")
    frame = squeeze(sections(rec, frame={"wire_length": 20, "mask": "0a0b0c0d"})[
        "WebSocket frame"])
    # 14 payload bytes + 2 header + 4 mask key = 20 on the wire
    assert "payload 14 bytes, 20 bytes on the wire" in frame
    assert "masked True (key 0a0b0c0d)" in frame


def test_unmasked_client_frame() -> None:
    rec = find("violations.pcap", text="not masked")
    got = sections(rec)
    assert "masked False" in squeeze(got["WebSocket frame"])
    assert "● unmasked-client-frame" in got["violations"]


# ------------------------------------------------------------------ violations


RULE_16 = ("Nothing but the handshake messages and Close before the HandshakeResponse: "
           "anything else is closed with 1008.")


def test_finding_with_its_rule() -> None:
    # wsp-bare-v2 sends a Subscribe without the session handshake: rule 16
    rec = find("wsp-bare-v2.pcap", wsp_type="Subscribe")
    got = squeeze(text_of(dict(detail_sections(rec))["violations"], width=400))
    assert "wsp-state rule 16 violation culprit: client" in got
    assert f"rule 16: {RULE_16}" in got
    assert "docs/protocol.md S.9 rule 16" in got


def test_invalid_utf8_code() -> None:
    rec = find("violations.pcap", direction="client", opcode="text", conn=2)
    assert "invalid-utf8" in sections(rec)["violations"]


def test_no_violations_section_when_clean() -> None:
    assert "violations" not in sections(find("ws-basic.pcap", text="hello, capture"))


# ------------------------------------------------------------------ events


def test_event_as_a_table() -> None:
    event = {"kind": "closed", "ts": 1700000000.5, "session": 7, "peer": "127.0.0.1:5000",
             "identity": "hmac", "code": 1000, "reason": "bye", "resumable": True}
    got = sections(event)
    assert list(got) == ["closed"]
    lines = {squeeze(line) for line in got["closed"].splitlines()}
    assert "code 1000" in lines
    assert "reason bye" in lines
    assert "resumable true" in lines
    assert "ts 1700000000.5 (2023-11-14 22:13:20.500000 UTC)" in lines
    assert summary_line(event) == "closed 1000 bye"


def test_violation_event_names_its_rule() -> None:
    event = {"kind": "violation", "ts": 1.0, "session": 7, "peer": "p", "identity": None,
             "rule": 27, "code": 1002, "message": "sequence gap: expected 3, got 5"}
    got = squeeze(text_of(dict(detail_sections(event))["violations"], width=400))
    assert "close 1002 sequence gap: expected 3, got 5" in got
    assert ("rule 27: Sequenced messages (Publish, TextData, BinaryData, DeltaUpdate, Error) "
            "are numbered 1, 2, 3... per direction and session; a gap is closed with 1002."
            ) in got
    assert "docs/protocol.md S.9 rule 27" in got


# ------------------------------------------------------------------ summary line


def _wsp(type_: str, code: int, payload: dict[str, Any], seq: int = 0) -> dict[str, Any]:
    return {"ts": 1.0, "conn": 1, "direction": "client", "opcode": "binary", "length": 20,
            "compressed": False, "hex": "00", "violations": [],
            "wsp": {"version": 2, "type": type_, "type_code": code, "flags": [],
                    "sequence": seq, "session_id": 0, "timestamp": 0, "payload": payload}}


def test_summary_lines_by_type() -> None:
    publish = _wsp("Publish", 260, {"topic": "prices", "data": b'{"px":1.2}'.hex(), "id": 12},
                   seq=12)
    assert summary_line(publish) == 'Publish prices#12 {"px":1.2}'
    deliver = _wsp("Deliver", 261, {"topic": "prices", "epoch": 1, "offset": 7,
                                    "data": b"\x00\x01".hex()})
    assert summary_line(deliver) == "Deliver prices@7 <2 bytes>"
    assert summary_line(_wsp("Acknowledge", 515, {"sequence": 41})) == "Ack 41"
    assert summary_line(_wsp("Heartbeat", 3, {"id": 2, "reply": True})) == "Heartbeat reply 2"


def test_summary_lines_of_the_samples() -> None:
    assert summary_line(find("wsp-session-v2.pcap", wsp_type="Publish")) == \
        "Publish prices#1 tick 1"
    deliver = find("wsp-session-v2.pcap", wsp_type="Deliver")
    assert summary_line(deliver) == "Deliver prices@1 tick 1"
    ack = find("wsp-session-v2.pcap", wsp_type="Acknowledge")
    assert summary_line(ack) == "Ack 1"
    assert summary_line(find("ws-basic.pcap", opcode="binary")) == "binary 40 bytes"
    assert summary_line(find("ws-basic.pcap", opcode="close", direction="server")) == \
        "close 1000 bye"
    assert summary_line(find("ws-basic.pcap", opcode="ping")) == "ping 6 bytes ping-1"


def test_summary_shows_control_characters_and_is_cut() -> None:
    record = {"ts": 1.0, "conn": 1, "direction": "client", "opcode": "text", "length": 12,
              "compressed": False, "text": 'say "hi"\nbye\t!', "violations": []}
    assert summary_line(record) == 'say "hi"␊bye␉!'
    assert summary_line(record, 6) == 'say "…'
    assert len(summary_line(find("ws-deflate.pcapng", opcode="text"), 30)) == 30


@pytest.mark.parametrize("name", ["wsp-session-v1.pcap", "node-ws.pcap", "lost-segment.pcap",
                                  "midstream-wsp-v1.pcap", "browser-chromium.pcap"])
def test_every_message_of_a_sample_renders(name: str) -> None:
    for rec in messages(name):
        got = sections(rec)
        assert "WebSocket frame" in got
        assert ("hex" in got) == ("hex" in rec or "text" in rec)
        assert "\n" not in summary_line(rec, 200)


def test_batch_items_in_the_tree() -> None:
    item = {"version": 2, "type": "Publish", "type_code": 260, "flags": [], "sequence": 3,
            "session_id": 0, "timestamp": 0,
            "payload": {"topic": "prices", "data": b"hi".hex(), "id": 3}}
    record = _wsp("Batch", 519, {"messages": [item, item]})
    tree = sections(record)["payload"]
    lines = [line.strip(" │├└─") for line in tree.splitlines()]
    assert "messages [2]" in lines
    # an item's bytes field is known from its own type: "hi" is 68 69
    assert lines.count("data: 6869 (2 bytes)  hi") == 2
    assert summary_line(record) == "Batch of 2"


def test_long_lists_and_data_are_cut() -> None:
    record = _wsp("Handshake", 1, {"capabilities": [f"c{i}" for i in range(250)],
                                    "auth": "none"})
    lines = [line.strip(" │├└─") for line in sections(record)["payload"].splitlines()]
    assert "[199]: c199" in lines
    assert "[200]: c200" not in lines
    assert "… 50 more" in lines
    big = _wsp("Publish", 260, {"topic": "t", "data": ("é" * 5000).encode().hex(), "id": 1},
               seq=1)
    # 10,000 bytes of text: the preview decodes the start only, whole characters
    assert summary_line(big, 20) == "Publish t#1 ééééééé…"
    binary = _wsp("Publish", 260, {"topic": "t", "data": "00" * 10_000, "id": 1}, seq=1)
    assert summary_line(binary) == "Publish t#1 <10000 bytes>"
