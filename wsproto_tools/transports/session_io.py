"""What every tool that opens WebSocket connections says about a failed attempt.

Shared by the client library and the replayer (tools never import each other,
docs/architecture.md): :func:`connect_failure` names why a connection attempt
failed in a few words.
"""

from __future__ import annotations

__all__ = ["connect_failure"]

import socket

from websockets.exceptions import InvalidMessage

from wsproto_tools.transports.tls import describe_ssl_error


def connect_failure(error: BaseException, timeout: float, secure: bool = False) -> str:
    """Why a connection attempt failed, in a few words (never empty)."""
    tls = describe_ssl_error(error)
    if tls is not None:
        return tls
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the server running on that port?)"
    if isinstance(error, ConnectionResetError | ConnectionAbortedError):
        hint = " (does it serve TLS? for a plain server use ws://)" if secure else ""
        return f"connection reset by the server{hint}"
    if isinstance(error, socket.gaierror):
        return f"host not found ({error.strerror or error})"
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(error, InvalidMessage) and not secure:
        return f"{error} (is it a wss:// server?)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[0].lower() + error.strerror[1:]
    return str(error) or type(error).__name__
