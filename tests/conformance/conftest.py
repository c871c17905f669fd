"""A real wsp server for the conformance tests: ``async with serve(**config) as port``.

WspServer in-process on 127.0.0.1 with an OS-assigned port (as tests/server
does); short close and sweep intervals so that timers fire within a test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from wsproto_tools.server import ServerConfig, WspServer

from .wire import SECRET


@contextlib.asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[int]:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "secret": SECRET,
        "close_timeout": 0.2,
        "sweep_interval": 0.05,
        "handshake_timeout": 2.0,
    }
    settings.update(overrides)
    server = WspServer(ServerConfig(**settings))
    await server.start()
    try:
        yield int(server.port)
    finally:
        await server.shutdown()


@pytest.fixture
def wsp_server() -> Callable[..., Any]:
    """``async with wsp_server(**config) as port:`` a started reference server."""
    return running
