"""A source run in a process of its own: ``python -m wsproto_tools.tui.ingest SPEC SPILL``.

Decoding a capture or parsing the inspector feed is the heavy part of ``wsp
tui``; in a child process it has a core (and an interpreter lock) to itself, so
the screen's process only appends columns of numbers and stays quick to answer
keys. The child fills a :class:`~wsproto_tools.render.rowstore.RowStore` whose
spill file is ``SPILL`` and writes, on stdout, frames of a 4-byte length and a
pickle: ``("chunk", rows, progress, dropped)`` every few tens of milliseconds
while rows come, then ``("end", error)`` — ``error`` is ``None`` or the name
of an exception of :mod:`wsproto_tools.exceptions` and its message. Closing
its stdin stops it.
"""

from __future__ import annotations

__all__ = ["ProcessRunner", "main", "read_frames", "write_frame"]

import contextlib
import dataclasses
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from wsproto_tools import exceptions
from wsproto_tools.capture.source import FileProgress
from wsproto_tools.render.rowstore import RowStore
from wsproto_tools.tui.sources import SourceRunner, SourceSpec

_LENGTH = struct.Struct("<I")
#: seconds between two chunks while rows come
EVERY = 0.03
#: Linux's fcntl to size a pipe, and the size asked for
_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20


def write_frame(out: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LENGTH.pack(len(data)) + data)
    out.flush()


def read_frames(stream: IO[bytes]) -> Iterator[Any]:
    """The frames a child wrote, until its stdout ends."""
    while True:
        head = stream.read(4)
        if len(head) < 4:
            return
        (length,) = _LENGTH.unpack(head)
        data = stream.read(length)
        if len(data) < length:
            return
        yield pickle.loads(data)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    fields = json.loads(args[0])
    spec = SourceSpec(**fields)
    store = RowStore(spill_path=args[1])
    runner = SourceRunner(spec, store)
    out = sys.stdout.buffer

    def watch_stdin() -> None:  # the parent closes it (or goes away): stop
        fd = sys.stdin.fileno()  # unbuffered: no lock left held at exit
        with contextlib.suppress(OSError):
            while os.read(fd, 4096):
                pass
        runner.stop()

    threading.Thread(target=watch_stdin, daemon=True).start()
    runner.start()
    try:
        while True:
            finished = runner.done
            chunk = store.chunk()
            if chunk is not None or finished:
                write_frame(out, ("chunk", chunk, dataclasses.asdict(runner.progress),
                                  runner.dropped))
            if finished:
                break
            time.sleep(EVERY)
        error = runner.error
        write_frame(out, ("end", None if error is None else
                          (type(error).__name__, str(error) or type(error).__name__)))
    except BrokenPipeError:
        return 1
    return 0


def spec_json(spec: SourceSpec) -> str:
    """The fields of ``spec`` that a child needs, as JSON (no TLS context)."""
    fields = dataclasses.asdict(spec)
    fields.pop("ssl_context", None)
    fields.pop("client_options", None)
    return json.dumps(fields)


class ProcessRunner:
    """A :class:`~.sources.SourceRunner` whose work is done by a child process
    (``python -m wsproto_tools.tui.ingest``); the same attributes for the app."""

    def __init__(self, spec: SourceSpec, store: RowStore) -> None:
        self.spec = spec
        self.store = store
        self.progress = FileProgress(0)
        self.error: BaseException | None = None
        self.done = False
        self.dropped = 0
        fd, self._path = tempfile.mkstemp(prefix="wsp-tui-", suffix=".spill")
        os.close(fd)
        store.share_spill(self._path)
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="wsp-source-reader",
                                        daemon=True)

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "wsproto_tools.tui.ingest", spec_json(self.spec), self._path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            # signals for the terminal's process group (SIGTERM, SIGINT) are the
            # app's to handle; the child stops when its stdin closes
            start_new_session=True,
        )
        # a chunk in one go: the child does not wait for this process's reader
        with contextlib.suppress(OSError, AttributeError):
            import fcntl

            assert self._proc.stdout is not None
            fcntl.fcntl(self._proc.stdout.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
        self._thread.start()

    def _run(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        ended = False
        try:
            for kind, *rest in read_frames(proc.stdout):
                if kind == "chunk":
                    chunk, progress, dropped = rest
                    if chunk is not None:
                        self.store.take_chunk(chunk)
                    for key, value in progress.items():
                        setattr(self.progress, key, value)
                    self.dropped = dropped
                elif kind == "end":
                    ended = True
                    if rest[0] is not None:
                        name, message = rest[0]
                        cls = getattr(exceptions, name, None)
                        if not (isinstance(cls, type) and issubclass(cls, Exception)):
                            cls = exceptions.WspError
                        self.error = cls(message)
            if not ended and self.error is None:
                self.error = exceptions.WspError(
                    f"the reading process ended without a word (status {proc.wait()})")
        except Exception as error:  # the app reports it
            self.error = error
        finally:
            self.done = True
            self.progress.finished = True

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def close(self) -> None:
        """Stop the child (at once if it does not stop by itself) and remove the file."""
        self.stop()
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(self._path)


if __name__ == "__main__":
    sys.exit(main())
