"""The replay diff against hand-built outcomes: exact differences, nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wsproto_tools.codec.schema import (
    Acknowledge,
    Batch,
    BinaryData,
    Challenge,
    Deliver,
    Error,
    Flags,
    HandshakeResponse,
    Heartbeat,
    Message,
    Payload,
    Response,
    Sealed,
    Subscribed,
    TextData,
    WindowUpdate,
)
from wsproto_tools.exceptions import ConfigError
from wsproto_tools.replay.cassette import CassetteMessage
from wsproto_tools.replay.diff import (
    ReplayReport,
    build_report,
    diff_connection,
    hexdump,
    learn_noise,
    normal_form,
)
from wsproto_tools.replay.ignore import DEFAULT_IGNORES, IgnoreRules
from wsproto_tools.replay.outcome import ConnOutcome, Latency


def wsp(payload: Payload, t: float = 0.0, **header: Any) -> CassetteMessage:
    return CassetteMessage(1, "server", t, "binary", wsp=Message(payload, **header))


def text(value: str, t: float = 0.0) -> CassetteMessage:
    return CassetteMessage(1, "server", t, "text", text=value)


def binary(data: bytes, t: float = 0.0) -> CassetteMessage:
    return CassetteMessage(1, "server", t, "binary", data=data)


def outcome(*messages: CassetteMessage, **fields: Any) -> ConnOutcome:
    return ConnOutcome(1, received=list(messages), **fields)


def resp(rid: int, data: dict[str, Any] | bytes, **header: Any) -> CassetteMessage:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return wsp(Response(rid, body), **header)


def session(
    *messages: CassetteMessage, nonce: bytes = b"\1" * 16, sid: int = 7, **fields: Any
) -> ConnOutcome:
    opening = [
        wsp(Challenge(nonce, ("hmac",))),
        wsp(
            HandshakeResponse(
                sid, ("pubsub",), resume_token=nonce, server_nonce=nonce, heartbeat_ms=5000
            )
        ),
    ]
    return outcome(*opening, *messages, engine=True, subprotocol="wsp.v2", **fields)


def test_an_identical_pair_has_no_difference() -> None:
    rec = session(resp(1, {"a": 1}), text("hi"), binary(b"\x00\x01"))
    diff = diff_connection(rec, session(resp(1, {"a": 1}), text("hi"), binary(b"\x00\x01")))
    assert diff.differences == 0
    assert diff.counts["matched"] == 5
    assert build_report([(rec, rec)]).exit_status() == 0


def test_rewritten_values_are_ignored_by_default() -> None:
    rec = session(resp(1, {"a": 1}, sequence=3, timestamp=111, session_id=7))
    rep = session(
        resp(1, {"a": 1}, sequence=9, timestamp=999, session_id=42, flags=Flags.ENCRYPTED),
        nonce=b"\2" * 16,
        sid=42,
    )
    assert diff_connection(rec, rep).differences == 0
    strict = diff_connection(rec, rep, defaults=False)
    assert [c.recorded.type for c in strict.changed] == [
        "Challenge",
        "HandshakeResponse",
        "Response",
    ]
    assert strict.changed[2].paths == [
        "header.flags.encrypted",
        "header.sequence",
        "header.session_id",
        "header.timestamp",
    ]


def test_a_changed_response_field_gives_exactly_that_path() -> None:
    rec = outcome(resp(1, {"price": 10, "name": "x"}), resp(2, {"price": 3}))
    rep = outcome(resp(1, {"price": 11, "name": "x"}), resp(2, {"price": 3}))
    diff = diff_connection(rec, rep)
    assert diff.differences == 1
    [change] = diff.changed
    assert change.paths == ["payload.data.price"]
    assert change.kind == "json"
    assert change.recorded.key == "id=1"
    assert '-      "price": 10' in change.diff
    assert '+      "price": 11' in change.diff
    assert change.diff[:2] == ["--- recorded", "+++ replayed"]


def test_an_ignored_path_gives_no_difference() -> None:
    rec = outcome(resp(1, {"ts": 1, "v": 2}), text('{"ts": 5, "v": 1}'))
    rep = outcome(resp(1, {"ts": 9, "v": 2}), text('{"ts": 6, "v": 1}'))
    assert diff_connection(rec, rep).differences == 2
    diff = diff_connection(rec, rep, ["payload.data.ts", "payload.ts"])
    assert diff.differences == 0
    assert diff.counts["hidden"] == 2
    assert diff_connection(rec, rep, ["**.ts"]).differences == 0


def test_a_type_scoped_rule_applies_to_its_type_only() -> None:
    rec = outcome(resp(1, {"ts": 1}), wsp(Deliver("t", 0, 0, b'{"ts": 1}')))
    rep = outcome(resp(1, {"ts": 2}), wsp(Deliver("t", 0, 0, b'{"ts": 2}')))
    diff = diff_connection(rec, rep, ["Deliver:payload.data.ts"])
    assert [(c.recorded.type, c.paths) for c in diff.changed] == [("Response", ["payload.data.ts"])]
    text_only = diff_connection(
        outcome(text('{"ts": 1}')), outcome(text('{"ts": 2}')), ["text:payload.ts"]
    )
    assert text_only.differences == 0


def test_wildcards_reach_list_items() -> None:
    rec = outcome(resp(1, {"items": [{"p": 1, "q": 1}, {"p": 2, "q": 1}]}))
    rep = outcome(resp(1, {"items": [{"p": 5, "q": 1}, {"p": 6, "q": 2}]}))
    diff = diff_connection(rec, rep, ["payload.data.items.*.p"])
    assert diff.changed[0].paths == ["payload.data.items.1.q"]


def test_missing_extra_and_reordered_exactly() -> None:
    rec = outcome(resp(1, {}), resp(2, {}), resp(3, {}), resp(4, {}), text("a"), text("b"))
    rep = outcome(
        resp(1, {}), resp(3, {}), resp(2, {}), resp(5, {}), text("a"), text("b"), text("c")
    )
    diff = diff_connection(rec, rep)
    assert [m.key for m in diff.missing] == ["id=4"]
    assert [(m.type, m.index) for m in diff.extra] == [("Response", 3), ("text", 6)]
    assert [(r.recorded.key, r.replayed.index) for r in diff.reordered] == [("id=2", 2)]
    assert diff.changed == []
    assert diff.differences == 4


def test_deliver_offsets_shifted_uniformly_are_equal_but_a_hole_is_missing() -> None:
    def delivers(start: int, epoch: int, skip: int | None = None) -> list[CassetteMessage]:
        return [wsp(Subscribed("t", epoch, start))] + [
            wsp(Deliver("t", epoch, start + n, b"%d" % n)) for n in range(5) if n != skip
        ]

    rec = outcome(*delivers(0, 1))
    assert diff_connection(rec, outcome(*delivers(1000, 77))).differences == 0
    hole = diff_connection(rec, outcome(*delivers(1000, 77, skip=2)))
    assert [m.key for m in hole.missing] == ["topic=t +2"]
    assert hole.differences == 1
    assert diff_connection(rec, outcome(*delivers(1000, 77)), defaults=False).differences == 6


def test_deliveries_on_two_topics_may_interleave_differently() -> None:
    a = [wsp(Deliver("a", 0, n, b"x")) for n in range(3)]
    b = [wsp(Deliver("b", 0, n, b"y")) for n in range(3)]
    rec = outcome(*[m for pair in zip(a, b, strict=True) for m in pair])
    assert diff_connection(rec, outcome(*a, *b)).differences == 0
    swapped = diff_connection(rec, outcome(a[1], a[0], a[2], *b))
    assert [r.recorded.key for r in swapped.reordered] == ["topic=a +0"]


def test_engine_traffic_is_counted_not_compared() -> None:
    rec = session(wsp(Heartbeat(1)), resp(1, {}), wsp(Acknowledge(4)))
    rep = session(
        resp(1, {}),
        wsp(Acknowledge(2)),
        wsp(Acknowledge(3)),
        wsp(WindowUpdate(8)),
        wsp(Heartbeat(1, True)),
    )
    diff = diff_connection(rec, rep)
    assert diff.differences == 0
    assert (diff.counts["engine_recorded"], diff.counts["engine_replayed"]) == (2, 4)


def test_an_opening_the_player_left_out_is_engine_traffic() -> None:
    rec = session(resp(1, {}))
    rep = outcome(resp(1, {}), engine=True, subprotocol="wsp.v2")
    diff = diff_connection(rec, rep)
    assert diff.differences == 0
    assert diff.counts["engine_recorded"] == 2


def test_a_changed_close_code_is_reported() -> None:
    rec = outcome(text("a"), close_code=1000, close_reason="bye", closed_by="server")
    rep = outcome(text("a"), close_code=1011, close_reason="bye", closed_by="server")
    diff = diff_connection(rec, rep)
    assert diff.close is not None
    assert diff.close.fields == ("code",)
    assert (diff.close.recorded_code, diff.close.replayed_code) == (1000, 1011)
    assert diff.differences == 1
    assert diff_connection(rec, rep, ["close.code"]).differences == 0


def test_a_handshake_that_now_fails() -> None:
    rec = session(resp(1, {}))
    rep = outcome(handshake_error="HTTP 403", failure="refused", status=403)
    diff = diff_connection(rec, rep)
    assert diff.handshake_failed is not None
    assert diff.handshake_failed.failure == "refused"
    assert diff.missing == []  # not every message on top of it
    assert diff.differences == 1
    report = build_report([(rec, rep)])
    assert (report.failure, report.exit_status()) == ("refused", 5)
    down = outcome(handshake_error="connection refused", failure="unreachable")
    assert build_report([(rec, down), (rec, down)]).exit_status() == 4
    assert build_report([(rec, down), (rec, session(resp(1, {})))]).exit_status() == 1


def test_a_changed_subprotocol_is_reported() -> None:
    rec = outcome(text("a"), subprotocol="chat.v1")
    diff = diff_connection(rec, outcome(text("a"), subprotocol=None))
    assert [(c.field, c.recorded, c.replayed) for c in diff.handshake_changed] == [
        ("subprotocol", "chat.v1", None)
    ]


def test_json_payloads_compare_as_json() -> None:
    rec = outcome(text('{"a": 1, "b": [1, 2]}'), binary(b'{"x":true}'), resp(1, b'{"k": 1.0}'))
    rep = outcome(text('{ "b":[1,2],"a":1 }'), binary(b'  {"x": true}\n'), resp(1, b'{"k":1}'))
    assert diff_connection(rec, rep).differences == 0
    # true is not 1, and a string is not a number
    diff = diff_connection(
        outcome(text('{"a": true, "b": "1"}')), outcome(text('{"a": 1, "b": 1}'))
    )
    assert diff.changed[0].paths == ["payload.a", "payload.b"]


def test_a_non_json_binary_payload_gives_a_hex_diff() -> None:
    old = bytes(range(40)) + b"\xff"
    new = bytes(range(40)) + b"\xfe"
    diff = diff_connection(outcome(binary(old)), outcome(binary(new)))
    [change] = diff.changed
    assert change.kind == "hex"
    assert change.paths == ["payload"]
    assert change.diff[:2] == ["--- recorded payload", "+++ replayed payload"]
    assert "-00000020 20 21 22 23 24 25 26 27  ff" + " " * 22 + "| !\"#$%&'.|" in change.diff
    wsp_diff = diff_connection(outcome(wsp(BinaryData(old))), outcome(wsp(BinaryData(new))))
    assert wsp_diff.changed[0].kind == "hex"
    assert wsp_diff.changed[0].paths == ["payload.data"]


def test_hexdump_layout() -> None:
    assert hexdump(b"AB") == ["00000000 41 42" + " " * 44 + "|AB|"]


def test_a_batch_is_compared_as_its_items() -> None:
    items = (Message(Response(1, b"1")), Message(Response(2, b"2")))
    rec = outcome(wsp(Batch(items)))
    rep = outcome(wsp(Response(1, b"1")), wsp(Response(2, b"3")))
    diff = diff_connection(rec, rep)
    [change] = diff.changed
    assert (change.recorded.index, change.recorded.item) == (0, 1)
    assert change.paths == ["payload.data"]


def test_errors_match_by_code_when_the_sequence_moved() -> None:
    rec = outcome(wsp(Error(1008, "no", ref_sequence=4)))
    rep = outcome(wsp(Error(1008, "no!", ref_sequence=9)))
    diff = diff_connection(rec, rep)
    assert diff.missing == diff.extra == []
    assert diff.changed[0].paths == ["payload.message", "payload.ref_sequence"]


def test_an_encrypted_side_is_compared_by_header_only() -> None:
    rec = outcome(wsp(Sealed(int(Response.TYPE), b"\x99" * 20)))
    rep = outcome(wsp(TextData("anything")))
    assert diff_connection(rec, rep).differences == 2  # not the same type: missing + extra
    rep2 = outcome(wsp(Response(1, b"x")))
    diff = diff_connection(rec, rep2)  # paired by position, though it has no readable id
    assert diff.differences == 0
    assert diff.counts["unchecked"] == 1
    pair = diff_connection(outcome(wsp(Sealed(int(TextData.TYPE), b"\1"))), rep)
    assert pair.differences == 0
    assert pair.counts["unchecked"] == 1


def test_whole_type_count_and_order_rules() -> None:
    rec = outcome(text("a"), wsp(TextData("x")), wsp(TextData("y")))
    rep = outcome(wsp(TextData("y")), wsp(TextData("x")), wsp(TextData("z")))
    assert diff_connection(rec, rep, ["TextData"]).differences == 1  # the missing text
    counted = diff_connection(rec, rep, ["TextData:count", "text:count"])
    # x is found again (aligned by content), y and z pair up: one change, an extra y
    assert [c.paths for c in counted.changed] == [["payload.text"]]
    ordered = diff_connection(
        outcome(resp(1, {}), resp(2, {})), outcome(resp(2, {}), resp(1, {})), ["Response:order"]
    )
    assert ordered.differences == 0


def test_learn_noise_over_three_runs_learns_the_varying_ts_only() -> None:
    def run(ts: int) -> ConnOutcome:
        return session(
            resp(1, {"ts": ts, "v": 1}, timestamp=ts),
            wsp(Deliver("t", 3, 10 + ts, b'{"n": 1}')),
            text("same"),
            nonce=bytes([ts]) * 16,
            sid=ts,
        )

    runs = [run(1), run(2), run(3)]
    learned = learn_noise(runs)
    assert learned == {"Response:payload.data.ts"}
    report = build_report([(run(50), run(60))], learned=learned)
    assert report.differences == 0
    assert report.to_json()["learned"] == ["Response:payload.data.ts"]


def test_learn_noise_generalizes_list_indices_and_counts() -> None:
    runs = [
        outcome(resp(1, {"items": [{"ts": n}, {"ts": n}]}), *[text("x")] * n) for n in (1, 2, 3)
    ]
    assert learn_noise(runs) == {"Response:payload.data.items.*.ts", "text:count"}
    IgnoreRules.of(learned=learn_noise(runs))  # the learned rules parse


def test_latency_percentiles() -> None:
    rec = outcome(latencies=[Latency(n, n, s) for n, s in enumerate([0.1, 0.2, 0.3, 0.4])])
    rep = outcome(latencies=[Latency(0, 0, 1.0)])
    diff = diff_connection(rec, rep)
    assert (diff.latency_recorded.p50, diff.latency_recorded.p99) == (0.2, 0.4)
    assert (diff.latency_replayed.count, diff.latency_replayed.p50) == (1, 1.0)
    assert diff.differences == 0


def test_the_json_report() -> None:
    rec = outcome(resp(1, {"a": 1}), text("x"), close_code=1000)
    rep = outcome(resp(1, {"a": 2}), close_code=1000)
    report = build_report([(rec, rep)], ignore=["payload.ts"])
    doc = json.loads(json.dumps(report.to_json()))
    assert set(doc) == {
        "differences",
        "exit_status",
        "failure",
        "totals",
        "ignored",
        "learned",
        "default_ignores",
        "relative",
        "connections",
    }
    assert (doc["differences"], doc["exit_status"], doc["failure"]) == (2, 1, None)
    assert doc["ignored"] == ["payload.ts"]
    assert doc["default_ignores"] == list(DEFAULT_IGNORES)
    assert doc["totals"]["missing"] == 1 and doc["totals"]["changed"] == 1
    [conn] = doc["connections"]
    assert conn["missing"] == [{"index": 1, "item": None, "t": 0.0, "type": "text", "key": None}]
    assert conn["changed"][0]["paths"] == ["payload.data.a"]
    assert conn["close"] is None
    assert conn["latency"]["recorded"] == {"count": 0, "p50": None, "p99": None}
    assert isinstance(report, ReplayReport)


def test_bad_rules_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="'ts'"):
        diff_connection(outcome(), outcome(), ["ts"])


def test_normal_form() -> None:
    form = normal_form(wsp(Response(3, b'{"x": [1]}'), sequence=2))
    assert form == {
        "opcode": "binary",
        "header": {
            "sequence": 2,
            "session_id": 0,
            "timestamp": 0,
            "flags": {"compressed": False, "encrypted": False, "ack_requested": False},
        },
        "type": "Response",
        "payload": {"id": 3, "data": {"x": [1]}, "status": 0},
    }
    assert normal_form(text("plain")) == {"opcode": "text", "payload": "plain"}
    assert normal_form(binary(b"\x00")) == {"opcode": "binary", "payload": "00"}


def test_an_ignored_list_item_keeps_the_indices_after_it() -> None:
    rec = outcome(resp(1, {"items": [{"p": 1}, {"p": 2}]}))
    rep = outcome(resp(1, {"items": [{"p": 9}, {"p": 3}]}))
    diff = diff_connection(rec, rep, ["payload.data.items.0"])
    assert diff.changed[0].paths == ["payload.data.items.1.p"]
    assert '         "<ignored>",' in diff.changed[0].diff


def test_a_recorded_cassette_against_itself() -> None:
    from wsproto_tools.replay.cassette import read_cassette
    from wsproto_tools.replay.outcome import recorded_outcome

    head = '{"conn":1,"direction":"server","opcode":"binary","wsp":'
    lines = [
        '{"conn":1,"subprotocols":["wsp.v2"]}',
        head + '{"type":"Challenge","payload":{"nonce":"00","methods":["hmac"]}},"t":0}',
        '{"conn":1,"direction":"client","t":0.1,"opcode":"binary","wsp":{"type":"Handshake"}}',
        head + '{"type":"HandshakeResponse","payload":{"session_id":5}},"t":0.2}',
        '{"conn":1,"direction":"client","t":0.3,"opcode":"text","text":"{\\"q\\": 1}"}',
        '{"conn":1,"direction":"server","t":0.4,"opcode":"text","text":"{\\"a\\": 1}"}',
        head + '{"type":"Heartbeat","payload":{"id":1}},"t":0.5}',
        '{"conn":1,"direction":"server","t":0.6,"opcode":"close","close_code":1000}',
    ]
    recorded = recorded_outcome(read_cassette(lines), 1)
    diff = diff_connection(recorded, recorded)
    assert diff.differences == 0
    assert diff.counts["matched"] == 3 and diff.counts["engine_recorded"] == 1
    assert diff.latency_recorded.count == 1  # the text; the Handshake is the engine's
