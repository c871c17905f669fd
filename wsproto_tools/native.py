"""The optional C speedups (``*/_*.c``, built by ``setup.py`` when a C compiler is there).

Each sits beside the Python code it mirrors and is used only through
:func:`load`, which gives None when the module was not built or when the
environment variable ``WSP_PURE_PYTHON`` is set (then the pure-Python paths run).
"""

from __future__ import annotations

__all__ = ["SWITCH", "load"]

import importlib
import os
from types import ModuleType

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
