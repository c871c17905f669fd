"""Every sample capture decodes to what its sending programs logged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wsproto_tools.cli.main import cli

from .samples import compare, samples

SAMPLES = samples()


def ndjson(path: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(cli, ["decode", "--ndjson", *args, str(path)])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    return result.exit_code, records, result.stderr


def test_there_are_samples() -> None:
    assert len(SAMPLES) >= 8


@pytest.mark.parametrize(("name", "path", "expected"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_sample_matches_expected(name: str, path: Path, expected: dict[str, Any]) -> None:
    code, records, stderr = ndjson(path)
    assert code == 0, stderr
    assert compare(expected, records) == []
    summary = records[-1]
    assert summary["record"] == "summary"
    assert summary["warnings"] >= expected.get("min_warnings", 0)
    if not expected.get("min_warnings"):
        assert summary["warnings"] == 0, stderr


@pytest.mark.parametrize(("name", "path", "expected"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_message_keys(name: str, path: Path, expected: dict[str, Any]) -> None:
    _, records, _ = ndjson(path)
    for record in records:
        if "record" in record:
            assert record["record"] in ("connection", "summary")
            continue
        assert isinstance(record["ts"], float)
        assert isinstance(record["conn"], int)
        assert record["direction"] in ("client", "server")
        assert record["opcode"] in ("text", "binary", "ping", "pong", "close", "continuation")
        assert isinstance(record["length"], int)
        assert isinstance(record["compressed"], bool)
        assert ("text" in record) != ("hex" in record)
        if record["opcode"] == "close":
            assert "close_code" in record and "close_reason" in record
        assert isinstance(record["violations"], list)


def test_lost_segment_warning_names_the_packet() -> None:
    path = next(p for name, p, _ in SAMPLES if name == "lost-segment")
    code, _, stderr = ndjson(path)
    assert code == 0
    assert "packet" in stderr and "not captured" in stderr


def test_strict_exit_status() -> None:
    path = next(p for name, p, _ in SAMPLES if name == "violations")
    code, _, _ = ndjson(path, "--strict")
    assert code == 1
    clean = next(p for name, p, _ in SAMPLES if name == "ws-basic")
    code, _, _ = ndjson(clean, "--strict")
    assert code == 0
