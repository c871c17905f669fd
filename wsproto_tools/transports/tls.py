"""TLS for every live socket: client and server contexts, and errors in one line.

Clients verify certificates against the system store by default; ``cafile`` adds
a private CA; ``insecure`` turns verification off (the caller warns the user).
"""

from __future__ import annotations

__all__ = ["WsUrl", "client_context", "describe_ssl_error", "parse_ws_url", "server_context"]

import os
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from wsproto_tools.exceptions import ConfigError


@dataclass(frozen=True)
class WsUrl:
    """A checked ``ws://`` or ``wss://`` URL."""

    url: str
    secure: bool
    host: str
    port: int
    resource: str  # path and query, at least "/"

    @property
    def host_header(self) -> str:
        default = 443 if self.secure else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_ws_url(url: str) -> WsUrl:
    """Check a WebSocket URL; raise :class:`ConfigError` naming what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        # urllib says "Port out of range 0-65535" or "Port could not be cast to integer value"
        raise ConfigError(f"{url!r}: {str(error).lower()}") from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        hint = "wss" if scheme == "https" else "ws"
        raise ConfigError(
            f"{url!r} is an HTTP URL; did you mean {hint}://{parts.netloc}{parts.path}?"
        )
    if scheme not in ("ws", "wss"):
        raise ConfigError(
            f"{url!r} is not a WebSocket URL (expected ws://HOST[:PORT]/PATH or wss://…)"
        )
    if not parts.hostname:
        raise ConfigError(f"{url!r} has no host")
    if port == 0:
        raise ConfigError(f"{url!r}: port 0 cannot be connected to (1-65535)")
    secure = scheme == "wss"
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return WsUrl(url, secure, parts.hostname, port or (443 if secure else 80), resource)


def client_context(cafile: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """A client context: the system's CAs (plus ``cafile``), or no verification."""
    if cafile is not None and os.path.isdir(cafile):
        raise ConfigError(f"--cafile {cafile}: is a directory, not a PEM file")
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"--cafile {cafile}: cannot load CA certificates: {_reason(error)}"
        ) from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def server_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A server context with one certificate chain (``keyfile`` may be inside ``certfile``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for name in (certfile, keyfile):
        if name is not None and os.path.isdir(name):
            raise ConfigError(f"{name}: is a directory, not a PEM file")
    try:
        context.load_cert_chain(certfile, keyfile)
    except FileNotFoundError as error:
        raise ConfigError(f"{error.filename or certfile}: no such file") from None
    except (OSError, ssl.SSLError) as error:
        names = certfile if keyfile is None else f"{certfile} and {keyfile}"
        why = _reason(error) if not isinstance(error, ssl.SSLError) or error.reason else (
            "no PEM certificate with its matching private key found"
        )
        raise ConfigError(f"cannot load the certificate and key from {names}: {why}") from None
    return context


def describe_ssl_error(error: BaseException) -> str | None:
    """One line for a TLS failure ("TLS certificate verification failed: …"), else None."""
    if isinstance(error, ssl.SSLCertVerificationError):
        why = error.verify_message or _reason(error)
        return f"TLS certificate verification failed: {why}"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed: {_reason(error)}"
    return None


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason).lower().replace("_", " ")
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
