"""The optional C speedups (``*/_*.c``, built by ``setup.py`` when a C compiler is there).

Each sits beside the Python code it mirrors. A module picks the C form or the
Python form of a function once, at import time, with :func:`pick`, and its
callers call that one name (as websockets' ``frames.py`` does with
``apply_mask``)::

    _split = native.pick("capture._pcap", "split", _python_split)
    segment = native.pick("capture._net", _compiled_segment, tcp_segment)

The second argument is the attribute to take from the C module, or a function
that builds the C form from the module when it needs configuring (``net.py``'s
``_compiled_segment`` gives the C parser its Python form). The Python form is
taken when the module was not built or when the environment variable
``WSP_PURE_PYTHON`` is set. A C form that leaves some inputs to Python calls the
Python form itself (it is given it when built): callers never test for None.
:func:`load` gives the module itself, or None.
"""

from __future__ import annotations

__all__ = ["SWITCH", "load", "pick"]

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")

#: set (to anything non-empty) to run without the C speedups
SWITCH = "WSP_PURE_PYTHON"


def load(name: str) -> ModuleType | None:
    """The C module ``wsproto_tools.<name>`` (e.g. ``"ws._scan"``), or None."""
    if os.environ.get(SWITCH):
        return None
    try:
        return importlib.import_module(f"wsproto_tools.{name}")
    except ImportError:
        return None


def pick(name: str, c_form: str | Callable[[ModuleType], T], python_form: T) -> T:
    """The C form from module ``wsproto_tools.<name>`` (its attribute ``c_form``, or
    ``c_form(module)``), else ``python_form``."""
    module = load(name)
    if module is None:
        return python_form
    if isinstance(c_form, str):
        found: T = getattr(module, c_form)
        return found
    return c_form(module)
