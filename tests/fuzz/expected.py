"""Expected outcomes, written out by hand from the RFCs and each flaw's definition.

Nothing here is computed from the fuzzer's catalog or verdict code: these lists
are the independent oracle the tests compare the fuzzer's output with.
"""

from __future__ import annotations


def ids(prefix: str, numbers: range | list[int]) -> set[str]:
    return {f"{prefix}.{n}" for n in numbers}


CORE = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*"

# Cases 6.5-6.23 whose payload is NOT valid UTF-8 (Kuhn's stress test sections,
# checked against RFC 3629 by reading the bytes):
INVALID_UTF8_VECTORS = (
    ids("6.6", [1, 3, 4, 6, 8, 10])  # prefixes of "κόσμε" that cut a code point
    | ids("6.8", range(1, 3))  # 5- and 6-byte forms
    | ids("6.10", range(1, 4))  # F7/FB/FD forms beyond U+10FFFF
    | {"6.11.5"}  # F4 90 80 80 = U+110000
    | ids("6.12", range(1, 9))  # lone continuation bytes
    | ids("6.13", range(1, 6))  # lonely start bytes
    | ids("6.14", range(1, 11))  # last continuation byte missing
    | {"6.15.1"}  # concatenated incomplete sequences
    | ids("6.16", range(1, 4))  # FE / FF
    | ids("6.17", range(1, 6))  # overlong '/'
    | ids("6.18", range(1, 6))  # maximal overlongs
    | ids("6.19", range(1, 6))  # overlong NUL
    | ids("6.20", range(1, 8))  # lone surrogates
    | ids("6.21", range(1, 9))  # paired surrogates
)
VALID_UTF8_VECTORS = (
    ids("6.5", range(1, 6))
    | ids("6.6", [2, 5, 7, 9, 11])
    | ids("6.7", range(1, 5))
    | ids("6.9", range(1, 5))
    | ids("6.11", range(1, 5))
    | ids("6.22", range(1, 35))
    | ids("6.23", range(1, 8))
)

# RFC 6455 leaves the outcome open: always INFORMATIONAL.
INFORMATIONAL = {"7.1.6", "7.13.1", "7.13.2"}

# websockets (the library) closes with 1002 when a close frame arrives inside a
# fragmented message (RFC 6455 5.4 allows control frames there): 7.1.5.
WEBSOCKETS_FAILED = {"7.1.5"}
# websockets checks UTF-8 only once a message is complete: not fail-fast.
WEBSOCKETS_NON_STRICT = ids("6.4", range(1, 5))
# When a protocol error follows a valid message in the same read, websockets
# may fail the connection before its application echoed that message (allowed,
# NON-STRICT); whether it does depends on scheduling.
WEBSOCKETS_MAYBE_NON_STRICT = (
    {"3.2", "3.3", "3.4", "5.15"} | ids("4.1", range(3, 6)) | ids("4.2", range(3, 6))
)

# The strict hand-rolled server validates UTF-8 frame by frame, so it fails fast
# across frames (6.4.1, 6.4.2) but not inside one frame written in parts.
HAND_ROLLED_NON_STRICT = {"6.4.3", "6.4.4"}

# Flaw -> the cases it breaks (verdict FAILED or close FAILED/WRONG CODE/UNCLEAN).
FLAW_BREAKS = {
    # Every case sending text that is not UTF-8 (the close reason of 7.5.1 is
    # still checked: the flaw is about messages).
    "accepts-invalid-utf8": {"6.3.1", "6.3.2"} | ids("6.4", range(1, 5)) | INVALID_UTF8_VECTORS,
    # Every case with a reserved bit set (area 3; nothing else sets RSV bits
    # without permessage-deflate).
    "ignores-rsv": ids("3", range(1, 8)),
    # Close frames with a 1-byte payload, an invalid code or a non-UTF-8 reason
    # get 1000 instead of 1002/1007. (7.3.6 is still failed by the control frame
    # length check; 7.13.x are informational.)
    "close-answered-1000": {"7.3.2", "7.5.1"} | ids("7.9", range(1, 10)),
    # Only 5.1 and 5.2 send a control frame with FIN = 0.
    "hangs-on-fragmented-control": {"5.1", "5.2"},
    # Pings (5.6-5.8, 5.19, 5.20) and the close (7.1.5) sent between fragments
    # are answered only after the message: wrong order / message echoed.
    "defers-control-in-message": {"5.6", "5.7", "5.8", "5.19", "5.20", "7.1.5"},
}
