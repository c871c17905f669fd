"""Rich renderables for ``wsp fuzz``: the summary by area and the non-OK cases.

Everything here works from the JSON report object
(:func:`wsproto_tools.fuzz.report.build_report`), so the terminal, the JSON
file and the HTML page always say the same thing.
"""

from __future__ import annotations

__all__ = ["VERDICT_STYLES", "problems_table", "summary_table"]

from typing import Any

from rich.table import Table
from rich.text import Text

VERDICT_STYLES = {
    "OK": "green",
    "NON-STRICT": "yellow",
    "INFORMATIONAL": "cyan",
    "UNIMPLEMENTED": "magenta",
    "FAILED": "bold red",
    "WRONG CODE": "red",
    "UNCLEAN": "red",
}
_BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
_CLOSES = ("WRONG CODE", "UNCLEAN", "FAILED")
_SHORT = {
    "NON-STRICT": "NON-STRICT",
    "INFORMATIONAL": "INFO",
    "UNIMPLEMENTED": "UNIMPL",
    "WRONG CODE": "close: WRONG CODE",
    "UNCLEAN": "close: UNCLEAN",
}


def _cell(count: int, verdict: str) -> Text:
    if not count:
        return Text("·", style="dim")
    return Text(str(count), style=VERDICT_STYLES.get(verdict, ""))


def summary_table(report: dict[str, Any]) -> Table:
    """Cases per area and verdict, with the close problems and a total row."""
    table = Table(title=f"wsp fuzz --suite rfc6455 · {report['target']}", title_justify="left")
    table.add_column("Area", no_wrap=True)
    table.add_column("Cases", justify="right")
    for verdict in _BEHAVIORS:
        table.add_column(_SHORT.get(verdict, verdict), justify="right")
    for verdict in _CLOSES:
        table.add_column(_SHORT.get(verdict, f"close: {verdict}"), justify="right")
    rows = [*report["areas"], {"area": "Total", "area_number": None, **report["summary"]}]
    for row in rows:
        label = row["area"] if row["area_number"] is None else f"{row['area_number']} {row['area']}"
        table.add_row(
            Text(label, style="bold" if row["area_number"] is None else ""),
            str(row["cases"]),
            *(_cell(row["behavior"].get(v, 0), v) for v in _BEHAVIORS),
            *(_cell(row["close"].get(v, 0), v) for v in _CLOSES),
            end_section=row is rows[-2],
        )
    return table


def _event(event: dict[str, Any]) -> str:
    kind = str(event["type"])
    if kind in ("message", "ping", "pong"):
        return f"{kind}({event.get('length', 0)} B)"
    note = event.get("note")
    return f"{kind}({note})" if note else kind


def problems_table(report: dict[str, Any], limit: int = 60) -> Table | None:
    """Every case that is not OK/OK, with what was expected and what happened."""
    rows = [
        case for case in report["cases"] if case["verdict"] != "OK" or case["close_verdict"] != "OK"
    ]
    if not rows:
        return None
    table = Table(title="Cases that are not OK", title_justify="left", show_lines=False)
    table.add_column("Case")
    table.add_column("Verdict")
    table.add_column("Close")
    table.add_column("Observed / expected", overflow="fold")
    for case in rows[:limit]:
        observed = case["observed"]
        events = ", ".join(_event(e) for e in observed["events"][:4]) or "nothing"
        expected = ", ".join(_event(e) for e in case["expected"]["events"][:4]) or "nothing"
        detail = f"got {events}; expected {expected}"
        code = observed["remote_close_code"]
        detail += f"; peer close code {code if code is not None else 'none'}"
        if case["close_verdict"] not in ("OK", "INFORMATIONAL"):
            detail += f" — {case['close_result']}"
        table.add_row(
            case["id"],
            Text(case["verdict"], style=VERDICT_STYLES.get(case["verdict"], "")),
            Text(case["close_verdict"], style=VERDICT_STYLES.get(case["close_verdict"], "")),
            detail,
        )
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit} more in the reports"
    return table
