"""Runs cases over raw connections and judges them.

One case, one connection. :func:`drive` executes a case's steps on an upgraded
:class:`~wsproto_tools.transports.raw.RawWebSocket` (either role), records what
the peer does, runs the close handshake the way the case expects and returns a
:class:`~wsproto_tools.fuzz.model.CaseResult`. :func:`run_against_server` does
that for a list of cases against an echo server, ``jobs`` at a time.

Every wait is bounded: each case has a deadline (``timeout``, or the case's own
longer one for the compression and performance cases), the close handshake
has its own short window, and a hard limit guards writes that never drain.
"""

from __future__ import annotations

__all__ = ["RunOptions", "drive", "run_against_server", "run_case"]

import asyncio
import base64
import random
import ssl as _ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wsproto_tools.exceptions import ConnectionFailed, FrameError, HandshakeError
from wsproto_tools.fuzz.datasets import dataset_bytes
from wsproto_tools.fuzz.deflate import Compressor, Inflater
from wsproto_tools.fuzz.model import (
    Behavior,
    Case,
    CaseResult,
    Chop,
    CloseVerdict,
    EchoRounds,
    Event,
    Frame,
    Partial,
    Pause,
    Send,
)
from wsproto_tools.fuzz.verdict import Observation, judge
from wsproto_tools.transports.raw import RawWebSocket, open_raw_websocket
from wsproto_tools.ws import (
    FrameParser,
    MessageAssembler,
    Opcode,
    WsMessage,
    apply_mask,
    encode_close,
    encode_frame,
)

FRAME_GAP = 0.02  # pause between frames of a Chop.FRAMES write


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Knobs shared by every case of a run."""

    timeout: float = 5.0  # per case (cases with a longer own timeout keep theirs)
    seed: int = 1
    jobs: int = 1
    wire_limit: int = 200  # wire log entries kept per case
    close_wait: float = 2.0  # how long to wait for the peer's part of the close handshake


class _Session:
    """The state of one case on one connection."""

    def __init__(self, case: Case, conn: RawWebSocket, options: RunOptions) -> None:
        self.case = case
        self.conn = conn
        self.options = options
        self.role = conn.role
        self.peer_role = "server" if conn.role == "client" else "client"
        self.rng = random.Random(f"{options.seed}:{case.id}")
        self.parser = FrameParser(max_payload=64 * 1024 * 1024)
        self.events: list[Event] = []
        self.inbox: list[WsMessage] | None = None
        self.peer_close: WsMessage | None = None
        self.sent_close = False
        self.local_close_code: int | None = None
        self.closed_by_me: bool | None = None
        self.write_failed = False
        self.unimplemented = False
        self.start = time.monotonic()
        self.wire: list[dict[str, Any]] = []
        self.wire_dropped = 0
        self.encoded: dict[int, tuple[bytes, int]] = {}
        params = conn.response.deflate if conn.response is not None else None
        self.params = params
        self.compressor: Compressor | None = None
        peer_ctx = None
        if params is not None:
            if self.peer_role == "server":
                peer_ctx = Inflater(params.server_no_context_takeover, 15, 64 * 1024 * 1024)
            else:
                peer_ctx = Inflater(params.client_no_context_takeover, 15, 64 * 1024 * 1024)
            if self.role == "client":
                self.compressor = Compressor(
                    params.client_no_context_takeover, params.client_max_window_bits
                )
            else:
                self.compressor = Compressor(
                    params.server_no_context_takeover, params.server_max_window_bits
                )
        self.assembler = MessageAssembler(
            self.peer_role, peer_ctx, max_message_size=64 * 1024 * 1024
        )

    # ------------------------------------------------------------------ state

    @property
    def peer_gone(self) -> bool:
        return self.conn.eof or self.peer_close is not None or self.write_failed

    def log(self, entry: dict[str, Any]) -> None:
        if len(self.wire) < self.options.wire_limit:
            entry["t"] = round(time.monotonic() - self.start, 4)
            self.wire.append(entry)
        else:
            self.wire_dropped += 1

    # ---------------------------------------------------------------- sending

    def _mask(self) -> bytes | None:
        return self.rng.randbytes(4) if self.role == "client" else None

    def encode(self, frame: Frame) -> bytes:
        payload = frame.payload
        rsv = frame.rsv
        if frame.compress and self.compressor is not None:
            payload = self.compressor.compress(payload)
            rsv |= 4
        data = encode_frame(
            frame.opcode,
            payload,
            fin=frame.fin,
            rsv1=bool(rsv & 4),
            rsv2=bool(rsv & 2),
            rsv3=bool(rsv & 1),
            mask=self._mask(),
        )
        self.log(
            {
                "dir": "out",
                "opcode": frame.opcode,
                "fin": frame.fin,
                "rsv": rsv,
                "length": len(payload),
                "payload": payload[:16].hex(),
            }
        )
        return data

    async def write(self, data: bytes) -> None:
        if self.write_failed:
            return
        try:
            await self.conn.send(data)
        except ConnectionFailed:
            self.write_failed = True
            self.log({"dir": "out", "note": "write failed: the peer is gone"})

    def _note_close_sent(self, frame: Frame) -> None:
        if frame.opcode == Opcode.CLOSE and frame.rsv == 0:
            if not self.sent_close:
                code = frame.payload[:2]
                self.local_close_code = int.from_bytes(code, "big") if len(code) == 2 else None
            self.sent_close = True
            if self.closed_by_me is None and self.peer_close is None:
                self.closed_by_me = True

    async def do_send(self, step: Send) -> None:
        blobs = [self.encode(frame) for frame in step.frames]
        for frame in step.frames:
            self._note_close_sent(frame)
        if step.chop is Chop.FRAMES:
            for blob in blobs:
                await self.write(blob)
                await self.pump_until(lambda: False, time.monotonic() + FRAME_GAP)
            return
        data = b"".join(blobs)
        size = 1 if step.chop is Chop.OCTETS else step.chunk
        if size <= 0:
            await self.write(data)
            return
        for i in range(0, len(data), size):
            await self.write(data[i : i + size])
            if self.write_failed:
                return

    async def do_partial(self, step: Partial) -> None:
        key = id(step.frame)
        if key not in self.encoded:
            blob = self.encode(step.frame)
            self.encoded[key] = (blob, len(blob) - len(step.frame.payload))
        blob, header = self.encoded[key]
        start = 0 if step.start == 0 else header + step.start
        stop = len(blob) if step.stop is None else header + step.stop
        self.log({"dir": "out", "note": f"bytes {start}..{stop} of the frame above"})
        await self.write(blob[start:stop])

    async def send_close(self, code: int | None) -> None:
        frame = Frame(Opcode.CLOSE, encode_close(code))
        blob = self.encode(frame)
        self._note_close_sent(frame)
        await self.write(blob)

    async def do_pause(self, step: Pause) -> None:
        await self.pump_until(lambda: self.peer_gone, time.monotonic() + step.seconds)
        if not self.peer_gone and step.marker:
            self.events.append(Event("timeout", note=step.marker))

    async def do_echo_rounds(self, step: EchoRounds, deadline: float) -> None:
        data = dataset_bytes(step.dataset, self.options.seed) if step.dataset else None
        pointer = 0
        opcode = Opcode.BINARY if step.binary else Opcode.TEXT
        self.inbox = []
        for index in range(step.count):
            if self.peer_gone or time.monotonic() > deadline:
                break
            if data is None:
                payload = (b"\xfe" if step.binary else b"*") * step.size
            else:
                end = pointer + step.size
                payload = data[pointer:end]
                while len(payload) < step.size:
                    payload += data[: step.size - len(payload)]
                pointer = end % len(data)
            wire_payload = payload
            rsv = 0
            if step.compress and self.compressor is not None:
                wire_payload = self.compressor.compress(payload)
                rsv = 4
            count = _frame_count(len(wire_payload), step.fragment)
            masks = self.rng.randbytes(4 * count) if self.role == "client" else None
            blob = encode_message(opcode, wire_payload, step.fragment, rsv, masks)
            if index < 3:
                self.log(
                    {
                        "dir": "out",
                        "opcode": opcode,
                        "rsv": rsv,
                        "length": len(wire_payload),
                        "frames": count,
                        "note": f"message {index + 1} of {step.count}",
                    }
                )
            await self.write(blob)
            await self.pump_until(lambda: bool(self.inbox) or self.peer_gone, deadline)
            if not self.inbox:
                self.events.append(Event("no-echo", note=f"message {index + 1} of {step.count}"))
                break
            got = self.inbox.pop(0)
            if got.opcode != opcode or got.payload != payload:
                self.events.append(
                    Event(
                        "message",
                        got.payload,
                        got.opcode == Opcode.BINARY,
                        f"echo of message {index + 1} differs from what was sent",
                    )
                )
                break
        else:
            self.events.append(Event("echoed", note=str(step.count)))
        self.inbox = None

    # --------------------------------------------------------------- receiving

    async def pump_until(self, done: Callable[[], bool], deadline: float) -> bool:
        """Read and process the peer's bytes until ``done()`` or the deadline."""
        while not done():
            if self.conn.eof:
                return done()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            data = await self.conn.read(remaining)
            if data is None:
                return done()
            if not data:
                self.log({"dir": "in", "note": "end of stream"})
                for message in self.assembler.finish():
                    self._violations(message)
                return done()
            await self.receive(data)
        return True

    def _violations(self, message: WsMessage) -> None:
        for code in message.violations:
            self.events.append(Event("violation", note=code))

    async def receive(self, data: bytes) -> None:
        try:
            frames = self.parser.feed(data)
        except FrameError as error:
            self.events.append(Event("violation", note=f"unparseable frame: {error.reason}"))
            self.log({"dir": "in", "note": f"unparseable: {error}"})
            self.conn.eof = True
            return
        for frame in frames:
            self.log(
                {
                    "dir": "in",
                    "opcode": frame.opcode,
                    "fin": frame.fin,
                    "rsv": frame.rsv,
                    "length": len(frame.payload),
                    "payload": frame.payload[:16].hex(),
                }
            )
            for message in self.assembler.receive(frame):
                await self._on_message(message)

    async def _on_message(self, message: WsMessage) -> None:
        self._violations(message)
        opcode = message.opcode
        if opcode == Opcode.CLOSE:
            if self.peer_close is not None:
                return
            self.peer_close = message
            if not self.sent_close:
                self.closed_by_me = False
                await self.send_close(message.close_code)
                if self.role == "server":
                    self.conn.close()
            return
        if opcode == Opcode.PING:
            # A peer may ping at any time (RFC 6455 5.5.2; websockets does every
            # 20 s): answered and kept in the wire log, but not a case event.
            if not self.sent_close:
                await self.write(self.encode(Frame(Opcode.PONG, message.payload)))
            return
        if opcode == Opcode.PONG:
            self.events.append(Event("pong", message.payload))
            return
        if opcode in (Opcode.TEXT, Opcode.BINARY):
            if self.inbox is not None:
                self.inbox.append(message)
            else:
                self.events.append(Event("message", message.payload, opcode == Opcode.BINARY))

    # --------------------------------------------------------------- the case

    def _settled(self) -> bool:
        """Whether the events so far are final for a case this side closes."""
        if self.peer_gone:
            return True
        events = tuple(self.events)
        expect = self.case.expect
        if events == expect.ok:
            return True
        if events == expect.ok[: len(events)]:
            return False  # on the way to OK
        alternatives = expect.non_strict + expect.informational
        if events in alternatives:
            return True
        return not any(events == alt[: len(events)] for alt in alternatives)

    async def run(self, deadline: float) -> None:
        case = self.case
        if (case.offer or case.accept) and self.params is None:
            self.unimplemented = True
        else:
            for step in case.steps:
                if self.peer_gone and not (isinstance(step, Send) and step.force):
                    break
                if self.write_failed:
                    break
                if isinstance(step, Send):
                    await self.do_send(step)
                elif isinstance(step, Partial):
                    await self.do_partial(step)
                elif isinstance(step, Pause):
                    await self.do_pause(step)
                else:
                    await self.do_echo_rounds(step, deadline)
        expect = case.expect
        if not self.sent_close and not self.peer_gone:
            if self.unimplemented:
                await self.send_close(expect.close_code)
            elif expect.closed_by_me:
                await self.pump_until(self._settled, deadline)
                if not self.peer_gone:
                    await self.send_close(expect.close_code)
            else:
                await self.pump_until(lambda: self.peer_gone, deadline)
                if not self.peer_gone:
                    self.closed_by_me = True  # the peer did not fail: drop it
                    self.log({"dir": "out", "note": "no close from the peer: dropping"})
                    return
        if self.sent_close and self.peer_close is None:
            wait = time.monotonic() + self.options.close_wait
            await self.pump_until(lambda: self.peer_close is not None or self.conn.eof, wait)
        if self.peer_close is not None and self.role == "client" and not self.conn.eof:
            # RFC 6455 7.1.1: the server closes the TCP connection first.
            wait = time.monotonic() + min(self.options.close_wait, 1.0)
            await self.pump_until(lambda: self.conn.eof, wait)

    def result(self, duration: float, note: str | None = None) -> CaseResult:
        closed_by_me = self.closed_by_me if self.closed_by_me is not None else False
        clean = self.sent_close and self.peer_close is not None
        remote = self.peer_close.close_code if self.peer_close is not None else None
        seen = Observation(tuple(self.events), closed_by_me, clean, remote, self.unimplemented)
        behavior, why, close, close_why = judge(self.case.expect, seen)
        if note:
            why = f"{why} ({note})"
        if self.wire_dropped:
            self.wire.append({"note": f"{self.wire_dropped} more wire entries not kept"})
        return CaseResult(
            self.case,
            behavior,
            close,
            list(self.events),
            why,
            close_why,
            closed_by_me,
            clean,
            remote,
            self.peer_close.close_reason or "" if self.peer_close is not None else "",
            self.local_close_code,
            duration,
            self.wire,
            self.conn.response.extensions if self.conn.response is not None else None,
        )


def _frame_count(length: int, size: int) -> int:
    return 1 if size <= 0 or length <= size else -(-length // size)


def _length_field(length: int, mask_bit: int) -> bytes:
    if length < 126:
        return bytes((mask_bit | length,))
    if length < 65536:
        return bytes((mask_bit | 126,)) + length.to_bytes(2, "big")
    return bytes((mask_bit | 127,)) + length.to_bytes(8, "big")


def encode_message(opcode: int, payload: bytes, size: int, rsv: int, masks: bytes | None) -> bytes:
    """One message as frames of ``size`` payload bytes (0: one frame), on the fast path.

    ``masks`` holds one fresh 4-byte key per frame (client side) or is None.
    ``rsv`` goes on the first frame only (RFC 7692 6.1). The same bytes as
    :func:`wsproto_tools.ws.encode_frame` per fragment, with the per-frame
    Python work cut down: the compression cases send up to half a million
    frames each.
    """
    count = _frame_count(len(payload), size)
    mask_bit = 0x80 if masks is not None else 0
    if count == 1:
        size = len(payload)
    first = bytes(((0x80 if count == 1 else 0) | (rsv & 7) << 4 | opcode,))
    middle = b"\x00"  # continuation, FIN = 0
    last = b"\x80"  # continuation, FIN = 1
    full = _length_field(size, mask_bit)
    parts: list[bytes] = []
    append = parts.append
    for index in range(count):
        chunk = payload[index * size : (index + 1) * size]
        append(first if index == 0 else last if index == count - 1 else middle)
        append(full if len(chunk) == size else _length_field(len(chunk), mask_bit))
        if masks is None:
            append(chunk)
        else:
            key = masks[4 * index : 4 * index + 4]
            append(key)
            append(apply_mask(chunk, key))
    return b"".join(parts)


def case_timeout(case: Case, options: RunOptions) -> float:
    """The case's deadline: the timeout, plus the time its own pauses take."""
    return max(options.timeout, case.timeout or 0.0) + _weight(case)


async def drive(case: Case, conn: RawWebSocket, options: RunOptions) -> CaseResult:
    """Run ``case`` on an upgraded connection and judge it; always closes ``conn``."""
    session = _Session(case, conn, options)
    limit = case_timeout(case, options)
    deadline = session.start + limit
    note = None
    try:
        async with asyncio.timeout(limit + options.close_wait + 2.0):
            await session.run(deadline)
    except TimeoutError:
        note = f"the case did not finish within {limit:g} s"
        if session.closed_by_me is None:
            session.closed_by_me = True
    finally:
        await conn.wait_closed(0.5)
    return session.result(time.monotonic() - session.start, note)


def failed_result(case: Case, message: str, duration: float) -> CaseResult:
    """The result of a case whose connection could not even be opened."""
    return CaseResult(
        case,
        Behavior.FAILED,
        CloseVerdict.FAILED,
        [Event("no-connection", note=message)],
        f"The connection could not be opened: {message}",
        "There was no connection to close.",
        None,
        False,
        None,
        "",
        None,
        duration,
        [],
        None,
    )


async def run_case(
    case: Case,
    host: str,
    port: int,
    path: str,
    options: RunOptions,
    *,
    ssl: _ssl.SSLContext | None = None,
) -> CaseResult:
    """Connect to an echo server (over TLS with ``ssl``), upgrade, run ``case``, judge it."""
    start = time.monotonic()
    rng = random.Random(f"key:{options.seed}:{case.id}")
    key = base64.b64encode(rng.randbytes(16)).decode()
    try:
        conn = await open_raw_websocket(
            host, port, path, extensions=case.offer, key=key, timeout=options.timeout, ssl=ssl
        )
    except (ConnectionFailed, HandshakeError) as error:
        return failed_result(case, str(error), time.monotonic() - start)
    return await drive(case, conn, options)


async def run_against_server(
    cases: list[Case],
    host: str,
    port: int,
    path: str,
    options: RunOptions,
    on_result: Callable[[CaseResult], None] | None = None,
    *,
    ssl: _ssl.SSLContext | None = None,
) -> list[CaseResult]:
    """Run ``cases`` against an echo server, ``options.jobs`` at a time, in id order.

    ``on_result`` is called as each case finishes. When the run is cancelled
    (Ctrl-C), the cases still running are dropped: only finished cases have
    been handed to ``on_result``.
    """
    semaphore = asyncio.Semaphore(max(1, options.jobs))
    # Long cases first so that parallel runs end together.
    order = sorted(range(len(cases)), key=lambda i: -_weight(cases[i]))
    results: list[CaseResult | None] = [None] * len(cases)

    async def one(index: int) -> None:
        async with semaphore:
            result = await run_case(cases[index], host, port, path, options, ssl=ssl)
        results[index] = result
        if on_result is not None:
            on_result(result)

    async with asyncio.TaskGroup() as group:
        for index in order:
            group.create_task(one(index))
    return [r for r in results if r is not None]


def _weight(case: Case) -> float:
    """A rough cost estimate, for scheduling only."""
    weight = 0.0
    for step in case.steps:
        if isinstance(step, Pause):
            weight += step.seconds
        elif isinstance(step, EchoRounds):
            weight += step.count * (step.size + 64) / 5e6
        elif isinstance(step, Send) and step.chop is Chop.FRAMES:
            weight += FRAME_GAP * len(step.frames)
    return weight
