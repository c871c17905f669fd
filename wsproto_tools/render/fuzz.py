"""Rich renderables for ``wsp fuzz``: the summary by area and the non-OK cases.

Everything here works from the JSON report object
(:func:`wsproto_tools.fuzz.report.build_report`), so the terminal, the JSON
file and the HTML page always say the same thing.
"""

from __future__ import annotations

__all__ = ["LEGEND", "VERDICT_STYLES", "problems_table", "summary", "summary_table"]

from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType
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
#: Header labels of the wide table (the behaviour verdicts, then the close verdicts).
_WIDE = {
    "NON-STRICT": "NON-STRICT",
    "INFORMATIONAL": "INFO",
    "UNIMPLEMENTED": "UNIMPL",
}
#: Header labels of the narrow table, explained by :data:`LEGEND` under it.
_NARROW = {
    "NON-STRICT": "N-S",
    "INFORMATIONAL": "INFO",
    "UNIMPLEMENTED": "UNIM",
    "FAILED": "FAIL",
}
_NARROW_CLOSE = {"WRONG CODE": "C:CODE", "UNCLEAN": "C:UNCL", "FAILED": "C:FAIL"}
#: What the narrow table's abbreviations stand for.
LEGEND = (
    "N-S non-strict · INFO informational · UNIM unimplemented · FAIL failed; "
    "close verdicts: C:CODE wrong code · C:UNCL unclean · C:FAIL failed"
)


def _cell(count: int, verdict: str) -> Text:
    if not count:
        return Text("·", style="dim")
    return Text(str(count), style=VERDICT_STYLES.get(verdict, ""))


def summary_table(report: dict[str, Any], *, narrow: bool = False) -> Table:
    """Cases per area and verdict, with the close problems and a total row.

    The wide table spells the verdicts out (about 140 columns); the narrow one
    (``narrow=True``) fits 80 columns with abbreviated headers, which
    :data:`LEGEND` explains, and area names that wrap between words.
    """
    table = Table(
        title=f"wsp fuzz --suite rfc6455 · {report['target']}",
        title_justify="left",
        box=box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD,
        show_edge=not narrow,
        pad_edge=not narrow,
        collapse_padding=narrow,
    )
    table.add_column("Area", no_wrap=not narrow, overflow="fold", min_width=14 if narrow else None)
    table.add_column("Cases", justify="right", no_wrap=True)
    for verdict in _BEHAVIORS:
        label = (_NARROW if narrow else _WIDE).get(verdict, verdict)
        table.add_column(label, justify="right", no_wrap=True)
    for verdict in _CLOSES:
        label = _NARROW_CLOSE[verdict] if narrow else f"close: {verdict}"
        table.add_column(label, justify="right", no_wrap=True)
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


class _Summary:
    """The wide summary table where it fits the width, else the narrow one and its legend."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Any:
        wide = summary_table(self.report)
        natural = console.measure(wide, options=options.update_width(10_000)).maximum
        if natural <= options.max_width:
            yield wide
        else:
            yield Group(summary_table(self.report, narrow=True), Text(LEGEND, style="dim"))


def summary(report: dict[str, Any]) -> RenderableType:
    """The summary for a terminal of any width: nothing is cut at 80 columns.

    To print it uncut where there is no terminal, print :func:`summary_table`
    at its own width (``console.measure(table).maximum``).
    """
    return _Summary(report)


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
