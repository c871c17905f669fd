"""Two or three real examples at the end of every command's ``--help``.

Kept apart from the commands so that each command module stays a few lines; a
command whose docstring already has an ``Examples:`` block keeps its own.
"""

from __future__ import annotations

__all__ = ["EXAMPLES", "add_examples"]

import re
import textwrap

import click

#: command path (as typed after ``wsp``) -> (command line, what it does)
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "serve": (
        ("wsp serve", "memory broker, a generated secret printed with a command to connect"),
        ("WSP_SECRET=s3cret wsp serve --host 0.0.0.0 --port 9000 --deflate", "choose the secret"),
        ("wsp serve --certfile cert.pem --keyfile key.pem", "serve wss:// (TLS)"),
    ),
    "pub": (
        ("wsp pub ws://127.0.0.1:8765 prices '{\"px\":12.5}' hello", "publish two messages"),
        ("seq 100 | wsp pub ws://127.0.0.1:8765 counts - --json", "one message per stdin line"),
        ("wsp pub wss://example.net/ws alerts up --cafile ca.pem", "TLS with a private CA"),
    ),
    "sub": (
        ("wsp sub ws://127.0.0.1:8765 prices", "print deliveries as they arrive"),
        ("wsp sub ws://127.0.0.1:8765 prices news --json --count 10", "NDJSON, stop after 10"),
        ("wsp sub wss://example.net/ws prices --insecure", "TLS without verification"),
    ),
    "connect": (
        ("wsp connect ws://127.0.0.1:8765", "an interactive wsp session"),
        ("echo hello | wsp connect ws://echo.example/ --raw", "plain WebSocket, one line"),
        ("wsp connect wss://example.net/ws -H 'Authorization: Bearer T'", "extra headers"),
    ),
    "msg": (
        ("wsp msg encode --version 2 --type TextData --text hello --sequence 7", "encode"),
        ("wsp msg decode 4042016869", "decode hex, every field shown"),
    ),
    "msg encode": (
        ("wsp msg encode --version 2 --type TextData --text hello --sequence 7", "v2 TextData"),
        ("wsp msg encode --version 1 --type Subscribe --payload-json '{\"topic\":\"t\"}'",
         "a v1 Subscribe"),
        ("wsp msg encode --type BinaryData --data 6869 | wsp msg decode -", "round trip"),
    ),
    "msg decode": (
        ("wsp msg decode 4042016869", "a v2 BinaryData"),
        ("wsp msg decode --json 4042016869", "the same as one JSON object"),
        ("head -c 30 msg.bin | wsp msg decode --raw -", "raw bytes from stdin"),
    ),
    "decode": (
        ("wsp decode captures/ws-basic.pcap", "a table of messages, then a summary"),
        ("wsp decode --ndjson --type Publish capture.pcapng | jq .wsp", "filter, as NDJSON"),
        ("tcpdump -i lo -w - port 8765 | wsp decode -", "decode a live stream"),
    ),
    "inspect": (
        ("WSP_ADMIN_SECRET=adm wsp inspect ws://127.0.0.1:8765", "every session and message"),
        ("wsp inspect ws://127.0.0.1:8765 --ndjson --type Publish | jq .wsp", "NDJSON, filtered"),
        ("wsp inspect ws://127.0.0.1:8765 --topic prices --admin-secret adm", "one topic"),
        ("WSP_ADMIN_TOKEN=$JWT wsp inspect ws://127.0.0.1:8765", "a JWT with the admin claim"),
    ),
    "tui": (
        ("wsp tui captures/wsp-session-v2.pcap", "sessions and messages of a capture"),
        ("wsp tui --server ws://127.0.0.1:8765 --admin-secret adm", "a server, live"),
        ("wsp tui --connect ws://127.0.0.1:8765 --secret s3cret", "compose and send"),
    ),
    "tap": (
        ("sudo wsp tap -i lo --port 8765", "decode live traffic on port 8765"),
        ("sudo wsp tap -i eth0 --port 443 --ws-port 443 --ndjson --duration 60", "NDJSON, 60 s"),
        ("sudo wsp tap -i lo --port 8765 -w session.pcapng --count 100", "also save a capture"),
    ),
    "fuzz": (
        ("wsp fuzz ws://127.0.0.1:9001 --exclude '12.*,13.*'", "an echo server, fast cases"),
        ("wsp fuzz ws://127.0.0.1:9001 --cases '1.*,2.*' --json-report r.json", "a JSON report"),
        ("wsp fuzz --serve --port 9001", "fuzz a client that connects here"),
    ),
    "replay": (
        ("wsp replay rec.pcapng ws://127.0.0.1:8765 --learn 2", "replay, diff beyond noise"),
        ("wsp replay capture.pcap --to-cassette scenario.ndjson", "a cassette to edit"),
        ("wsp replay scenario.ndjson --serve --port 9001", "play the recorded server"),
    ),
}


def add_examples(command: click.Command, path: str) -> None:
    """Append the examples of ``path`` to ``command``'s help (once, unless it has its own)."""
    help_text = command.help or ""
    own = re.search(r"\n[ \t]*\x08[ \t]*\n[ \t]*Examples:", help_text)
    if own is not None and not command.epilog:
        # the command's own examples go last, after the options, as git's do
        tail = textwrap.dedent(help_text[own.start() + 1 :].expandtabs())
        command.epilog = tail.strip()
        command.help = help_text[: own.start()].rstrip()
        return
    rows = EXAMPLES.get(path)
    if not rows or "Examples:" in (command.help or "") or (command.epilog or ""):
        return
    lines = []
    for line, what in rows:
        lines += [f"  {line}", f"      {what}"]
    # \b keeps click from re-wrapping the block
    command.epilog = "\b\nExamples:\n" + "\n".join(lines)
