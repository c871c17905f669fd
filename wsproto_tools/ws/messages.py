"""Frames to messages for one direction of a connection, with violations flagged.

:class:`MessageAssembler` reassembles fragmented messages (RFC 6455 section 5.4),
passes control frames through even when they arrive between fragments, inflates
permessage-deflate messages (RFC 7692) and checks every rule a receiver must
check. A broken rule does not stop decoding: it becomes a short violation code
on the message (see :data:`VIOLATIONS`), so a passive observer can keep going.
"""

from __future__ import annotations

__all__ = ["VIOLATIONS", "MessageAssembler", "WsMessage"]

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools import native
from wsproto_tools.exceptions import FrameError
from wsproto_tools.ws.close import parse_close
from wsproto_tools.ws.deflate import DeflateContext
from wsproto_tools.ws.frames import FrameParser, Opcode, RawFrame, RawTuple

#: Every violation code the assembler reports, with what it means.
VIOLATIONS: dict[str, str] = {
    "unmasked-client-frame": "a client frame was not masked (RFC 6455 5.1)",
    "masked-server-frame": "a server frame was masked (RFC 6455 5.1)",
    "reserved-bits": "RSV bits set without an extension that defines them (RFC 6455 5.2)",
    "bad-opcode": "a reserved opcode was used (RFC 6455 5.2)",
    "non-minimal-length": "the payload length did not use the shortest form (RFC 6455 5.2)",
    "control-too-long": "a control frame's payload exceeds 125 bytes (RFC 6455 5.5)",
    "fragmented-control": "a control frame was fragmented (RFC 6455 5.5)",
    "unexpected-continuation": "a continuation frame with no message to continue (RFC 6455 5.4)",
    "interleaved-message": "a new data message began inside a fragmented one (RFC 6455 5.4)",
    "incomplete-message": "the connection ended inside a fragmented message (RFC 6455 5.4)",
    "invalid-utf8": "text or a close reason is not valid UTF-8 (RFC 6455 5.6, 8.1)",
    "bad-close-code": "a close code that may not be sent (RFC 6455 7.4)",
    "bad-close-payload": "a close payload of one byte (RFC 6455 5.5.1)",
    "data-after-close": "a frame sent after this side's close frame (RFC 6455 5.5.1)",
    "deflate-error": "permessage-deflate data could not be inflated (RFC 7692 6.2)",
    "message-too-big": "a message exceeds the size limit",
}


@dataclass(frozen=True, slots=True)
class WsMessage:
    """A whole message (or a control frame) from one side.

    ``payload`` is after unmasking, reassembly and decompression. ``opcode`` is
    ``Opcode.CONT`` only for fragments that could not be reassembled (a capture
    that starts mid-message, or ends inside one); for a reserved opcode it is the
    raw number. ``text`` holds the decoded text of a valid text message.
    """

    opcode: int
    payload: bytes
    compressed: bool = False
    frames: int = 1
    wire_length: int = 0
    violations: tuple[str, ...] = ()
    close_code: int | None = None
    close_reason: str | None = None
    text: str | None = None

    @property
    def is_control(self) -> bool:
        return self.opcode >= 0x8


_new = object.__new__
(_set_opcode, _set_payload, _set_compressed, _set_frames, _set_wire, _set_violations,
 _set_code, _set_reason, _set_text) = (
    vars(WsMessage)[name].__set__ for name in WsMessage.__slots__
)


def _message(opcode: int, payload: bytes, compressed: bool, wire_length: int,
             violations: tuple[str, ...], text: str | None) -> WsMessage:
    """A one-frame data message without the frozen-dataclass ``__init__`` (hot path)."""
    msg: WsMessage = _new(WsMessage)
    _set_opcode(msg, opcode)
    _set_payload(msg, payload)
    _set_compressed(msg, compressed)
    _set_frames(msg, 1)
    _set_wire(msg, wire_length)
    _set_violations(msg, violations)
    _set_code(msg, None)
    _set_reason(msg, None)
    _set_text(msg, text)
    return msg


@dataclass
class _Partial:
    opcode: int
    compressed: bool
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    frames: int = 0
    wire_length: int = 0
    violations: list[str] = field(default_factory=list)


class MessageAssembler:
    """Reassembles the frames one side (``sender``) sent into messages.

    ``deflate`` is the sender's compression context when permessage-deflate was
    negotiated. ``max_message_size`` bounds the bytes held for one message:
    beyond it the rest is dropped and the message is flagged ``message-too-big``.
    """

    __slots__ = ("_closed", "_partial", "deflate", "max_message_size", "sender")

    def __init__(
        self,
        sender: str,
        deflate: DeflateContext | None = None,
        *,
        max_message_size: int = 64 * 1024 * 1024,
    ) -> None:
        if sender not in ("client", "server"):
            raise ValueError("sender is 'client' or 'server'")
        self.sender = sender
        self.deflate = deflate
        self.max_message_size = max_message_size
        self._partial: _Partial | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether this side has sent a close frame."""
        return self._closed

    def _frame_violations(self, frame: RawFrame) -> list[str]:
        found: list[str] = []
        if self.sender == "client":
            if frame.mask is None:
                found.append("unmasked-client-frame")
        elif frame.mask is not None:
            found.append("masked-server-frame")
        if (
            frame.rsv2
            or frame.rsv3
            or (frame.rsv1 and (self.deflate is None or frame.is_control or frame.opcode == 0))
        ):
            found.append("reserved-bits")
        if not frame.known_opcode:
            found.append("bad-opcode")
        if not frame.minimal_length:
            found.append("non-minimal-length")
        if self._closed:
            found.append("data-after-close")
        return found

    def receive(self, frame: RawFrame) -> list[WsMessage]:
        """Take one frame; return the messages it completes (usually zero or one).

        A new data message that interrupts a fragmented one completes the
        interrupted one as ``CONT`` fragments flagged ``interleaved-message``.
        """
        violations = self._frame_violations(frame)
        opcode = frame.opcode
        if frame.is_control:
            return [self._control(frame, violations)]
        if not frame.known_opcode:
            return [
                WsMessage(opcode, frame.payload, False, 1, frame.wire_length, tuple(violations))
            ]
        out: list[WsMessage] = []
        partial = self._partial
        if opcode == Opcode.CONT:
            if partial is None:
                violations.append("unexpected-continuation")
                return [
                    WsMessage(
                        Opcode.CONT, frame.payload, False, 1, frame.wire_length, tuple(violations)
                    )
                ]
        else:
            if partial is not None:
                partial.violations.append("interleaved-message")
                out.append(self._flush_partial(partial, fragment=True))
            partial = _Partial(opcode, frame.rsv1 and self.deflate is not None)
            self._partial = partial
        partial.frames += 1
        partial.wire_length += frame.wire_length
        partial.violations.extend(violations)
        if partial.size + len(frame.payload) > self.max_message_size:
            if "message-too-big" not in partial.violations:
                partial.violations.append("message-too-big")
        else:
            partial.chunks.append(frame.payload)
            partial.size += len(frame.payload)
        if frame.fin:
            self._partial = None
            out.append(self._complete(partial))
        return out

    def receive_raw(self, frames: list[RawTuple]) -> Iterator[WsMessage]:
        """:meth:`receive` for the tuples of :meth:`FrameParser.feed_raw
        <wsproto_tools.ws.frames.FrameParser.feed_raw>`, with a fast path for the
        common frame: a whole (FIN) text or binary message, masked as its sender
        must, no stray reserved bits, outside any fragmented message. Every
        other frame goes through :meth:`receive` (the messages are the same).

        Lazy: each message is produced before the next frame is looked at, so a
        caller may replace :attr:`deflate` in between (after a ``deflate-error``).
        """
        client = self.sender == "client"
        for b0, payload, mask, wire_length, minimal in frames:
            deflate = self.deflate
            if ((b0 == 0x82 or b0 == 0x81
                 or (deflate is not None and (b0 == 0xC2 or b0 == 0xC1)))
                    and minimal and (mask is not None) is client
                    and self._partial is None and not self._closed
                    and len(payload) <= self.max_message_size):
                opcode = b0 & 0x0F
                compressed = b0 & 0x40 != 0
                if compressed and deflate is not None:  # compressed: deflate is there
                    try:
                        payload = deflate.decompress(payload)
                    except FrameError as error:
                        yield self.inflate_failed(opcode, payload, wire_length, error)
                        continue
                if opcode == 1:
                    try:
                        text: str | None = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        yield _message(1, payload, compressed, wire_length, ("invalid-utf8",),
                                       None)
                        continue
                else:
                    text = None
                yield _message(opcode, payload, compressed, wire_length, (), text)
                continue
            yield from self.receive(RawFrame(
                b0 & 0x0F, payload, bool(b0 & 0x80), bool(b0 & 0x40), bool(b0 & 0x20),
                bool(b0 & 0x10), mask, wire_length, minimal,
            ))

    def inflate_failed(
        self, opcode: int, payload: bytes, wire_length: int, error: FrameError
    ) -> WsMessage:
        """The message of one whole compressed frame that did not inflate."""
        failed = "message-too-big" if error.close_code == 1009 else "deflate-error"
        return self._complete(
            _Partial(opcode, True, [payload], len(payload), 1, wire_length, [failed]),
            inflated=True,
        )

    def scan(
        self, parser: FrameParser, data: bytes, start: int
    ) -> tuple[list[WsMessage], int, bool] | None:
        """The messages of the common frames at the front of ``data[start:]``, read in C.

        None when the bulk reader declines (the Python form always does; the C
        one when ``parser`` holds part of a frame, a fragmented message is open,
        or this side sent a close). Else ``(messages, position reached, stopped after a failed
        inflation)``: the frames from that position on go through
        ``parser.feed_raw`` and :meth:`receive_raw`, and the messages are the
        ones those would give. After a failed inflation the caller may replace
        :attr:`deflate` before scanning on.
        """
        if self._partial is not None or self._closed or parser.buffered or type(data) is not bytes:
            return None
        deflate = self.deflate
        return _scan(
            data, start, self.sender == "client",
            None if deflate is None else deflate.decompress,
            parser.max_payload, self.max_message_size, self.inflate_failed,
        )

    def finish(self) -> list[WsMessage]:
        """The connection ended: flush a message left unfinished, flagged."""
        partial = self._partial
        if partial is None:
            return []
        self._partial = None
        partial.violations.append("incomplete-message")
        return [self._flush_partial(partial, fragment=True)]

    def lost(self) -> list[WsMessage]:
        """Bytes of this direction were lost: give up the message in progress."""
        partial = self._partial
        if partial is None:
            return []
        self._partial = None
        return [self._flush_partial(partial, fragment=True)]

    def _flush_partial(self, partial: _Partial, *, fragment: bool) -> WsMessage:
        return WsMessage(
            Opcode.CONT if fragment else partial.opcode,
            b"".join(partial.chunks),
            partial.compressed,
            partial.frames,
            partial.wire_length,
            tuple(partial.violations),
        )

    def _complete(self, partial: _Partial, *, inflated: bool = False) -> WsMessage:
        payload = partial.chunks[0] if len(partial.chunks) == 1 else b"".join(partial.chunks)
        violations = partial.violations
        if partial.compressed and self.deflate is not None and not inflated:
            try:
                payload = self.deflate.decompress(payload)
            except FrameError as error:
                violations.append(
                    "message-too-big" if error.close_code == 1009 else "deflate-error"
                )
        text: str | None = None
        inflated_ok = "deflate-error" not in violations and "message-too-big" not in violations
        if partial.opcode == Opcode.TEXT and inflated_ok:  # not the still-compressed bytes
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                violations.append("invalid-utf8")
        return WsMessage(
            partial.opcode,
            payload,
            partial.compressed,
            partial.frames,
            partial.wire_length,
            tuple(violations),
            None,
            None,
            text,
        )

    def _control(self, frame: RawFrame, violations: list[str]) -> WsMessage:
        if len(frame.payload) > 125:
            violations.append("control-too-long")
        if not frame.fin:
            violations.append("fragmented-control")
        code: int | None = None
        reason: str | None = None
        if frame.opcode == Opcode.CLOSE:
            code, raw_reason, close_violations = parse_close(frame.payload)
            violations.extend(close_violations)
            reason = raw_reason.decode("utf-8", "replace")
            self._closed = True
        return WsMessage(
            frame.opcode,
            frame.payload,
            False,
            1,
            frame.wire_length,
            tuple(violations),
            code,
            reason,
        )


def _python_scan(*args: object) -> None:
    """The Python form of the bulk reader reads nothing in bulk: every frame goes
    through :class:`FrameParser` and :meth:`MessageAssembler.receive_raw`."""
    return None


def _c_scan(module: Any) -> Any:
    module.configure(
        WsMessage, tuple(vars(WsMessage)[name] for name in WsMessage.__slots__), FrameError
    )
    return module.scan


def _load_scan() -> Any:
    """The bulk frame reader: C (``ws/_scan.c``) when built, else the Python form
    (see :mod:`..native`). Picked once, below."""
    return native.pick("ws._scan", _c_scan, _python_scan)


_scan = _load_scan()
