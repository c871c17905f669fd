"""The filter language (docs/filter.md): parsing, evaluation over hand-built rows, errors."""

from __future__ import annotations

import pytest

from wsproto_tools.exceptions import FilterError
from wsproto_tools.render.filterexpr import compile_filter
from wsproto_tools.render.records import Row

# A small, hand-built set of rows; each test names the rows it expects by key.
ROWS: dict[str, Row] = {
    "pub": Row("message", 1.0, 3, "client", "binary", "Publish", 0x104, 7, "prices", None,
               1500, text='{"topic":"prices","data":"ACME 12.5"}'),
    "pub-news": Row("message", 1.1, 5, "client", "binary", "Publish", 0x104, 8, "news.eu",
                    None, 40, text='{"topic":"news.eu","data":"rain"}'),
    "deliver": Row("message", 1.2, 4, "server", "binary", "Deliver", 0x105, 2,
                   "prices.eu", 11, 900, text='{"topic":"prices.eu","offset":11,"data":"acme"}'),
    "sub": Row("message", 1.3, 4, "client", "binary", "Subscribe", 0x201, 1, "prices", None,
               20, text='{"topic":"prices"}'),
    "hello": Row("message", 2.0, 1, "client", "text", None, None, None, None, None, 11,
                 text="hello world"),
    "bad-utf8": Row("message", 2.1, 2, "client", "text", None, None, None, None, None, 3,
                    ("invalid-utf8",), text="\ufffd\ufffd"),
    "ping": Row("message", 2.2, 1, "server", "ping", None, None, None, None, None, 0),
    "bare": Row("message", 2.3, 7, "client", "binary", "TextData", 0x101, 4, None, None, 9,
                ("wsp-flag", "wsp-state"), text='{"text":"x"}'),
    "closed": Row("closed", 3.0, 4, text="going away"),
}


def keys(expr: str) -> list[str]:
    flt = compile_filter(expr)
    return [key for key, row in ROWS.items() if flt(row)]


# ------------------------------------------------------------------ fields


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("type:Publish", ["pub", "pub-news"]),
        ("type:publish", ["pub", "pub-news"]),  # names are case-insensitive
        ("type:PUBLISH", ["pub", "pub-news"]),
        ("type:0x0201", ["sub"]),  # by code, hex
        ("type:513", ["sub"]),  # by code, decimal
        ("type=Deliver", ["deliver"]),  # "=" is ":"
        ("type!=Publish", ["deliver", "sub", "bare"]),  # wsp rows of another type
        ("topic:prices", ["pub", "sub"]),  # exact
        ("topic:prices.*", ["deliver"]),
        ("topic:*.eu", ["pub-news", "deliver"]),
        ("topic:*", ["pub", "pub-news", "deliver", "sub"]),  # has a topic
        ("topic!=prices", ["pub-news", "deliver"]),
        ("topic~^pri", ["pub", "deliver", "sub"]),
        ("dir:client", ["pub", "pub-news", "sub", "hello", "bad-utf8", "bare"]),
        ("dir:c", ["pub", "pub-news", "sub", "hello", "bad-utf8", "bare"]),
        ("dir:s", ["deliver", "ping"]),
        ("dir:SERVER", ["deliver", "ping"]),
        ("dir!=client", ["deliver", "ping"]),  # the event has no direction
        ("conn:4", ["deliver", "sub", "closed"]),
        ("conn:3-5", ["pub", "pub-news", "deliver", "sub", "closed"]),
        ("conn:5-5", ["pub-news"]),
        ("conn>4", ["pub-news", "bare"]),
        ("conn<=2", ["hello", "bad-utf8", "ping"]),
        ("conn!=4", ["pub", "pub-news", "hello", "bad-utf8", "ping", "bare"]),
        ("opcode:ping", ["ping"]),
        ("opcode:TEXT", ["hello", "bad-utf8"]),
        ("opcode!=binary", ["hello", "bad-utf8", "ping"]),  # not the event
        ("kind:message", [k for k in ROWS if k != "closed"]),
        ("kind:closed", ["closed"]),
        ("kind:violation", []),
        ("kind!=message", ["closed"]),
        ("seq:7", ["pub"]),
        ("seq>=7", ["pub", "pub-news"]),
        ("seq<2", ["sub"]),
        ("seq!=7", ["pub-news", "deliver", "sub", "bare"]),  # rows with no seq fail
        ("offset:11", ["deliver"]),
        ("offset>11", []),
        ("offset<=11", ["deliver"]),
        ("size>1000", ["pub"]),
        ("size:0", ["ping", "closed"]),
        ("size=20", ["sub"]),
        ("size>=900", ["pub", "deliver"]),
        ("size<10", ["bad-utf8", "ping", "bare", "closed"]),
        ("size<=11", ["hello", "bad-utf8", "ping", "bare", "closed"]),
        ("size!=0", ["pub", "pub-news", "deliver", "sub", "hello", "bad-utf8", "bare"]),
        ("size>0x3e8", ["pub"]),  # 1000
        ("text:acme", ["pub", "deliver"]),  # substring, any case
        ("text:ACME", ["pub", "deliver"]),
        ("text!=acme", ["pub-news", "sub", "hello", "bad-utf8", "ping", "bare", "closed"]),
        ("text~ACME\\s+\\d", ["pub"]),  # regex search, any case
        ("text~^hello", ["hello"]),
        ("text:going", ["closed"]),
        ('text:"hello world"', ["hello"]),
        ('"hello world"', ["hello"]),  # a quoted string alone: text:...
        ("violation", ["bad-utf8", "bare"]),
        ("violation:invalid-utf8", ["bad-utf8"]),
        ("violation:INVALID-UTF8", ["bad-utf8"]),
        ("violation:wsp-state", ["bare"]),
        ("violation:wsp-*", ["bare"]),
        ("violation:wsp-sequence", []),
        ("text", ["hello", "bad-utf8"]),  # bare: opcode text
        ("binary", ["pub", "pub-news", "deliver", "sub", "bare"]),
        ("wsp", ["pub", "pub-news", "deliver", "sub", "bare"]),
        ("Type:Publish", ["pub", "pub-news"]),  # field names too are case-insensitive
    ],
)
def test_each_field(expr: str, want: list[str]) -> None:
    assert keys(expr) == want


def test_the_example_of_the_issue() -> None:
    rows = dict(ROWS)
    rows["pub-bad"] = Row("message", 4.0, 3, "client", "binary", "Publish", 0x104, 9,
                          "prices", None, 2000, ("wsp-sequence",), text="ACME 13")
    flt = compile_filter("type:Publish topic:prices dir:client conn:3 size>1000 text~ACME "
                         "violation")
    assert [k for k, row in rows.items() if flt(row)] == ["pub-bad"]
    assert flt(rows["pub"]) is False  # everything but the violation


# ------------------------------------------------------------------ grammar


def test_blank_matches_everything() -> None:
    for expr in ("", "   ", "\t\n"):
        flt = compile_filter(expr)
        assert flt.active is False
        assert all(flt(row) for row in ROWS.values())
        assert str(flt) == ""


def test_terms_side_by_side_are_anded() -> None:
    assert keys("type:Publish conn:5") == ["pub-news"]
    assert keys("dir:client   size<10") == ["bad-utf8", "bare"]


def test_or_binds_looser_than_and() -> None:
    # (type:Publish conn:5) | opcode:ping, not type:Publish (conn:5 | opcode:ping)
    assert keys("type:Publish conn:5 | opcode:ping") == ["pub-news", "ping"]
    assert keys("opcode:ping | type:Publish conn:5") == ["pub-news", "ping"]
    assert keys("type:Publish (conn:5 | opcode:ping)") == ["pub-news"]
    assert keys("kind:closed|opcode:ping|seq:1") == ["sub", "ping", "closed"]


def test_negation() -> None:
    assert keys("!wsp") == ["hello", "bad-utf8", "ping", "closed"]
    assert keys("!dir:client") == ["deliver", "ping", "closed"]  # events too
    assert keys("! dir:client") == ["deliver", "ping", "closed"]
    assert keys("!!wsp") == keys("wsp")
    assert keys("!(type:Publish | type:Deliver) wsp") == ["sub", "bare"]
    assert keys("!type:Publish | conn:3") == [k for k in ROWS if k != "pub-news"]
    # ! binds tighter than AND: only the first term is negated
    assert keys("!opcode:binary dir:client") == ["hello", "bad-utf8"]


def test_groups_nest() -> None:
    assert keys("((type:Publish | type:Deliver) (conn:4 | conn:5))") == ["pub-news", "deliver"]
    assert keys("(((wsp)))") == keys("wsp")


def test_quoted_values_and_escapes() -> None:
    row = Row("message", 0.0, 1, "client", "text", None, None, None, None, None, 9,
              text='say "hi" a|b (x) C:\\dir')
    assert compile_filter('text:"say \\"hi\\""')(row)
    assert compile_filter('text:"a|b (x)"')(row)
    assert compile_filter('text:"C:\\\\dir"')(row)  # \\ is one backslash
    assert not compile_filter('text:"say \\"ho\\""')(row)
    # any other backslash is kept, for regexes: \d is a digit class
    assert compile_filter('text~"\\d"')(Row("message", 0.0, 1, text="a1"))
    assert not compile_filter('text~"\\d"')(Row("message", 0.0, 1, text="ab"))
    # an unquoted value keeps balanced parentheses and the | inside them
    assert keys("text~(acme|rain)") == ["pub", "pub-news", "deliver"]
    assert keys("(text~(acme|rain) conn:5)") == ["pub-news"]
    # a quoted topic with a space
    spaced = Row("message", 0.0, 1, "client", "binary", "Publish", 0x104, 1, "a b", None, 1)
    assert compile_filter('topic:"a b"')(spaced)


def test_canonical_text_compiles_to_the_same_filter() -> None:
    cases = {
        "type:Publish   conn:5|opcode:ping": "type:Publish conn:5 | opcode:ping",
        "type:Publish (conn:5 | opcode:ping)": "type:Publish (conn:5 | opcode:ping)",
        "!(wsp | text)": "!(wsp | text)",
        "!!wsp": "wsp",
        "Type=Publish": "type:Publish",
        'text:"a b"': 'text:"a b"',
        '"a \\"b\\""': 'text:"a \\"b\\""',
        "text~(acme|rain)": 'text~"(acme|rain)"',
    }
    for expr, canonical in cases.items():
        flt = compile_filter(expr)
        assert str(flt) == canonical
        assert flt.expr == expr
        again = compile_filter(str(flt))
        assert [again(r) for r in ROWS.values()] == [flt(r) for r in ROWS.values()]


def test_text_is_read_only_when_the_other_terms_passed() -> None:
    reads: list[int] = []

    def text_of(n: int) -> Row:
        def text() -> str:
            reads.append(n)
            return "ACME"

        return Row("message", 0.0, n, "client", "text", None, None, None, None, None, 4,
                   text=text)

    rows = [text_of(n) for n in range(10)]
    flt = compile_filter("text~acme conn:3")  # the text term is written first
    assert [row.conn for row in rows if flt(row)] == [3]
    assert reads == [3]
    reads.clear()
    flt = compile_filter("!text:zzz conn>7")
    assert [row.conn for row in rows if flt(row)] == [8, 9]
    assert reads == [8, 9]


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("expr", "position", "words"),
    [
        ("tpye:Publish", 0, ["unknown field 'tpye'", "column 1", "did you mean 'type'?"]),
        ("conn:3 topc:prices", 7, ["unknown field 'topc'", "column 8", "'topic'"]),
        ("type:Publsh", 5, ["unknown wsp type 'Publsh'", "column 6", "did you mean 'Publish'?"]),
        ("type:Delivr", 5, ["did you mean 'Deliver'?"]),
        ("type:Nonsense", 5, ["unknown wsp type 'Nonsense'"]),
        ("violaton", 0, ["unknown word 'violaton'", "did you mean 'violation'?"]),
        ("ACME", 0, ["unknown word 'ACME'", "text:ACME"]),
        ("type", 0, ["'type' needs a value", "type:Publish"]),
        ("type:", 5, ["missing value after 'type:'"]),
        ("size>", 5, ["missing value after 'size>'"]),
        ("type>3", 4, ["'type' takes ':'", "not '>'"]),
        ("violation>3", 9, ["'violation' takes ':'"]),
        ("size>big", 5, ["'big' is not a number"]),
        ("conn:7-3", 5, ["empty range '7-3'"]),
        ("conn:3-x", 7, ["'x' is not a number"]),
        ("dir:up", 4, ["unknown dir 'up'", "client, server"]),
        ("opcode:pnig", 7, ["unknown opcode 'pnig'", "did you mean 'ping'?"]),
        ("kind:clsoed", 5, ["unknown kind 'clsoed'", "did you mean 'closed'?"]),
        ("text~a(b", 6, ["bad regular expression 'a(b'"]),
        ('text~"[z-a]"', 7, ["bad regular expression"]),
        ("(wsp", 0, ["unclosed '('", "column 1"]),
        ("wsp (text | binary", 4, ["unclosed '('", "column 5"]),
        ("wsp)", 3, ["unexpected ')'"]),
        ("()", 0, ["empty group"]),
        ("| wsp", 0, ["expected a term before '|'"]),
        ("wsp |", 5, ["expected a term after '|'"]),
        ("wsp | | text", 6, ["expected a term after '|'"]),
        ("wsp !", 5, ["expected a term after '!'"]),
        ('text:"abc', 5, ["unclosed '\"'"]),
        (">3", 0, ["unexpected '>'"]),
    ],
)
def test_errors_name_the_position(expr: str, position: int, words: list[str]) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(expr)
    message = str(caught.value)
    assert caught.value.position == position
    assert f"column {position + 1}" in message
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unknown_wsp_type_without_near_name_has_no_guess() -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter("type:Zzzzzz")
    assert "did you mean" not in str(caught.value)
