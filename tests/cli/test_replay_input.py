"""wsp replay's inputs: every sample capture as a cassette, against what its senders logged."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from wsproto_tools.cli.replay_input import input_kind, load_input
from wsproto_tools.codec.jsonform import message_to_json
from wsproto_tools.exceptions import CaptureUnreadable, ConfigError, NotACapture
from wsproto_tools.replay.cassette import CassetteMessage, read_cassette

CAPTURES = Path(__file__).parents[2] / "captures"
SAMPLES = sorted(p for p in CAPTURES.iterdir() if ".pcap" in p.name)


def expected_of(path: Path) -> dict[str, Any]:
    name = path.name.split(".pcap")[0]
    result: dict[str, Any] = json.loads((CAPTURES / f"{name}.expected.json").read_text())
    return result


def matches(message: CassetteMessage, want: dict[str, Any]) -> bool:
    """``want`` (a sender's log line) says the same as the cassette's message."""
    if message.conn != want["conn"] or message.direction != want["direction"]:
        return False
    if message.opcode != want["opcode"]:
        return False
    if "text" in want and message.payload() != want["text"].encode():
        return False
    if "hex" in want and message.payload().hex() != want["hex"]:
        return False
    if "close_code" in want and message.opcode == "close" and (
            message.close_code, message.close_reason) != (want["close_code"],
                                                         want.get("close_reason", "")):
        return False
    if "wsp" in want:
        assert message.wsp is not None
        got = message_to_json(message.wsp)
        if got["type"] != want["wsp"]["type"]:
            return False
        payload = want["wsp"].get("payload", {})
        if any(str(got["payload"].get(k)) != str(v) for k, v in payload.items()):
            return False
    return True


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_sample_becomes_the_cassette_its_senders_logged(path: Path) -> None:
    expected = expected_of(path)
    cassette = load_input(str(path))
    assert input_kind(str(path)) == "capture"
    wanted = expected["messages"]
    if expected.get("match") == "subsequence":  # per connection, in order
        for conn in {w["conn"] for w in wanted}:
            it = iter(cassette.messages_of(conn))
            for want in (w for w in wanted if w["conn"] == conn):
                assert any(matches(m, want) for m in it), want
        return
    # per connection and sender, in order (the two directions interleave freely)
    for conn in {w["conn"] for w in wanted}:
        for direction in ("client", "server"):
            want = [w for w in wanted if w["conn"] == conn and w["direction"] == direction]
            got = [m for m in cassette.messages_of(conn) if m.direction == direction
                   and m.opcode != "continuation"]
            assert len(got) == len(want), (conn, direction)
            for message, line in zip(got, want, strict=True):
                assert matches(message, line), (message, line)


def test_the_subprotocol_and_path_come_from_the_upgrade() -> None:
    cassette = load_input(str(CAPTURES / "wsp-session-v2.pcap"))
    first = cassette.connections[1]
    assert first.subprotocols == ("wsp.v2",) and first.path == "/"
    assert cassette.connections[1].wsp_version == 2


def test_a_cassette_and_decode_ndjson_are_told_apart(tmp_path: Path) -> None:
    cassette_file = tmp_path / "c.ndjson"
    cassette_file.write_text(
        '{"conn":1,"path":"/x","subprotocols":[]}\n'
        '{"conn":1,"direction":"client","t":0,"opcode":"text","text":"hi"}\n')
    assert input_kind(str(cassette_file)) == "cassette"
    assert load_input(str(cassette_file)).messages[0].text == "hi"
    # the NDJSON of wsp decode (a real run's lines, with ts/length/packet)
    records = tmp_path / "d.ndjson.gz"
    with gzip.open(records, "wt") as out:
        out.write('{"ts":1700000000.5,"conn":4,"direction":"client","opcode":"text",'
                  '"length":2,"compressed":false,"text":"hi","violations":[],"packet":4}\n')
    assert input_kind(str(records)) == "records"
    got = load_input(str(records))
    assert list(got.connections) == [4] and got.messages[0].payload() == b"hi"


def test_conn_keeps_the_chosen_connections_and_names_a_missing_one() -> None:
    path = str(CAPTURES / "violations.pcap")
    assert list(load_input(path, [2]).connections) == [2]
    assert {m.conn for m in load_input(path, [2, 3]).messages} == {2, 3}
    with pytest.raises(ConfigError, match="no connection 9"):
        load_input(path, [9])


def test_bad_inputs_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(CaptureUnreadable):
        load_input(str(tmp_path / "missing.pcap"))
    garbage = tmp_path / "g.pcap"
    garbage.write_bytes(b"\x00\x01 not a capture at all" * 4)
    with pytest.raises(NotACapture):
        load_input(str(garbage))
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"conn":1}\n{"conn":1,"direction":"up","t":0,"opcode":"text"}\n')
    with pytest.raises(ConfigError, match="line 2"):
        load_input(str(bad))
    # what --to-cassette writes reads back the same
    cassette = load_input(str(CAPTURES / "ws-basic.pcap"))
    again = read_cassette(cassette.lines())
    assert [m.payload() for m in again.messages] == [m.payload() for m in cassette.messages]
