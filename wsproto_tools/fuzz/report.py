"""The JSON report of a fuzz run (schema: ``report_schema.json`` next to this file).

:func:`build_report` turns results into one JSON-ready object: run metadata, a
summary, per-area counts and a ``cases`` list in id order. Every case carries
its ``id``, ``area``, ``description``, behaviour ``verdict``, ``close_verdict``,
``expected`` and ``observed`` behaviour, ``duration`` and the ``wire`` log.
The HTML report is rendered from this same object.
"""

from __future__ import annotations

__all__ = ["SCHEMA_PATH", "build_report", "case_entry", "failed_count", "load_schema"]

import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from wsproto_tools.fuzz.catalog import AREAS
from wsproto_tools.fuzz.model import Behavior, CaseResult, CloseVerdict, Event

SCHEMA_PATH = Path(__file__).with_name("report_schema.json")
REPORT_VERSION = 1


def load_schema() -> dict[str, Any]:
    """The report's JSON Schema (draft 2020-12)."""
    text = resources.files("wsproto_tools.fuzz").joinpath("report_schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _events(events: tuple[Event, ...] | list[Event]) -> list[dict[str, Any]]:
    return [event.to_json() for event in events]


def case_entry(result: CaseResult) -> dict[str, Any]:
    """One entry of the report's ``cases`` list."""
    case = result.case
    expect = case.expect
    return {
        "id": case.id,
        "area": AREAS[case.top],
        "area_number": case.top,
        "description": case.description,
        "expectation": case.expectation,
        "rfc": case.rfc,
        "verdict": result.behavior.value,
        "close_verdict": result.close.value,
        "failed": result.failed,
        "result": result.result,
        "close_result": result.close_result,
        "expected": {
            "events": _events(expect.ok),
            "non_strict": [_events(alt) for alt in expect.non_strict],
            "informational": [_events(alt) for alt in expect.informational],
            "closed_by_me": expect.closed_by_me,
            "close_codes": list(expect.close_codes),
            "require_clean": expect.require_clean,
        },
        "observed": {
            "events": _events(result.observed),
            "closed_by_me": result.closed_by_me,
            "clean": result.clean,
            "remote_close_code": result.remote_close_code,
            "remote_close_reason": result.remote_close_reason,
            "local_close_code": result.local_close_code,
            "extensions": result.extensions,
        },
        "duration": round(result.duration, 4),
        "wire": result.wire,
    }


def failed_count(results: list[CaseResult]) -> int:
    """How many cases failed (behaviour FAILED, or close FAILED / WRONG CODE / UNCLEAN)."""
    return sum(1 for result in results if result.failed)


def build_report(
    results: list[CaseResult],
    *,
    mode: str,
    target: str,
    started: str,
    duration: float,
    options: dict[str, Any],
    interrupted_of: int | None = None,
) -> dict[str, Any]:
    """The whole report object for ``results``.

    ``interrupted_of`` is the number of cases selected when the run was stopped
    before they all finished: the report then says so (``interrupted``).
    """
    ordered = sorted(results, key=lambda r: r.case.key)
    areas: dict[int, list[CaseResult]] = {}
    for result in ordered:
        areas.setdefault(result.case.top, []).append(result)
    extra: dict[str, Any] = {}
    if interrupted_of is not None:
        extra["interrupted"] = {"finished": len(ordered), "selected": interrupted_of}
    return {
        "report_version": REPORT_VERSION,
        "tool": "wsp fuzz",
        "suite": "rfc6455",
        "mode": mode,
        "target": target,
        "started": started,
        "duration": round(duration, 3),
        **extra,
        "options": options,
        "summary": _counts(ordered),
        "areas": [
            {"area": AREAS[number], "area_number": number, **_counts(items)}
            for number, items in sorted(areas.items())
        ],
        "cases": [case_entry(result) for result in ordered],
    }


def _counts(results: list[CaseResult]) -> dict[str, Any]:
    behavior = Counter(r.behavior.value for r in results)
    close = Counter(r.close.value for r in results)
    return {
        "cases": len(results),
        "failed": failed_count(results),
        "behavior": {v.value: behavior.get(v.value, 0) for v in Behavior},
        "close": {v.value: close.get(v.value, 0) for v in CloseVerdict},
    }
