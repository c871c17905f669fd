"""UTF-8 test sequences for cases 6.5 to 6.23 (RFC 6455 section 8.1, RFC 3629).

The groups follow the sections of Markus Kuhn's UTF-8 decoder stress test, in
the order Autobahn|Testsuite numbers them, so that case ``6.G.N`` here checks
the same sequence as Autobahn's ``6.G.N``. Each sequence is paired with whether
it is valid UTF-8; validity is checked against Python's strict decoder in the
tests, never assumed.
"""

from __future__ import annotations

__all__ = ["KOSME", "UTF8_GROUPS", "is_valid_utf8"]

#: "κόσμε" (Greek "cosmos"), the classic multi-byte sample.
KOSME = bytes.fromhex("cebae1bdb9cf83cebcceb5")


def is_valid_utf8(data: bytes) -> bool:
    """Whether ``data`` is well-formed UTF-8 (RFC 3629: no surrogates, no overlongs)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _hex(*items: str) -> list[bytes]:
    return [bytes.fromhex(item) for item in items]


def _prefixes() -> list[bytes]:
    return [KOSME[:n] for n in range(1, len(KOSME) + 1)]


def _unexpected_continuations() -> list[bytes]:
    out = _hex("80", "bf", "80bf", "80bf80", "80bf80bf", "80bf80bf80", "80bf80bf80bf")
    out.append(bytes(range(0x80, 0xBF)))
    return out


def _lonely_starts() -> list[bytes]:
    ranges = [(0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD)]
    return [b"".join(bytes((byte, 0x20)) for byte in range(lo, hi)) for lo, hi in ranges]


_MISSING_LAST = _hex(
    "c0",
    "e080",
    "f08080",
    "f8808080",
    "fc80808080",
    "df",
    "efbf",
    "f7bfbf",
    "fbbfbfbf",
    "fdbfbfbfbf",
)


def _noncharacters() -> list[bytes]:
    out = _hex("efbfbe", "efbfbf")
    for lead in (0xF0, 0xF1, 0xF2, 0xF3, 0xF4):
        for second in (0x8F, 0x9F, 0xAF, 0xBF):
            if lead == 0xF4 and second != 0x8F:
                continue  # beyond U+10FFFF
            for last in (0xBE, 0xBF):
                seq = bytes((lead, second, 0xBF, last))
                if lead == 0xF0 and second == 0x8F:
                    continue  # overlong forms, not non-characters
                out.append(seq)
    return out


def _groups() -> list[tuple[str, list[bytes]]]:
    return [
        (
            "Valid UTF-8 text with 1- to 4-byte code points",
            [
                b"hello\x24world",
                b"hello\xc2\xa2world",
                b"hello\xe2\x82\xacworld",
                b"hello\xf0\xa4\xad\xa2world",
                KOSME,
            ],
        ),
        ("Every prefix of a valid multi-byte string", _prefixes()),
        ("First code point of each encoded length", _hex("00", "c280", "e0a080", "f0908080")),
        (
            "First 5- and 6-byte sequences (beyond Unicode)",
            _hex("f888808080", "fc8480808080"),
        ),
        ("Last code point of each encoded length", _hex("7f", "dfbf", "efbfbf", "f48fbfbf")),
        (
            "Last 4-, 5- and 6-byte sequences (beyond Unicode)",
            _hex("f7bfbfbf", "fbbfbfbfbf", "fdbfbfbfbfbf"),
        ),
        (
            "Boundaries around surrogates and U+10FFFF",
            _hex("ed9fbf", "ee8080", "efbfbd", "f48fbfbf", "f4908080"),
        ),
        ("Continuation bytes without a start byte", _unexpected_continuations()),
        ("Start bytes followed by a space", _lonely_starts()),
        ("Sequences missing their last continuation byte", list(_MISSING_LAST)),
        ("All incomplete sequences concatenated", [b"".join(_MISSING_LAST)]),
        ("Bytes that never appear in UTF-8", _hex("fe", "ff", "fefeffff")),
        (
            "Overlong encodings of '/'",
            _hex("c0af", "e080af", "f08080af", "f8808080af", "fc80808080af"),
        ),
        (
            "Largest overlong encodings",
            _hex("c1bf", "e09fbf", "f08fbfbf", "f887bfbfbf", "fc83bfbfbfbf"),
        ),
        (
            "Overlong encodings of NUL",
            _hex("c080", "e08080", "f0808080", "f880808080", "fc8080808080"),
        ),
        (
            "Lone UTF-16 surrogates",
            _hex("eda080", "edadbf", "edae80", "edafbf", "edb080", "edbe80", "edbfbf"),
        ),
        (
            "Paired UTF-16 surrogates",
            _hex(
                "eda080edb080",
                "eda080edbfbf",
                "edadbfedb080",
                "edadbfedbfbf",
                "edae80edb080",
                "edae80edbfbf",
                "edafbfedb080",
                "edafbfedbfbf",
            ),
        ),
        ("Non-characters (valid UTF-8)", _noncharacters()),
        (
            "Specials block, including U+FFFD (valid UTF-8)",
            _hex("efbfb9", "efbfba", "efbfbb", "efbfbc", "efbfbd", "efbfbe", "efbfbf"),
        ),
    ]


def _build() -> list[tuple[int, str, list[tuple[bytes, bool]]]]:
    out = []
    for offset, (title, sequences) in enumerate(_groups()):
        out.append((5 + offset, title, [(seq, is_valid_utf8(seq)) for seq in sequences]))
    return out


#: (group number G for ids 6.G.N, title, [(sequence, valid)]) for G = 5..23.
UTF8_GROUPS: list[tuple[int, str, list[tuple[bytes, bool]]]] = _build()
