"""The optional C speedups; everything else is in pyproject.toml.

Each extension is optional: without a C compiler the package installs and runs
on its pure-Python code paths (``WSP_PURE_PYTHON=1`` forces them at run time).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wsproto_tools.capture._acks",
            ["wsproto_tools/capture/_acks.c"],
            depends=["wsproto_tools/_cslots.h"],
            optional=True,
            extra_compile_args=["-O2", "-Wall"],
        ),
        Extension(
            "wsproto_tools.capture._pcap",
            ["wsproto_tools/capture/_pcap.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall"],
        ),
        Extension(
            "wsproto_tools.capture._tally",
            ["wsproto_tools/capture/_tally.c"],
            depends=["wsproto_tools/_cslots.h"],
            optional=True,
            extra_compile_args=["-O2", "-Wall"],
        ),
        Extension(
            "wsproto_tools.capture._net",
            ["wsproto_tools/capture/_net.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall"],
        ),
        Extension(
            "wsproto_tools.ws._scan",
            ["wsproto_tools/ws/_scan.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall"],
        ),
        Extension(
            "wsproto_tools.codec._fast",
            ["wsproto_tools/codec/_fast.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall"],
        ),
        Extension(
            "wsproto_tools.render._lines",
            ["wsproto_tools/render/_lines.c"],
            depends=["wsproto_tools/_cslots.h"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wno-unused-label"],
        ),
    ]
)
