"""The one environment object a command gets on its click context."""

from __future__ import annotations

__all__ = [
    "Environment",
    "describe",
    "end",
    "output_closed",
    "run_async",
    "stop_on_sigterm",
]

import functools
import os
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import IO, Any, NoReturn, TypeVar

import click

from wsproto_tools.cli.status import CommandExit, ExitStatus, status_for
from wsproto_tools.exceptions import WspError

T = TypeVar("T")


#: The console width when stdout is not a terminal (and COLUMNS is not set).
PIPE_WIDTH = 100_000


@dataclass
class Environment:
    """Streams and terminal facts; rich consoles are made only when asked for."""

    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)

    @property
    def stdout_isatty(self) -> bool:
        return bool(getattr(self.stdout, "isatty", lambda: False)())

    @functools.cached_property
    def console(self) -> Any:
        """A rich Console on stdout (imported lazily)."""
        from rich.console import Console

        # Through a pipe or into a file nothing is cut: no width unless COLUMNS sets one.
        width = None if self.stdout_isatty or os.environ.get("COLUMNS") else PIPE_WIDTH
        console = Console(file=self.stdout, highlight=False, width=width)
        # rich's own answer is status 1; a closed pipe ends a command with 0
        # rich documents on_broken_pipe as a hook to replace; mypy sees a method
        console.on_broken_pipe = output_closed  # type: ignore[method-assign]
        return console

    @functools.cached_property
    def err_console(self) -> Any:
        """A rich Console on stderr (imported lazily)."""
        from rich.console import Console

        return Console(file=self.stderr, highlight=False)

    def warn(self, line: str) -> None:
        """One line on stderr (``wsp: warning: ...``)."""
        click.echo(line, err=True)


def _stdout_closed() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more reaches the closed pipe
    except (OSError, ValueError, AttributeError):
        pass


def output_closed() -> NoReturn:
    """The reader of stdout went away (``wsp decode --ndjson F | head``): stop quietly,
    with status 0, as a pipeline expects."""
    _stdout_closed()
    raise CommandExit(ExitStatus.OK)


def describe(error: BaseException) -> str:
    """One line for an error: an OSError names its file and says why, without "[Errno N]"."""
    if isinstance(error, OSError) and not isinstance(error, WspError):
        from wsproto_tools.transports.tls import describe_ssl_error

        tls = describe_ssl_error(error)
        if tls is not None:
            return tls
        why = error.strerror or str(error) or type(error).__name__
        names = [str(n) for n in (error.filename, error.filename2) if n is not None]
        return f"{' -> '.join(names)}: {why}" if names else why
    return str(error) or type(error).__name__


def end(error: BaseException) -> int:
    """How a command ended, said on stderr, and its exit status: the one place.

    :class:`~.status.CommandExit` gives its status (and its message, if any, as
    ``wsp: error: ...``); the package's errors, OSError and UnicodeDecodeError get
    one line and the status of :func:`~.status.status_for`; Ctrl-C (SIGTERM) is
    ``wsp: interrupted`` and 130; a closed stdout ends quietly with 0; click's
    usage errors are 2. Anything else is a bug and is raised again.
    """
    status: int
    if isinstance(error, CommandExit):
        message = error.message
        status = error.status
    elif isinstance(error, KeyboardInterrupt | click.Abort):
        click.echo("wsp: interrupted", err=True)
        return int(ExitStatus.INTERRUPTED)
    elif isinstance(error, BrokenPipeError):
        _stdout_closed()
        return int(ExitStatus.OK)
    elif isinstance(error, click.UsageError):
        # "wsp: error: ... (see 'wsp decode --help')"
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
        message = error.format_message() + hint
        status = ExitStatus.USAGE
    elif isinstance(error, click.FileError):
        message, status = error.format_message(), ExitStatus.BAD_INPUT
    elif isinstance(error, click.ClickException):
        message, status = error.format_message(), error.exit_code
    elif isinstance(error, WspError | OSError | UnicodeDecodeError):
        message, status = describe(error), status_for(error)
    else:
        raise error
    if message is not None:
        click.echo(f"wsp: error: {message}", err=True)
    return int(status)


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Make SIGTERM stop a command as Ctrl-C does (summaries printed, files flushed).

    Also in a backgrounded script, where SIGINT is ignored and SIGTERM is the
    only way left to stop a command gracefully.
    """
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminated)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; SIGTERM, like Ctrl-C, cancels it and then raises
    KeyboardInterrupt (which :func:`end` turns into status 130)."""
    import asyncio  # not at import time: `wsp --help` and the sync commands do without

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        stopped = False

        def on_signal() -> None:
            nonlocal stopped
            stopped = True
            task.cancel()

        previous = signal.getsignal(signal.SIGTERM)
        loop.add_signal_handler(signal.SIGTERM, on_signal)
        try:
            return await coro
        except asyncio.CancelledError:
            if stopped:
                raise KeyboardInterrupt from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)

    return asyncio.run(main())
