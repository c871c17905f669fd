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


def compare(expected: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    """Differences between an expected document and decoded NDJSON records."""
    problems: list[str] = []
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
        if len(got) != len(exp):
            problems.append(f"{key}: {len(got)} messages decoded, {len(exp)} expected")
        for i, (g, e) in enumerate(zip(got, exp, strict=False)):
            for field, value in e.items():
                if field in ("conn", "direction"):
                    continue
                if field == "wsp":
                    have = g.get("wsp") or {}
                    for k, v in value.items():
                        if have.get(k) != v:
                            problems.append(f"{key}[{i}].wsp.{k}: {have.get(k)!r} != {v!r}")
                elif g.get(field) != value:
                    problems.append(f"{key}[{i}].{field}: {g.get(field)!r} != {value!r}")
            if "violations" not in e and g["violations"]:
                problems.append(f"{key}[{i}]: unexpected violations {g['violations']}")
    conns = {r["conn"]: r for r in records if r.get("record") == "connection"}
    for entry in expected.get("connections", []):
        have = conns.get(entry["conn"])
        if have is None:
            problems.append(f"connection {entry['conn']} not recognized")
            continue
        for field, value in entry.items():
            if have.get(field) != value:
                problems.append(f"connection {entry['conn']}.{field}: {have.get(field)!r} != "
                                f"{value!r}")
    return problems
