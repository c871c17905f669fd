"""Exit statuses shared by every ``wsp`` command (documented in README.md)."""

from __future__ import annotations

__all__ = ["ExitStatus", "status_for"]

from enum import IntEnum

from wsproto_tools.exceptions import (
    AuthenticationError,
    CaptureError,
    ConnectionFailed,
    DecodeError,
    WspError,
)


class ExitStatus(IntEnum):
    """What a ``wsp`` process's exit status means."""

    OK = 0
    PROBLEMS_FOUND = 1  # fuzz failures, replay differences, unacked publishes, --strict
    USAGE = 2  # click's own usage errors
    BAD_INPUT = 3  # unreadable or invalid file or data
    NETWORK = 4  # connection or network error
    AUTH_REFUSED = 5
    INTERRUPTED = 130


def status_for(error: BaseException) -> ExitStatus:
    """The exit status for an error that ended a command."""
    if isinstance(error, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    if isinstance(error, AuthenticationError):
        return ExitStatus.AUTH_REFUSED
    if isinstance(error, DecodeError | CaptureError | UnicodeDecodeError | ValueError):
        return ExitStatus.BAD_INPUT
    if isinstance(error, ConnectionFailed | OSError | TimeoutError):
        return ExitStatus.NETWORK
    if isinstance(error, WspError):
        return ExitStatus.BAD_INPUT
    raise error
