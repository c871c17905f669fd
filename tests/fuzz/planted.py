"""The reference wsp server with one planted bug, for the tests of ``wsp fuzz --suite wsp``.

Run as ``python tests/fuzz/planted.py BUG [wsp serve options]``: the real
``wsproto_tools`` code is patched in-process at one narrow point, then the real
``wsp serve`` command runs with the options that follow BUG (``--host``,
``--port``, ``--secret``, ``--jwt-key FILE``, ``--token-key``...). It listens,
logs and stops on SIGINT/SIGTERM exactly as ``wsp serve`` does.

BUG is ``none`` (the reference server, untouched) or one of :data:`BUGS`:

- ``crash-field``: the process dies (``os._exit(70)``, as a fault in a C
  extension would) on a Subscribe whose ``from_offset`` is 2**63 or more.
- ``leak-unacked``: every Publish that arrives with ACK_REQUESTED leaks
  256 KiB that is never freed.
- ``topic-leak``: a Subscribe carrying ``from_offset`` (the replay path) skips
  the JWT topic check (``wsp.sub``); one without it is still refused with 4003.
- ``foreign-resume``: a resume token of another JWT subject resumes that
  subject's session (``resumed: true``); forged tokens are still refused.
- ``wrong-close``: a sequence gap (checklist rule 27) is closed with 1008, not 1002.

Tests use :func:`command` for the argv. Importing this module patches nothing.
"""

from __future__ import annotations

__all__ = ["BUGS", "LEAK_BYTES", "command", "main", "plant"]

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
BUGS = ("crash-field", "leak-unacked", "topic-leak", "foreign-resume", "wrong-close")
#: what leak-unacked keeps for each Publish with ACK_REQUESTED
LEAK_BYTES = 256 * 1024
#: crash-field: from_offset values from here on kill the process
CRASH_FROM = 1 << 63
#: crash-field's exit status (EX_SOFTWARE, as a dead C extension might leave)
CRASH_STATUS = 70

#: leak-unacked's never-freed memory (module-level on purpose: that is the bug)
_LEAKED: list[bytearray] = []


def command(bug: str, port: int | str, *extra: str) -> list[str]:
    """The argv that runs the server with ``bug`` on 127.0.0.1:``port`` (``port`` may be
    a template such as ``"{port}"``); ``extra`` are more ``wsp serve`` options."""
    if bug != "none" and bug not in BUGS:
        raise ValueError(f"unknown bug {bug!r}: none or one of {', '.join(BUGS)}")
    return [
        sys.executable,
        str(SCRIPT),
        bug,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]


# ---------------------------------------------------------------- the bugs
def _crash_field() -> None:
    from wsproto_tools.codec.schema import Message, Subscribe
    from wsproto_tools.engine.server_session import ServerSession

    original = ServerSession._on_subscribe

    def _on_subscribe(
        self: ServerSession, msg: Message, payload: Subscribe, now: float
    ) -> list[Any]:
        # BUG: from_offset goes to a signed 64-bit slot; at 2**63 and above it is
        # negative and the (would-be C) replay index faults: the whole process dies.
        if payload.from_offset is not None and payload.from_offset >= CRASH_FROM:
            os._exit(CRASH_STATUS)
        return original(self, msg, payload, now)

    _handle(Subscribe, _on_subscribe)


def _leak_unacked() -> None:
    from wsproto_tools.codec.schema import Flags, Message, Publish
    from wsproto_tools.engine.server_session import ServerSession

    original = ServerSession._on_publish

    def _on_publish(self: ServerSession, msg: Message, payload: Publish, now: float) -> list[Any]:
        # BUG: a buffer charged to each publish awaiting its acknowledgment is kept in
        # a module-level list and never released (not when acknowledged, not on close).
        if int(msg.flags) & Flags.ACK_REQUESTED:
            _LEAKED.append(bytearray(b"\xa5") * LEAK_BYTES)  # written: resident, not lazy
        return original(self, msg, payload, now)

    _handle(Publish, _on_publish)


def _topic_leak() -> None:
    from wsproto_tools.codec.schema import Message, Subscribe
    from wsproto_tools.engine import events as ev
    from wsproto_tools.engine.server_session import ServerSession

    original = ServerSession._on_subscribe

    def _on_subscribe(
        self: ServerSession, msg: Message, payload: Subscribe, now: float
    ) -> list[Any]:
        # BUG: the replay path (a Subscribe with from_offset) was added beside the live
        # one and forgot the grant's topic check (rule 34): forbidden topics replay.
        if payload.from_offset is not None:
            return [ev.SubscribeRequested(payload.topic, payload.from_offset, payload.epoch)]
        return original(self, msg, payload, now)

    _handle(Subscribe, _on_subscribe)


def _foreign_resume() -> None:
    from wsproto_tools.engine.auth import Grant

    def identity(self: Grant) -> str:
        # BUG: the identity a resume is bound to leaves out the JWT subject, so every
        # JWT identity is the same one: the token's identity tag, the server's check
        # and adopt()'s all pass for a token issued to another subject. The token's
        # signature and expiry are still checked (forged tokens start a new session).
        return self.method

    Grant.identity = property(identity)  # type: ignore[assignment,method-assign]


def _wrong_close() -> None:
    from dataclasses import replace

    from wsproto_tools.engine import sequencing
    from wsproto_tools.engine.rules import Verdict
    from wsproto_tools.exceptions import CloseCode

    original = sequencing.check_sequence

    def check_sequence(seq: int, last: int) -> Verdict | None:
        verdict = original(seq, last)
        # BUG: a sequence gap (rule 27) is answered as a policy violation (1008)
        # instead of a protocol error (1002); duplicates are still dropped.
        if verdict is None:
            return None
        return replace(verdict, close_code=int(CloseCode.POLICY_VIOLATION))

    sequencing.check_sequence = check_sequence  # what _accept_sequence calls


def _handle(payload: type, handler: Callable[..., list[Any]]) -> None:
    """Replace the server session's handler of ``payload`` (its table and its method)."""
    from wsproto_tools.engine.server_session import ServerSession

    ServerSession.HANDLERS[payload] = handler
    setattr(ServerSession, handler.__name__, handler)


PLANTS: dict[str, Callable[[], None]] = {
    "none": lambda: None,
    "crash-field": _crash_field,
    "leak-unacked": _leak_unacked,
    "topic-leak": _topic_leak,
    "foreign-resume": _foreign_resume,
    "wrong-close": _wrong_close,
}


def plant(bug: str) -> None:
    """Patch the reference server in this process with ``bug`` (``none``: nothing)."""
    PLANTS[bug]()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in PLANTS:
        given = repr(args[0]) if args else "nothing"
        print(
            f"usage: planted.py BUG [wsp serve options]; BUG is none or one of "
            f"{', '.join(BUGS)} (got {given})",
            file=sys.stderr,
        )
        sys.exit(2)
    plant(args[0])
    from wsproto_tools.cli.main import main as wsp

    wsp(["serve", *args[1:]])


if __name__ == "__main__":
    main()
