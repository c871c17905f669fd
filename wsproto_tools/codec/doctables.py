"""The tables of ``docs/protocol.md``, generated from :mod:`.schema` (pure functions).

Each table sits in the document between ``<!-- generated:NAME -->`` and
``<!-- end:NAME -->``; ``tests/codec/test_docs.py`` fails when one differs from
:func:`tables` and rewrites them when run with ``WSP_UPDATE_DOCS=1``.
"""

from __future__ import annotations

__all__ = ["CLOSE_CODE_DOCS", "replace_regions", "tables"]

import dataclasses
import re

from wsproto_tools.codec.dictionary import DICTIONARY
from wsproto_tools.codec.limits import DEFAULT_LIMITS, Limits
from wsproto_tools.codec.schema import (
    FLAG_DOCS,
    TYPES,
    V1_HEADER,
    V2_HEADER,
    Category,
    HeaderField,
    PayloadKind,
    payload_fields,
    v2_type_byte,
)
from wsproto_tools.exceptions import CloseCode

#: What each close code means in wsp (RFC 6455 section 7.4.1 for 1000-1015).
CLOSE_CODE_DOCS: dict[CloseCode, str] = {
    CloseCode.NORMAL: "Orderly close.",
    CloseCode.GOING_AWAY: "Server shutting down or client navigating away.",
    CloseCode.PROTOCOL_ERROR: "Malformed header or a message breaking the protocol "
    "(DecodeError default).",
    CloseCode.UNSUPPORTED_DATA: "A text WebSocket message (and an Error's code for an unknown "
    "type or request method).",
    CloseCode.NO_STATUS: "Never sent; reported when a close frame had no code.",
    CloseCode.ABNORMAL: "Never sent; reported when the connection dropped without a close.",
    CloseCode.INVALID_DATA: "Payload content is invalid: bad UTF-8, bad msgpack, wrong field "
    "kinds, bad DEFLATE, failed decryption.",
    CloseCode.POLICY_VIOLATION: "Generic policy violation.",
    CloseCode.MESSAGE_TOO_BIG: "A decoding limit was exceeded (LimitExceeded).",
    CloseCode.MANDATORY_EXTENSION: "A required WebSocket extension was not negotiated.",
    CloseCode.INTERNAL_ERROR: "The sender hit a bug.",
    CloseCode.SERVICE_RESTART: "Server restarting; reconnect and resume.",
    CloseCode.TRY_AGAIN_LATER: "Overloaded; reconnect later.",
    CloseCode.WSP_AUTH_FAILED: "Authentication refused (bad HMAC proof, bad or expired JWT).",
    CloseCode.WSP_HANDSHAKE_TIMEOUT: "No Handshake (or Authenticate) in time.",
    CloseCode.WSP_FORBIDDEN_TOPIC: "Subscribe or Publish to a topic the session may not use.",
    CloseCode.WSP_RATE_LIMITED: "The peer sent faster than its rate limit.",
    CloseCode.WSP_SLOW_CONSUMER: "The peer did not drain deliveries; its buffer overflowed.",
    CloseCode.WSP_HEARTBEAT_TIMEOUT: "No traffic and no Heartbeat reply within the timeout.",
    CloseCode.WSP_UNNEGOTIATED: "A flag or message type the receiver did not negotiate.",
    CloseCode.WSP_TOO_MANY_CONNECTIONS: "Connection limit reached.",
    CloseCode.WSP_SESSION_UNKNOWN: "Reserved; not sent by the reference server: an unknown, "
    "expired or bad resume token starts a new session (S.2).",
    CloseCode.WSP_ORIGIN_REFUSED: "The HTTP Origin is not allowed.",
}


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _header(fields: tuple[HeaderField, ...], offsets: bool) -> str:
    rows = ["| offset | field | wire | bytes | meaning |" if offsets
            else "| # | field | wire | bytes | meaning |",
            "| ---: | --- | --- | ---: | --- |"]
    position = 0
    for index, hfield in enumerate(fields):
        where = str(position) if offsets else str(index + 1)
        rows.append(f"| {where} | `{hfield.name}` | {hfield.wire} | {hfield.size} | "
                    f"{_cell(hfield.doc)} |")
        if offsets:
            position += int(hfield.size)
    return "\n".join(rows)


def _flags() -> str:
    rows = ["| bit | value | flag | meaning |", "| ---: | ---: | --- | --- |"]
    for flag, doc in FLAG_DOCS.items():
        rows.append(f"| {int(flag).bit_length() - 1} | 0x{int(flag):02X} | `{flag.name}` | "
                    f"{_cell(doc)} |")
    return "\n".join(rows)


def _types() -> str:
    rows = ["| code | v2 type byte | name | category | payload | meaning |",
            "| --- | --- | --- | --- | --- | --- |"]
    for code, spec in sorted(TYPES.items()):
        one = v2_type_byte(code)
        byte = f"`{one:02X}`" if one is not None else f"`C0 {code & 0xFF:02X} {code >> 8:02X}`"
        rows.append(f"| 0x{code:04X} | {byte} | {spec.name} | {Category(code >> 8).name.lower()}"
                    f" | {spec.kind.value} | {_cell(spec.doc)} |")
    return "\n".join(rows)


def _payloads() -> str:
    parts: list[str] = []
    for code, spec in sorted(TYPES.items()):
        parts.append(f"#### {spec.name} (0x{code:04X})\n")
        parts.append(f"{spec.doc}\n")
        if spec.kind is PayloadKind.MSGPACK:
            rows = ["| key | kind | required | meaning |", "| --- | --- | --- | --- |"]
            for name, fspec in payload_fields(spec.cls):
                rows.append(f"| `{name}` | {fspec.kind.value} | "
                            f"{'no' if fspec.optional else 'yes'} | {_cell(fspec.doc)} |")
            parts.append("\n".join(rows) + "\n")
        else:
            parts.append(f"Payload: {spec.kind.value}.\n")
    return "\n".join(parts).rstrip()


def _close_codes() -> str:
    rows = ["| code | name | meaning |", "| ---: | --- | --- |"]
    for code in CloseCode:
        rows.append(f"| {int(code)} | `{code.name}` | {_cell(CLOSE_CODE_DOCS[code])} |")
    return "\n".join(rows)


def _limits() -> str:
    rows = ["| limit | default | bounds |", "| --- | ---: | --- |"]
    docs = {
        "max_message": "whole message as received (header + payload)",
        "max_decompressed": "payload after decompression; batch contents",
        "max_str_len": "msgpack str length in bytes",
        "max_bin_len": "msgpack bin length",
        "max_array_len": "msgpack array length",
        "max_map_len": "msgpack map entries",
        "max_depth": "array/map nesting in a payload (the top map is level 1)",
        "max_batch_items": "messages in one Batch",
    }
    for lfield in dataclasses.fields(Limits):
        rows.append(f"| `{lfield.name}` | {getattr(DEFAULT_LIMITS, lfield.name)} | "
                    f"{docs[lfield.name]} |")
    return "\n".join(rows)


def _dictionary() -> str:
    hexed = DICTIONARY.hex()
    lines = [hexed[i:i + 64] for i in range(0, len(hexed), 64)]
    return "```text\n" + "\n".join(lines) + "\n```"


def tables() -> dict[str, str]:
    """Region name -> generated markdown."""
    return {
        "v1-header": _header(V1_HEADER, True),
        "v2-header": _header(V2_HEADER, False),
        "flags": _flags(),
        "types": _types(),
        "payloads": _payloads(),
        "close-codes": _close_codes(),
        "limits": _limits(),
        "dictionary": _dictionary(),
    }


_REGION = re.compile(
    r"(<!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(\n?<!-- end:(?P=name) -->)",
    re.DOTALL,
)


def replace_regions(document: str, generated: dict[str, str]) -> tuple[str, list[str]]:
    """The document with every generated region replaced; also the names found."""
    found: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name = match.group("name")
        found.append(name)
        body = generated.get(name, match.group("body"))
        return match.group(1) + body + "\n<!-- end:" + name + " -->"

    return _REGION.sub(sub, document), found
