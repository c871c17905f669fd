"""The C counter (``capture/_tally.c``) counts what ``CaptureStats.add`` counts.

The oracle is the Python :meth:`CaptureStats.add`: the same messages (every
sample capture's, and random ones) fed to both must give equal statistics.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsproto_tools import native
from wsproto_tools.capture import CapturedMessage, CaptureStats
from wsproto_tools.capture import stats as stats_module

from .samples import sample_messages, samples
from .strategies import captured


def c_stats() -> tuple[CaptureStats, Any]:
    stats = CaptureStats()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(native.SWITCH, raising=False)
        module = native.load("capture._tally")
    assert module is not None, "the C counter was not built (setup.py, a C compiler)"
    stats._tally = stats_module._compiled_tally(module)(stats)
    return stats, stats.counter()


def fields(stats: CaptureStats) -> dict[str, Any]:
    stats.settle()
    return {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)
            if f.name != "_tally"}


def test_every_sample() -> None:
    for _, path, _ in samples():
        items = sample_messages(path)
        python = CaptureStats()
        fast, add = c_stats()
        for item in items:
            python.add(item)
            add(item)
        assert fields(fast) == fields(python)
        assert python.messages == len(items)


@settings(max_examples=200, deadline=None)
@given(st.lists(captured(), max_size=20))
def test_random_messages(items: list[CapturedMessage]) -> None:
    python = CaptureStats()
    fast, add = c_stats()
    for item in items:
        python.add(item)
        add(item)
    assert fields(fast) == fields(python)


def test_settled_by_pickling_and_merging() -> None:
    item = CapturedMessage(1, 1.0, 1, "client", _message(), ())
    one, add = c_stats()
    add(item)
    copy = pickle.loads(pickle.dumps(one))
    assert copy.messages == 1 and copy._tally is None
    two, add_two = c_stats()
    add_two(item)
    two.merge(copy)
    assert two.messages == 2 and two.opcodes[2] == 2


def _message() -> Any:
    from wsproto_tools.ws import WsMessage

    return WsMessage(2, b"\x01\x02", wire_length=8)


def test_pure_python_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.SWITCH, "1")
    tally = native.pick("capture._tally", stats_module._compiled_tally,
                        stats_module._PythonTally)
    assert tally is stats_module._PythonTally
    stats = CaptureStats()
    stats._tally = tally(stats)
    assert stats.counter() == stats.add
    stats.counter()(CapturedMessage(1, 1.0, 1, "client", _message(), ()))
    stats.settle()
    assert stats.messages == 1
