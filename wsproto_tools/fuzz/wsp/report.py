"""The JSON report of a wsp suite run (docs/fuzz.md, "The wsp suite's report").

The same top-level keys as the rfc6455 suite's report (``report_version``,
``tool``, ``suite``, ``mode``, ``target``, ``started``, ``duration``,
``interrupted``, ``options``, ``summary``), then what a stateful run adds:
``findings`` (one per kind, with its count and reproducer), ``states`` and
``transitions`` reached, ``coverage`` over time, ``memory`` and ``canary``.
"""

from __future__ import annotations

__all__ = ["build_report", "build_serve_report", "load_schema"]

from collections import Counter
from typing import Any

from wsproto_tools.fuzz.wsp.campaign import CampaignResult
from wsproto_tools.fuzz.wsp.findings import ORACLES, Finding

REPORT_VERSION = 1


def load_schema() -> dict[str, Any]:
    """The report's JSON Schema (draft 2020-12): ``report_schema.json`` here."""
    import json
    from importlib import resources

    text = resources.files("wsproto_tools.fuzz.wsp").joinpath("report_schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _finding(finding: Finding, count: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**finding.to_json(), "count": count, **(extra or {})}


def build_report(
    result: CampaignResult,
    *,
    target: str,
    started: str,
    options: dict[str, Any],
    files: dict[tuple[str, int | None, str], list[str]] | None = None,
    coverage_files: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The report object of a client-mode run (wsp fuzz URL --suite wsp)."""
    unique = result.unique()
    by_oracle = Counter(f.oracle.value for f in result.findings)
    seconds = max(result.duration, 1e-9)
    findings = []
    for finding, count in unique:
        case = result.reproducers.get(finding.key)
        extra: dict[str, Any] = {}
        if case is not None:
            extra["reproducer"] = {
                "case": case.to_json(),
                "steps": len(case.steps),
                "files": (files or {}).get(finding.key, []),
            }
        findings.append(_finding(finding, count, extra))
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "tool": "wsp fuzz",
        "suite": "wsp",
        "mode": "client",
        "target": target,
        "started": started,
        "duration": round(result.duration, 3),
    }
    if result.interrupted:
        report["interrupted"] = {"finished": result.cases, "selected": options.get("cases")}
    report.update(
        {
            "options": options,
            "summary": {
                "cases": result.cases,
                "steps": result.steps,
                "cases_per_second": round(result.cases / seconds, 1),
                "steps_per_second": round(result.steps / seconds, 1),
                "findings": len(unique),
                "finding_cases": len(result.findings),
                "by_oracle": {o: by_oracle.get(o, 0) for o in ORACLES},
                "corpus": result.corpus,
                "restarts": result.restarts,
                "states": len(result.states),
                "transitions": len(result.transitions),
            },
            "findings": findings,
            "states": dict(result.states.most_common()),
            "transitions": [
                {"from": a, "action": b, "to": c, "count": n}
                for (a, b, c), n in result.transitions.most_common()
            ],
            "coverage": result.coverage,
            "memory": result.memory,
            "canary": result.canary,
        }
    )
    if coverage_files is not None:
        report["coverage_files"] = coverage_files
    return report


def build_serve_report(
    results: list[Any],
    *,
    target: str,
    started: str,
    duration: float,
    options: dict[str, Any],
    interrupted: bool = False,
) -> dict[str, Any]:
    """The report object of a serve-mode run (wsp fuzz --serve --suite wsp): one
    case per client connection, each playing a scenario of the malicious server."""
    findings: list[Finding] = [f for r in results for f in r.findings]
    first: dict[Any, Finding] = {}
    count: Counter[Any] = Counter()
    for f in findings:
        first.setdefault(f.key, f)
        count[f.key] += 1
    by_oracle = Counter(f.oracle.value for f in findings)
    scenarios = Counter(r.scenario for r in results)
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "tool": "wsp fuzz",
        "suite": "wsp",
        "mode": "serve",
        "target": target,
        "started": started,
        "duration": round(duration, 3),
    }
    if interrupted:
        report["interrupted"] = {"finished": len(results), "selected": options.get("cases")}
    report.update(
        {
            "options": options,
            "summary": {
                "cases": len(results),
                "findings": len(first),
                "finding_cases": len(findings),
                "by_oracle": {o: by_oracle.get(o, 0) for o in ORACLES},
                "scenarios": dict(sorted(scenarios.items())),
            },
            "findings": [_finding(f, count[k]) for k, f in first.items()],
            "cases": [
                {
                    "case": r.index,
                    "scenario": r.scenario,
                    "observed": r.observed,
                    "duration": round(r.duration, 4),
                    "findings": [f.to_json() for f in r.findings],
                }
                for r in results
            ],
        }
    )
    return report
