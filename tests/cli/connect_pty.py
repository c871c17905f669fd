"""A real pseudo-terminal for CLI tests: run a command in it, type, read the screen's bytes.

The child gets the terminal as its controlling terminal (so Ctrl-C is the
terminal's, as for a person) and a window size; cursor-position requests
(``ESC [6n``, which prompt_toolkit sends) are answered as a terminal would.
"""

from __future__ import annotations

__all__ = ["Terminal"]

import contextlib
import fcntl
import os
import re
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Sequence

_CPR_REQUEST = b"\x1b[6n"
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\x1b[=>]")


class Terminal:
    """One child process on a pty of ``columns`` x ``rows``."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        columns: int = 80,
        rows: int = 24,
    ) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

        def controlling_terminal() -> None:  # runs in the child, after setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=controlling_terminal,
            close_fds=True,
        )
        os.close(slave)
        self._data = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            with self._lock:
                self._data += chunk
            for _ in range(chunk.count(_CPR_REQUEST)):
                self.write(b"\x1b[1;1R")

    @property
    def output(self) -> bytes:
        """Everything the child wrote so far (escape sequences included)."""
        with self._lock:
            return bytes(self._data)

    @property
    def text(self) -> str:
        """The output without escape sequences."""
        return _ANSI.sub(b"", self.output).decode("utf-8", "replace")

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: str, *, count: int = 1, timeout: float = 10.0) -> str:
        """Wait until ``pattern`` (a regex) occurs ``count`` times in :attr:`text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.text)) >= count:
                return self.text
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} x{count} not seen; screen so far:\n{self.text}")

    def wait(self, timeout: float = 10.0) -> int:
        """The child's exit status (it is killed if it does not end in time)."""
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(2)
        with contextlib.suppress(OSError):
            os.close(self.master)
