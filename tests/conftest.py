"""Fixtures shared by the test packages: a real wsp server on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from wsproto_tools.server import ServerConfig, WspServer

#: The secret the ``serve`` fixture's servers are configured with.
SECRET = b"test-secret"


@contextlib.asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[WspServer]:
    settings: dict[str, Any] = {"port": 0, "secret": SECRET}
    settings.update(overrides)
    server = WspServer(ServerConfig(**settings))
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


@pytest.fixture
def serve() -> Callable[..., Any]:
    """``async with serve(**config) as server:`` a started WspServer (port 0)."""
    return running
