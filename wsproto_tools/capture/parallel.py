"""Decoding one capture file with several processes, each owning a share of the
connections, and merging their lines back into capture order.

Each worker reads the whole file and decodes its connections
(``CaptureDecoder(shard=...)``) into a sink made by the caller's factory; the
sink sends its lines in batches through a pipe (:func:`pack_lines`), and the
parent writes them in packet order as soon as that order is known
(:class:`Merger`).
"""

from __future__ import annotations

__all__ = [
    "PARALLEL_MIN_BYTES",
    "Merger",
    "WorkerDied",
    "WorkerSink",
    "jobs_for",
    "merge_limits",
    "pack_lines",
    "run_parallel",
]

import array
import os
import pickle
import struct
from collections.abc import Callable
from typing import IO, Any, Protocol

from wsproto_tools.capture.pipeline import Outcome, run_decoder

#: Files larger than this are decoded by several processes (``jobs_for``).
PARALLEL_MIN_BYTES = 4 * 1024 * 1024
#: Line batches the parent holds per worker before it stops reading that worker.
MAX_QUEUED = 16
#: a worker's batch of lines: b"L", then its watermark and the size of the numbers
_LINES_HEAD = struct.Struct("<QQ")


class WorkerSink(Protocol):
    """A worker's sink: sends its lines with :func:`pack_lines` when flushed."""

    stats: Any
    violations: int
    #: every line with a packet number up to this one has been sent
    watermark: int
    #: the warnings to report (the parent prints them)
    collected: list[tuple[int, str]]

    def events(self, events: list[Any]) -> None: ...

    def warning(self, number: int, message: str) -> None: ...

    def flush(self) -> None: ...


#: ``factory(index, send)``: the sink of worker ``index``, sending with ``send``
SinkFactory = Callable[[int, Callable[[bytes], None]], WorkerSink]


class WorkerDied(Exception):
    """A decoding worker process died; ``wrote``: lines were already written."""

    def __init__(self, message: str, *, wrote: bool) -> None:
        super().__init__(message)
        self.wrote = wrote


def pack_lines(watermark: int, numbers: bytes, lines: bytes) -> bytes:
    """One batch for the pipe, no pickling: tag, watermark, size of the numbers
    (``array("Q")`` bytes, one packet number a line), numbers, lines."""
    return b"L" + _LINES_HEAD.pack(watermark, len(numbers)) + numbers + lines


def jobs_for(requested: int, size: int, file: str, mode: str) -> int:
    """The processes to decode ``file`` with (0 requested: one per core, at most
    4, for a large file); only --ndjson and --stats of a file run in parallel."""
    if file == "-" or mode not in ("ndjson", "stats"):
        return 1
    if requested == 0:
        if size < PARALLEL_MIN_BYTES:
            return 1
        return max(1, min(os.cpu_count() or 1, 4))
    return requested


def merge_limits(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The limits of two shards' decoders together (counters add up)."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            merged = dict(out.get(key, {}))
            for k, v in value.items():
                merged[k] = merged.get(k, 0) + v
            out[key] = merged
        else:
            out[key] = out.get(key, 0) + value
    return out


def _worker(
    path: str,
    index: int,
    count: int,
    decoder_options: dict[str, Any],
    make_sink: SinkFactory,
    progress: Any,
    pipe: Any,
) -> None:
    import signal

    from wsproto_tools.capture import CaptureDecoder, PacketReader

    # the parent answers Ctrl-C and ends the workers (SIGTERM): no traceback here
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with open(path, "rb", buffering=1 << 20) as stream:
        sink = make_sink(index, pipe.send_bytes)
        decoder = CaptureDecoder(**decoder_options, shard=(index, count))
        tell = stream.tell

        def tick() -> None:
            # every 1,024 packets: tell the parent how far this share has got, so
            # the other shares' lines can be written meanwhile (a later line of
            # this share has at least the current packet's number)
            if index == 0:
                progress.value = tell()
            sink.watermark = max(0, decoder.packets - 1)
            sink.flush()

        outcome = run_decoder(PacketReader(stream, sink.warning), sink, decoder, progress=tick)
        sink.flush()
    outcome.connections = [c for c in outcome.connections if decoder.owns(c.id)]
    outcome.warnings = sink.collected
    pipe.send_bytes(b"D" + pickle.dumps(outcome))
    pipe.close()


def run_parallel(
    path: str,
    jobs: int,
    decoder_options: dict[str, Any],
    make_sink: SinkFactory,
    out: IO[str] | None,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Decode ``path`` with ``jobs`` processes, each owning a share of the connections.

    ``decoder_options`` are given to each worker's ``CaptureDecoder``; the lines
    of the sinks ``make_sink`` makes are written to ``out`` (None: nothing is
    written), in capture order, streamed: the parent holds at most
    ``MAX_QUEUED`` batches per worker (a worker that is ahead waits).
    ``progress(bytes)`` is called as the first worker reads the file. Raises
    :class:`WorkerDied` when a worker dies.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("fork")
    done_bytes = ctx.Value("q", 0, lock=False)
    workers = []
    for index in range(jobs):
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_worker,
            args=(path, index, jobs, decoder_options, make_sink, done_bytes, send),
            daemon=True,
        )
        proc.start()
        send.close()
        workers.append((proc, receive))
    merger = Merger(jobs, out)
    outcomes: list[Outcome | None] = [None] * jobs
    try:
        while not all(merger.done):
            readable = [
                pipe for i, (_, pipe) in enumerate(workers)
                if not merger.done[i] and len(merger.queues[i]) < MAX_QUEUED
            ]
            ready = wait(readable, 0.1) if readable else []
            if progress is not None:
                progress(done_bytes.value)
            for conn in ready:
                index = next(i for i, (_, r) in enumerate(workers) if r is conn)
                try:
                    message = workers[index][1].recv_bytes()
                except EOFError:
                    proc = workers[index][0]
                    proc.join(1)
                    raise WorkerDied(
                        f"decoding worker exited with {proc.exitcode}", wrote=merger.wrote
                    ) from None
                if message[:1] == b"L":
                    merger.add(index, message)
                else:
                    outcomes[index] = pickle.loads(message[1:])  # from our own worker
                    merger.done[index] = True
            merger.drain()
        merger.drain()
        for proc, _ in workers:
            proc.join()
    finally:
        for proc, _ in workers:
            if proc.is_alive():
                proc.terminate()
    first = outcomes[0]
    assert first is not None
    done = [o for o in outcomes if o is not None]
    connections = sorted((c for o in done for c in o.connections), key=lambda c: c.id)
    for other in done[1:]:
        first.stats.merge(other.stats)
        first.violations += other.violations
        first.warnings.extend(other.warnings)
        first.limits = merge_limits(first.limits, other.limits)
    first.connections = connections
    first.warnings.sort()
    return first


class Merger:
    """Writes the workers' lines in packet order as soon as the order is known.

    A worker's lines come in packet order; a line is written once every other
    worker is done, has sent a later line, or has reported (its watermark) that
    it has no earlier one. Ties go to the lower worker index, as one process
    would have written them (connections in order). Lines stay bytes: a batch is
    kept as the message received, and runs of its lines are written as slices.
    """

    def __init__(self, count: int, out: IO[str] | None) -> None:
        self.count = count
        #: per worker: batches of (packet numbers, the message, index of the next
        #: line, offset of the next line in the message)
        self.queues: list[list[tuple[array.array[int], bytes, int, int]]] = [
            [] for _ in range(count)
        ]
        self.watermarks = [0] * count
        self.done = [False] * count
        self.out = out
        self.binary = getattr(out, "buffer", None) if out is not None else None
        self.wrote = False

    def add(self, index: int, message: bytes) -> None:
        """Take a worker's ``L`` message (see :func:`pack_lines`)."""
        watermark, size = _LINES_HEAD.unpack_from(message, 1)
        self.watermarks[index] = watermark
        if size:
            start = 1 + _LINES_HEAD.size
            values = array.array("Q")
            values.frombytes(message[start : start + size])
            self.queues[index].append((values, message, 0, start + size))

    def _write(self, data: bytes | memoryview) -> None:
        if self.out is None:
            return
        if not self.wrote:
            self.wrote = True
            if self.binary is not None:
                self.out.flush()
        if self.binary is not None:
            self.binary.write(data)
        else:
            self.out.write(bytes(data).decode("utf-8"))

    def drain(self) -> None:
        """Write every line whose place in the order is known."""
        pieces: list[memoryview] = []
        self._order(pieces)
        if not pieces:
            return
        fd = self._fd()
        if fd is None:
            self._write(b"".join(pieces))
            return
        for start in range(0, len(pieces), 512):  # gathered writes, no copy
            chunk = pieces[start : start + 512]
            done = os.writev(fd, chunk)
            total = sum(len(piece) for piece in chunk)
            if done < total:  # a short write (a pipe): the rest as one buffer
                rest = b"".join(chunk)[done:]
                while rest:
                    rest = rest[os.write(fd, rest) :]

    def _fd(self) -> int | None:
        """The file descriptor under the output, flushed, when it can take writev."""
        if self.binary is None or not hasattr(os, "writev"):
            return None
        try:
            fd = self.binary.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        if not self.wrote:
            self.wrote = True
            assert self.out is not None
            self.out.flush()
        self.binary.flush()
        return fd

    def _order(self, pieces: list[memoryview]) -> None:
        """Append to ``pieces`` the runs of lines whose place is known, in order."""
        import bisect

        queues = self.queues
        count = self.count
        inf = 1 << 64
        while True:
            best = -1
            head = inf
            for j in range(count):
                if queues[j]:
                    values, _, offset, _ = queues[j][0]
                    if values[offset] < head:
                        best, head = j, values[offset]
            if best < 0:
                return
            bound = inf + 1
            for j in range(count):
                if j == best:
                    continue
                if queues[j]:
                    values, _, offset, _ = queues[j][0]
                    limit = values[offset] + (1 if best < j else 0)
                elif self.done[j]:
                    continue
                else:
                    limit = self.watermarks[j] + 1
                bound = min(bound, limit)
            values, message, offset, first = queues[best][0]
            end = bisect.bisect_left(values, bound, offset)
            if end <= offset:
                return  # waiting for another worker
            if end >= len(values):
                pieces.append(memoryview(message)[first:])
                queues[best].pop(0)
            else:
                find = message.index
                last = first
                for _ in range(end - offset):
                    last = find(b"\n", last) + 1
                pieces.append(memoryview(message)[first:last])
                queues[best][0] = (values, message, end, last)
