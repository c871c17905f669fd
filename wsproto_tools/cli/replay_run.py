"""``wsp replay INPUT URL``: the client-side runs — a diff (with --learn) or a load test."""

from __future__ import annotations

__all__ = ["run_diff", "run_load_test"]

import json
import sys
from typing import Any

from wsproto_tools.cli.env import run_async
from wsproto_tools.cli.status import CommandExit, ExitStatus


def _write_json(doc: dict[str, Any], target: str) -> None:
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with open(target, "w", encoding="utf-8") as out:
        out.write(text)


def run_diff(env: Any, cassette: Any, url: str, options: Any, *, rules: list[str],
             learn: int, json_file: str | None) -> None:
    """Replay (after ``learn`` runs that teach the noise), diff, report; exit 0/1/4/5."""
    from wsproto_tools.replay.diff import build_report, learn_noise
    from wsproto_tools.replay.ignore import parse_rules
    from wsproto_tools.replay.outcome import recorded_outcome
    from wsproto_tools.replay.player import play

    parse_rules(rules)  # a bad rule stops before anything is sent
    conns = list(cassette.connections)
    recorded = [recorded_outcome(cassette, conn) for conn in conns]
    learned: set[str] = set()
    if learn:
        runs = [run_async(play(cassette, url, options, conns)) for _ in range(learn)]
        for index in range(len(conns)):
            learned |= learn_noise([run[index] for run in runs], ignore=rules)
    replayed = run_async(play(cassette, url, options, conns))
    report = build_report(zip(recorded, replayed, strict=True), ignore=rules, learned=learned)
    doc = report.to_json()
    if json_file is not None:
        _write_json(doc, json_file)
    if json_file != "-":
        from wsproto_tools.render.replayreport import replay_report

        env.console.print(replay_report(doc))
    status = report.exit_status()
    if status == ExitStatus.AUTH_REFUSED:
        raise CommandExit(ExitStatus.AUTH_REFUSED, f"{url}: the target refused the credentials")
    if status == ExitStatus.NETWORK:
        failed = next((r.handshake_error for r in replayed if r.handshake_error), "no answer")
        raise CommandExit(ExitStatus.NETWORK, f"{url}: cannot be reached ({failed})")
    if status:
        raise CommandExit(ExitStatus(status))


def run_load_test(env: Any, cassette: Any, url: str, options: Any, *, copies: int, loop: bool,
                  rate: float | None, duration: float | None, json_file: str | None) -> None:
    """N copies at once (looped, paced): throughput and latency percentiles."""
    from wsproto_tools.replay.load import run_load

    result = run_async(run_load(cassette, url, options, copies=copies, loop=loop, rate=rate,
                                duration=duration))
    doc = result.to_json()
    if json_file is not None:
        _write_json(doc, json_file)
    if json_file != "-":
        env.console.print(_load_table(doc))
    failures = doc["failures"]
    if failures and sum(failures.values()) >= doc["copies"] * doc["connections"]:
        kind = ExitStatus.AUTH_REFUSED if "refused" in failures else ExitStatus.NETWORK
        first = doc["errors"][0] if doc["errors"] else "every connection failed"
        raise CommandExit(kind, f"{url}: {first}")
    if failures:
        raise CommandExit(ExitStatus.PROBLEMS_FOUND)


def _load_table(doc: dict[str, Any]) -> Any:
    from rich.table import Table

    from wsproto_tools.render.replayreport import format_seconds

    table = Table(title="wsp replay: load test", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("connections", f"{doc['copies']} × {doc['connections']}")
    table.add_row("messages sent", f"{doc['sent']:,}")
    table.add_row("messages received", f"{doc['received']:,}")
    table.add_row("elapsed", f"{doc['elapsed']:.2f} s")
    table.add_row("throughput (sent)", f"{doc['throughput']:,.0f} msg/s")
    table.add_row("received", f"{doc['received_rate']:,.0f} msg/s")
    for name, value in doc["latency"].items():
        table.add_row(f"latency {name}", format_seconds(value))
    if doc["timeouts"]:
        table.add_row("answers not seen in time", str(doc["timeouts"]))
    for kind, count in doc["failures"].items():
        table.add_row(f"failed: {kind}", str(count))
    return table
