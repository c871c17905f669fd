"""Building frozen messages without their dataclass ``__init__`` (the decode hot paths).

A frozen dataclass's generated ``__init__`` costs about 0.6 µs per object; the
decoders in :mod:`.wire` and :mod:`.fastpath` create the objects with
``object.__new__`` and set each slot through its descriptor instead. The values
are the ones the generated ``__init__`` would set; tests compare both paths.
"""

from __future__ import annotations

__all__ = [
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

from wsproto_tools.codec.schema import Batch, BinaryData, Message, TextData

new = object.__new__
set_payload = vars(Message)["payload"].__set__
set_sequence = vars(Message)["sequence"].__set__
set_session = vars(Message)["session_id"].__set__
set_timestamp = vars(Message)["timestamp"].__set__
set_flags = vars(Message)["flags"].__set__
set_messages = vars(Batch)["messages"].__set__
set_data = vars(BinaryData)["data"].__set__
set_text = vars(TextData)["text"].__set__
