"""The client side of ``wsp serve``'s inspector feed (docs/inspect.md).

``async for record in inspector_feed(url, secret): ...`` (or
``inspector_feed(url, token=jwt)``, a JWT with the admin claim) yields one dict
per record. A refused credential (HTTP 403), or an admin token that expires while
attached (close code 4001), raises AuthenticationError; a server that cannot be
reached, or goes away, raises ConnectionFailed.
"""

from __future__ import annotations

__all__ = ["feed_url", "inspector_batches", "inspector_feed"]

import json
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from wsproto_tools.exceptions import AuthenticationError, CloseCode, ConnectionFailed


def feed_url(
    url: str,
    *,
    session: int | None = None,
    topics: Iterable[str] = (),
    types: Iterable[str] = (),
) -> str:
    """``URL`` of a wsp server plus ``/inspect`` and the filters as a query."""
    query: list[tuple[str, str]] = []
    if session is not None:
        query.append(("session", str(session)))
    query += [("topic", t) for t in topics]
    query += [("type", t) for t in types]
    base = url.split("?", 1)[0].rstrip("/")
    return f"{base}/inspect" + (f"?{urlencode(query)}" if query else "")


async def inspector_batches(
    url: str,
    secret: str | None = None,
    *,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    open_timeout: float = 10,
) -> AsyncIterator[list[str]]:
    """The feed at ``url`` (as made by :func:`feed_url`) as it arrives: the JSON
    lines of each WebSocket message (up to 256 records), not parsed. Read with
    the server's admin ``secret`` or an admin ``token`` (a JWT): one of the two."""
    if (secret is None) == (token is None):
        raise ValueError("inspector_feed: give the admin secret or an admin token (one)")
    credential, what = (secret, "admin secret") if token is None else (token, "admin token")
    headers = {"Authorization": f"Bearer {credential}"}
    try:
        ws = await connect(
            url,
            additional_headers=headers,
            ssl=ssl_context,
            open_timeout=open_timeout,
            max_size=None,
            ping_interval=None,
        )
    except InvalidStatus as error:
        status = error.response.status_code
        if status == 403:
            raise AuthenticationError(f"the server refused the {what} (HTTP 403)") from None
        raise ConnectionFailed(
            f"{url}: HTTP {status} (is the server running with --inspect?)"
        ) from None
    except (OSError, InvalidHandshake, TimeoutError) as error:
        raise ConnectionFailed(f"{url}: {error or type(error).__name__}") from None
    try:
        async for text in ws:  # one or more records, one JSON object a line
            yield [line for line in str(text).splitlines() if line]
    except ConnectionClosed:
        pass
    finally:
        await ws.close()
    if ws.close_code == CloseCode.WSP_AUTH_FAILED:
        raise AuthenticationError(f"the server closed the inspector feed: {ws.close_reason}")
    raise ConnectionFailed("the server closed the inspector feed")


async def inspector_feed(
    url: str,
    secret: str | None = None,
    *,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    open_timeout: float = 10,
) -> AsyncIterator[dict[str, Any]]:
    """The records of the feed at ``url`` (as made by :func:`feed_url`), read with
    the server's admin ``secret`` or an admin ``token`` (a JWT): one of the two."""
    async for lines in inspector_batches(url, secret, token=token, ssl_context=ssl_context,
                                         open_timeout=open_timeout):
        for line in lines:
            yield json.loads(line)
