"""The self-contained HTML page of a fuzz report (no scripts, no external files).

Rendered from the JSON report object, so the page and the JSON never disagree.
Cases that are not OK open their details by default: expected and observed
events, the close handshake and the wire log.
"""

from __future__ import annotations

__all__ = ["render_html"]

import json
from html import escape
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;font-size:.9em}
th{background:#f2f2f2}td.n{text-align:right}
.v-OK{background:#c8f0c8}.v-NON-STRICT{background:#fff2a8}.v-INFORMATIONAL{background:#cde8ff}
.v-UNIMPLEMENTED{background:#eed0f5}.v-FAILED,.v-WRONG-CODE,.v-UNCLEAN{background:#f7b5b5}
details{margin:.2em 0}summary{cursor:pointer}pre{background:#f7f7f7;padding:.5em;overflow:auto;
max-height:24em;font-size:.85em}.muted{color:#777}
"""

_BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
_CLOSES = ("OK", "WRONG CODE", "UNCLEAN", "FAILED", "INFORMATIONAL")


def _cls(verdict: str) -> str:
    return "v-" + verdict.replace(" ", "-")


def _counts_row(label: str, counts: dict[str, Any]) -> str:
    cells = [f"<td>{escape(label)}</td>", f'<td class="n">{counts["cases"]}</td>']
    for verdict in _BEHAVIORS:
        n = counts["behavior"].get(verdict, 0)
        cls = f' class="n {_cls(verdict)}"' if n else ' class="n"'
        cells.append(f"<td{cls}>{n}</td>")
    for verdict in _CLOSES[1:4]:
        n = counts["close"].get(verdict, 0)
        cls = f' class="n {_cls(verdict)}"' if n else ' class="n"'
        cells.append(f"<td{cls}>{n}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _json_block(value: Any) -> str:
    return f"<pre>{escape(json.dumps(value, indent=1, ensure_ascii=False))}</pre>"


def _case_block(case: dict[str, Any]) -> str:
    ok = case["verdict"] == "OK" and case["close_verdict"] == "OK"
    opened = "" if ok else " open"
    observed = case["observed"]
    expected = case["expected"]
    return (
        f'<details id="case-{escape(case["id"])}"{opened}><summary>'
        f"<b>{escape(case['id'])}</b> "
        f'<span class="{_cls(case["verdict"])}">{escape(case["verdict"])}</span> / '
        f'<span class="{_cls(case["close_verdict"])}">{escape(case["close_verdict"])}</span> '
        f"— {escape(case['description'][:160])}</summary>"
        f"<p>{escape(case['description'])}</p>"
        f"<p><b>Expected:</b> {escape(case['expectation'])} <span class='muted'>"
        f"({escape(case['rfc'])})</span></p>"
        f"<p><b>Result:</b> {escape(case['result'])} {escape(case['close_result'])}</p>"
        f"<p><b>Close:</b> closed by wsp: {escape(str(observed['closed_by_me']))}, "
        f"clean: {escape(str(observed['clean']))}, peer code: "
        f"{escape(str(observed['remote_close_code']))} (allowed: "
        f"{escape(', '.join(map(str, expected['close_codes'])))}), "
        f"duration {case['duration']:.3f} s</p>"
        "<table><tr><th>Expected events</th><th>Observed events</th></tr><tr>"
        f"<td>{_json_block(expected['events'])}</td><td>{_json_block(observed['events'])}</td>"
        "</tr></table>"
        f"<details><summary>Wire log ({len(case['wire'])} entries)</summary>"
        f"{_json_block(case['wire'])}</details>"
        "</details>"
    )


def render_html(report: dict[str, Any]) -> str:
    """One HTML page for the whole report."""
    head = "".join(f"<th>{escape(v)}</th>" for v in _BEHAVIORS) + "".join(
        f"<th>close {escape(v)}</th>" for v in _CLOSES[1:4]
    )
    areas = "".join(
        _counts_row(f"{a['area_number']} {a['area']}", a) for a in report["areas"]
    ) + _counts_row("Total", report["summary"])
    cases_rows = "".join(
        f'<tr><td><a href="#case-{escape(c["id"])}">{escape(c["id"])}</a></td>'
        f'<td class="{_cls(c["verdict"])}">{escape(c["verdict"])}</td>'
        f'<td class="{_cls(c["close_verdict"])}">{escape(c["close_verdict"])}</td>'
        f'<td class="n">{c["duration"]:.3f}</td><td>{escape(c["description"][:120])}</td></tr>'
        for c in report["cases"]
    )
    details = "".join(_case_block(c) for c in report["cases"])
    summary = report["summary"]
    status = "no case failed" if summary["failed"] == 0 else f"{summary['failed']} cases failed"
    stopped = report.get("interrupted")
    if stopped:
        status += (
            f" (interrupted after {stopped['finished']} of {stopped['selected']} cases:"
            " only the finished cases are reported)"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>wsp fuzz report — {escape(report['target'])}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>wsp fuzz --suite rfc6455 — {escape(report['target'])}</h1>"
        f"<p>Mode {escape(report['mode'])}, started {escape(report['started'])}, "
        f"{report['duration']:.2f} s, {summary['cases']} cases: <b>{escape(status)}</b>. "
        f"Options: <code>{escape(json.dumps(report['options']))}</code></p>"
        "<h2>Summary by area</h2>"
        f"<table><tr><th>Area</th><th>Cases</th>{head}</tr>{areas}</table>"
        "<h2>Cases</h2><table><tr><th>Case</th><th>Verdict</th><th>Close</th>"
        f"<th>Seconds</th><th>Description</th></tr>{cases_rows}</table>"
        f"<h2>Details</h2>{details}"
        "<p class='muted'>Verdicts follow Autobahn|Testsuite's meanings; see docs/fuzz.md.</p>"
        "</body></html>\n"
    )
