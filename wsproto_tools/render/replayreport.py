"""Rich renderables of a ``wsp replay`` diff report.

Everything here works from the JSON document of the report
(:meth:`wsproto_tools.replay.diff.ReplayReport.to_json`), so the terminal and
the ``--json`` file always say the same thing: :func:`summary_table` (one row a
connection), :func:`differences_view` (each difference, a bounded number per
connection, with coloured diffs) and :func:`replay_report` (both, the rules in
force and the verdict). Nothing here is wider than the console: long diff lines
wrap, so the report reads at 80 columns.
"""

from __future__ import annotations

__all__ = [
    "DIFF_LINES",
    "LIMIT",
    "differences_view",
    "format_seconds",
    "replay_report",
    "summary_table",
    "verdict",
]

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from wsproto_tools.replay.diff import ReplayReport

#: Differences shown per connection (the rest are counted: "… N more").
LIMIT = 20
#: Diff lines shown per changed message.
DIFF_LINES = 30

_STYLES = {"missing": "red", "extra": "yellow", "changed": "magenta", "reordered": "cyan"}
_MARKS = {"missing": "-", "extra": "+", "changed": "~", "reordered": "↕"}


def _doc(report: ReplayReport | dict[str, Any]) -> dict[str, Any]:
    return report.to_json() if isinstance(report, ReplayReport) else report


def format_seconds(value: float | None) -> str:
    """A latency for people: ``850µs``, ``12.5ms``, ``340ms``, ``2.10s``; ``–`` for none."""
    if value is None:
        return "–"
    if value < 0.001:
        return f"{value * 1e6:.0f}µs"
    if value < 0.1:
        return f"{value * 1e3:.1f}ms"
    if value < 1:
        return f"{value * 1e3:.0f}ms"
    return f"{value:.2f}s"


def _count(value: int, style: str) -> Text:
    return Text(str(value), style=style) if value else Text("·", style="dim")


def _latency(conn: dict[str, Any], key: str) -> str:
    rec, rep = conn["latency"]["recorded"][key], conn["latency"]["replayed"][key]
    if rec is None and rep is None:
        return "–"
    return f"{format_seconds(rec)}→{format_seconds(rep)}"


def _close_cell(conn: dict[str, Any]) -> Text:
    if conn["handshake_failed"] is not None:
        return Text("hs failed", style="bold red")
    close = conn["close"]
    if close is None:
        return Text("·", style="dim")

    def side(part: dict[str, Any]) -> str:
        return "none" if part["code"] is None else str(part["code"])

    if "code" in close["fields"]:
        return Text(f"{side(close['recorded'])}→{side(close['replayed'])}", style="red")
    return Text("reason", style="red")


def summary_table(report: ReplayReport | dict[str, Any]) -> Table:
    """One row a connection: messages recorded→replayed, missing, extra, changed,
    reordered, the close, and the latency p50/p99 recorded→replayed; a total row
    when there are several connections. Fits 80 columns."""
    doc = _doc(report)
    table = Table(
        title="wsp replay: answers compared with the recording",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("Conn", justify="right", no_wrap=True)
    table.add_column("Msgs", justify="right", overflow="fold")
    for name in ("Miss", "Extra", "Chg", "Reord"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("Close", overflow="fold")
    table.add_column("p50", overflow="fold")
    table.add_column("p99", overflow="fold")
    conns = doc["connections"]
    for conn in conns:
        counts = conn["counts"]
        table.add_row(
            Text(str(conn["conn"]), style="bold red" if conn["differences"] else ""),
            f"{counts['recorded']}→{counts['replayed']}",
            _count(len(conn["missing"]), _STYLES["missing"]),
            _count(len(conn["extra"]), _STYLES["extra"]),
            _count(len(conn["changed"]), _STYLES["changed"]),
            _count(len(conn["reordered"]), _STYLES["reordered"]),
            _close_cell(conn),
            _latency(conn, "p50"),
            _latency(conn, "p99"),
            end_section=len(conns) > 1 and conn is conns[-1],
        )
    if len(conns) > 1:
        totals = doc["totals"]
        closes = totals["close_changed"] + totals["handshake_failed"]
        table.add_row(
            Text("all", style="bold"),
            f"{totals['recorded']}→{totals['replayed']}",
            _count(totals["missing"], _STYLES["missing"]),
            _count(totals["extra"], _STYLES["extra"]),
            _count(totals["changed"], _STYLES["changed"]),
            _count(totals["reordered"], _STYLES["reordered"]),
            _count(closes, "red"),
            "",
            "",
        )
    return table


def _ref(ref: dict[str, Any]) -> str:
    where = f"#{ref['index']}" + (f".{ref['item']}" if ref["item"] is not None else "")
    key = f" {ref['key']}" if ref["key"] else ""
    return f"{where} {ref['type']}{key} (t={ref['t']:.3f}s)"


def _diff_text(lines: list[str], limit: int, truncated: bool) -> Text:
    text = Text(overflow="fold", no_wrap=False)
    for line in lines[:limit]:
        if line.startswith(("---", "+++")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = "dim"
        text.append(line + "\n", style=style)
    more = len(lines) - limit
    if more > 0 or truncated:
        text.append(
            f"… {max(more, 0)} more diff lines" + (" (cut)" if truncated else "") + "\n",
            style="dim italic",
        )
    text.rstrip()
    return text


def _entries(conn: dict[str, Any]) -> list[tuple[float, str, dict[str, Any]]]:
    out: list[tuple[float, str, dict[str, Any]]] = []
    for ref in conn["missing"]:
        out.append((ref["index"], "missing", {"recorded": ref}))
    for ref in conn["extra"]:
        out.append((ref["index"] + 0.5, "extra", {"replayed": ref}))
    for item in conn["changed"]:
        out.append((item["recorded"]["index"], "changed", item))
    for item in conn["reordered"]:
        out.append((item["recorded"]["index"], "reordered", item))
    out.sort(key=lambda entry: entry[0])
    return out


def _connection_view(conn: dict[str, Any], limit: int, diff_lines: int) -> list[RenderableType]:
    parts: list[RenderableType] = []
    n = conn["differences"]
    parts.append(Text(f"connection {conn['conn']}: {n} difference{'s' * (n != 1)}", style="bold"))
    failed = conn["handshake_failed"]
    if failed is not None:
        kind = f" ({failed['failure']})" if failed["failure"] else ""
        parts.append(
            Text(f"  handshake failed: {failed['error']}{kind}", style="bold red", overflow="fold")
        )
    for change in conn["handshake_changed"]:
        parts.append(
            Text(
                f"  handshake {change['field']}: {change['recorded']!r} → {change['replayed']!r}",
                style="red",
                overflow="fold",
            )
        )
    close = conn["close"]
    if close is not None:
        rec, rep = close["recorded"], close["replayed"]
        parts.append(
            Text(
                f"  close: {rec['code']} {rec['reason']!r} → {rep['code']} {rep['reason']!r}",
                style="red",
                overflow="fold",
            )
        )
    entries = _entries(conn)
    for _, kind, item in entries[:limit]:
        style = _STYLES[kind]
        line = Text(f"  {_MARKS[kind]} {kind} ", style=style, overflow="fold")
        if kind == "missing":
            line.append(_ref(item["recorded"]))
        elif kind == "extra":
            line.append(_ref(item["replayed"]))
        elif kind == "reordered":
            line.append(f"{_ref(item['recorded'])}, now #{item['replayed']['index']}")
        else:
            line.append(_ref(item["recorded"]))
            line.append(": " + ", ".join(item["paths"][:8]), style="bold")
            if len(item["paths"]) > 8:
                line.append(f" … {len(item['paths']) - 8} more")
        parts.append(line)
        if kind == "changed":
            parts.append(
                Padding(_diff_text(item["diff"], diff_lines, item["truncated"]), (0, 0, 0, 2))
            )
    if len(entries) > limit:
        parts.append(
            Text(
                f"  … {len(entries) - limit} more differences (--json FILE lists them all)",
                style="dim italic",
            )
        )
    if conn["skipped"]:
        parts.append(
            Text(
                f"  {len(conn['skipped'])} client message(s) not sent: "
                + "; ".join(conn["skipped"][:3]),
                style="dim",
                overflow="fold",
            )
        )
    return parts


def differences_view(
    report: ReplayReport | dict[str, Any], *, limit: int = LIMIT, diff_lines: int = DIFF_LINES
) -> RenderableType | None:
    """Each connection's differences in the order of the recording: the handshake,
    the close, then missing, extra, changed (its paths and a coloured diff of at most
    ``diff_lines`` lines) and reordered messages, at most ``limit`` a connection.
    None when there is no difference."""
    doc = _doc(report)
    parts: list[RenderableType] = []
    for conn in doc["connections"]:
        if conn["differences"]:
            parts += [Text("")] * bool(parts) + _connection_view(conn, limit, diff_lines)
    return Group(*parts) if parts else None


def _rules_line(doc: dict[str, Any]) -> Text:
    text = Text(style="dim", overflow="fold")
    text.append("ignored: " + (", ".join(doc["ignored"]) or "nothing"))
    if doc["learned"]:
        shown = ", ".join(doc["learned"][:6])
        more = len(doc["learned"]) - 6
        text.append(f"; learned: {shown}" + (f" … {more} more" if more > 0 else ""))
    text.append(
        "; rewritten values: " + ("not compared" if doc["default_ignores"] else "compared (strict)")
    )
    totals = doc["totals"]
    if totals["hidden"]:
        text.append(f"; {totals['hidden']} difference(s) hidden by these rules")
    if totals["engine_recorded"] or totals["engine_replayed"]:
        text.append(
            f"; engine traffic counted, not compared: {totals['engine_recorded']}"
            f"→{totals['engine_replayed']}"
        )
    return text


def verdict(report: ReplayReport | dict[str, Any]) -> Text:
    """The last line: no difference beyond noise, N differences, or why nothing ran."""
    doc = _doc(report)
    if doc["failure"] == "refused":
        return Text("the target refused the credentials", style="bold red")
    if doc["failure"] == "unreachable":
        return Text("the target could not be reached", style="bold red")
    n = doc["differences"]
    if not n:
        return Text("no difference beyond noise", style="bold green")
    conns = sum(1 for conn in doc["connections"] if conn["differences"])
    return Text(
        f"{n} difference{'s' * (n != 1)} in {conns} connection{'s' * (conns != 1)}",
        style="bold red",
    )


def replay_report(
    report: ReplayReport | dict[str, Any], *, limit: int = LIMIT, diff_lines: int = DIFF_LINES
) -> RenderableType:
    """The whole report for a terminal: the summary table, the rules in force, each
    difference, and the verdict."""
    doc = _doc(report)
    parts: list[RenderableType] = [summary_table(doc), _rules_line(doc)]
    details = differences_view(doc, limit=limit, diff_lines=diff_lines)
    if details is not None:
        parts += [Text(""), details]
    parts += [Text(""), verdict(doc)]
    return Group(*parts)
