"""Exit statuses shared by every ``wsp`` command (documented in README.md)."""

from __future__ import annotations

__all__ = ["CommandExit", "ExitStatus", "status_for"]

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


class CommandExit(Exception):
    """Ends a command with ``status``; ``message``, if any, is the error's one line
    (``wsp: error: MESSAGE`` on stderr). The one way a command ends early or with
    a status other than 0 (``cli/env.py``'s :func:`~wsproto_tools.cli.env.end`
    turns it, and the package's errors, into the line and the status)."""

    def __init__(self, status: ExitStatus, message: str | None = None) -> None:
        super().__init__(message or status.name)
        self.status = status
        self.message = message


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
