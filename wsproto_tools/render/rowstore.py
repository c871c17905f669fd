"""Compact rows for millions of records: columns of numbers, the records on disk.

A :class:`RowStore` keeps what a list and a filter need of each record (the
fields of :class:`~.records.Row`) in typed arrays — about 60 bytes a row — and
the whole record, as the JSON line ``wsp decode --ndjson`` would print, in an
append-only spill file. :meth:`RowStore.record` reads one back on demand (the
detail of the selected row); nothing else is held per record.

One thread appends (a source's worker), any number read: a row is published
when ``count`` has moved past it, after all its columns were written.
"""

from __future__ import annotations

__all__ = ["CaptureSink", "RowStore"]

import json
import os
import tempfile
import threading
from array import array
from collections.abc import Iterable
from typing import Any

from wsproto_tools.capture.decoder import CapturedMessage, ConnectionSeen
from wsproto_tools.capture.stats import OPCODE_NAMES, CaptureStats
from wsproto_tools.codec.schema import TYPES
from wsproto_tools.render.capture import LineBuffer, connection_record
from wsproto_tools.render.records import Row, aux_of, violation_codes

#: ``direction`` column values
_DIRS = ("", "client", "server")
_DIR_INDEX = {"": 0, "client": 1, "server": 2}
#: ``aux`` column value of a row without one
AUX_NONE = -1
#: wsp types that have an ``aux`` number
_AUX_TYPES = frozenset({"Acknowledge", "Heartbeat", "Batch"})
#: the spill file is written in pieces of this size; the tail stays in memory
_SPILL_CHUNK = 1 << 22
#: messages a capture sink gathers before it appends them to the store
_SINK_BATCH = 512


class _Interned:
    """Strings as small numbers (kinds, opcodes, wsp type names, topics)."""

    __slots__ = ("index", "names")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        for name in names:
            self.id(name)

    def id(self, name: str) -> int:
        i = self.index.get(name)
        if i is None:
            i = self.index[name] = len(self.names)
            self.names.append(name)
        return i


class _Spill:
    """Append-only bytes: a temporary file plus an in-memory tail."""

    def __init__(self, directory: str | None = None, path: str | None = None) -> None:
        if path is None:
            self._file = tempfile.TemporaryFile(prefix="wsp-tui-", dir=directory)  # noqa: SIM115
        else:  # a file another process writes (or reads): see RowStore.chunk
            self._file = open(path, "a+b")  # noqa: SIM115
        self._fd = self._file.fileno()
        self._base = 0  # bytes already in the file
        self._tail = bytearray()
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._base + len(self._tail)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Add ``data``; returns its offset. (One thread appends; :meth:`flush` and
        :meth:`read` may run in others: the tail is changed under the lock.)"""
        with self._lock:
            offset = self._base + len(self._tail)
            self._tail += data
            if len(self._tail) >= _SPILL_CHUNK:
                os.pwrite(self._fd, self._tail, self._base)
                self._base += len(self._tail)
                self._tail = bytearray()
        return offset

    def flush(self) -> None:
        """Write the in-memory tail to the file (another process reads it there)."""
        with self._lock:
            if self._tail:
                os.pwrite(self._fd, self._tail, self._base)
                self._base += len(self._tail)
                self._tail = bytearray()

    def grew(self, size: int) -> None:
        """Another process wrote the file up to ``size`` bytes."""
        self._base = size

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            base = self._base
            if offset >= base:
                return bytes(self._tail[offset - base:offset - base + length])
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        self._file.close()


class RowStore:
    """Rows of records from any source; ``row(i)`` and ``record(i)`` for reading."""

    def __init__(self, spill_dir: str | None = None, spill_path: str | None = None) -> None:
        self.kinds = _Interned(("message",))
        self.opcodes = _Interned(("", *OPCODE_NAMES.values()))
        self.types = _Interned(("",))
        self.topics = _Interned(("",))
        self._type_of_code: dict[int, int] = {}
        self._shapes: dict[int, tuple[int, bool, bool, str | None]] = {}
        self._opcode_ids: dict[int, int] = {}
        self.ts = array("d")
        self.conn = array("q")
        self.kind = array("B")
        self.dir = array("B")
        self.opcode = array("H")
        self.type = array("H")
        self.type_code = array("i")
        self.seq = array("q")
        self.topic = array("I")
        self.offset = array("q")
        #: :func:`~.records.aux_of` (``AUX_NONE`` for none)
        self.aux = array("q")
        self.size = array("Q")
        self.blob = array("Q")
        self.blob_len = array("I")
        #: row -> its violation codes (rows without any are not here)
        self.violations: dict[int, tuple[str, ...]] = {}
        self._spill = _Spill(spill_dir, spill_path)
        #: rows and interned names already shipped by :meth:`chunk`
        self._shipped = [0, 0, 0, 0, 0, 0]
        #: (row, codes) in the order they were added, for :meth:`chunk`
        self._violation_log: list[tuple[int, tuple[str, ...]]] = []
        #: rows published to readers
        self.count = 0

    # ------------------------------------------------------------------ writing

    def _type_id(self, code: int, name: str | None = None) -> int:
        i = self._type_of_code.get(code)
        if i is None:
            if name is None:
                spec = TYPES.get(code)
                name = spec.name if spec is not None else "Unknown"
            i = self._type_of_code[code] = self.types.id(name)
        return i

    def _shape(self, code: int, payload: Any) -> tuple[int, bool, bool, str | None]:
        """What rows of a wsp type take from its payload: (type id, has a topic,
        has an offset, the type's name when it has an ``aux`` number)."""
        tid = self._type_id(code)
        name = self.types.names[tid]
        shape = (tid, hasattr(payload, "topic"), hasattr(payload, "offset"),
                 name if name in _AUX_TYPES else None)
        self._shapes[code] = shape
        return shape

    def _publish(self) -> None:
        self.count = len(self.ts)

    def add_record(self, record: dict[str, Any], line: bytes | None = None) -> int:
        """Append one record dict (``line``: its JSON text, when already made)."""
        self._add_record(record, line)
        self._publish()
        return self.count - 1

    def add_records(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self._add_record(record, None)
        self._publish()

    def add_lines(self, lines: Iterable[bytes]) -> int:
        """Append NDJSON lines (a file of ``wsp decode --ndjson`` or ``wsp inspect
        --ndjson``); lines that are not JSON objects are skipped and counted."""
        bad = 0
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if not isinstance(record, dict):
                bad += 1
                continue
            self._add_record(record, line)
        self._publish()
        return bad

    def _add_record(self, record: dict[str, Any], line: bytes | None) -> None:
        if line is None:
            line = json.dumps(record, separators=(",", ":")).encode("utf-8", "surrogateescape")
        kind = str(record["record"]) if "record" in record else (record.get("kind") or "message")
        conn = record.get("conn")
        if conn is None:
            session = record.get("session")
            conn = session if isinstance(session, int) else 0
        wsp = record.get("wsp")
        type_id = 0
        code = seq = offset = aux = -1
        topic = 0
        if isinstance(wsp, dict) and "type_code" in wsp:
            code = int(wsp["type_code"])
            type_id = self._type_id(code, wsp.get("type"))
            s = wsp.get("sequence")
            seq = s if isinstance(s, int) else -1
            payload = wsp.get("payload")
            name = self.types.names[type_id]
            if name in _AUX_TYPES:
                found = aux_of(name, payload if isinstance(payload, dict) else {})
                aux = found if found is not None else -1
            if isinstance(payload, dict):
                t = payload.get("topic")
                if isinstance(t, str):
                    topic = self.topics.id(t)
                o = payload.get("offset")
                if isinstance(o, int):
                    offset = o
        n = len(self.ts)
        self.ts.append(float(record.get("ts") or 0.0))
        self.conn.append(int(conn))
        self.kind.append(self.kinds.id(kind))
        self.dir.append(_DIR_INDEX.get(record.get("direction") or "", 0))
        self.opcode.append(self.opcodes.id(str(record.get("opcode") or "")))
        self.type.append(type_id)
        self.type_code.append(code)
        self.seq.append(seq)
        self.topic.append(topic)
        self.offset.append(offset)
        self.aux.append(aux)
        length = record.get("length")
        self.size.append(int(length) if isinstance(length, int) and length >= 0 else 0)
        self.blob.append(self._spill.append(line))
        self.blob_len.append(len(line))
        codes = violation_codes(record)
        if codes:
            self.violations[n] = codes
            self._violation_log.append((n, codes))

    def add_captured(self, items: list[CapturedMessage], lines: bytes) -> None:
        """Append a capture decoder's messages; ``lines`` are their ``--ndjson``
        lines, one per item, in order (from :class:`~.capture.LineBuffer`)."""
        spill = self._spill
        base = spill.append(lines)
        start = 0
        find = lines.find
        ts, conn, kind, dirs, opc = self.ts, self.conn, self.kind, self.dir, self.opcode
        typ, tcode, seqs = self.type, self.type_code, self.seq
        topics, offs, auxs = self.topic, self.offset, self.aux
        size, blob, blob_len = self.size, self.blob, self.blob_len
        topic_id = self.topics.id
        shapes = self._shapes
        topic_index = self.topics.index
        opcode_ids = self._opcode_ids
        for item in items:
            end = find(b"\n", start) + 1
            blob.append(base + start)
            blob_len.append(end - start)
            start = end
            msg = item.msg
            ts.append(item.ts)
            conn.append(item.conn)
            kind.append(0)
            dirs.append(1 if item.direction == "client" else 2)
            opcode = msg.opcode
            op = opcode_ids.get(opcode)
            if op is None:
                op = opcode_ids[opcode] = self.opcodes.id(
                    OPCODE_NAMES.get(opcode) or f"reserved-0x{opcode:X}")
            opc.append(op)
            size.append(len(msg.payload))
            wsp = item.wsp
            if wsp is not None and wsp.__class__ is not str:
                m = wsp[1]
                p = m.payload
                code = p.type_code
                shape = shapes.get(code)
                if shape is None:
                    shape = self._shape(code, p)
                tid, has_topic, has_offset, aux_name = shape
                typ.append(tid)
                tcode.append(code)
                seqs.append(m.sequence)
                if has_topic:
                    t = p.topic
                    if t.__class__ is str:
                        found_topic = topic_index.get(t)
                        topics.append(found_topic if found_topic is not None else topic_id(t))
                    else:
                        topics.append(0)
                else:
                    topics.append(0)
                if has_offset:
                    o = p.offset
                    offs.append(o if o.__class__ is int else -1)
                else:
                    offs.append(-1)
                if aux_name is not None:
                    found = aux_of(aux_name, p)
                    auxs.append(found if found is not None else -1)
                else:
                    auxs.append(-1)
            else:
                typ.append(0)
                tcode.append(-1)
                seqs.append(-1)
                topics.append(0)
                offs.append(-1)
                auxs.append(-1)
            if item.violations or item.session:
                n = len(ts) - 1
                codes = tuple(item.violations) + tuple(
                    f"wsp-{f.rule}" for f in item.session if f.verdict.value == "violation"
                )
                if codes:
                    self.violations[n] = codes
                    self._violation_log.append((n, codes))
        self._publish()

    # ------------------------------------------------------------------ between processes

    def _columns(self) -> tuple[array[Any], ...]:
        return (self.ts, self.conn, self.kind, self.dir, self.opcode, self.type,
                self.type_code, self.seq, self.topic, self.offset, self.aux, self.size,
                self.blob, self.blob_len)

    def share_spill(self, path: str) -> None:
        """Read records from the spill file at ``path``, written by a store in
        another process whose :meth:`chunk` this store takes (only while empty)."""
        if self.count:
            raise ValueError("share_spill: the store already has rows")
        self._spill.close()
        self._spill = _Spill(path=path)

    def chunk(self) -> tuple[Any, ...] | None:
        """The rows appended since the last chunk, for a store in another process
        that reads the same spill file (``spill_path``): the columns' bytes, the
        new interned names and violations. ``None`` when nothing is new."""
        start, end = self._shipped[0], self.count
        if end <= start:
            return None
        self._spill.flush()
        names = []
        for k, table in enumerate((self.kinds, self.opcodes, self.types, self.topics), 1):
            names.append(table.names[self._shipped[k]:])
            self._shipped[k] = len(table.names)
        self._shipped[0] = end
        columns = [c[start:end].tobytes() for c in self._columns()]
        log = self._violation_log
        shipped = self._shipped[5]
        upto = len(log)
        violations = {i: v for i, v in log[shipped:upto] if i < end}
        self._shipped[5] = shipped + len(violations)
        return (start, end, columns, names, violations, self._spill.size)

    def take_chunk(self, chunk: tuple[Any, ...]) -> None:
        """Append a :meth:`chunk` of the store that writes the spill file."""
        start, _end, columns, names, violations, spilled = chunk
        if start != len(self.ts):
            raise ValueError(f"chunk starts at row {start}, the store has {len(self.ts)}")
        for table, new in zip((self.kinds, self.opcodes, self.types, self.topics), names,
                              strict=True):
            for name in new:
                table.id(name)
        for column, data in zip(self._columns(), columns, strict=True):
            column.frombytes(data)
        self.violations.update(violations)
        self._spill.grew(spilled)
        self._publish()

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return self.count

    def line(self, i: int) -> bytes:
        """The JSON line of row ``i``."""
        return self._spill.read(self.blob[i], self.blob_len[i])

    def record(self, i: int) -> dict[str, Any]:
        """The whole record of row ``i`` (read back from the spill file)."""
        value = json.loads(self.line(i))
        return value if isinstance(value, dict) else {"value": value}

    def row(self, i: int) -> Row:
        """The :class:`Row` of row ``i``; its text and record are read on demand."""
        code = self.type_code[i]
        seq = self.seq[i]
        topic = self.topic[i]
        offset = self.offset[i]
        aux = self.aux[i]
        return Row(
            self.kinds.names[self.kind[i]],
            self.ts[i],
            self.conn[i],
            _DIRS[self.dir[i]],
            self.opcodes.names[self.opcode[i]],
            self.types.names[self.type[i]] or None,
            code if code >= 0 else None,
            seq if seq >= 0 else None,
            self.topics.names[topic] if topic else None,
            offset if offset >= 0 else None,
            self.size[i],
            self.violations.get(i, ()),
            aux=aux if aux != AUX_NONE else None,
            source=self,
            index=i,
        )

    def memory(self) -> int:
        """Bytes held in memory by the columns (not the spill file's)."""
        return sum(c.itemsize * len(c) for c in self._columns())

    def spilled(self) -> int:
        return self._spill.size

    def close(self) -> None:
        self._spill.close()


class CaptureSink:
    """A capture pipeline sink (:class:`~wsproto_tools.capture.pipeline.Sink`)
    that appends to a :class:`RowStore`: messages as rows, each connection that
    is recognized as a ``connected`` event row. Its ``stats`` stay empty: the
    viewers count for themselves (:mod:`.sessionbook`, :mod:`.livestats`)."""

    def __init__(self, store: RowStore) -> None:
        self.store = store
        self.stats = CaptureStats()
        self.violations = 0
        self._lines = LineBuffer()
        self._pending: list[CapturedMessage] = []

    def events(self, events: list[Any]) -> None:
        items = self._pending
        write = self._lines.write
        for event in events:
            if type(event) is CapturedMessage:
                write(event)
                items.append(event)
                if event.violations:
                    self.violations += 1
            elif type(event) is ConnectionSeen:
                self.flush()
                items = self._pending
                conn = event.connection
                record = {"kind": "connected", "ts": conn.first_ts, "conn": conn.id}
                for key, value in connection_record(conn).items():
                    if key not in ("record", "kind", "conn"):
                        record[key] = value
                self.store.add_record(record)
        if len(items) >= _SINK_BATCH:
            self.flush()

    def lines(self, lines: list[bytes]) -> None:
        """NDJSON lines (a file of ``wsp decode --ndjson`` or ``wsp inspect --ndjson``)."""
        self.store.add_lines(lines)

    def flush(self) -> None:
        """Hand the messages gathered so far to the store (sources call this at
        least every 1,024 packets and whenever the input pauses)."""
        if self._pending:
            self.store.add_captured(self._pending, self._lines.take())
            self._pending = []
