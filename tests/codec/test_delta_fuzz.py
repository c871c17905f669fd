"""DeltaUpdate under fuzzing: a delta that reads past its base, a missing or
wrong base, a wrong checksum, huge copy lengths (docs/protocol.md 7.3).

The oracle is section 7.3 written out here: the new state is the concatenation
of the ops' outputs, an op may not reach past the base, the CRC-32 must match.
``apply_delta`` must agree with it on every generated delta, and fail only with
``DeltaBaseMissing`` or ``LimitExceeded`` — never another error, never a result
from the wrong base, never a huge allocation for a huge copy length.
"""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_tools.codec import ChannelStates, DeltaCopy, DeltaUpdate, apply_delta
from wsproto_tools.exceptions import DeltaBaseMissing, LimitExceeded

_EDGES = (0, 1, 2, 255, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1)
_uint = st.one_of(st.integers(0, 64), st.sampled_from(_EDGES))
_op = st.one_of(st.builds(DeltaCopy, _uint, _uint), st.binary(max_size=16))


def _spec(base: bytes | None, held: int | None, delta: DeltaUpdate) -> bytes | None:
    """Section 7.3: the produced state, or None when the receiver must refuse it."""
    if base is None or held != delta.base_version:
        return None
    out = b""
    for op in delta.ops:
        if isinstance(op, DeltaCopy):
            if op.offset + op.length > len(base):
                return None
            out += base[op.offset : op.offset + op.length]
        else:
            out += op
    return out if zlib.crc32(out) == delta.checksum else None


@settings(max_examples=400, deadline=None)
@given(
    base=st.one_of(st.none(), st.binary(max_size=48)),
    held=st.one_of(st.none(), _uint),
    base_version=_uint,
    ops=st.lists(_op, max_size=6),
    honest_checksum=st.booleans(),
    checksum=_uint,
)
def test_apply_delta_agrees_with_section_7_3(
    base: bytes | None,
    held: int | None,
    base_version: int,
    ops: list[DeltaCopy | bytes],
    honest_checksum: bool,
    checksum: int,
) -> None:
    if honest_checksum and base is not None:
        produced = b"".join(
            base[o.offset : o.offset + o.length] if isinstance(o, DeltaCopy) else o for o in ops
        )
        checksum = zlib.crc32(produced)
    delta = DeltaUpdate("ch", base_version, base_version + 1, tuple(ops), checksum & 0xFFFFFFFF)
    want = _spec(base, held, delta)
    try:
        got = apply_delta(base, held, delta, limit=1 << 16)
    except (DeltaBaseMissing, LimitExceeded):
        assert want is None or len(want) > 1 << 16
    else:
        assert got == want


def test_a_huge_copy_is_refused_without_allocating() -> None:
    states = ChannelStates(max_channels=2, max_state=1 << 20)
    states.set("ch", 1, b"abc")
    for offset, length in ((0, 2**63), (2**64 - 1, 1), (3, 1), (0, 4)):
        delta = DeltaUpdate("ch", 1, 2, (DeltaCopy(offset, length),), 0)
        try:
            states.apply(delta)
        except DeltaBaseMissing as error:
            assert "reaches past" in str(error)
        else:
            raise AssertionError(f"copy [{offset}, +{length}] of a 3-byte base was applied")
    assert states.get("ch") == (1, b"abc")  # the held state is untouched
