"""The filter language of ``wsp decode --filter`` and the TUI (docs/filter.md).

:func:`compile_filter` parses an expression such as
``type:Publish topic:prices.* !dir:client | violation`` into a tree of terms,
then compiles the tree into nested closures over a
:class:`~wsproto_tools.render.records.Row`: one call per row, no parsing and no
dispatch on field names left at evaluation time. The terms of an AND (and of
an OR) are evaluated cheapest first, so a ``text:``/``text~`` term, which
fetches the payload text, only runs on the rows every other term of its AND
group let through.

Grammar (``|`` binds looser than the implicit AND of terms side by side)::

    expr  := and ("|" and)*
    and   := unary unary*
    unary := "!" unary | "(" expr ")" | term
    term  := WORD | WORD OP VALUE | QUOTED
    OP    := ":" | "=" | "!=" | ">" | ">=" | "<" | "<=" | "~"

A mistake raises :class:`~wsproto_tools.exceptions.FilterError` with the
0-based ``position`` of the offending character and a one-line message naming
its column (and, for a misspelt field, word or wsp type, the nearest good one).
"""

from __future__ import annotations

__all__ = ["BARE_WORDS", "FIELDS", "Filter", "compile_filter"]

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from wsproto_tools.codec.schema import TYPES
from wsproto_tools.exceptions import FilterError
from wsproto_tools.render.records import EVENT_KINDS

if TYPE_CHECKING:
    from wsproto_tools.render.records import Row

Test = Callable[["Row"], bool]

#: Each field and the operators it takes.
FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "type": (":", "=", "!="),
    "topic": (":", "=", "!=", "~"),
    "dir": (":", "=", "!="),
    "conn": (":", "=", "!=", ">", ">=", "<", "<="),
    "opcode": (":", "=", "!="),
    "kind": (":", "=", "!="),
    "seq": (":", "=", "!=", ">", ">=", "<", "<="),
    "offset": (":", "=", "!=", ">", ">=", "<", "<="),
    "size": (":", "=", "!=", ">", ">=", "<", "<="),
    "text": (":", "=", "!=", "~"),
    "violation": (":", "="),
})

#: Words that are a whole term on their own.
BARE_WORDS = ("violation", "text", "binary", "wsp")

_OPCODES = ("text", "binary", "ping", "pong", "close", "continuation", "reserved")
_KINDS = ("message", *EVENT_KINDS)
_DIRECTIONS = {"client": "client", "c": "client", "server": "server", "s": "server"}
#: wsp type names by their lower-case form ("Unknown": a code the codec does not know)
_TYPE_NAMES = {spec.name.lower(): spec.name for spec in TYPES.values()} | {"unknown": "Unknown"}
_EXAMPLES = {
    "type": "type:Publish",
    "topic": "topic:prices",
    "dir": "dir:client",
    "conn": "conn:3",
    "opcode": "opcode:ping",
    "kind": "kind:closed",
    "seq": "seq>10",
    "offset": "offset>=5",
    "size": "size>1000",
    "text": "text:ACME",
    "violation": "violation:invalid-utf8",
}
#: operators, longest first (">=" before ">")
_OPERATORS = (">=", "<=", "!=", ":", "=", ">", "<", "~")
#: characters that end a word (a field name or a bare word)
_WORD_END = frozenset(' \t\r\n\f\v|()"!:=<>~')
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
#: relative cost of a term, to run cheap ones first
_CHEAP, _MEDIUM, _TEXT = 1, 3, 100


# --------------------------------------------------------------------------- tree


@dataclass(frozen=True)
class _Term:
    """One term: its canonical text and its test."""

    text: str
    test: Test
    cost: int

    def compile(self) -> Test:
        return self.test

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class _Not:
    child: _Node

    @property
    def cost(self) -> int:
        return self.child.cost

    def compile(self) -> Test:
        test = self.child.compile()
        return lambda row: not test(row)

    def __str__(self) -> str:
        inner = str(self.child)
        return f"!({inner})" if isinstance(self.child, _All | _Any) else f"!{inner}"


@dataclass(frozen=True)
class _All:
    children: tuple[_Node, ...]

    @property
    def cost(self) -> int:
        return sum(child.cost for child in self.children)

    def compile(self) -> Test:
        tests = [c.compile() for c in sorted(self.children, key=lambda c: c.cost)]
        if len(tests) == 2:
            a, b = tests
            return lambda row: a(row) and b(row)
        if len(tests) == 3:
            a, b, c = tests
            return lambda row: a(row) and b(row) and c(row)

        def every(row: Row) -> bool:
            return all(test(row) for test in tests)

        return every

    def __str__(self) -> str:
        return " ".join(f"({c})" if isinstance(c, _Any) else str(c) for c in self.children)


@dataclass(frozen=True)
class _Any:
    children: tuple[_Node, ...]

    @property
    def cost(self) -> int:
        return sum(child.cost for child in self.children)

    def compile(self) -> Test:
        tests = [c.compile() for c in sorted(self.children, key=lambda c: c.cost)]
        if len(tests) == 2:
            a, b = tests
            return lambda row: a(row) or b(row)
        if len(tests) == 3:
            a, b, c = tests
            return lambda row: a(row) or b(row) or c(row)

        def some(row: Row) -> bool:
            return any(test(row) for test in tests)

        return some

    def __str__(self) -> str:
        return " | ".join(str(c) for c in self.children)


_Node = _Term | _Not | _All | _Any


def _everything(row: Row) -> bool:
    return True


class Filter:
    """A compiled filter: ``flt(row)`` is whether ``row`` passes.

    ``expr`` is the expression as written; ``str(flt)`` the same filter written
    canonically (grouping made explicit where an OR sits inside an AND), which
    compiles to the same filter. ``test`` is the bare function, for hot loops;
    ``active`` is false for the blank expression, which lets everything through.
    """

    __slots__ = ("_tree", "active", "expr", "test")

    def __init__(self, expr: str, tree: _Node | None) -> None:
        self.expr = expr
        self._tree = tree
        self.active = tree is not None
        self.test: Test = _everything if tree is None else tree.compile()

    def __call__(self, row: Row) -> bool:
        return self.test(row)

    def __str__(self) -> str:
        return "" if self._tree is None else str(self._tree)

    def __repr__(self) -> str:
        return f"Filter({self.expr!r})"


def compile_filter(expr: str) -> Filter:
    """Compile ``expr`` (docs/filter.md); a blank expression matches every row.

    Raises :class:`~wsproto_tools.exceptions.FilterError` for a mistake.
    """
    return Filter(expr, _Parser(expr).parse())


# --------------------------------------------------------------------------- parser


def _fail(message: str, position: int, near: str | None = None,
          choices: Sequence[str] = (), hint: str = "") -> FilterError:
    """The error for ``message`` at ``position``: a did-you-mean (the choice nearest
    ``near``) and ``hint`` follow in parentheses."""
    notes = []
    best = None if near is None else _nearest(near, choices)
    if best is not None:
        notes.append(f"did you mean '{best}'?")
    if hint:
        notes.append(hint)
    text = f"{message} at column {position + 1}"
    return FilterError(f"{text} ({' '.join(notes)})" if notes else text, position)


def _nearest(word: str, choices: Sequence[str]) -> str | None:
    """The choice ``word`` is most likely a misspelling of: one with the same
    letters (two swapped), else difflib's closest."""
    lower = word.lower()
    for choice in choices:
        if sorted(choice.lower()) == sorted(lower):
            return choice
    close = difflib.get_close_matches(lower, [c.lower() for c in choices], n=1, cutoff=0.6)
    return next(c for c in choices if c.lower() == close[0]) if close else None


class _Parser:
    """A recursive-descent parser over ``text``, with ``i`` the next character."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def parse(self) -> _Node | None:
        self._skip()
        if self.i == len(self.text):
            return None
        node = self._or()
        self._skip()
        if self.i < len(self.text):  # only a ")" stops an expression early
            raise _fail("unexpected ')' (no '(' to close)", self.i)
        return node

    def _peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def _skip(self) -> None:
        text, i = self.text, self.i
        while i < len(text) and text[i].isspace():
            i += 1
        self.i = i

    def _or(self) -> _Node:
        parts = [self._and()]
        while self._peek() == "|":
            self.i += 1
            self._skip()
            if self._peek() in ("", "|", ")"):
                raise _fail("expected a term after '|'", self.i)
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else _Any(tuple(parts))

    def _and(self) -> _Node:
        parts = [self._unary()]
        while True:
            self._skip()
            if self._peek() in ("", "|", ")"):
                break
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else _All(tuple(parts))

    def _unary(self) -> _Node:
        self._skip()
        c = self._peek()
        if c == "":
            raise _fail("expected a term", self.i)
        if c == "!":
            self.i += 1
            self._skip()
            if self._peek() in ("", "|", ")"):
                raise _fail("expected a term after '!'", self.i)
            child = self._unary()
            return child.child if isinstance(child, _Not) else _Not(child)
        if c == "(":
            start = self.i
            self.i += 1
            self._skip()
            if self._peek() == ")":
                raise _fail("empty group '()'", start)
            node = self._or()
            self._skip()
            if self._peek() != ")":
                raise _fail("unclosed '('", start)
            self.i += 1
            return node
        if c == ")":
            raise _fail("unexpected ')' (no '(' to close)", self.i)
        if c == "|":
            raise _fail("expected a term before '|'", self.i)
        if c == '"':
            value = self._quoted()
            return _text_term(":", value, self.i)
        return self._term()

    def _quoted(self) -> str:
        """A double-quoted string at ``i``: ``\\"`` is a quote, ``\\\\`` a backslash,
        any other backslash is kept (``"\\d+"`` is the regex ``\\d+``)."""
        text, start = self.text, self.i
        i = start + 1
        out: list[str] = []
        while i < len(text):
            c = text[i]
            if c == '"':
                self.i = i + 1
                return "".join(out)
            if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                out.append(text[i + 1])
                i += 2
                continue
            out.append(c)
            i += 1
        raise _fail("unclosed '\"'", start)

    def _bare_value(self) -> str:
        """An unquoted value: up to a space, a ``|`` or a ``)`` that closes a group
        (parentheses inside the value are kept while balanced: ``text~(a|b)``)."""
        text, i, depth = self.text, self.i, 0
        while i < len(text):
            c = text[i]
            if c.isspace():
                break
            if c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    break
                depth -= 1
            elif c == "|" and depth == 0:
                break
            i += 1
        value = text[self.i:i]
        self.i = i
        return value

    def _term(self) -> _Node:
        text, start = self.text, self.i
        i = start
        while i < len(text) and text[i] not in _WORD_END:
            i += 1
        word = text[start:i]
        if not word:
            raise _fail(f"unexpected {text[i]!r}", start)
        self.i = i
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        name = word.lower()
        if op is None:
            if name in BARE_WORDS:
                return _bare_term(name)
            if name in FIELDS:
                raise _fail(f"'{word}' needs a value, e.g. {_EXAMPLES[name]}", start)
            raise _fail(f"unknown word '{word}'", start, word, (*BARE_WORDS, *FIELDS),
                        f"to find text: text:{_quote(word)}")
        if name not in FIELDS:
            raise _fail(f"unknown field '{word}'", start, word, tuple(FIELDS))
        allowed = FIELDS[name]
        if op not in allowed:
            said = ", ".join(f"'{a}'" for a in allowed if a != "=")
            raise _fail(f"'{name}' takes {said}, not '{op}'", i)
        self.i = i + len(op)
        value_at = self.i
        if self._peek() == '"':
            value = self._quoted()
            value_at += 1  # errors inside the value count from its first character
        else:
            value = self._bare_value()
            if not value:
                raise _fail(f"missing value after '{name}{op}', e.g. {_EXAMPLES[name]}",
                            value_at)
        return _field_term(name, ":" if op == "=" else op, value, value_at)


# --------------------------------------------------------------------------- terms


def _quote(value: str) -> str:
    """``value`` as the parser reads it back (quoted when it must be)."""
    if value and not any(c.isspace() or c in '|()"' for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bare_term(name: str) -> _Term:
    if name == "violation":
        return _Term(name, lambda row: bool(row.violations), _CHEAP)
    if name == "wsp":
        return _Term(name, lambda row: row.wsp_type is not None, _CHEAP)
    return _Term(name, lambda row: row.opcode == name, _CHEAP)  # "text", "binary"


def _field_term(name: str, op: str, value: str, at: int) -> _Term:
    canon = f"{name}{op}{_quote(value)}"
    if name in ("seq", "offset", "size", "conn"):
        test = _number_term(name, op, value, at)
        return _Term(canon, test, _CHEAP)
    if name == "text":
        return _text_term(op, value, at)
    if name == "topic":
        test, cost = _topic_term(op, value, at)
        return _Term(canon, test, cost)
    if name == "violation":
        return _Term(canon, _violation_term(value), _MEDIUM)
    if name == "type":
        return _Term(canon, _type_term(op, value, at), _CHEAP)
    if name == "dir":
        direction = _choice(name, value, at, _DIRECTIONS)
        return _Term(canon, _equal("direction", op, direction, ""), _CHEAP)
    if name == "opcode":
        opcode = _choice(name, value, at, {o: o for o in _OPCODES})
        if opcode == "reserved":
            if op == "!=":
                return _Term(canon, lambda row: row.opcode != ""
                             and not row.opcode.startswith("reserved"), _CHEAP)
            return _Term(canon, lambda row: row.opcode.startswith("reserved"), _CHEAP)
        return _Term(canon, _equal("opcode", op, opcode, ""), _CHEAP)
    kind = _choice(name, value, at, {k: k for k in _KINDS})
    return _Term(canon, _equal("kind", op, kind, ""), _CHEAP)


def _choice(name: str, value: str, at: int, choices: dict[str, str]) -> str:
    try:
        return choices[value.lower()]
    except KeyError:
        names = sorted(set(choices.values()))
        raise _fail(f"unknown {name} '{value}'", at, value, tuple(choices),
                    f"one of: {', '.join(names)}") from None


def _equal(attr: str, op: str, value: Any, absent: Any) -> Test:
    """``row.<attr> == value``; for ``!=``: the row has the attribute
    (not ``absent``) and it differs."""
    # one small function per attribute: a closure reading a fixed attribute is
    # about twice as fast as operator.attrgetter plus a comparison
    if op == "!=":
        pair = (absent, value)
        if attr == "direction":
            return lambda row: row.direction not in pair
        if attr == "opcode":
            return lambda row: row.opcode not in pair
        if attr == "kind":
            return lambda row: row.kind not in pair
        if attr == "wsp_type":
            return lambda row: row.wsp_type not in pair
        if attr == "type_code":
            return lambda row: row.type_code not in pair
        raise AssertionError(attr)
    if attr == "direction":
        return lambda row: row.direction == value
    if attr == "opcode":
        return lambda row: row.opcode == value
    if attr == "kind":
        return lambda row: row.kind == value
    if attr == "wsp_type":
        return lambda row: row.wsp_type == value
    if attr == "type_code":
        return lambda row: row.type_code == value
    raise AssertionError(attr)


def _number(value: str, at: int) -> int:
    if not _NUMBER.fullmatch(value):
        raise _fail(f"'{value}' is not a number", at)
    return int(value, 16) if value[:2].lower() == "0x" else int(value)


def _type_term(op: str, value: str, at: int) -> Test:
    if _NUMBER.fullmatch(value):
        return _equal("type_code", op, _number(value, at), None)
    try:
        name = _TYPE_NAMES[value.lower()]
    except KeyError:
        raise _fail(f"unknown wsp type '{value}'", at, value,
                    tuple(_TYPE_NAMES.values())) from None
    return _equal("wsp_type", op, name, None)


#: row value, bound -> bool, for each comparison
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    ":": lambda v, n: v == n,
    "!=": lambda v, n: v != n,
    ">": lambda v, n: v > n,
    ">=": lambda v, n: v >= n,
    "<": lambda v, n: v < n,
    "<=": lambda v, n: v <= n,
}


def _number_term(name: str, op: str, value: str, at: int) -> Test:
    if name == "conn" and op == ":" and "-" in value:
        low_text, _, high_text = value.partition("-")
        low = _number(low_text, at)
        high = _number(high_text, at + len(low_text) + 1)
        if low > high:
            raise _fail(f"empty range '{value}'", at)
        return lambda row: low <= row.conn <= high
    n = _number(value, at)
    # the common comparisons of the two fields every row has, written out
    if name == "size":
        if op == ":":
            return lambda row: row.size == n
        if op == ">":
            return lambda row: row.size > n
        if op == "<":
            return lambda row: row.size < n
    if name == "conn" and op == ":":
        return lambda row: row.conn == n
    compare = _COMPARE[op]
    if name in ("size", "conn"):
        get_always: Callable[[Row], int] = (
            (lambda row: row.size) if name == "size" else (lambda row: row.conn))
        return lambda row: compare(get_always(row), n)
    # seq and offset: a comparison is false on a row without one
    if name == "seq":
        if op == ":":
            return lambda row: row.seq == n
        return lambda row: (v := row.seq) is not None and compare(v, n)
    if op == ":":
        return lambda row: row.offset == n
    return lambda row: (v := row.offset) is not None and compare(v, n)


def _text_term(op: str, value: str, at: int) -> _Term:
    canon = f"text{op}{_quote(value)}"
    if op == "~":
        search = _regex(value, at).search
        return _Term(canon, lambda row: search(row.text()) is not None, _TEXT)
    needle = value.casefold()
    if op == "!=":
        return _Term(canon, lambda row: needle not in row.text().casefold(), _TEXT)
    return _Term(canon, lambda row: needle in row.text().casefold(), _TEXT)


def _regex(value: str, at: int) -> re.Pattern[str]:
    try:
        return re.compile(value, re.IGNORECASE)
    except re.error as error:
        where = at + (error.pos or 0)
        raise _fail(f"bad regular expression '{value}': {error.msg}", where) from None


def _glob(value: str) -> Callable[[str], Any]:
    """The fullmatch of a glob where ``*`` is any run of characters."""
    return re.compile(".*".join(re.escape(part) for part in value.split("*")),
                      re.DOTALL).fullmatch


def _topic_term(op: str, value: str, at: int) -> tuple[Test, int]:
    if op == "~":
        search = _regex(value, at).search
        return (lambda row: (t := row.topic) is not None and search(t) is not None), _MEDIUM
    if "*" in value:
        match = _glob(value)
        if op == "!=":
            return (lambda row: (t := row.topic) is not None and match(t) is None), _MEDIUM
        return (lambda row: (t := row.topic) is not None and match(t) is not None), _MEDIUM
    if op == "!=":
        pair = (None, value)
        return (lambda row: row.topic not in pair), _CHEAP
    return (lambda row: row.topic == value), _CHEAP


def _violation_term(value: str) -> Test:
    code = value.lower()
    if "*" in code:
        match = _glob(code)
        return lambda row: any(match(c) is not None for c in row.violations)
    return lambda row: code in row.violations
