"""The switch and the loader of the optional C speedups (wsproto_tools/native.py)."""

from __future__ import annotations

import pytest

from wsproto_tools import native

BUILT = ["capture._acks", "capture._net", "capture._pcap", "capture._tally", "codec._fast",
         "render._lines", "ws._scan"]


@pytest.mark.parametrize("name", BUILT)
def test_each_speedup_is_built_and_the_switch_turns_it_off(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(native.SWITCH, raising=False)
    module = native.load(name)
    assert module is not None, f"wsproto_tools.{name} was not built (setup.py, a C compiler)"
    assert module.__file__ is not None and module.__file__.endswith((".so", ".pyd"))
    monkeypatch.setenv(native.SWITCH, "1")
    assert native.load(name) is None


def test_a_module_that_is_not_there() -> None:
    assert native.load("codec._no_such_module") is None


def test_pick_takes_the_c_form_once_built(monkeypatch: pytest.MonkeyPatch) -> None:
    def python_form(linktype: int, data: bytes) -> None:
        return None

    monkeypatch.delenv(native.SWITCH, raising=False)
    module = native.load("capture._net")
    assert module is not None
    assert native.pick("capture._net", "parse", python_form) is module.parse
    assert native.pick("capture._net", lambda m: m.parse, python_form) is module.parse
    assert native.pick("codec._no_such_module", "parse", python_form) is python_form
    monkeypatch.setenv(native.SWITCH, "1")
    assert native.pick("capture._net", "parse", python_form) is python_form
