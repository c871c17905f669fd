"""Fixtures shared by the test packages: a real wsp server and a real ``websockets``
echo server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import dataclasses
import ssl
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


@contextlib.asynccontextmanager
async def echo_server(**kwargs: Any) -> AsyncIterator[int]:
    """A ``websockets`` asyncio echo server on 127.0.0.1 (port 0); yields its port."""
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve

    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                await ws.send(message)

    async with ws_serve(echo, "127.0.0.1", 0, max_size=None, **kwargs) as server:
        yield int(next(iter(server.sockets)).getsockname()[1])


@pytest.fixture
def websockets_echo() -> Callable[..., Any]:
    """``async with websockets_echo(**serve_kwargs) as port:`` the library's echo server."""
    return echo_server


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """A private CA and a certificate for 127.0.0.1/localhost/::1, as PEM files."""

    cafile: str
    certfile: str
    keyfile: str
    other_cafile: str  # a CA that did not sign the certificate

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Certificates made for this run by trustme (never committed keys)."""
    import trustme

    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    other = trustme.CA()
    files = TlsFiles(
        str(folder / "ca.pem"), str(folder / "cert.pem"), str(folder / "key.pem"),
        str(folder / "other-ca.pem"),
    )
    ca.cert_pem.write_to_path(files.cafile)
    cert.cert_chain_pems[0].write_to_path(files.certfile)
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(files.certfile, append=True)
    cert.private_key_pem.write_to_path(files.keyfile)
    other.cert_pem.write_to_path(files.other_cafile)
    return files
