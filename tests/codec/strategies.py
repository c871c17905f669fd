"""Hypothesis strategies for wsp messages, built from the schema's field kinds."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from wsproto_tools.codec import TYPES, Batch, Flags, Message, Payload, Unknown
from wsproto_tools.codec.schema import DeltaCopy, Kind, PayloadKind, payload_fields

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1

texts = st.text(st.characters(codec="utf-8"), max_size=40)
uints = st.one_of(st.integers(0, 300), st.integers(0, U64))

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 63), U64)
    | st.floats(allow_nan=False) | texts | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4).map(tuple)
    | st.dictionaries(texts, children, max_size=4),
    max_leaves=10,
)


def _depth(value: Any) -> int:
    if isinstance(value, tuple):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


KIND_STRATEGIES: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.UINT: uints,
    Kind.INT: st.integers(-(1 << 63), U64),
    Kind.BOOL: st.booleans(),
    Kind.STR: texts,
    Kind.BYTES: st.binary(max_size=64),
    Kind.STR_LIST: st.lists(texts, max_size=5).map(tuple),
    Kind.STR_UINT_MAP: st.dictionaries(texts, uints, max_size=5).map(
        lambda d: tuple(d.items())
    ),
    Kind.VALUE: values.filter(lambda v: _depth(v) <= 6),
    Kind.DELTA_OPS: st.lists(
        st.binary(max_size=10) | st.builds(DeltaCopy, uints, uints), max_size=5
    ).map(tuple),
}


def payloads_of(cls: type[Payload]) -> st.SearchStrategy[Payload]:
    """Every declared field drawn from its kind; optional fields sometimes left at None."""
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for name, fspec in payload_fields(cls):
        strategy = KIND_STRATEGIES[fspec.kind]
        if fspec.optional and fspec.kind is not Kind.VALUE:
            default = cls.__dataclass_fields__[name].default  # type: ignore[attr-defined]
            strategy = st.just(default) | strategy
        kwargs[name] = strategy
    return st.builds(cls, **kwargs)


UNKNOWN_CODES = st.integers(0, 0xFFFF).filter(lambda code: code not in TYPES)

simple_payloads: st.SearchStrategy[Payload] = st.one_of(
    *[payloads_of(spec.cls) for spec in TYPES.values() if spec.kind is not PayloadKind.BATCH],
    st.builds(Unknown, UNKNOWN_CODES, st.binary(max_size=64)),
)

flags = st.sampled_from([Flags(bits) for bits in range(8)])


def messages_with(payloads: st.SearchStrategy[Payload]) -> st.SearchStrategy[Message]:
    return st.builds(
        Message,
        payloads,
        sequence=st.one_of(st.integers(0, 20000), st.integers(0, U32)),
        session_id=st.one_of(st.just(0), uints),
        timestamp=st.one_of(st.just(0), st.integers(0, U64)),
        flags=flags,
    )


simple_messages = messages_with(simple_payloads)
batches = st.lists(simple_messages, max_size=4).map(lambda ms: Batch(tuple(ms)))
messages = simple_messages | messages_with(batches)
