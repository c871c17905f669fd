"""``wsp msg``: encode and decode one wsp application message."""

from __future__ import annotations

__all__ = ["msg"]

import json
import sys

import click

from wsproto_tools.cli.env import Environment
from wsproto_tools.cli.status import CommandExit, ExitStatus


def _parse_hex(text: str, what: str) -> bytes:
    cleaned = "".join(text.split())
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    for index, char in enumerate(cleaned):
        if char not in "0123456789abcdefABCDEF":
            raise CommandExit(
                ExitStatus.BAD_INPUT,
                f"{what}: {char!r} at hex digit {index} is not a hex digit")
    if len(cleaned) % 2:
        raise CommandExit(
            ExitStatus.BAD_INPUT,
            f"{what}: odd number of hex digits ({len(cleaned)}); "
            f"byte {len(cleaned) // 2} is incomplete")
    return bytes.fromhex(cleaned)


def _key(key_hex: str | None) -> bytes | None:
    return None if key_hex is None else _parse_hex(key_hex, "--key")


@click.group()
def msg() -> None:
    """Encode and decode wsp application messages."""


@msg.command()
@click.argument("message", metavar="HEX|-")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--raw", is_flag=True, help="With '-': stdin holds raw bytes, not hex.")
@click.option("--version", "version", type=click.Choice(["1", "2"]),
              help="Wire version (default: detected from the first byte).")
@click.option("--key", "key_hex", metavar="HEX", help="32-byte session key to decrypt with.")
@click.pass_obj
def decode(
    env: Environment, message: str, as_json: bool, raw: bool, version: str | None,
    key_hex: str | None,
) -> None:
    """Decode one message given as hex (or '-' for stdin) and show every field."""
    from wsproto_tools.codec import Cipher, decode, detect_version
    from wsproto_tools.codec.jsonform import message_to_json

    if message == "-":
        data = sys.stdin.buffer.read() if raw else _parse_hex(
            sys.stdin.read(), "stdin")
    elif raw:
        raise CommandExit(ExitStatus.USAGE, "--raw reads stdin; give '-' as the message")
    else:
        data = _parse_hex(message, "message")
    key = _key(key_hex)
    wire_version = int(version) if version else detect_version(data)
    decoded = decode(data, version=wire_version, cipher=Cipher(key) if key else None)
    if as_json:
        click.echo(json.dumps(message_to_json(decoded, wire_version), ensure_ascii=False))
    else:
        from wsproto_tools.render.message import message_table

        env.console.print(message_table(decoded, wire_version, len(data)))


@msg.command()
@click.option("--version", "version", type=click.Choice(["1", "2"]), default="2",
              show_default=True, help="Wire version.")
@click.option("--type", "type_name", required=True, metavar="NAME",
              help="Message type name (TextData, BinaryData, Subscribe, ...) or a code "
                   "like 0x0150.")
@click.option("--text", help="TextData text.")
@click.option("--data", "data_hex", metavar="HEX", help="BinaryData (or unknown type) bytes.")
@click.option("--payload-json", metavar="OBJ", help="Payload fields as a JSON object.")
@click.option("--sequence", type=click.IntRange(0), default=0, show_default=True)
@click.option("--session", type=click.IntRange(0), default=0, show_default=True)
@click.option("--timestamp", type=click.IntRange(0), default=0, show_default=True,
              help="µs since the Unix epoch.")
@click.option("--compress", is_flag=True, help="Set COMPRESSED (preset-dictionary DEFLATE).")
@click.option("--ack-requested", is_flag=True, help="Set ACK_REQUESTED.")
@click.option("--key", "key_hex", metavar="HEX", help="Encrypt under this 32-byte key.")
@click.option("--nonce", "nonce_hex", metavar="HEX", help="12-byte nonce (with --key; "
              "default all zero).")
def encode(
    version: str, type_name: str, text: str | None, data_hex: str | None,
    payload_json: str | None, sequence: int, session: int, timestamp: int, compress: bool,
    ack_requested: bool, key_hex: str | None, nonce_hex: str | None,
) -> None:
    """Encode one message and print its hex (deterministic: no clock, no randomness)."""
    from wsproto_tools.codec import (
        TYPES,
        BinaryData,
        Cipher,
        Flags,
        Message,
        Payload,
        TextData,
        Unknown,
        encode,
        payload_type,
    )
    from wsproto_tools.codec.jsonform import payload_from_json

    given = [name for name, value in (("--text", text), ("--data", data_hex),
                                      ("--payload-json", payload_json)) if value is not None]
    if len(given) > 1:
        raise CommandExit(ExitStatus.USAGE, f"give only one of {', '.join(given)}")
    cls = payload_type(type_name)
    code: int | None = None
    if cls is None:
        try:
            code = int(type_name, 0)
        except ValueError:
            from wsproto_tools.cli.params import did_you_mean

            known = [spec.name for spec in TYPES.values()]
            raise click.BadParameter(
                f"unknown message type {type_name!r}{did_you_mean(type_name, known)} "
                f"(known: {', '.join(known)}, or a type code such as 0x0105)",
                param_hint="--type",
            ) from None
        if not 0 <= code <= 0xFFFF:
            raise CommandExit(ExitStatus.BAD_INPUT, f"type code {type_name} is outside 0..0xFFFF")
        if code in TYPES:
            cls = TYPES[code].cls
    payload: Payload
    if payload_json is not None:
        try:
            obj = json.loads(payload_json)
        except json.JSONDecodeError as error:
            raise CommandExit(
                ExitStatus.BAD_INPUT,
                f"--payload-json: {error.msg} at character {error.pos}") from None
        if cls is None:
            assert code is not None
            payload = Unknown(code, _parse_hex(str(obj.get("hex", "")), "payload hex")
                              if isinstance(obj, dict) else b"")
        else:
            payload = payload_from_json(cls, obj)
    elif text is not None:
        if cls is not TextData:
            raise CommandExit(ExitStatus.USAGE, "--text goes with --type TextData")
        payload = TextData(text)
    elif data_hex is not None:
        data = _parse_hex(data_hex, "--data")
        if cls is BinaryData:
            payload = BinaryData(data)
        elif cls is None:
            assert code is not None
            payload = Unknown(code, data)
        else:
            raise CommandExit(ExitStatus.USAGE, "--data goes with --type BinaryData or a type code")
    elif cls is None:
        assert code is not None
        payload = Unknown(code, b"")
    elif cls is TextData:
        raise CommandExit(ExitStatus.USAGE, "--type TextData needs --text S (or --payload-json)")
    elif cls is BinaryData:
        raise CommandExit(
            ExitStatus.USAGE,
            "--type BinaryData needs --data HEX (or --payload-json)")
    else:
        payload = payload_from_json(cls, {})
    flags = Flags.NONE
    if compress:
        flags |= Flags.COMPRESSED
    if ack_requested:
        flags |= Flags.ACK_REQUESTED
    cipher = None
    if key_hex is not None:
        flags |= Flags.ENCRYPTED
        nonce = _parse_hex(nonce_hex, "--nonce") if nonce_hex is not None else bytes(12)
        cipher = Cipher(_parse_hex(key_hex, "--key"), lambda: nonce)
    elif nonce_hex is not None:
        raise CommandExit(ExitStatus.USAGE, "--nonce goes with --key")
    message = Message(payload, sequence=sequence, session_id=session, timestamp=timestamp,
                      flags=flags)
    click.echo(encode(message, version=int(version), cipher=cipher).hex())
