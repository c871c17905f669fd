"""Shared helpers: the sample captures and their expected decodings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"


def samples() -> list[tuple[str, Path, dict[str, Any]]]:
    """(name, capture path, expected document) for every sample."""
    out = []
    for expected in sorted(CAPTURES.glob("*.expected.json")):
        name = expected.name.removesuffix(".expected.json")
        found = [p for p in CAPTURES.glob(name + ".*") if not p.name.endswith(".json")]
        assert len(found) == 1, (name, found)
        out.append((name, found[0], json.loads(expected.read_text())))
    return out


def sample_messages(path: Path) -> list[Any]:
    """Every CapturedMessage of the capture at ``path``, decoded to the end."""
    from wsproto_tools.capture import CaptureDecoder, CapturedMessage, open_capture

    reader, close = open_capture(str(path))
    decoder = CaptureDecoder()
    try:
        events = [e for p in reader for e in decoder.packet(p)] + decoder.finish()
    finally:
        close()
    return [e for e in events if isinstance(e, CapturedMessage)]


def _subset_problems(where: str, want: Any, have: Any) -> list[str]:
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{where}: {have!r} is not an object"]
        out: list[str] = []
        for key, value in want.items():
            out += _subset_problems(f"{where}.{key}", value, have.get(key))
        return out
    return [] if want == have else [f"{where}: {have!r} != {want!r}"]


def message_problems(where: str, expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """How one decoded message differs from one expected entry (empty: it matches)."""
    problems: list[str] = []
    for field, value in expected.items():
        if field in ("conn", "direction"):
            continue
        if field == "violations":
            if sorted(got.get("violations", [])) != sorted(value):
                problems.append(f"{where}.violations: {got.get('violations')} != {value}")
        else:
            problems += _subset_problems(f"{where}.{field}", value, got.get(field))
    if "violations" not in expected and got.get("violations"):
        problems.append(f"{where}: unexpected violations {got['violations']}")
    return problems


def compare(expected: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    """Differences between an expected document and decoded NDJSON records.

    Messages are compared per (connection, sender), in order. With ``"match":
    "subsequence"`` the expected messages must appear in that order among the
    decoded ones (others, such as heartbeats, may come in between).
    """
    problems: list[str] = []
    subsequence = expected.get("match") == "subsequence"
    messages = [r for r in records if "record" not in r]
    by_key: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for record in messages:
        by_key.setdefault((record["conn"], record["direction"]), []).append(record)
    want: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for entry in expected["messages"]:
        want.setdefault((entry["conn"], entry["direction"]), []).append(entry)
    for key in sorted(set(by_key) | set(want)):
        got = by_key.get(key, [])
        exp = want.get(key, [])
        if subsequence:
            pos = 0
            for i, e in enumerate(exp):
                while pos < len(got) and message_problems("", e, got[pos]):
                    pos += 1
                if pos == len(got):
                    problems.append(f"{key}: expected message {i} not found in order: {e}")
                    break
                pos += 1
            continue
        if len(got) != len(exp):
            problems.append(f"{key}: {len(got)} messages decoded, {len(exp)} expected")
        for i, (g, e) in enumerate(zip(got, exp, strict=False)):
            problems += message_problems(f"{key}[{i}]", e, g)
    conns = {r["conn"]: r for r in records if r.get("record") == "connection"}
    for entry in expected.get("connections", []):
        have = conns.get(entry["conn"])
        if have is None:
            problems.append(f"connection {entry['conn']} not recognized")
            continue
        problems += _subset_problems(f"connection {entry['conn']}", entry, have)
    if "violations" in expected:
        summary = next(r for r in records if r.get("record") == "summary")
        if summary["violations"] != expected["violations"]:
            problems.append(f"summary violations {summary['violations']} != "
                            f"{expected['violations']}")
    return problems
