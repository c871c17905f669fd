"""Ignore rules: parsing, matching, files, and the errors that name a bad rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsproto_tools.exceptions import ConfigError
from wsproto_tools.replay.ignore import (
    DEFAULT_IGNORES,
    RELATIVE_FIELDS,
    IgnoreRules,
    parse_rule,
    parse_rules,
    read_ignore_file,
)


def test_rule_forms() -> None:
    rule = parse_rule("payload.ts")
    assert (rule.scope, rule.segments, rule.kind) == (None, ("payload", "ts"), "field")
    scoped = parse_rule(" Deliver:payload.data.ts ")
    assert (scoped.text, scoped.scope, scoped.segments) == (
        "Deliver:payload.data.ts",
        "Deliver",
        ("payload", "data", "ts"),
    )
    assert parse_rule("Heartbeat").kind == "type"
    assert parse_rule("TextData:count").kind == "count"
    assert parse_rule("order").kind == "order"
    assert parse_rule("close.reason").kind == "close"
    assert parse_rule("handshake.subprotocol").kind == "handshake"
    assert parse_rule("text:payload.ts").scope == "text"
    assert parse_rule("**.ts").segments == ("**", "ts")


@pytest.mark.parametrize(
    ("rule", "path", "expected"),
    [
        ("payload.ts", ("payload", "ts"), True),
        ("payload.ts", ("payload", "ts", "ms"), True),  # under it
        ("payload.ts", ("payload", "tsx"), False),
        ("payload.ts", ("payload",), False),
        ("payload.items.*.p", ("payload", "items", 3, "p"), True),
        ("payload.items.*.p", ("payload", "items", 3, "q"), False),
        ("**.ts", ("payload", "a", "b", "ts"), True),
        ("**.ts", ("ts",), True),
        ("payload.**.ts", ("payload", "ts"), True),
        ("header.*", ("header", "flags", "encrypted"), True),
    ],
)
def test_matching(rule: str, path: tuple[str | int, ...], expected: bool) -> None:
    assert parse_rule(rule).matches(path) is expected


def test_scope() -> None:
    rule = parse_rule("Deliver:payload.data")
    assert rule.applies_to("Deliver")
    assert not rule.applies_to("Response")
    assert parse_rule("payload.data").applies_to("text")


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("", "empty"),
        ("ts", "a path starts with header, payload"),
        ("Nope:payload.x", "'Nope' is no message type"),
        ("deliver:payload.x", "'deliver' is no message type"),
        ("Response:", "nothing after ':'"),
        ("Response:payload.dat", "Response has no field 'dat' (payload fields: id, data, status)"),
        ("TextData:payload.data", "TextData has no field 'data' (payload fields: text)"),
        ("header.seq", "the header has sequence, session_id, timestamp, flags"),
        ("header.flags.zip", "header.flags has compressed, encrypted, ack_requested"),
        ("payload..ts", "none empty"),
        ("count.x", "'count' stands alone"),
        ("Deliver:close.code", "the connection's"),
        ("close.when", "close has close.code, close.reason"),
        ("handshake", "write handshake.subprotocol"),
        ("Batch:payload.messages", "a Batch's items are compared"),
    ],
)
def test_bad_rules_are_named(rule: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rule(rule)
    assert str(info.value).startswith(f"ignore rule {rule!r}: ")
    assert problem in str(info.value)


def test_the_defaults_parse_and_relative_fields_are_fields() -> None:
    assert [r.origin for r in parse_rules(DEFAULT_IGNORES, "default")] == ["default"] * len(
        DEFAULT_IGNORES
    )
    assert all(parse_rule(f).kind == "field" for f in RELATIVE_FIELDS)


def test_rules_in_force() -> None:
    rules = IgnoreRules.of(["payload.ts", "payload.ts"], ["Response:count"])
    assert rules.texts("ignore") == ["payload.ts"]
    assert rules.texts("learned") == ["Response:count"]
    assert rules.texts("default") == list(DEFAULT_IGNORES)
    assert rules.count_varies("Response") and not rules.count_varies("Deliver")
    assert [r.text for r in rules.fields_for("Challenge", user_only=True)] == ["payload.ts"]
    assert "Challenge:payload.nonce" in [r.text for r in rules.fields_for("Challenge")]
    assert IgnoreRules.of(defaults=False).rules == []
    close = IgnoreRules.of(["close"])
    assert close.connection("close.code") and close.connection("close.reason")
    assert not IgnoreRules.of(["close.reason"]).connection("close.code")


def test_an_ignore_file(tmp_path: Path) -> None:
    path = tmp_path / "ignore.txt"
    path.write_text("# noise\n\npayload.ts   # the clock\n  Deliver:payload.data.ts\n")
    assert read_ignore_file(path) == ["payload.ts", "Deliver:payload.data.ts"]
    path.write_text("payload.ts\nheader.nope\n")
    with pytest.raises(ConfigError, match=r"ignore\.txt line 2: ignore rule 'header\.nope'"):
        read_ignore_file(path)
    with pytest.raises(ConfigError, match="cannot read it"):
        read_ignore_file(tmp_path / "missing.txt")
