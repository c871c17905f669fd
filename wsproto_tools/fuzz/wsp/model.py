"""The model of the wsp protocol the fuzzer works from.

Built from the codec's one schema (:data:`~wsproto_tools.codec.schema.TYPES`,
each payload field's :class:`~wsproto_tools.codec.schema.Kind`) and the engine's
rule book (:mod:`wsproto_tools.engine.rules`): which types a client may send
(:func:`~wsproto_tools.engine.rules.check_direction`), values of every field
kind, the mutations of a field by its kind, and for each mutation the outcome
the spec demands (:class:`Outcome`: the close codes allowed, whether the
session may go on, the checklist rule). Nothing here does I/O.
"""

from __future__ import annotations

__all__ = [
    "CLIENT_TYPES",
    "DOCUMENTED_CLOSES",
    "SERVER_ONLY_TYPES",
    "FieldMutation",
    "Outcome",
    "field_mutations",
    "payload_map",
    "valid_value",
]

import random
from dataclasses import dataclass
from typing import Any

from wsproto_tools.codec.limits import DEFAULT_LIMITS
from wsproto_tools.codec.schema import (
    PAYLOAD_CLASSES,
    Authenticate,
    Batch,
    Close,
    FieldSpec,
    Handshake,
    Kind,
    Payload,
    PayloadKind,
    payload_fields,
)
from wsproto_tools.engine.rules import Rule, check_direction
from wsproto_tools.exceptions import CloseCode

#: Every close code docs/protocol.md lets a server send for a peer's message.
DOCUMENTED_CLOSES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1012, 1013}
    | {4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008}
)

#: Types a client sends in an established session (the handshake's come apart).
CLIENT_TYPES: tuple[type[Payload], ...] = tuple(
    cls
    for cls in PAYLOAD_CLASSES
    if check_direction(cls, from_server=False) is None
    and cls not in (Handshake, Authenticate, Batch, Close)
)
#: Types only a server may send (rule 25), and the retired Resume (rule 26).
SERVER_ONLY_TYPES: tuple[type[Payload], ...] = tuple(
    cls for cls in PAYLOAD_CLASSES if check_direction(cls, from_server=False) is not None
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the target must do with a step.

    ``closes``: the close codes it may answer with; ``may_continue``: whether it
    may also go on as if nothing happened; ``answer``: an answer that must come
    when it goes on (``"error:1003"``: an Error with that code).
    """

    closes: frozenset[int] = frozenset()
    may_continue: bool = True
    rule: int | None = None
    answer: str | None = None

    @classmethod
    def go_on(cls, rule: Rule | None = None, answer: str | None = None) -> Outcome:
        return cls(frozenset(), True, None if rule is None else int(rule), answer)

    @classmethod
    def close(cls, rule: Rule, *also: int) -> Outcome:
        return cls(frozenset({rule.code, *also}), False, int(rule))

    @classmethod
    def codes(cls, *codes: int, may_continue: bool = False, rule: Rule | None = None) -> Outcome:
        return cls(frozenset(codes), may_continue, None if rule is None else int(rule))

    def describe(self) -> str:
        parts = []
        if self.closes:
            parts.append("close " + "/".join(str(c) for c in sorted(self.closes)))
        if self.may_continue:
            parts.append("go on" + (f" with {self.answer}" if self.answer else ""))
        text = " or ".join(parts) or "nothing"
        return text + (f" (rule {self.rule})" if self.rule else "")


# ---------------------------------------------------------------- values by kind
_UINT_EDGES = (
    0,
    1,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**53,
    2**63 - 1,
    2**63,
    2**64 - 1,
)


def valid_value(kind: Kind, rng: random.Random) -> Any:
    """An ordinary value of a field kind."""
    if kind is Kind.UINT:
        return rng.choice((0, 1, 2, rng.randrange(1 << 16)))
    if kind is Kind.INT:
        return rng.randrange(-1000, 1000)
    if kind is Kind.BOOL:
        return rng.random() < 0.5
    if kind is Kind.STR:
        return "".join(rng.choice("abcxyz.-_é") for _ in range(rng.randrange(1, 12)))
    if kind is Kind.BYTES:
        return rng.randbytes(rng.randrange(0, 24))
    if kind is Kind.STR_LIST:
        return [valid_value(Kind.STR, rng) for _ in range(rng.randrange(0, 3))]
    if kind is Kind.STR_UINT_MAP:
        return {valid_value(Kind.STR, rng): rng.randrange(100) for _ in range(rng.randrange(2))}
    if kind is Kind.DELTA_OPS:
        return [[rng.randrange(64), rng.randrange(64)], rng.randbytes(4)]
    return rng.choice((None, 1, "x", b"y", (1, 2), {"k": 1}))


def _wrong_kinds(kind: Kind) -> tuple[Any, ...]:
    """msgpack values of other kinds than ``kind`` (type confusion)."""
    pool: dict[str, Any] = {
        "int": 7,
        "negative": -1,
        "float": 1.5,
        "str": "seven",
        "bin": b"\x07",
        "bool": True,
        "array": [1, "x"],
        "map": {"x": 1},
    }
    excluded = {
        Kind.UINT: {"int"},
        Kind.INT: {"int", "negative"},
        Kind.BOOL: {"bool"},
        Kind.STR: {"str"},
        Kind.BYTES: {"bin"},
        Kind.STR_LIST: {"array"},
        Kind.STR_UINT_MAP: {"map"},
        Kind.DELTA_OPS: {"array"},
        Kind.VALUE: set(pool),
    }[kind]
    return tuple(v for k, v in pool.items() if k not in excluded)


@dataclass(frozen=True, slots=True)
class FieldMutation:
    """A field of a payload set to ``value`` (``absent``: removed), and what the
    target must do with it."""

    field: str
    label: str
    value: Any
    absent: bool
    outcome: Outcome


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def field_mutations(cls: type[Payload]) -> list[FieldMutation]:
    """Every mutation of every field of a msgpack payload class, with its outcome.

    Wrong kinds and missing required fields are invalid content (rule 4, 1007);
    values past a decoding limit are rule 5 (1009); boundary values of the right
    kind are valid on the wire, so the target may go on or close with a code
    the spec documents for the message's meaning (never 1011, never a crash).
    """
    if cls.KIND is not PayloadKind.MSGPACK:
        return []
    limits = DEFAULT_LIMITS
    out: list[FieldMutation] = []
    bad = Outcome.close(Rule.PAYLOAD)
    too_big = Outcome.close(Rule.LIMITS, CloseCode.INVALID_DATA)
    edge = Outcome.codes(*sorted(DOCUMENTED_CLOSES - {1000, 1001, 1012, 1013}), may_continue=True)
    for name, spec in payload_fields(cls):
        out.extend(
            FieldMutation(name, f"{_kind_name(v)} for {spec.kind.value}", v, False, bad)
            for v in _wrong_kinds(spec.kind)
        )
        if not spec.optional:
            out.append(FieldMutation(name, "missing required field", None, True, bad))
        else:
            out.append(FieldMutation(name, "nil for an optional field", None, False, edge))
        out.extend(_edges(name, spec, edge, too_big, limits.max_str_len, limits.max_depth))
    return out


def _edges(
    name: str, spec: FieldSpec, edge: Outcome, too_big: Outcome, max_str: int, max_depth: int
) -> list[FieldMutation]:
    kind = spec.kind
    out: list[FieldMutation] = []
    if kind in (Kind.UINT, Kind.INT):
        out.extend(FieldMutation(name, f"uint edge {v}", v, False, edge) for v in _UINT_EDGES)
    elif kind is Kind.STR:
        out.append(FieldMutation(name, "empty string", "", False, edge))
        out.append(FieldMutation(name, "256 characters", "t" * 256, False, edge))
        out.append(FieldMutation(name, "257 characters", "t" * 257, False, edge))
        out.append(FieldMutation(name, "NUL and controls", "a\x00\x1b[2J", False, edge))
        out.append(
            FieldMutation(
                name, f"{max_str + 1} bytes (over the limit)", "s" * (max_str + 1), False, too_big
            )
        )
    elif kind is Kind.BYTES:
        out.append(FieldMutation(name, "empty bin", b"", False, edge))
        out.append(FieldMutation(name, "64 KiB bin", b"\x00" * 65536, False, edge))
    elif kind in (Kind.STR_LIST, Kind.DELTA_OPS):
        out.append(FieldMutation(name, "1025 items (over the limit)", ["x"] * 1025, False, too_big))
        out.append(
            FieldMutation(
                name,
                f"nested {max_depth + 2} deep",
                _nested(max_depth + 2),
                False,
                Outcome.codes(1007, 1009, rule=Rule.LIMITS),
            )
        )
    elif kind is Kind.VALUE:
        out.append(
            FieldMutation(
                name,
                f"nested {max_depth + 2} deep",
                _nested(max_depth + 2),
                False,
                Outcome.close(Rule.LIMITS),
            )
        )
    return out


def _kind_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "negative int" if value < 0 else "int"
    return {float: "float", str: "str", bytes: "bin", list: "array", dict: "map"}.get(
        type(value), type(value).__name__
    )


def payload_map(payload: Payload) -> dict[str, Any]:
    """A msgpack payload as the map it travels as (field name -> wire value)."""
    from wsproto_tools.codec.schema import DeltaCopy

    out: dict[str, Any] = {}
    for name, _spec in payload_fields(type(payload)):
        value = getattr(payload, name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = [[v.offset, v.length] if isinstance(v, DeltaCopy) else v for v in value]
        out[name] = value
    return out
