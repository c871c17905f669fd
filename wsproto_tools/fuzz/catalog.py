"""The ``rfc6455`` suite: every case, written from RFC 6455 / RFC 7692.

Case ids follow Autobahn|Testsuite's numbering wherever a case checks the same
thing as an Autobahn case, so that reports compare line by line. The areas:

==  ================================================  ==========================
1   Framing (text and binary at length boundaries)    RFC 6455 5.2, 5.6
2   Pings and pongs                                   RFC 6455 5.5.2, 5.5.3
3   Reserved bits                                     RFC 6455 5.2
4   Reserved opcodes                                  RFC 6455 5.2
5   Fragmentation                                     RFC 6455 5.4
6   UTF-8 handling                                    RFC 6455 5.6, 8.1
7   Close handling                                    RFC 6455 5.5.1, 7.1, 7.4
9   Limits and performance (only with ``--perf``)     RFC 6455 5.4, 10.4
10  Auto-fragmentation                                RFC 6455 5.4
12  permessage-deflate, payload kinds                 RFC 7692 7
13  permessage-deflate, negotiation parameters        RFC 7692 7.1
==  ================================================  ==========================

Every case is an echo scenario: the peer is expected to send back each data
message it gets, to answer pings, to fail the connection (with the right close
code) on a protocol violation, and to complete the close handshake when asked.
"""

from __future__ import annotations

__all__ = ["AREAS", "CORE_AREAS", "build_cases", "select_cases"]

import fnmatch
import functools

from wsproto_tools.fuzz.datasets import DATASETS
from wsproto_tools.fuzz.model import (
    Case,
    Chop,
    EchoRounds,
    Event,
    Expect,
    Frame,
    Partial,
    Pause,
    Send,
    Step,
)
from wsproto_tools.fuzz.utf8 import KOSME, UTF8_GROUPS
from wsproto_tools.ws import Opcode, encode_close

AREAS: dict[int, str] = {
    1: "Framing",
    2: "Pings/Pongs",
    3: "Reserved Bits",
    4: "Opcodes",
    5: "Fragmentation",
    6: "UTF-8 Handling",
    7: "Close Handling",
    9: "Limits/Performance",
    10: "Auto-Fragmentation",
    12: "Compression (payloads)",
    13: "Compression (parameters)",
}
#: The 247 cases that run by default and that the speed target is about.
CORE_AREAS = frozenset({1, 2, 3, 4, 5, 6, 7, 10})

# Pauses are short: they only have to make frames arrive separately, or give a
# strict peer time to fail fast before the next part is sent.
CHOP_PAUSE = 0.1
FAIL_FAST_WINDOW = 0.5

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
PING, PONG, CLOSE = Opcode.PING, Opcode.PONG, Opcode.CLOSE

HELLO = b"Hello, world!"
BIN8 = bytes.fromhex("00fffefdfcfb00ff")


def msg(payload: bytes, binary: bool = False) -> Event:
    return Event("message", payload, binary)


def pong(payload: bytes) -> Event:
    return Event("pong", payload)


def timeout(marker: str) -> Event:
    return Event("timeout", note=marker)


ECHO_CLOSE = Expect()  # closed by us with 1000, clean


def fails(code: int = 1002) -> Expect:
    """The peer must fail the connection; a TCP drop without close is fine."""
    return Expect(closed_by_me=False, close_codes=(code,), require_clean=False)


def _area(case_id: str) -> str:
    return AREAS[int(case_id.split(".")[0])]


def case(
    case_id: str,
    description: str,
    expectation: str,
    rfc: str,
    steps: list[Step] | tuple[Step, ...],
    expect: Expect,
    *,
    offer: str | None = None,
    accept: tuple[str, ...] = (),
    perf: bool = False,
    timeout: float | None = None,
) -> Case:
    return Case(
        case_id,
        _area(case_id),
        description,
        expectation,
        rfc,
        tuple(steps),
        expect,
        offer=offer,
        accept=accept,
        perf=perf,
        timeout=timeout,
    )


def send(*frames: Frame, chop: Chop = Chop.NONE, force: bool = False) -> Send:
    return Send(tuple(frames), chop, force)


# --------------------------------------------------------------------------- 1


def _framing() -> list[Case]:
    out = []
    lengths = [0, 125, 126, 127, 128, 65535, 65536]
    for opcode, sub, kind, byte in ((TEXT, 1, "text", b"*"), (BINARY, 2, "binary", b"\xfe")):
        binary = opcode == BINARY
        for n, length in enumerate(lengths, 1):
            payload = byte * length
            out.append(
                case(
                    f"1.{sub}.{n}",
                    f"Send a {kind} message with a payload of {length} bytes.",
                    "The message is echoed back; clean close with 1000.",
                    "RFC 6455 5.2 (payload length forms), 5.6",
                    [send(Frame(opcode, payload))],
                    Expect(ok=(msg(payload, binary),)),
                )
            )
        payload = byte * 65536
        out.append(
            case(
                f"1.{sub}.8",
                f"Send a {kind} message of 65536 bytes in one frame, written to the socket "
                "in chunks of 997 bytes.",
                "The message is echoed back; clean close with 1000.",
                "RFC 6455 5.2",
                [Send((Frame(opcode, payload),), Chop.NONE, chunk=997)],
                Expect(ok=(msg(payload, binary),)),
            )
        )
    return out


# --------------------------------------------------------------------------- 2


def _pings() -> list[Case]:
    big = b"\xfe" * 125
    out = [
        case(
            "2.1",
            "Send a ping with an empty payload.",
            "A pong with an empty payload; clean close.",
            "RFC 6455 5.5.2, 5.5.3",
            [send(Frame(PING))],
            Expect(ok=(pong(b""),)),
        ),
        case(
            "2.2",
            "Send a ping with a short text payload.",
            "A pong with the same payload.",
            "RFC 6455 5.5.3",
            [send(Frame(PING, HELLO))],
            Expect(ok=(pong(HELLO),)),
        ),
        case(
            "2.3",
            "Send a ping with a short binary payload that is not UTF-8.",
            "A pong with the same payload.",
            "RFC 6455 5.5.3",
            [send(Frame(PING, BIN8))],
            Expect(ok=(pong(BIN8),)),
        ),
        case(
            "2.4",
            "Send a ping with a payload of 125 bytes (the control frame maximum).",
            "A pong with the same payload.",
            "RFC 6455 5.5",
            [send(Frame(PING, big))],
            Expect(ok=(pong(big),)),
        ),
        case(
            "2.5",
            "Send a ping with a payload of 126 bytes (over the control frame maximum).",
            "The peer fails the connection with 1002.",
            "RFC 6455 5.5",
            [send(Frame(PING, b"\xfe" * 126))],
            fails(),
        ),
        case(
            "2.6",
            "Send a ping with a 125-byte payload, one byte per socket write.",
            "A pong with the same payload.",
            "RFC 6455 5.5.3",
            [send(Frame(PING, big), chop=Chop.OCTETS)],
            Expect(ok=(pong(big),)),
        ),
        case(
            "2.7",
            "Send an unsolicited pong with an empty payload.",
            "Nothing in return (an unsolicited pong is ignored); clean close.",
            "RFC 6455 5.5.3",
            [send(Frame(PONG))],
            ECHO_CLOSE,
        ),
        case(
            "2.8",
            "Send an unsolicited pong with a payload.",
            "Nothing in return; clean close.",
            "RFC 6455 5.5.3",
            [send(Frame(PONG, b"unsolicited pong payload"))],
            ECHO_CLOSE,
        ),
        case(
            "2.9",
            "Send an unsolicited pong, then a ping.",
            "A pong for the ping only.",
            "RFC 6455 5.5.3",
            [send(Frame(PONG, b"unsolicited pong payload"), Frame(PING, b"ping payload"))],
            Expect(ok=(pong(b"ping payload"),)),
        ),
    ]
    payloads = [f"payload-{i}".encode() for i in range(10)]
    pings = tuple(Frame(PING, p) for p in payloads)
    everything = tuple(pong(p) for p in payloads)
    for case_id, chop, how in (
        ("2.10", Chop.NONE, "in one write"),
        ("2.11", Chop.OCTETS, "one byte per write"),
    ):
        out.append(
            case(
                case_id,
                f"Send 10 pings with distinct payloads back to back, {how}.",
                "A pong for each ping, in order (NON-STRICT: only the last one, "
                "which RFC 6455 5.5.3 allows).",
                "RFC 6455 5.5.3",
                [Send(pings, chop)],
                Expect(ok=everything, non_strict=((everything[-1],),)),
            )
        )
    return out


# --------------------------------------------------------------------------- 3


def _reserved_bits() -> list[Case]:
    rfc = "RFC 6455 5.2 (RSV1-3 MUST be 0 unless an extension defines them)"
    after_echo = Expect(
        ok=(msg(HELLO),),
        non_strict=((),),
        closed_by_me=False,
        close_codes=(1002,),
        require_clean=False,
    )
    out = [
        case(
            "3.1",
            "Send a short text message with RSV = 1.",
            "The peer fails the connection with 1002.",
            rfc,
            [send(Frame(TEXT, HELLO, rsv=1))],
            fails(),
        )
    ]
    for case_id, rsv, chop, how in (
        ("3.2", 2, Chop.NONE, "in one write"),
        ("3.3", 3, Chop.FRAMES, "one frame per write"),
        ("3.4", 4, Chop.OCTETS, "one byte per write"),
    ):
        out.append(
            case(
                case_id,
                f"Send a short text message, then another with RSV = {rsv}, then a ping, {how}.",
                "The first message is echoed (NON-STRICT: it may be dropped), then the "
                "peer fails the connection with 1002 and does not answer the ping.",
                rfc,
                [Send((Frame(TEXT, HELLO), Frame(TEXT, HELLO, rsv=rsv), Frame(PING, HELLO)), chop)],
                after_echo,
            )
        )
    out += [
        case(
            "3.5",
            "Send a short binary message with RSV = 5.",
            "The peer fails the connection with 1002.",
            rfc,
            [send(Frame(BINARY, BIN8, rsv=5))],
            fails(),
        ),
        case(
            "3.6",
            "Send a ping with RSV = 6.",
            "The peer fails the connection with 1002 without answering the ping.",
            rfc,
            [send(Frame(PING, HELLO, rsv=6))],
            fails(),
        ),
        case(
            "3.7",
            "Send a close frame (1000) with RSV = 7.",
            "The peer fails the connection with 1002.",
            rfc,
            [send(Frame(CLOSE, encode_close(1000), rsv=7))],
            fails(),
        ),
    ]
    return out


# --------------------------------------------------------------------------- 4


def _opcodes() -> list[Case]:
    out = []
    rfc = "RFC 6455 5.2 (reserved opcodes: the receiver MUST fail the connection)"
    payload = b"reserved opcode payload"
    for sub, kind, codes in (
        (1, "non-control", (3, 4, 5, 6, 7)),
        (2, "control", (11, 12, 13, 14, 15)),
    ):
        for n, opcode in enumerate(codes, 1):
            with_payload = n in (2, 4, 5)
            frame = Frame(opcode, payload if with_payload else b"")
            what = f"a frame with reserved {kind} opcode {opcode}" + (
                " and a payload" if with_payload else ""
            )
            if n <= 2:
                out.append(
                    case(
                        f"4.{sub}.{n}",
                        f"Send {what}.",
                        "The peer fails the connection with 1002.",
                        rfc,
                        [send(frame)],
                        fails(),
                    )
                )
            else:
                out.append(
                    case(
                        f"4.{sub}.{n}",
                        f"Send a short text message, then {what}, then a ping.",
                        "The message is echoed (NON-STRICT: it may be dropped), then the peer "
                        "fails the connection with 1002 without answering the ping.",
                        rfc,
                        [send(Frame(TEXT, HELLO), frame, Frame(PING, HELLO))],
                        Expect(
                            ok=(msg(HELLO),),
                            non_strict=((),),
                            closed_by_me=False,
                            close_codes=(1002,),
                            require_clean=False,
                        ),
                    )
                )
    return out


# --------------------------------------------------------------------------- 5


def _fragmentation() -> list[Case]:
    rfc = "RFC 6455 5.4"
    f = [f"fragment{i}".encode() for i in range(1, 6)]
    chops = (
        (Chop.NONE, "in one write"),
        (Chop.FRAMES, "one frame per write"),
        (Chop.OCTETS, "one byte per write"),
    )
    out = [
        case(
            "5.1",
            "Send a ping in two fragments.",
            "The peer fails the connection with 1002 (control frames MUST NOT be fragmented).",
            "RFC 6455 5.4, 5.5",
            [send(Frame(PING, f[0], fin=False), Frame(CONT, f[1]))],
            fails(),
        ),
        case(
            "5.2",
            "Send a pong in two fragments.",
            "The peer fails the connection with 1002.",
            "RFC 6455 5.4, 5.5",
            [send(Frame(PONG, f[0], fin=False), Frame(CONT, f[1]))],
            fails(),
        ),
    ]
    two: tuple[Frame, ...] = (Frame(TEXT, f[0], fin=False), Frame(CONT, f[1]))
    for n, (chop, how) in enumerate(chops, 3):
        out.append(
            case(
                f"5.{n}",
                f"Send a text message in two fragments, {how}.",
                "The reassembled message is echoed back.",
                rfc,
                [Send(two, chop)],
                Expect(ok=(msg(f[0] + f[1]),)),
            )
        )
    with_ping = (Frame(TEXT, f[0], fin=False), Frame(PING, b"ping payload"), Frame(CONT, f[1]))
    for n, (chop, how) in enumerate(chops, 6):
        out.append(
            case(
                f"5.{n}",
                f"Send a text message in two fragments with a ping between them, {how}.",
                "The ping is answered, then the reassembled message is echoed.",
                rfc + " (control frames MAY be injected between fragments)",
                [Send(with_ping, chop)],
                Expect(ok=(pong(b"ping payload"), msg(f[0] + f[1]))),
            )
        )
    frames: tuple[Frame, ...]
    for base, fin in ((9, True), (12, False)):
        frames = (Frame(CONT, f[1], fin=fin), Frame(TEXT, b"Hello, world!"))
        for n, (chop, how) in enumerate(chops, base):
            out.append(
                case(
                    f"5.{n}",
                    f"Send a continuation frame with FIN = {str(fin).lower()} when there is no "
                    f"message to continue, then a text message, {how}.",
                    "The peer fails the connection with 1002.",
                    rfc,
                    [Send(frames, chop)],
                    fails(),
                )
            )
    out += [
        case(
            "5.15",
            "Send a text message in two fragments, then a continuation frame (FIN = false) "
            "with nothing to continue, then a text message, in one write.",
            "The first message is echoed (NON-STRICT: dropped), then the peer fails the "
            "connection with 1002.",
            rfc,
            [
                send(
                    Frame(TEXT, f[0], fin=False),
                    Frame(CONT, f[1]),
                    Frame(CONT, f[2], fin=False),
                    Frame(TEXT, f[3]),
                )
            ],
            Expect(
                ok=(msg(f[0] + f[1]),),
                non_strict=((),),
                closed_by_me=False,
                close_codes=(1002,),
                require_clean=False,
            ),
        ),
    ]
    for case_id, fin in (("5.16", False), ("5.17", True)):
        frames = (Frame(CONT, f[0], fin=fin), Frame(TEXT, f[1], fin=False), Frame(CONT, f[2]))
        out.append(
            case(
                case_id,
                f"Twice: a continuation frame (FIN = {str(fin).lower()}) with nothing to "
                "continue, then a text message in two fragments.",
                "The peer fails the connection with 1002 at the first frame.",
                rfc,
                [send(*(frames + frames))],
                fails(),
            )
        )
    out.append(
        case(
            "5.18",
            "Send a text message in two fragments whose second frame also has the text "
            "opcode (instead of continuation).",
            "The peer fails the connection with 1002.",
            rfc,
            [send(Frame(TEXT, f[0], fin=False), Frame(TEXT, f[1]))],
            fails(),
        )
    )
    pings = (b"pongme 1!", b"pongme 2!")
    for case_id, chop, how in (
        ("5.19", Chop.NONE, ""),
        ("5.20", Chop.FRAMES, ", one frame per write"),
    ):
        out.append(
            case(
                case_id,
                "Send a text message in five fragments with two pings between them and "
                f"pauses after each ping{how}.",
                "Each ping is answered as soon as it arrives (before the message is complete), "
                "then the message is echoed.",
                rfc + ", 5.5",
                [
                    Send(
                        (
                            Frame(TEXT, f[0], fin=False),
                            Frame(CONT, f[1], fin=False),
                            Frame(PING, pings[0]),
                        ),
                        chop,
                    ),
                    Pause(CHOP_PAUSE),
                    Send(
                        (
                            Frame(CONT, f[2], fin=False),
                            Frame(CONT, f[3], fin=False),
                            Frame(PING, pings[1]),
                        ),
                        chop,
                    ),
                    Pause(CHOP_PAUSE),
                    Send((Frame(CONT, f[4]),), chop),
                ],
                Expect(ok=(pong(pings[0]), pong(pings[1]), msg(b"".join(f)))),
            )
        )
    return out


# --------------------------------------------------------------------------- 6


def _utf8_one(case_id: str, payload: bytes, valid: bool, note: str = "") -> Case:
    if valid:
        return case(
            case_id,
            f"Send a text message whose payload is valid UTF-8, in one frame{note}. "
            f"Payload: 0x{payload.hex()}",
            "The message is echoed back.",
            "RFC 6455 5.6, 8.1",
            [send(Frame(TEXT, payload))],
            Expect(ok=(msg(payload),)),
        )
    return case(
        case_id,
        f"Send a text message whose payload is not valid UTF-8, in one frame{note}. "
        f"Payload: 0x{payload.hex()}",
        "The peer fails the connection with 1007.",
        "RFC 6455 8.1 (invalid UTF-8 in a text message: fail with 1007)",
        [send(Frame(TEXT, payload))],
        fails(1007),
    )


def _utf8() -> list[Case]:
    rfc = "RFC 6455 5.6, 8.1"
    greeting = "Hello-µ@ßöäüàá-UTF-8!!".encode()
    invalid = KOSME + bytes.fromhex("eda080") + b"edited"
    out = [
        case(
            "6.1.1",
            "Send a text message with an empty payload.",
            "An empty text message is echoed.",
            rfc,
            [send(Frame(TEXT))],
            Expect(ok=(msg(b""),)),
        ),
        case(
            "6.1.2",
            "Send a text message in three empty fragments.",
            "An empty text message is echoed.",
            rfc + ", 5.4",
            [send(Frame(TEXT, fin=False), Frame(CONT, fin=False), Frame(CONT))],
            Expect(ok=(msg(b""),)),
        ),
        case(
            "6.1.3",
            "Send a text message in three fragments, the first and last empty.",
            "The middle fragment's text is echoed.",
            rfc + ", 5.4",
            [
                send(
                    Frame(TEXT, fin=False),
                    Frame(CONT, b"middle frame payload", fin=False),
                    Frame(CONT),
                )
            ],
            Expect(ok=(msg(b"middle frame payload"),)),
        ),
        case(
            "6.2.1",
            "Send valid UTF-8 text with multi-byte code points in one frame.",
            "The message is echoed.",
            rfc,
            [send(Frame(TEXT, greeting))],
            Expect(ok=(msg(greeting),)),
        ),
        case(
            "6.2.2",
            "Send valid UTF-8 text in two fragments split on a code point boundary.",
            "The message is echoed.",
            rfc + ", 5.4",
            [send(Frame(TEXT, greeting[:12], fin=False), Frame(CONT, greeting[12:]))],
            Expect(ok=(msg(greeting),)),
        ),
        case(
            "6.2.3",
            "Send valid UTF-8 text in one-byte fragments (fragments end inside code points).",
            "The message is echoed (validity is judged on the whole message).",
            rfc + ", 5.4",
            [send(*_one_byte_frames(greeting))],
            Expect(ok=(msg(greeting),)),
        ),
        case(
            "6.2.4",
            "Send the valid UTF-8 text 'κόσμε' in one-byte fragments.",
            "The message is echoed.",
            rfc + ", 5.4",
            [send(*_one_byte_frames(KOSME))],
            Expect(ok=(msg(KOSME),)),
        ),
        case(
            "6.3.1",
            "Send a text message with an encoded UTF-16 surrogate (invalid UTF-8), in one frame.",
            "The peer fails the connection with 1007.",
            rfc,
            [send(Frame(TEXT, invalid))],
            fails(1007),
        ),
        case(
            "6.3.2",
            "Send the same invalid text in one-byte fragments.",
            "The peer fails the connection with 1007.",
            rfc + ", 5.4",
            [send(*_one_byte_frames(invalid))],
            fails(1007),
        ),
    ]
    out += _fail_fast_cases()
    for group, title, sequences in UTF8_GROUPS:
        for n, (payload, valid) in enumerate(sequences, 1):
            out.append(_utf8_one(f"6.{group}.{n}", payload, valid, f" ({title})"))
    return out


def _one_byte_frames(payload: bytes) -> tuple[Frame, ...]:
    frames = [Frame(CONT, payload[i : i + 1], fin=False) for i in range(len(payload))]
    frames[0] = Frame(TEXT, payload[:1], fin=False)
    frames[-1] = Frame(frames[-1].opcode, payload[-1:], fin=True)
    return tuple(frames)


def _fail_fast_cases() -> list[Case]:
    """6.4.x: the peer should fail as soon as the text cannot be UTF-8 any more."""
    rfc = "RFC 6455 8.1 (an endpoint SHOULD fail as soon as it finds invalid UTF-8)"
    expect = Expect(
        ok=(timeout("A"),),
        non_strict=((timeout("A"), timeout("B")),),
        closed_by_me=False,
        close_codes=(1007,),
        require_clean=False,
    )
    wait = FAIL_FAST_WINDOW
    out = []
    for case_id, parts in (
        ("6.4.1", (KOSME, bytes.fromhex("f4908080"), b"edited")),
        ("6.4.2", (KOSME + b"\xf4", b"\x90", b"\x80\x80edited")),
    ):
        out.append(
            case(
                case_id,
                "Send a text message in three frames with pauses between them: the first is "
                f"valid, the second (0x{parts[1].hex()}) makes the text invalid UTF-8, the third "
                "completes it.",
                "The peer fails with 1007 right after the second frame (NON-STRICT: only at "
                "the end of the message).",
                rfc,
                [
                    send(Frame(TEXT, parts[0], fin=False)),
                    Pause(wait, "A"),
                    send(Frame(CONT, parts[1], fin=False)),
                    Pause(wait, "B"),
                    send(Frame(CONT, parts[2])),
                ],
                expect,
            )
        )
    for case_id, parts in (
        ("6.4.3", (KOSME, bytes.fromhex("f4908080"), b"edited")),
        ("6.4.4", (KOSME + b"\xf4", b"\x90", b"\x80\x80edited")),
    ):
        whole = Frame(TEXT, b"".join(parts))
        a, b = len(parts[0]), len(parts[0]) + len(parts[1])
        out.append(
            case(
                case_id,
                "Send an invalid UTF-8 text message in ONE frame, written in three parts with "
                f"pauses: the second part (0x{parts[1].hex()}) makes the text invalid.",
                "The peer fails with 1007 right after the second part (NON-STRICT: only when "
                "the frame is complete).",
                rfc,
                [
                    Partial(whole, 0, a),
                    Pause(wait, "A"),
                    Partial(whole, a, b),
                    Pause(wait, "B"),
                    Partial(whole, b, None),
                ],
                expect,
            )
        )
    return out


# --------------------------------------------------------------------------- 7


def _close() -> list[Case]:
    rfc = "RFC 6455 5.5.1, 7.1"
    close1000 = Frame(CLOSE, encode_close(1000))
    fails_behavior = Expect(wrong_code_fails=True)
    out = [
        case(
            "7.1.1",
            "Send a text message, then (after its echo) a close frame.",
            "The message is echoed; clean close with 1000.",
            rfc,
            [send(Frame(TEXT, b"Hello World!"))],
            Expect(ok=(msg(b"Hello World!"),), wrong_code_fails=True),
        ),
        case(
            "7.1.2",
            "Send two close frames back to back.",
            "Clean close with 1000; the second close is ignored.",
            rfc,
            [send(close1000, close1000)],
            fails_behavior,
        ),
        case(
            "7.1.3",
            "Send a close frame, then a ping.",
            "Clean close with 1000; the ping after the close is not answered.",
            rfc,
            [send(close1000, Frame(PING, b"ping after close"), force=True)],
            fails_behavior,
        ),
        case(
            "7.1.4",
            "Send a close frame, then a text message.",
            "Clean close with 1000; the message after the close is not echoed.",
            rfc,
            [send(close1000, Frame(TEXT, b"text after close"), force=True)],
            fails_behavior,
        ),
        case(
            "7.1.5",
            "Send the first fragment of a text message, then a close frame, then the "
            "last fragment.",
            "Clean close with 1000 (a close frame MAY be injected between fragments); "
            "nothing is echoed.",
            rfc + ", 5.4",
            [
                send(
                    Frame(TEXT, b"fragment1", fin=False),
                    close1000,
                    Frame(CONT, b"fragment2"),
                    force=True,
                )
            ],
            fails_behavior,
        ),
        case(
            "7.1.6",
            "Send a 256 KiB text message and a short one, then a close frame and a ping, "
            "back to back.",
            "Left open by the RFC: the messages may or may not be echoed before the close "
            "(INFORMATIONAL).",
            rfc,
            [
                send(
                    Frame(TEXT, (b"BAsd7&jh23" * 26215) + b"BAsd76"),
                    Frame(TEXT, b"Hello World!"),
                    close1000,
                    Frame(PING),
                    force=True,
                )
            ],
            Expect(
                ok=(msg((b"BAsd7&jh23" * 26215) + b"BAsd76"), msg(b"Hello World!")),
                non_strict=((),),
                informational_only=True,
            ),
        ),
        case(
            "7.3.1",
            "Send a close frame with an empty payload.",
            "Clean close (an empty close or 1000 in return).",
            "RFC 6455 5.5.1, 7.1.5",
            [send(Frame(CLOSE))],
            ECHO_CLOSE,
        ),
        case(
            "7.3.2",
            "Send a close frame with a one-byte payload.",
            "Close with 1002 or a TCP drop (a close payload is 0 or at least 2 bytes).",
            "RFC 6455 5.5.1",
            [send(Frame(CLOSE, b"a"))],
            Expect(close_codes=(1002,), require_clean=False, wrong_code_fails=True),
        ),
        case(
            "7.3.3",
            "Send a close frame with code 1000 and no reason.",
            "Clean close with 1000.",
            rfc,
            [send(close1000)],
            ECHO_CLOSE,
        ),
        case(
            "7.3.4",
            "Send a close frame with code 1000 and a short reason.",
            "Clean close with 1000.",
            rfc,
            [send(Frame(CLOSE, encode_close(1000, "Hello World!")))],
            ECHO_CLOSE,
        ),
        case(
            "7.3.5",
            "Send a close frame with code 1000 and a 123-byte reason (125 in all).",
            "Clean close with 1000.",
            rfc + ", 5.5",
            [send(Frame(CLOSE, encode_close(1000, "*" * 123)))],
            ECHO_CLOSE,
        ),
        case(
            "7.3.6",
            "Send a close frame with code 1000 and a 124-byte reason (126 in all, too long).",
            "Close with 1002 or a TCP drop (control frame payloads are at most 125 bytes).",
            "RFC 6455 5.5",
            [send(Frame(CLOSE, encode_close(1000, "*" * 124)))],
            Expect(close_codes=(1002,), require_clean=False, wrong_code_fails=True),
        ),
        case(
            "7.5.1",
            "Send a close frame with code 1000 and a reason that is not valid UTF-8.",
            "Close with 1007 or a TCP drop.",
            "RFC 6455 5.5.1, 8.1",
            [send(Frame(CLOSE, encode_close(1000, KOSME + bytes.fromhex("eda080") + b"edited")))],
            Expect(close_codes=(1007,), require_clean=False, wrong_code_fails=True),
        ),
    ]
    valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
    for n, code in enumerate(valid, 1):
        out.append(
            case(
                f"7.7.{n}",
                f"Send a close frame with the valid close code {code}.",
                f"Clean close with {code} or 1000 in return.",
                "RFC 6455 7.4.1, 7.4.2",
                [send(Frame(CLOSE, encode_close(code)))],
                Expect(close_codes=(1000, code), wrong_code_fails=True),
            )
        )
    invalid = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]
    for n, code in enumerate(invalid, 1):
        out.append(
            case(
                f"7.9.{n}",
                f"Send a close frame with the invalid close code {code}.",
                "Close with 1002 or a TCP drop.",
                "RFC 6455 7.4.1, 7.4.2 (codes that MUST NOT be sent)",
                [send(Frame(CLOSE, encode_close(code)))],
                Expect(close_codes=(1002,), require_clean=False, wrong_code_fails=True),
            )
        )
    for n, code in enumerate((5000, 65535), 1):
        out.append(
            case(
                f"7.13.{n}",
                f"Send a close frame with the out-of-range close code {code}.",
                "Left undefined by the RFC (INFORMATIONAL).",
                "RFC 6455 7.4.2",
                [send(Frame(CLOSE, encode_close(code)))],
                Expect(close_codes=(1000, 1002), require_clean=False, informational_only=True),
            )
        )
    return out


# --------------------------------------------------------------------------- 9


def _performance() -> list[Case]:
    out = []
    sizes = [64 * 1024, 256 * 1024, 1 << 20, 4 << 20, 8 << 20, 16 << 20]
    kinds = ((TEXT, "text", b"*"), (BINARY, "binary", b"\xfe"))
    for sub, (opcode, kind, byte) in enumerate(kinds, 1):
        for n, size in enumerate(sizes, 1):
            payload = byte * size
            out.append(
                case(
                    f"9.{sub}.{n}",
                    f"Send a {kind} message of {size} bytes in one frame.",
                    "The message is echoed.",
                    "RFC 6455 5.2, 10.4",
                    [send(Frame(opcode, payload))],
                    Expect(ok=(msg(payload, opcode == BINARY),)),
                    perf=True,
                    timeout=100.0,
                )
            )
    fragments = [64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20]
    for sub, (opcode, kind, _byte) in enumerate(kinds, 3):
        for n, frag in enumerate(fragments, 1):
            out.append(
                case(
                    f"9.{sub}.{n}",
                    f"Send a 4 MiB {kind} message in frames of {frag} bytes.",
                    "The message is echoed.",
                    "RFC 6455 5.4, 10.4",
                    [EchoRounds(1, 4 << 20, opcode == BINARY, fragment=frag)],
                    Expect(ok=(Event("echoed", note="1"),)),
                    perf=True,
                    timeout=100.0,
                )
            )
    chops = [64, 128, 256, 512, 1024, 2048]
    for sub, (opcode, kind, byte) in enumerate(kinds, 5):
        for n, chunk in enumerate(chops, 1):
            payload = byte * (1 << 20)
            out.append(
                case(
                    f"9.{sub}.{n}",
                    f"Send a 1 MiB {kind} message in one frame, written to the socket "
                    f"in chunks of {chunk} bytes.",
                    "The message is echoed.",
                    "RFC 6455 5.2",
                    [Send((Frame(opcode, payload),), chunk=chunk)],
                    Expect(ok=(msg(payload, opcode == BINARY),)),
                    perf=True,
                    timeout=100.0,
                )
            )
    rounds = [0, 16, 64, 256, 1024, 4096]
    for sub, (opcode, kind, _byte) in enumerate(kinds, 7):
        for n, size in enumerate(rounds, 1):
            out.append(
                case(
                    f"9.{sub}.{n}",
                    f"Send 1000 {kind} messages of {size} bytes, each after the "
                    "echo of the previous one.",
                    "Every message is echoed, in order.",
                    "RFC 6455 5.6",
                    [EchoRounds(1000, size, opcode == BINARY)],
                    Expect(ok=(Event("echoed", note="1000"),)),
                    perf=True,
                    timeout=100.0,
                )
            )
    return out


# -------------------------------------------------------------------------- 10


def _autofragmentation() -> list[Case]:
    return [
        case(
            "10.1.1",
            "Send a 65536-byte text message as frames of 1300 bytes.",
            "The reassembled message is echoed (however the peer fragments it).",
            "RFC 6455 5.4",
            [EchoRounds(1, 65536, False, fragment=1300)],
            Expect(ok=(Event("echoed", note="1"),)),
        )
    ]


# ----------------------------------------------------------------------- 12/13

#: (payload size, auto-fragment size) for the 18 cases of each compression group.
COMPRESSION_SIZES = [
    (16, 0),
    (64, 0),
    (256, 0),
    (1024, 0),
    (4096, 0),
    (8192, 0),
    (16384, 0),
    (32768, 0),
    (65536, 0),
    (131072, 0),
    (8192, 256),
    (16384, 256),
    (32768, 256),
    (65536, 256),
    (131072, 256),
    (131072, 1024),
    (131072, 4096),
    (131072, 32768),
]

_BASE_OFFER = "permessage-deflate; client_max_window_bits"

#: 13.1 to 13.7: (client offer, serve-mode answers tried in order, summary).
NEGOTIATIONS: list[tuple[str, tuple[str, ...], str]] = [
    (_BASE_OFFER, ("permessage-deflate",), "default offer, default answer"),
    (
        "permessage-deflate; server_no_context_takeover; client_max_window_bits",
        ("permessage-deflate; client_no_context_takeover",),
        "no context takeover both ways",
    ),
    (
        "permessage-deflate; server_max_window_bits=9; client_max_window_bits",
        ("permessage-deflate; client_max_window_bits=9",),
        "9-bit windows both ways",
    ),
    (
        "permessage-deflate; server_max_window_bits=15; client_max_window_bits",
        ("permessage-deflate; client_max_window_bits=15",),
        "15-bit windows both ways",
    ),
    (
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; "
        "client_max_window_bits",
        ("permessage-deflate; client_no_context_takeover; client_max_window_bits=9",),
        "no context takeover and 9-bit windows",
    ),
    (
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=15; "
        "client_max_window_bits",
        ("permessage-deflate; client_no_context_takeover; client_max_window_bits=15",),
        "no context takeover and 15-bit windows",
    ),
    (
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; "
        "client_max_window_bits, permessage-deflate; server_no_context_takeover; "
        "client_max_window_bits, " + _BASE_OFFER,
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=9",
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate",
        ),
        "three offers in order of preference",
    ),
]


def _compression() -> list[Case]:
    out = []
    for sub, data in enumerate(DATASETS, 1):
        kind = "binary" if data.binary else "text"
        for n, (size, frag) in enumerate(COMPRESSION_SIZES, 1):
            out.append(
                case(
                    f"12.{sub}.{n}",
                    f"Send 1000 compressed {kind} messages of {size} bytes taken in turn from "
                    f"the data set '{data.title}', "
                    + (f"in {frag}-byte frames" if frag else "unfragmented")
                    + ", each after the echo of the previous one; default permessage-deflate "
                    "offer.",
                    "Every message is echoed with the payload as sent.",
                    "RFC 7692 6, 7",
                    [EchoRounds(1000, size, data.binary, frag, True, data.name)],
                    Expect(ok=(Event("echoed", note="1000"),)),
                    offer=_BASE_OFFER,
                    accept=("permessage-deflate",),
                    timeout=60.0 if size <= 256 else 240.0,
                )
            )
    for sub, (offer, answers, summary) in enumerate(NEGOTIATIONS, 1):
        for n, (size, frag) in enumerate(COMPRESSION_SIZES, 1):
            out.append(
                case(
                    f"13.{sub}.{n}",
                    f"Send 1000 compressed text messages of {size} bytes (JSON data set), "
                    + (f"in {frag}-byte frames" if frag else "unfragmented")
                    + f", each after the echo of the previous one; {summary}: offer '{offer}'.",
                    "Every message is echoed with the payload as sent.",
                    "RFC 7692 7.1",
                    [EchoRounds(1000, size, False, frag, True, "json")],
                    Expect(ok=(Event("echoed", note="1000"),)),
                    offer=offer,
                    accept=answers,
                    timeout=60.0 if size <= 256 else 240.0,
                )
            )
    return out


@functools.lru_cache(maxsize=1)
def build_cases() -> tuple[Case, ...]:
    """Every case of the ``rfc6455`` suite, in id order."""
    cases = (
        _framing()
        + _pings()
        + _reserved_bits()
        + _opcodes()
        + _fragmentation()
        + _utf8()
        + _close()
        + _performance()
        + _autofragmentation()
        + _compression()
    )
    return tuple(sorted(cases, key=lambda c: c.key))


def _matches(case_id: str, pattern: str) -> bool:
    pattern = pattern.strip()
    if not pattern:
        return False
    if fnmatch.fnmatchcase(case_id, pattern):
        return True
    # "6.4" selects 6.4.*, like a prefix of whole components.
    return "*" not in pattern and case_id.startswith(pattern + ".")


def select_cases(
    include: str | None = None, exclude: str | None = None, *, perf: bool = False
) -> list[Case]:
    """The cases chosen by ``--cases`` / ``--exclude`` patterns (comma-separated globs).

    Without ``include`` the default set is areas 1-7, 10, 12 and 13; area 9 needs
    ``perf``. An explicit pattern can name any case, but area 9 still needs ``perf``.
    """
    chosen = []
    includes = [p for p in (include or "").split(",") if p.strip()]
    excludes = [p for p in (exclude or "").split(",") if p.strip()]
    for item in build_cases():
        if item.perf and not perf:
            continue
        if includes and not any(_matches(item.id, p) for p in includes):
            continue
        if any(_matches(item.id, p) for p in excludes):
            continue
        chosen.append(item)
    return chosen
