"""Ack latency and retransmissions (capture/acks.py) and their C form (capture/_acks.c).

The Python tracker is checked against a conversation worked out by hand; the C
tracker against the Python one on random conversations, small bounds included.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_tools import native
from wsproto_tools.capture import acks
from wsproto_tools.codec import Acknowledge, Batch, BinaryData, Message, Publish, TextData


def both(max_entries: int) -> tuple[Any, Any, tuple[dict[Any, int], list[float]],
                                     tuple[dict[Any, int], list[float]]]:
    python_tables: tuple[dict[Any, int], list[float]] = ({}, [])
    c_tables: tuple[dict[Any, int], list[float]] = ({}, [])
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(native.SWITCH, raising=False)
        module = native.load("capture._acks")
    assert module is not None, "the C tracker was not built (setup.py)"
    fast = acks._compiled_tracker(module)(*c_tables, max_entries)
    return acks.AckTracker(*python_tables, max_entries), fast, python_tables, c_tables


def test_a_conversation_by_hand() -> None:
    tracker = acks.AckTracker({}, latencies := [])
    data = Message(TextData("x"), 1, 7)
    tracker.feed(data, True, 10.0)                                  # client sends 1
    tracker.feed(Message(TextData("y"), 2, 7), True, 10.5)         # and 2
    tracker.feed(Message(Acknowledge(1), 0, 7), False, 11.0)       # server acks 1
    tracker.feed(data, True, 12.0)                                  # 1 again: a retransmission
    tracker.feed(Message(Batch((Message(Acknowledge(2), 0, 7),)), 0, 7), False, 12.5)
    assert latencies == [1.0, 2.0, 0.5]   # 1 at 10.0 -> 11.0; 2 at 10.5 -> 12.5; 1 at 12.0 -> 12.5
    assert tracker.retransmissions == 1
    assert tracker.unacked == 0
    tracker.feed(Message(BinaryData(b""), 0, 7), True, 13.0)       # sequence 0: not tracked
    tracker.feed(Message(Publish("t", b""), 3, 7), True, 13.0)
    assert tracker.unacked == 1


sessions = st.sampled_from([0, 7, 1 << 63])
sequences = st.integers(0, 12)
single = st.one_of(
    st.builds(lambda s, sid: Message(TextData("x"), s, sid), sequences, sessions),
    st.builds(lambda s, sid: Message(Publish("t", b"x"), s, sid), sequences, sessions),
    st.builds(lambda s, sid: Message(Acknowledge(s), 0, sid), sequences, sessions),
    st.builds(lambda s: Message(BinaryData(b"x"), 0, 0, flags=0), sequences),
)
messages = single | st.lists(single, max_size=4).map(lambda ms: Message(Batch(tuple(ms))))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(messages, st.booleans(), st.floats(0, 100)), max_size=40),
       st.sampled_from([3, 100]))
def test_c_tracker_counts_as_the_python_one(
    conversation: list[tuple[Message, bool, float]], max_entries: int
) -> None:
    python, fast, python_tables, c_tables = both(max_entries)
    for message, client, ts in conversation:
        python.feed(message, client, ts)
        fast.feed(message, client, ts)
        assert (fast.unacked, fast.retransmissions) == (python.unacked, python.retransmissions)
    assert c_tables == python_tables
