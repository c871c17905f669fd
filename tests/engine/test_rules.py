"""The rule book and the spec's conformance checklist say the same thing."""

from __future__ import annotations

import re
from pathlib import Path

from wsproto_tools.engine.rules import CHECKLIST, Rule, checklist_table

SPEC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _block(name: str) -> str:
    text = SPEC.read_text(encoding="utf-8")
    found = re.search(rf"<!-- generated:{name} -->\n(.*?)<!-- end:{name} -->", text, re.S)
    assert found, f"docs/protocol.md has no generated:{name} block"
    return found.group(1)


def test_the_checklist_in_the_spec_is_the_rule_book() -> None:
    assert _block("checklist") == checklist_table()


def test_rule_ids_are_the_checklist_line_numbers() -> None:
    rows = [line for line in _block("checklist").splitlines() if re.match(r"\| \d+ \|", line)]
    numbers = [int(row.split("|")[1]) for row in rows]
    assert numbers == list(range(1, len(rows) + 1))
    assert numbers == [int(rule) for rule in CHECKLIST] == [int(r) for r in Rule]


def test_every_rule_that_closes_names_a_documented_close_code() -> None:
    codes = set(re.findall(r"^\| (\d{4}) \| `", SPEC.read_text(encoding="utf-8"), re.M))
    for rule, line in CHECKLIST.items():
        if line.code and line.code != 400:
            assert str(line.code) in codes, (rule, line.code)
            assert str(line.code) in line.text or rule in (Rule.HEADER,), rule


def test_the_state_table_in_the_spec_is_the_engine_s() -> None:
    from wsproto_tools.engine.states import states_table

    assert _block("states") == states_table()
