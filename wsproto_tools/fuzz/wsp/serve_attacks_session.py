"""The malicious server's attacks on an active session: those the client must close
over, those it must stay open through (floods, repeats, an unknown type, an Error),
and a wsp Close it must answer.
"""

from __future__ import annotations

__all__ = [
    "ack_above_sent",
    "ack_backwards",
    "baseline",
    "batch_ungranted",
    "compressed_ungranted",
    "compression_bomb",
    "deliver_unsubscribed",
    "flood",
    "flood_long",
    "header_noncanonical",
    "reply_unprobed",
    "response_twice",
    "resume_retired",
    "sequence_duplicate",
    "sequence_gap",
    "server_error",
    "session_id_foreign",
    "text_frame",
    "text_invalid_utf8",
    "unknown_type",
    "wrong_direction",
    "wsp_close",
]

import time
from functools import lru_cache

from wsproto_tools.codec import (
    Acknowledge,
    Batch,
    BinaryData,
    Close,
    Deliver,
    Error,
    Flags,
    Heartbeat,
    Publish,
    Resume,
    TextData,
    Unknown,
)
from wsproto_tools.codec.compression import compress
from wsproto_tools.codec.header import type_bytes
from wsproto_tools.codec.varint import write_varint
from wsproto_tools.exceptions import CloseCode
from wsproto_tools.fuzz.wsp.findings import Oracle
from wsproto_tools.fuzz.wsp.serve_case import Case
from wsproto_tools.fuzz.wsp.serve_judging import stays_open
from wsproto_tools.fuzz.wsp.serve_link import raw_message
from wsproto_tools.ws import Opcode

_C = CloseCode
#: close codes a client may use when it sheds a flood (S.7) instead of keeping up
_FLOOD_CLOSES = frozenset(
    {
        _C.GOING_AWAY,
        _C.MESSAGE_TOO_BIG,
        _C.TRY_AGAIN_LATER,
        _C.WSP_RATE_LIMITED,
        _C.WSP_SLOW_CONSUMER,
    }
)
_UNKNOWN_TYPE = 0x0350  # in no category's table: an unknown type (section 6)


@lru_cache(maxsize=4)
def _bomb(size: int) -> bytes:
    """``size`` zero bytes as one raw DEFLATE stream with the wsp dictionary."""
    return compress(bytes(size))


# ------------------------------------------------------------ an active session: closes
async def text_frame(case: Case) -> bool:
    await case.link.send_frame(Opcode.TEXT, b"wsp travels in binary frames")
    return True


async def response_twice(case: Case) -> bool:
    session_id = case.session_id
    await case.send(case.response(session_id=session_id))
    case.session_id = session_id
    return True


async def deliver_unsubscribed(case: Case) -> bool:
    rng = case.rng
    topic = f"never-subscribed-{rng.randrange(1 << 20)}"
    await case.send(Deliver(topic, rng.randrange(1, 100), rng.randrange(1, 100), b"x"))
    return True


async def ack_above_sent(case: Case) -> bool:
    # far above anything the client can have sent (some may still be in flight)
    await case.send(Acknowledge(case.recv_seq + 1000 + case.rng.randrange(1 << 16)))
    return True


async def reply_unprobed(case: Case) -> bool:
    probe = case.probes + 1 + case.rng.randrange(1000)
    await case.send(Heartbeat(probe, True), timestamp=int(time.time() * 1e6))
    return True


async def sequence_gap(case: Case) -> bool:
    seq = case.send_seq + case.rng.randrange(2, 10)
    await case.send(BinaryData(case.rng.randbytes(8)), seq=seq, flags=Flags.ACK_REQUESTED)
    return True


async def compressed_ungranted(case: Case) -> bool:
    text = b"wsp fuzz: " + case.rng.randbytes(case.rng.randrange(8, 64)).hex().encode()
    await case.send_raw(BinaryData.TYPE, compress(text), Flags.COMPRESSED | Flags.ACK_REQUESTED)
    return True


async def compression_bomb(case: Case) -> bool:
    size = case.rng.choice((4, 8, 16)) << 20
    await case.send_raw(BinaryData.TYPE, _bomb(size), Flags.COMPRESSED | Flags.ACK_REQUESTED)
    return True


async def batch_ungranted(case: Case) -> bool:
    items = tuple(case.message(BinaryData(case.rng.randbytes(4))) for _ in range(2))
    await case.send(Batch(items))
    return True


async def session_id_foreign(case: Case) -> bool:
    other = case.session_id ^ (1 + case.rng.randrange(1 << 32))
    await case.send(BinaryData(b"foreign"), session_id=other)
    return True


async def wrong_direction(case: Case) -> bool:
    await case.send(Publish("fuzz", b"from the server", case.rng.randrange(1, 100)))
    return True


async def resume_retired(case: Case) -> bool:
    await case.send(Resume(case.session_id, case.rng.randbytes(16), 0))
    return True


async def header_noncanonical(case: Case) -> bool:
    link = case.link
    if link.version == 2:  # the next sequence number with a needless trailing 0x00 group
        case.send_seq += 1
        varint = bytearray(write_varint(case.send_seq))
        varint[-1] |= 0x80
        head = bytes((0x40 | int(Flags.ACK_REQUESTED),)) + type_bytes(BinaryData.TYPE)
        data = head + bytes(varint) + b"\0" + case.rng.randbytes(4)
    else:  # v1: a magic that is not 0xC0D1
        data = b"\xd1\xc1" + raw_message(1, BinaryData.TYPE, case.rng.randbytes(4))[2:]
    await link.send_frame(Opcode.BINARY, data)
    return True


async def text_invalid_utf8(case: Case) -> bool:
    bad = case.rng.choice((b"\xff\xfe", b"ok \xc3\x28", b"\xed\xa0\x80 surrogate", b"\xc0\xaf"))
    await case.send_raw(TextData.TYPE, bad, Flags.ACK_REQUESTED)
    return True


# ------------------------------------------------------------ an active session: stays open
async def baseline(case: Case) -> None:
    await case.pump(lambda: False, min(0.05, case.timeout))
    await stays_open(case)


async def ack_backwards(case: Case) -> None:
    await case.send(Acknowledge(case.recv_seq))
    await case.send(Acknowledge(max(0, case.recv_seq - 1 - case.rng.randrange(3))))
    await stays_open(case)


async def server_error(case: Case) -> None:
    code = case.rng.choice((int(_C.UNSUPPORTED_DATA), int(_C.WSP_FORBIDDEN_TOPIC)))
    sent = case.message(Error(code, "fuzz: a problem that does not end the session"))
    await case.link.send(case.link.wire(sent))
    await case.pump(lambda: case.acked >= sent.sequence or bool(case.wsp_closes))
    if case.going_on() and case.acked < sent.sequence:
        what = case.scenario.description
        expected = f"an Acknowledge of {sent.sequence}"
        case.finding(Oracle.DELIVERY, 0, what, expected, f"acknowledged up to {case.acked}")
    await stays_open(case)


async def unknown_type(case: Case) -> None:
    what = case.scenario.description
    before = len(case.errors)
    await case.send(Unknown(_UNKNOWN_TYPE, case.rng.randbytes(case.rng.randrange(32))))
    await case.pump(lambda: len(case.errors) > before or bool(case.wsp_closes))
    answers = case.errors[before:]
    if case.going_on() and not answers:
        case.finding(Oracle.UNDOCUMENTED, 0, what, "an Error with code 1003", "no Error")
    for error in answers:
        if error.code != _C.UNSUPPORTED_DATA:
            observed = f"an Error with code {error.code}"
            case.finding(Oracle.UNDOCUMENTED, 0, what, "an Error with code 1003", observed)
    await stays_open(case)


async def sequence_duplicate(case: Case) -> None:
    link = case.link
    original = case.message(BinaryData(case.rng.randbytes(16)))
    await link.send(link.wire(original))
    await case.pump(lambda: case.acked >= original.sequence or bool(case.wsp_closes))
    acks = case.seen.count("Acknowledge")
    await link.send(link.wire(original))  # the same bytes again: a retransmission
    await case.pump(lambda: case.seen.count("Acknowledge") > acks or bool(case.wsp_closes))
    if case.going_on() and case.seen.count("Acknowledge") <= acks:
        expected = f"an Acknowledge of {original.sequence} again"
        case.finding(Oracle.DELIVERY, 0, case.scenario.description, expected, "no Acknowledge")
    await stays_open(case)


async def flood(case: Case) -> None:
    rng, link = case.rng, case.link
    n, size = rng.randrange(200, 1001), rng.randrange(1, 257)
    target = case.send_seq + n
    await link.send(
        b"".join(link.wire(case.message(BinaryData(rng.randbytes(size)))) for _ in range(n))
    )
    await case.pump(lambda: case.acked >= target or bool(case.wsp_closes), case.timeout * 2)
    what = f"{case.scenario.description} ({n} messages)"
    if case.going_on() and case.acked < target:
        expected = f"an Acknowledge of {target}"
        case.finding(Oracle.DELIVERY, 0, what, expected, f"acknowledged up to {case.acked}")
    await stays_open(case, what, _FLOOD_CLOSES)


async def flood_long(case: Case) -> None:
    rng, link = case.rng, case.link
    total, size = rng.randrange(10_500, 12_001), rng.randrange(1, 33)
    start = case.send_seq
    written = 0
    while written < total and case.going_on():
        # within the client's window (1,024 by default): at most 1,024 unacknowledged
        if not await case.pump(lambda: case.send_seq - case.acked <= 512):
            break
        n = min(512, total - written)
        await link.send(
            b"".join(link.wire(case.message(BinaryData(rng.randbytes(size)))) for _ in range(n))
        )
        written += n
    target = start + total
    await case.pump(lambda: case.acked >= target or bool(case.wsp_closes))
    what = f"{case.scenario.description} ({total} messages)"
    if case.going_on() and case.acked < target:
        observed = f"acknowledgments stopped at {case.acked - start} of {total} messages"
        case.finding(Oracle.LIVENESS, 0, what, f"an Acknowledge of {target}", observed)
    await stays_open(case, what, _FLOOD_CLOSES)


async def wsp_close(case: Case) -> None:
    close = case.rng.choice((int(_C.NORMAL), int(_C.POLICY_VIOLATION), int(_C.WSP_FORBIDDEN_TOPIC)))
    await case.send(Close(close, "fuzz: the server ends the session"))
    case.sent_wsp_close = True
    await case.pump(lambda: False)
    what = f"{case.scenario.description} ({close})"
    answers = case.wsp_closes
    if not answers or answers[0] != close:
        observed = f"a wsp Close {answers[0]}" if answers else "no wsp Close"
        case.finding(Oracle.CLOSE_CODE, 0, what, f"a wsp Close {close}", observed)
    closed = case.link.closed
    if closed is None:
        observed = f"still open after {case.timeout:g} s"
    elif closed.dropped:
        observed = "dropped without close"
    elif closed.code != close:
        observed = f"close {closed.code}"
    else:
        return
    case.finding(Oracle.CLOSE_CODE, 0, what, f"close {close}", observed)
