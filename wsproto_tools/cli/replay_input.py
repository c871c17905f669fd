"""What ``wsp replay`` can read, as one cassette (docs/replay.md, "Inputs").

A pcap or pcapng capture (gzipped or not; ``wsp serve --record`` writes pcapng)
goes through the capture decoder — reassembly, permessage-deflate, fragments —
and its messages become a cassette exactly as ``wsp tui``'s export makes one;
an NDJSON file is either a cassette (its lines have the cassette's keys) or the
records of ``wsp decode --ndjson`` / ``wsp inspect --ndjson``.
"""

from __future__ import annotations

__all__ = ["input_kind", "load_input"]

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from wsproto_tools.exceptions import CaptureUnreadable, ConfigError, NotACapture
from wsproto_tools.replay.cassette import Cassette

_CASSETTE_KEYS = frozenset(
    ("conn", "ts", "path", "subprotocols", "extensions", "headers", "direction", "t",
     "opcode", "text", "base64", "wsp", "close_code", "close_reason"))


class _Records:
    """A capture pipeline sink that keeps each message and connection as its record."""

    def __init__(self) -> None:
        from wsproto_tools.capture.stats import CaptureStats

        self.stats = CaptureStats()
        self.violations = 0
        self.records: list[dict[str, Any]] = []

    def events(self, events: list[Any]) -> None:
        from wsproto_tools.capture.decoder import CapturedMessage, ConnectionSeen
        from wsproto_tools.render.capture import connection_record, message_record

        out = self.records
        for event in events:
            if type(event) is CapturedMessage:
                out.append(message_record(event, with_hex=True))
            elif type(event) is ConnectionSeen:
                conn = event.connection
                record = {"kind": "connected", "ts": conn.first_ts, "conn": conn.id}
                for key, value in connection_record(conn).items():
                    if key not in ("record", "kind", "conn"):
                        record[key] = value
                out.append(record)

    def lines(self, lines: list[bytes]) -> None:  # pragma: no cover - captures only
        raise AssertionError("read_file hands NDJSON to load_input's own reader")

    def flush(self) -> None:
        pass


def _open_text(path: str) -> Iterator[str]:
    opener: Any = gzip.open if _head(path)[:2] == b"\x1f\x8b" else open
    try:
        with opener(path, "rt", encoding="utf-8") as stream:
            yield from stream
    except (OSError, EOFError, zlib.error) as error:
        raise CaptureUnreadable(f"{path}: {getattr(error, 'strerror', None) or error}") from None
    except UnicodeDecodeError:
        raise NotACapture(f"{path}: neither a capture nor UTF-8 NDJSON") from None


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            head = stream.read(64)
            if head[:2] == b"\x1f\x8b":
                stream.seek(0)
                try:
                    with gzip.GzipFile(fileobj=stream) as gz:
                        return b"\x1f\x8b" + gz.read(64)
                except (OSError, EOFError, zlib.error) as error:
                    raise NotACapture(f"{path}: gzip data is corrupt: {error}") from None
            return head
    except FileNotFoundError:
        raise CaptureUnreadable(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CaptureUnreadable(f"{path}: is a directory") from None
    except PermissionError:
        raise CaptureUnreadable(f"{path}: permission denied") from None


def input_kind(path: str) -> str:
    """``capture``, ``cassette`` or ``records`` (NDJSON of wsp decode/inspect)."""
    head = _head(path)
    body = head[2:] if head[:2] == b"\x1f\x8b" else head
    if body.lstrip()[:1] != b"{":
        return "capture"
    for line in _open_text(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise NotACapture(f"{path}: line 1 is not JSON") from None
        if isinstance(obj, dict) and set(obj) <= _CASSETTE_KEYS and (
                "direction" not in obj or "t" in obj):
            return "cassette"
        return "records"
    return "cassette"


def _json_records(path: str) -> Iterable[dict[str, Any]]:
    for lineno, line in enumerate(_open_text(path), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise NotACapture(f"{path}: line {lineno} is not JSON") from None
        if isinstance(obj, dict):
            yield obj


def load_input(path: str, conns: Iterable[int] = ()) -> Cassette:
    """The cassette of ``path`` (a capture, a cassette, or decode/inspect NDJSON),
    keeping only connections ``conns`` when some are given (a ConfigError names
    one the input does not have)."""
    from wsproto_tools.replay.cassette import cassette_of_records, read_cassette

    kind = input_kind(path)
    if kind == "cassette":
        cassette = read_cassette(_open_text(path))
    elif kind == "records":
        cassette = cassette_of_records(_json_records(path))
    else:
        from wsproto_tools.capture.source import read_file

        sink = _Records()
        read_file(path, sink)
        cassette = cassette_of_records(sink.records)
    wanted = list(conns)
    if wanted:
        missing = [c for c in wanted if c not in cassette.connections]
        if missing:
            have = ", ".join(map(str, cassette.connections)) or "none"
            raise ConfigError(f"{path} has no connection {missing[0]} (it has: {have})")
        keep = set(wanted)
        cassette = Cassette({c: v for c, v in cassette.connections.items() if c in keep},
                            [m for m in cassette.messages if m.conn in keep])
    return cassette
