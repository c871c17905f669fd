"""The optional C speedups; everything else is in pyproject.toml.

Each extension is optional: without a C compiler the package installs and runs
on its pure-Python code paths (``WSP_PURE_PYTHON=1`` forces them at run time;
see wsproto_tools/native.py).
"""

from setuptools import Extension, setup

#: each one beside the Python it mirrors
SPEEDUPS = [
    "capture/_acks",
    "capture/_net",
    "capture/_pcap",
    "capture/_tally",
    "codec/_fast",
    "render/_lines",
    "ws/_scan",
]

setup(
    ext_modules=[
        Extension(
            "wsproto_tools." + path.replace("/", "."),
            [f"wsproto_tools/{path}.c"],
            depends=["wsproto_tools/_cslots.h"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wno-unused-label"],
        )
        for path in SPEEDUPS
    ]
)
