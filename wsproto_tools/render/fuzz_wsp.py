"""How a wsp suite report looks: rich tables for people, a self-contained HTML page.

Both are rendered from the JSON report object
(:func:`wsproto_tools.fuzz.wsp.report.build_report`), so they never disagree
with it. The tables fit 80 columns (long texts wrap; nothing is cut).
"""

from __future__ import annotations

__all__ = ["render_wsp_html", "wsp_summary"]

import json
from html import escape
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

_ORACLE_STYLE = "bold red"


def wsp_summary(report: dict[str, Any]) -> RenderableType:
    """The summary and the findings table of a wsp suite report."""
    s = report["summary"]
    parts: list[RenderableType] = []
    head = Text()
    head.append(f"wsp suite, {report['mode']} mode: ", style="bold")
    head.append(f"{s['cases']} cases")
    if "steps" in s:
        head.append(
            f", {s['steps']} steps in {report['duration']:.1f} s "
            f"({s['cases_per_second']:g} cases/s, {s['steps_per_second']:g} steps/s)"
        )
    if "interrupted" in report:
        head.append(" (interrupted)", style="yellow")
    parts.append(head)
    extra = []
    if "states" in s:
        extra.append(f"{s['states']} states, {s['transitions']} transitions reached")
    if s.get("corpus"):
        extra.append(f"corpus {s['corpus']} cases")
    if s.get("restarts"):
        extra.append(f"target restarted {s['restarts']} times")
    memory = report.get("memory") or {}
    if memory.get("start_bytes"):
        extra.append(
            f"target memory {memory['start_bytes'] / 2**20:.0f} -> "
            f"{memory['end_bytes'] / 2**20:.0f} MiB (max {memory['max_bytes'] / 2**20:.0f})"
        )
    if report.get("coverage"):
        extra.append(f"{report['coverage'][-1]['points']} arcs covered")
    if extra:
        parts.append(Text("; ".join(extra), style="dim"))
    if not report["findings"]:
        parts.append(Text("no findings", style="bold green"))
        return Group(*parts)
    table = Table(
        title=f"{s['findings']} kind{'s' if s['findings'] != 1 else ''} of finding"
        + ("s" if s["findings"] != 1 else ""),
        title_justify="left",
        show_lines=True,
        expand=False,
    )
    table.add_column("oracle", style=_ORACLE_STYLE, no_wrap=True)
    table.add_column("case:step", no_wrap=True)
    table.add_column("n", justify="right")
    table.add_column("what happened", overflow="fold")
    for f in report["findings"]:
        body = Text()
        body.append(f["message"], style="bold")
        if f.get("rule"):
            body.append(f" (rule {f['rule']})", style="dim")
        body.append(f"\nexpected: {f['expected']}\nobserved: {f['observed']}")
        files = (f.get("reproducer") or {}).get("files") or []
        tests = [name for name in files if name.endswith(".py")]
        if tests:
            body.append(f"\nreproducer: {tests[0]} (and its .json, .cassette.ndjson)",
                        style="dim")
        table.add_row(f["oracle"], f"{f['case']}:{f['step']}", str(f["count"]), body)
    parts.append(table)
    return Group(*parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;font-size:.9em}
th{background:#f2f2f2}td.n{text-align:right}.bad{background:#f7b5b5}.ok{background:#c8f0c8}
pre{background:#f7f7f7;padding:.5em;overflow:auto;max-height:24em;font-size:.85em}
.muted{color:#777}
"""


def _svg_line(points: list[tuple[float, float]], label: str) -> str:
    """A small inline SVG line chart (no scripts)."""
    if len(points) < 2:
        return ""
    w, h = 480, 120
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1, y1 = min(xs), max(xs) or 1, max(ys) or 1
    span = (x1 - x0) or 1
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{(x - x0) / span * (w - 10) + 5:.1f},"
        f"{h - 5 - y / y1 * (h - 10):.1f}"
        for i, (x, y) in enumerate(points)
    )
    return (
        f'<svg width="{w}" height="{h}" role="img" aria-label="{escape(label)}">'
        f'<rect width="{w}" height="{h}" fill="#fafafa" stroke="#ddd"/>'
        f'<path d="{path}" fill="none" stroke="#2a6" stroke-width="2"/></svg>'
        f'<div class="muted">{escape(label)}: {ys[0]:g} to {ys[-1]:g}</div>'
    )


def render_wsp_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page for a wsp suite report."""
    s = report["summary"]
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>wsp fuzz: "
        f"{escape(str(report['target']))}</title><style>{_CSS}</style></head><body>",
        f"<h1>wsp fuzz --suite wsp ({escape(report['mode'])} mode)</h1>",
        f"<p>Target <b>{escape(str(report['target']))}</b>, started "
        f"{escape(report['started'])}, {report['duration']} s.</p>",
    ]
    if "interrupted" in report:
        out.append(
            f"<p class='bad'>Interrupted after {report['interrupted']['finished']} cases.</p>"
        )
    out.append("<h2>Summary</h2><table>")
    for key, value in s.items():
        shown = json.dumps(value) if isinstance(value, dict) else str(value)
        out.append(f"<tr><th>{escape(key)}</th><td>{escape(shown)}</td></tr>")
    out.append("</table>")
    out.append(f"<h2>Findings ({len(report['findings'])} kinds)</h2>")
    if not report["findings"]:
        out.append("<p class='ok'>No findings.</p>")
    else:
        out.append(
            "<table><tr><th>oracle</th><th>case</th><th>step</th><th>count</th>"
            "<th>message</th><th>expected</th><th>observed</th><th>rule</th></tr>"
        )
        for f in report["findings"]:
            out.append(
                f"<tr class='bad'><td>{escape(f['oracle'])}</td><td class='n'>{f['case']}</td>"
                f"<td class='n'>{f['step']}</td><td class='n'>{f['count']}</td>"
                f"<td>{escape(f['message'])}</td><td>{escape(f['expected'])}</td>"
                f"<td>{escape(f['observed'])}</td><td>{f.get('rule') or ''}</td></tr>"
            )
        out.append("</table>")
        for f in report["findings"]:
            rep = f.get("reproducer")
            if rep:
                out.append(
                    f"<details><summary>Reproducer of case {f['case']} "
                    f"({rep['steps']} steps)</summary><pre>"
                    f"{escape(json.dumps(rep, indent=1))}</pre></details>"
                )
    if report.get("coverage"):
        pts = [(c["t"], c["points"]) for c in report["coverage"]]
        out.append("<h2>Coverage over time</h2>" + _svg_line(pts, "arcs covered by time (s)"))
    memory = report.get("memory") or {}
    if memory.get("samples"):
        pts = [(t, v / 2**20) for t, v in memory["samples"]]
        out.append("<h2>Target memory</h2>" + _svg_line(pts, "resident MiB by time (s)"))
    if report.get("states"):
        out.append("<h2>States reached</h2><table><tr><th>state</th><th>times</th></tr>")
        for state, n in report["states"].items():
            out.append(f"<tr><td>{escape(state)}</td><td class='n'>{n}</td></tr>")
        out.append("</table>")
    if report.get("transitions"):
        out.append(
            f"<h2>Transitions ({len(report['transitions'])})</h2><table><tr><th>from"
            "</th><th>step</th><th>to</th><th>times</th></tr>"
        )
        for t in report["transitions"][:500]:
            out.append(
                f"<tr><td>{escape(t['from'])}</td><td>{escape(t['action'])}</td>"
                f"<td>{escape(t['to'])}</td><td class='n'>{t['count']}</td></tr>"
            )
        out.append("</table>")
    if report.get("cases"):
        out.append(
            "<h2>Cases</h2><table><tr><th>case</th><th>scenario</th><th>observed</th>"
            "<th>findings</th></tr>"
        )
        for c in report["cases"][:2000]:
            cls = " class='bad'" if c["findings"] else ""
            out.append(
                f"<tr{cls}><td class='n'>{c['case']}</td><td>{escape(c['scenario'])}"
                f"</td><td>{escape(str(c['observed']))}</td>"
                f"<td class='n'>{len(c['findings'])}</td></tr>"
            )
        out.append("</table>")
    out.append(f"<h2>Options</h2><pre>{escape(json.dumps(report['options'], indent=1))}</pre>")
    out.append("</body></html>\n")
    return "\n".join(out)
