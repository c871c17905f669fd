"""One error tree for the whole package.

Every error the core raises is a :class:`WspError`. Errors say whose fault it
was (:class:`LocalProtocolError`: the caller misused the API;
:class:`RemoteProtocolError`: the peer or the input misbehaved) and carry the
WebSocket close code a peer should answer with (RFC 6455 section 7.4.1, and the
protocol's own 4000-4999 codes listed in ``docs/protocol.md``).
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "CaptureError",
    "CaptureUnreadable",
    "CloseCode",
    "ConfigError",
    "ConnectionFailed",
    "DecodeError",
    "DeltaBaseMissing",
    "FrameError",
    "HandshakeError",
    "LimitExceeded",
    "LocalProtocolError",
    "NotACapture",
    "RemoteProtocolError",
    "WspError",
]

from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes used by the package (RFC 6455 section 7.4.1 and ours)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005
    ABNORMAL = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    # wsp's own range (docs/protocol.md, "Close codes").
    WSP_AUTH_FAILED = 4001
    WSP_HANDSHAKE_TIMEOUT = 4002
    WSP_FORBIDDEN_TOPIC = 4003
    WSP_RATE_LIMITED = 4004
    WSP_SLOW_CONSUMER = 4005
    WSP_HEARTBEAT_TIMEOUT = 4006
    WSP_UNNEGOTIATED = 4007
    WSP_TOO_MANY_CONNECTIONS = 4008
    WSP_SESSION_UNKNOWN = 4009
    WSP_ORIGIN_REFUSED = 4010


class WspError(Exception):
    """Base of every error raised by wsproto_tools."""

    close_code: int = CloseCode.INTERNAL_ERROR

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        if close_code is not None:
            self.close_code = close_code


class LocalProtocolError(WspError):
    """The caller asked for something the protocol does not allow."""

    close_code = CloseCode.INTERNAL_ERROR


class ConfigError(LocalProtocolError):
    """A setting or option has a value that cannot work."""


class RemoteProtocolError(WspError):
    """The peer, or the input being decoded, broke the protocol."""

    close_code = CloseCode.PROTOCOL_ERROR


class DecodeError(RemoteProtocolError):
    """Bytes that are not a valid message; ``offset`` is where the problem is."""

    def __init__(
        self, message: str, *, offset: int | None = None, close_code: int | None = None
    ) -> None:
        self.reason = message
        self.offset = offset
        text = message if offset is None else f"{message} (at byte offset {offset})"
        super().__init__(text, close_code=close_code)


class LimitExceeded(DecodeError):
    """A size, count or nesting limit was exceeded."""

    close_code = CloseCode.MESSAGE_TOO_BIG


class DeltaBaseMissing(RemoteProtocolError):
    """A DeltaUpdate refers to a base state the receiver does not hold."""


class FrameError(DecodeError):
    """A WebSocket frame breaks RFC 6455 / RFC 7692."""


class HandshakeError(RemoteProtocolError):
    """The HTTP upgrade or the wsp handshake failed."""


class AuthenticationError(RemoteProtocolError):
    """Credentials were refused (wrong secret, bad or expired token)."""

    close_code = CloseCode.WSP_AUTH_FAILED


class ConnectionFailed(WspError):
    """A network connection could not be made or was lost."""

    close_code = CloseCode.ABNORMAL


class CaptureError(WspError):
    """A capture file is damaged in a way that stops reading."""


class CaptureUnreadable(CaptureError):
    """The capture file or stream could not be read (an I/O error)."""


class NotACapture(CaptureError):
    """The input is not a pcap or pcapng capture at all."""


# Added by the codec (docs/protocol.md, "Errors").
class DecryptionFailed(DecodeError):
    """An ENCRYPTED payload did not authenticate under the given key."""

    close_code = CloseCode.INVALID_DATA


__all__ += ["DecryptionFailed"]


# Added by the filter language (docs/filter.md).
class FilterError(ConfigError):
    """A filter expression could not be parsed; ``position`` is where (0-based)."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.position = position


__all__ += ["FilterError"]
