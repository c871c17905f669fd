"""Cassettes: recorded WebSocket sessions as hand-editable NDJSON (docs/replay.md).

A cassette holds one or more connections. A *connection line* gives the opening
handshake a replayer sends (``conn``, ``ts``, ``path``, ``subprotocols``,
``extensions``, ``headers``); a *message line* (it has a ``direction``) gives one
message: ``conn``, ``direction``, ``t`` (seconds from the connection's start),
``opcode`` and the payload as ``text``, ``base64`` or ``wsp`` (the wsp message in
its JSON form, :mod:`wsproto_tools.codec.jsonform`), or for a close frame
``close_code`` / ``close_reason``.

:func:`read_cassette` checks every line and raises :class:`ConfigError` naming
the line; :func:`write_cassette` makes a cassette of records (the message
objects of ``wsp decode --ndjson``, the inspector feed's records, session
events: :mod:`wsproto_tools.render.records`); :meth:`Cassette.lines` writes one
back out, so read and write round-trip.
"""

from __future__ import annotations

__all__ = [
    "OPCODES",
    "Cassette",
    "CassetteConnection",
    "CassetteMessage",
    "cassette_of_records",
    "read_cassette",
    "record_payload",
    "write_cassette",
]

import base64
import binascii
import dataclasses
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.codec import encode, subprotocol_version
from wsproto_tools.codec.jsonform import message_from_json, message_to_json
from wsproto_tools.codec.schema import Flags, Message
from wsproto_tools.exceptions import ConfigError, LocalProtocolError
from wsproto_tools.ws.close import encode_close
from wsproto_tools.ws.frames import Opcode

#: The opcodes a cassette names, and their numbers.
OPCODES: dict[str, int] = {
    "text": Opcode.TEXT,
    "binary": Opcode.BINARY,
    "ping": Opcode.PING,
    "pong": Opcode.PONG,
    "close": Opcode.CLOSE,
}

_CONNECTION_KEYS = ("conn", "ts", "path", "subprotocols", "extensions", "headers")
_MESSAGE_KEYS = ("conn", "direction", "t", "opcode", "text", "base64", "wsp", "close_code",
                 "close_reason")
_PAYLOAD_KEYS = ("text", "base64", "wsp")


@dataclass(frozen=True, slots=True)
class CassetteConnection:
    """The opening handshake of one connection; ``ts`` is when it started (epoch seconds)."""

    conn: int
    ts: float = 0.0
    path: str = "/"
    subprotocols: tuple[str, ...] = ()
    extensions: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def wsp_version(self) -> int | None:
        """The wsp wire version its first subprotocol selects (``wsp.v2`` -> 2), or None."""
        return subprotocol_version(self.subprotocols[0]) if self.subprotocols else None

    def to_json(self) -> dict[str, Any]:
        return {"conn": self.conn, "ts": self.ts, "path": self.path,
                "subprotocols": list(self.subprotocols), "extensions": self.extensions,
                "headers": dict(self.headers)}


@dataclass(frozen=True, slots=True)
class CassetteMessage:
    """One message: who sent it, ``t`` seconds after its connection started, and what.

    Exactly one payload form is set: ``text``, ``data`` (``base64`` in the file),
    ``wsp`` (with the wire ``version`` it is encoded in), or for a close frame
    ``close_code``/``close_reason`` (``data`` instead when the close payload is
    malformed); none at all is an empty payload. ``raw`` is the exact payload
    the message was made from when known (a capture's bytes); it is not written
    out.
    """

    conn: int
    direction: str
    t: float
    opcode: str
    text: str | None = None
    data: bytes | None = None
    wsp: Message | None = None
    version: int = 2
    close_code: int | None = None
    close_reason: str = ""
    raw: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def opcode_number(self) -> int:
        return OPCODES[self.opcode]

    def payload(self) -> bytes:
        """The WebSocket message payload (uncompressed) this message stands for."""
        if self.raw is not None:
            return self.raw
        if self.text is not None:
            return self.text.encode()
        if self.data is not None:
            return self.data
        if self.wsp is not None:
            return _encode_wsp(self.wsp, self.version)
        if self.opcode == "close":
            return encode_close(self.close_code, self.close_reason)
        return b""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"conn": self.conn, "direction": self.direction,
                               "t": self.t, "opcode": self.opcode}
        if self.text is not None:
            out["text"] = self.text
        elif self.data is not None:
            out["base64"] = base64.b64encode(self.data).decode("ascii")
        elif self.wsp is not None:
            out["wsp"] = message_to_json(self.wsp, self.version)
        elif self.opcode == "close":
            out["close_code"] = self.close_code
            out["close_reason"] = self.close_reason
        return out


@dataclass(slots=True)
class Cassette:
    """Connections (by number, in file order) and messages (in file order)."""

    connections: dict[int, CassetteConnection] = field(default_factory=dict)
    messages: list[CassetteMessage] = field(default_factory=list)

    def messages_of(self, conn: int) -> list[CassetteMessage]:
        """The messages of connection ``conn``, in order."""
        return [m for m in self.messages if m.conn == conn]

    def lines(self) -> Iterator[str]:
        """The cassette as NDJSON lines (each ending with a newline): connections first,
        then the messages in time order (stable: file order breaks ties)."""
        for connection in self.connections.values():
            yield _dump(connection.to_json())
        starts = {c.conn: c.ts for c in self.connections.values()}
        ordered = sorted(self.messages, key=lambda m: starts[m.conn] + m.t)
        for message in ordered:
            yield _dump(message.to_json())


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def _encode_wsp(msg: Message, version: int) -> bytes:
    try:
        return encode(msg, version=version)
    except LocalProtocolError:
        if Flags.ENCRYPTED not in msg.flags:
            raise
    # A message the inspector decrypted to show it: no keys here, so it goes as
    # plaintext (without the ENCRYPTED flag).
    return encode(dataclasses.replace(msg, flags=msg.flags & ~Flags.ENCRYPTED), version=version)


# ------------------------------------------------------------------------- reading


def _fail(lineno: int, message: str) -> ConfigError:
    return ConfigError(f"cassette line {lineno}: {message}")


def _number(obj: dict[str, Any], key: str, lineno: int, default: float) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(lineno, f"{key!r} must be a number, got {value!r}")
    if value < 0:
        raise _fail(lineno, f"{key!r} must not be negative, got {value!r}")
    return float(value)


def _conn_number(obj: dict[str, Any], lineno: int) -> int:
    conn = obj.get("conn")
    if type(conn) is not int or conn < 1:
        raise _fail(lineno, f"'conn' must be a connection number (1, 2, ...), got {conn!r}")
    return conn


def _unknown_keys(obj: dict[str, Any], allowed: tuple[str, ...], what: str, lineno: int) -> None:
    unknown = [key for key in obj if key not in allowed]
    if unknown:
        raise _fail(lineno, f"a {what} line has no key {unknown[0]!r} "
                            f"(keys: {', '.join(allowed)})")


def _read_connection(obj: dict[str, Any], lineno: int) -> CassetteConnection:
    _unknown_keys(obj, _CONNECTION_KEYS, "connection", lineno)
    conn = _conn_number(obj, lineno)
    path = obj.get("path", "/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise _fail(lineno, f"'path' must be a string starting with '/', got {path!r}")
    protocols = obj.get("subprotocols", [])
    if not isinstance(protocols, list) or not all(isinstance(p, str) for p in protocols):
        raise _fail(lineno, f"'subprotocols' must be a list of strings, got {protocols!r}")
    extensions = obj.get("extensions")
    if extensions is not None and not isinstance(extensions, str):
        raise _fail(lineno, f"'extensions' must be a string or null, got {extensions!r}")
    headers = obj.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _fail(lineno, "'headers' must be an object of header name -> string value")
    return CassetteConnection(conn, _number(obj, "ts", lineno, 0.0), path, tuple(protocols),
                              extensions, tuple(headers.items()))


def _read_message(obj: dict[str, Any], lineno: int,
                  connections: dict[int, CassetteConnection]) -> CassetteMessage:
    _unknown_keys(obj, _MESSAGE_KEYS, "message", lineno)
    conn = _conn_number(obj, lineno)
    if conn not in connections:
        raise _fail(lineno, f"connection {conn} has no connection line before its messages")
    direction = obj.get("direction")
    if direction not in ("client", "server"):
        raise _fail(lineno, f"'direction' must be \"client\" or \"server\", got {direction!r}")
    t = _number(obj, "t", lineno, -1.0) if "t" in obj else None
    if t is None:
        raise _fail(lineno, "a message needs 't' (seconds from the connection's start)")
    opcode = obj.get("opcode")
    forms = [key for key in _PAYLOAD_KEYS if key in obj]
    if opcode is None and forms == ["wsp"]:
        opcode = "binary"
    if opcode not in OPCODES:
        raise _fail(lineno, f"'opcode' must be one of {', '.join(OPCODES)}, got {opcode!r}")
    if len(forms) > 1:
        raise _fail(lineno, f"a message has one payload: {' or '.join(forms)}, not both")
    has_close = "close_code" in obj or "close_reason" in obj
    if has_close and (opcode != "close" or forms):
        raise _fail(lineno, "'close_code'/'close_reason' belong to a close without a payload key")
    base = CassetteMessage(conn, str(direction), t, str(opcode))
    if not forms:
        if opcode != "close":
            return base
        code = obj.get("close_code")
        if code is not None and (type(code) is not int or not 0 <= code <= 0xFFFF):
            raise _fail(lineno, f"'close_code' must be an integer 0-65535 or null, got {code!r}")
        reason = obj.get("close_reason", "")
        if not isinstance(reason, str):
            raise _fail(lineno, f"'close_reason' must be a string, got {reason!r}")
        if code is None and reason:
            raise _fail(lineno, "a close reason needs a close code")
        return dataclasses.replace(base, close_code=code, close_reason=reason)
    form = forms[0]
    value = obj[form]
    if form == "text":
        if opcode not in ("text", "ping", "pong", "close") or not isinstance(value, str):
            raise _fail(lineno, "'text' is a string, for text, ping, pong and close messages")
        return dataclasses.replace(base, text=value)
    if form == "base64":
        if not isinstance(value, str):
            raise _fail(lineno, f"'base64' must be a string, got {value!r}")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _fail(lineno, "'base64' is not valid base64") from None
        return dataclasses.replace(base, data=data)
    if opcode != "binary":
        raise _fail(lineno, f"a 'wsp' message rides in a binary message, not {opcode}")
    try:
        msg = message_from_json(value)
    except LocalProtocolError as error:
        raise _fail(lineno, f"'wsp': {error}") from None
    version = value.get("version") if isinstance(value, dict) else None
    if version is None:
        version = connections[conn].wsp_version or 2
    if version not in (1, 2):
        raise _fail(lineno, f"'wsp': version must be 1 or 2, got {version!r}")
    return dataclasses.replace(base, wsp=msg, version=version)


def read_cassette(lines: Iterable[str]) -> Cassette:
    """Read a cassette (blank lines are skipped); :class:`ConfigError` names the bad line."""
    cassette = Cassette()
    last_t: dict[int, float] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as error:
            raise _fail(lineno, f"not JSON ({error})") from None
        if not isinstance(obj, dict):
            raise _fail(lineno, "each line is a JSON object")
        if "direction" not in obj:
            connection = _read_connection(obj, lineno)
            if connection.conn in cassette.connections:
                raise _fail(lineno, f"connection {connection.conn} is declared twice")
            cassette.connections[connection.conn] = connection
            continue
        message = _read_message(obj, lineno, cassette.connections)
        if message.t < last_t.get(message.conn, 0.0):
            raise _fail(lineno, f"t={message.t} goes back in time in connection {message.conn}"
                                f" (the message before was at t={last_t[message.conn]})")
        last_t[message.conn] = message.t
        cassette.messages.append(message)
    return cassette


# ------------------------------------------------------------------ from records


def record_payload(record: dict[str, Any]) -> bytes | None:
    """The message payload a record carries: its ``text``, its ``hex``, or its wsp
    message encoded again (inspector records); None when it carries none."""
    text = record.get("text")
    if isinstance(text, str):
        return text.encode()
    hexed = record.get("hex")
    if isinstance(hexed, str):
        try:
            return bytes.fromhex(hexed)
        except ValueError:
            return None
    wsp = record.get("wsp")
    if isinstance(wsp, dict) and "type" in wsp:
        try:
            return _encode_wsp(message_from_json(wsp), _version_of(wsp, 2))
        except LocalProtocolError:
            return None
    return None


def _version_of(wsp: dict[str, Any], default: int) -> int:
    version = wsp.get("version")
    return version if version in (1, 2) else default


#: What is kept of a message record until its connection is known: time,
#: direction, opcode, the payload bytes, and the form to write it in (``text``:
#: a str, ``wsp``: (Message, version or None), ``close``: (code, reason), else None).
_Pending = tuple[float, str, str, bytes, str, Any]


class _Group:
    __slots__ = ("extensions", "messages", "path", "start", "subprotocol", "version",
                 "websocket")

    def __init__(self) -> None:
        self.messages: list[_Pending] = []
        self.path = "/"
        self.subprotocol: str | None = None
        self.extensions: str | None = None
        self.start: float | None = None
        self.version: int | None = None  # of the first wsp message
        self.websocket = False  # a WebSocket connection was seen, messages or not


def _pending(record: dict[str, Any], keep_wsp: bool) -> _Pending | None:
    opcode = record.get("opcode") or "binary"
    if opcode not in OPCODES:
        return None  # continuation fragments, reserved opcodes: nothing a peer can resend
    direction = record.get("direction")
    if direction not in ("client", "server"):
        return None
    payload = record_payload(record)
    if payload is None:
        return None
    ts = record.get("ts")
    ts = float(ts) if isinstance(ts, int | float) else 0.0
    wsp = record.get("wsp")
    if keep_wsp and opcode == "binary" and isinstance(wsp, dict) and "type" in wsp:
        try:
            msg = message_from_json(wsp)
        except LocalProtocolError:
            pass
        else:
            version = wsp.get("version")
            return ts, direction, opcode, payload, "wsp", (
                msg, version if version in (1, 2) else None)
    if opcode == "close":
        code = record.get("close_code")
        reason = record.get("close_reason") or ""
        if (code is None or type(code) is int) and isinstance(reason, str) \
                and encode_close(code, reason) == payload:
            return ts, direction, opcode, payload, "close", (code, reason)
    text = record.get("text")
    if opcode in ("text", "ping", "pong") and isinstance(text, str):
        return ts, direction, opcode, payload, "text", text
    return ts, direction, opcode, payload, "data", None


def _message(conn: int, start: float, version: int, pending: _Pending) -> CassetteMessage:
    ts, direction, opcode, payload, form, value = pending
    t = max(0.0, round(ts - start, 6))
    if form == "wsp":
        msg, own = value
        return CassetteMessage(conn, direction, t, opcode, wsp=msg, version=own or version,
                               raw=payload)
    if form == "close":
        return CassetteMessage(conn, direction, t, opcode, close_code=value[0],
                               close_reason=value[1], raw=payload)
    if form == "text":
        return CassetteMessage(conn, direction, t, opcode, text=value, raw=payload)
    return CassetteMessage(conn, direction, t, opcode, data=payload, raw=payload)


def _group_key(record: dict[str, Any]) -> tuple[str, Any] | None:
    if "conn" in record:
        conn = record.get("conn")
        return ("conn", conn) if type(conn) is int else None
    peer, session = record.get("peer"), record.get("session")
    if isinstance(peer, str) and peer:
        return ("peer", peer)  # one TCP connection, before and after its session id
    if type(session) is int and session:
        return ("session", session)
    return None  # a fan-out record (no one connection) or a summary


def cassette_of_records(records: Iterable[dict[str, Any]], *,
                        keep_wsp: bool = True) -> Cassette:
    """The cassette of ``records``: connections from ``record: connection`` and
    ``connected`` records (or their first message), messages in time order.

    A ``wsp decode`` connection keeps its number; the inspector's connections
    (one per ``peer``) are numbered after them. Records that name no single
    connection (a fan-out delivery, the summary), continuation fragments,
    reserved opcodes and messages without a payload are left out, and so are
    connections with no messages that were not WebSocket connections (``kind``
    ``http``, ``refused``, ``other`` in ``wsp decode``). Each message
    keeps its exact payload bytes (``raw``); ``keep_wsp=False`` skips parsing
    the wsp JSON (the bytes are all a synthetic capture needs) and holds wsp
    messages as ``data``. Only the compact messages are held, not the records.
    """
    groups: dict[tuple[str, Any], _Group] = {}
    for record in records:
        key = _group_key(record)
        if key is None:
            continue
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        kind = record.get("record") or record.get("kind") or "message"
        ts = record.get("first_ts", record.get("ts"))
        if isinstance(ts, int | float) and not isinstance(ts, bool) and (
                group.start is None or ts < group.start):
            group.start = float(ts)
        if kind == "message":
            pending = _pending(record, keep_wsp)
            if pending is not None:
                group.messages.append(pending)
            wsp = record.get("wsp")
            if group.version is None and isinstance(wsp, dict) and "type" in wsp:
                group.version = _version_of(wsp, 2)
        elif kind in ("connection", "connected"):
            if kind == "connection" and record.get("kind") != "websocket":
                continue  # plain HTTP, refused upgrades, other TCP: nothing to replay
            group.websocket = True
            if isinstance(record.get("path"), str):
                group.path = record["path"]
            if isinstance(record.get("subprotocol"), str):
                group.subprotocol = record["subprotocol"]
            if isinstance(record.get("extensions"), str):
                group.extensions = record["extensions"]
    used = {key[1] for key in groups if key[0] == "conn"}
    next_conn = max(used, default=0) + 1
    cassette = Cassette()
    for key, group in groups.items():
        if not group.messages and not group.websocket:
            continue  # only events (or a connection that was no WebSocket)
        if key[0] == "conn":
            conn = key[1]
        else:
            conn, next_conn = next_conn, next_conn + 1
        subprotocol = group.subprotocol or (
            f"wsp.v{group.version}" if group.version is not None else None)
        connection = CassetteConnection(conn, group.start or 0.0, group.path,
                                        (subprotocol,) if subprotocol else (), group.extensions)
        cassette.connections[conn] = connection
        version = connection.wsp_version or 2
        cassette.messages.extend(_message(conn, connection.ts, version, pending)
                                 for pending in group.messages)
    cassette.messages.sort(key=lambda m: cassette.connections[m.conn].ts + m.t)
    return cassette


def write_cassette(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The cassette of ``records`` as NDJSON lines (each ending with a newline)."""
    return cassette_of_records(records).lines()
