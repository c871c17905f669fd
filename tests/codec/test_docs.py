"""docs/protocol.md's tables are the schema's (WSP_UPDATE_DOCS=1 rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path

from wsproto_tools.codec.doctables import replace_regions, tables

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_protocol_doc_tables_match_the_schema() -> None:
    text = DOC.read_text("utf-8")
    generated = tables()
    updated, found = replace_regions(text, generated)
    assert set(generated) <= set(found), "a generated region is missing from the doc"
    # the engine's regions (checklist, states) are checked by tests/engine/test_rules.py
    assert set(found) - set(generated) == {"checklist", "states"}
    if updated != text and os.environ.get("WSP_UPDATE_DOCS") == "1":
        DOC.write_text(updated, "utf-8")
        text = updated
    assert updated == text, (
        "docs/protocol.md is out of date with codec/schema.py; run "
        "WSP_UPDATE_DOCS=1 pytest tests/codec/test_docs.py"
    )


def test_every_type_and_close_code_is_documented() -> None:
    from wsproto_tools.codec import TYPES
    from wsproto_tools.exceptions import CloseCode

    text = DOC.read_text("utf-8")
    for spec in TYPES.values():
        assert f"#### {spec.name} (0x{int(spec.code):04X})" in text
    for code in CloseCode:
        assert f"| {int(code)} | `{code.name}` |" in text


def test_replace_regions_detects_drift() -> None:
    doc = "a\n<!-- generated:flags -->\nstale\n<!-- end:flags -->\nb"
    updated, found = replace_regions(doc, {"flags": "fresh"})
    assert found == ["flags"]
    assert updated == "a\n<!-- generated:flags -->\nfresh\n<!-- end:flags -->\nb"
