"""The checklist and the tests cannot drift: every Rule of the rule book has exactly
one ``test_rule_<NN>_<name>`` function in tests/conformance (``<name>`` is the
Rule's name in lower case, e.g. ``test_rule_27_sequence_gap``), and nothing else is
named so. The hand-written crypto of wire.py reproduces the spec's worked example."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

from wsproto_tools.engine.rules import CHECKLIST, Rule

from .wire import client_proof, header, server_proof, session_keys

HERE = Path(__file__).parent
NAME = re.compile(r"^test_rule_(\d+)_([a-z0-9_]+)$")


def rule_tests() -> dict[str, list[str]]:
    """test function name -> the files defining it (module level, sync or async)."""
    found: dict[str, list[str]] = {}
    for path in sorted(HERE.glob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_rule_"
            ):
                found.setdefault(node.name, []).append(path.name)
    return found


def test_every_rule_has_exactly_one_test() -> None:
    found = rule_tests()
    malformed = [name for name in found if not NAME.match(name)]
    assert not malformed, f"not test_rule_<NN>_<slug>: {malformed}"
    twice = {name: files for name, files in found.items() if len(files) > 1}
    assert not twice, f"defined more than once: {twice}"
    numbers = Counter(int(NAME.match(name).group(1)) for name in found)  # type: ignore[union-attr]
    wrong_width = [n for n in found if not re.match(r"^test_rule_\d\d_", n)]
    assert not wrong_width, f"rule numbers are written with two digits: {wrong_width}"
    rules = {int(rule) for rule in Rule}
    assert set(CHECKLIST) == set(Rule)
    missing = sorted(rules - set(numbers))
    assert not missing, f"rules without a test: {missing}"
    unknown = sorted(set(numbers) - rules)
    assert not unknown, f"tests for rules the rule book does not have: {unknown}"
    several = {n: c for n, c in numbers.items() if c > 1}
    assert not several, f"rules with more than one test function: {several}"
    # the slug is the Rule's name: a renumbered rule book cannot pass unnoticed
    misnamed = {
        name: f"test_rule_{int(m.group(1)):02d}_{Rule(int(m.group(1))).name.lower()}"
        for name in found
        if (m := NAME.match(name)) and m.group(2) != Rule(int(m.group(1))).name.lower()
    }
    assert not misnamed, f"test names that do not match their Rule: {misnamed}"


def test_wire_helpers_reproduce_the_worked_example() -> None:
    """docs/protocol.md S.2, "Worked example", and two header examples of section 4."""
    secret = b"s3cret"
    server_nonce = bytes(range(16))
    client_nonce = bytes(range(16, 32))
    assert client_proof(secret, server_nonce, client_nonce).hex() == (
        "22cb0787e729a803180978813302cb929cbd953a0ef7216969e887d487f60c29"
    )
    assert server_proof(secret, server_nonce, client_nonce).hex() == (
        "a4c36c1fd4a616528dea5470fde4e2327d7e08842803a86d5739544972d87a36"
    )
    c2s, s2c = session_keys(secret, server_nonce, client_nonce)
    assert c2s.hex() == "a476b72ccf8e234697e9ddc31983642e3dede9fde5ff2ec9f8d023091877d1a7"
    assert s2c.hex() == "b00a4425c64c4accee5ec17753e7920c25bf416d8801111c9306b6613004cf76"
    assert header(0x0101, 0, 0x04, 5, 1700000000000000).hex() == "744100058080f9c0c1c48203"
    assert header(0x0350, 0).hex() == "40c0500300"
