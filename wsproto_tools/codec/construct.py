"""Building frozen messages without their dataclass ``__init__`` (the decode hot paths).

A frozen dataclass's generated ``__init__`` costs about 0.6 µs per object; the
decoders in :mod:`.wire` and :mod:`.fastpath` create the objects with
``object.__new__`` and set each slot through its descriptor instead. The values
are the ones the generated ``__init__`` would set; tests compare both paths.
"""

from __future__ import annotations

__all__ = [
    "constructor",
    "new",
    "set_data",
    "set_flags",
    "set_messages",
    "set_payload",
    "set_sequence",
    "set_session",
    "set_text",
    "set_timestamp",
]

from collections.abc import Callable
from typing import Any, TypeVar

from wsproto_tools.codec.schema import Batch, BinaryData, Message, TextData, dataclass_fields

T = TypeVar("T")

new = object.__new__
set_payload = vars(Message)["payload"].__set__
set_sequence = vars(Message)["sequence"].__set__
set_session = vars(Message)["session_id"].__set__
set_timestamp = vars(Message)["timestamp"].__set__
set_flags = vars(Message)["flags"].__set__
set_messages = vars(Batch)["messages"].__set__
set_data = vars(BinaryData)["data"].__set__
set_text = vars(TextData)["text"].__set__


def constructor(cls: type[T]) -> Callable[..., T]:
    """``make(v0, v1, ...)``: ``cls(v0, v1, ...)`` for a frozen slots dataclass,
    every field given in declaration order (no defaults, no checks: the same as
    what the dataclass ``__init__`` does, at about half its cost)."""
    names = [f.name for f in dataclass_fields(cls)]
    args = ", ".join(f"v{i}" for i in range(len(names)))
    lines = [f"def make({args}):", "    o = new(cls)"]
    lines += [f"    set{i}(o, v{i})" for i in range(len(names))]
    lines.append("    return o")
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for i, name in enumerate(names):
        scope[f"set{i}"] = vars(cls)[name].__set__
    exec("\n".join(lines), scope)  # the code built above, from the dataclass fields
    make: Callable[..., T] = scope["make"]
    return make
