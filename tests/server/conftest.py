"""Real servers on 127.0.0.1 with OS-assigned ports."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from wsproto_tools.server import ServerConfig, WspServer

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
    """``async with serve(**config) as server:`` a started WspServer."""
    return running
