"""What every session (connection) is doing, from the rows of a :class:`~.rowstore.RowStore`.

:meth:`SessionBook.update` reads the rows appended since its last call: counts
and bytes per direction, the state the messages imply (``connecting`` →
``handshake`` → ``open`` → ``closed``), identity, peer, subprotocol and
version, the window and heartbeat interval the HandshakeResponse gave, unacked
sequenced messages (sent minus the peer's cumulative Acknowledge),
retransmissions (a sequence number sent again), resumes, heartbeat RTT (a
probe and the reply that echoes its id), the close code and reason. Records
are read back only for the rows that carry such facts.
"""

from __future__ import annotations

__all__ = ["SessionBook", "SessionInfo"]

from dataclasses import dataclass, field
from typing import Any

from wsproto_tools.render.records import SEQUENCED, batch_run
from wsproto_tools.render.rowstore import RowStore

#: rows whose record must be read for a session fact
_READ_TYPES = {"HandshakeResponse", "Handshake", "Acknowledge", "Heartbeat", "Close",
               "WindowUpdate", "Batch"}


@dataclass
class SessionInfo:
    """One session (capture connection or server session)."""

    conn: int
    peer: str = ""
    server: str = ""
    subprotocol: str = ""
    version: int | None = None
    state: str = "connecting"
    identity: str = ""
    session_id: int | None = None
    first_ts: float = 0.0
    last_ts: float = 0.0
    messages: list[int] = field(default_factory=lambda: [0, 0])  # client, server
    bytes: list[int] = field(default_factory=lambda: [0, 0])
    violations: int = 0
    window: int | None = None
    heartbeat_ms: int | None = None
    rtt_ms: float | None = None
    retransmits: int = 0
    resumes: int = 0
    close_code: int | None = None
    close_reason: str = ""
    #: highest sequence sent per direction, and the peer's cumulative ack of it
    sent: list[int] = field(default_factory=lambda: [0, 0])
    acked: list[int] = field(default_factory=lambda: [0, 0])
    probes: dict[tuple[int, int], float] = field(default_factory=dict)

    @property
    def unacked(self) -> int:
        return max(0, self.sent[0] - self.acked[0]) + max(0, self.sent[1] - self.acked[1])

    def as_dict(self) -> dict[str, Any]:
        return {
            "conn": self.conn, "peer": self.peer, "subprotocol": self.subprotocol,
            "version": self.version, "state": self.state, "identity": self.identity,
            "messages_in": self.messages[0], "messages_out": self.messages[1],
            "bytes_in": self.bytes[0], "bytes_out": self.bytes[1],
            "rtt_ms": self.rtt_ms, "unacked": self.unacked, "window": self.window,
            "retransmits": self.retransmits, "resumes": self.resumes,
            "close_code": self.close_code, "close_reason": self.close_reason,
            "violations": self.violations,
        }


class SessionBook:
    """Sessions by connection number (or server session id)."""

    def __init__(self, store: RowStore) -> None:
        self.store = store
        self.sessions: dict[int, SessionInfo] = {}
        self.done = 0
        #: bumped whenever a session changed (the view redraws when it moved)
        self.version = 0

    def get(self, conn: int) -> SessionInfo:
        info = self.sessions.get(conn)
        if info is None:
            info = self.sessions[conn] = SessionInfo(conn)
        return info

    def update(self, limit: int = 50_000) -> int:
        """Read up to ``limit`` rows appended since the last call; returns how many."""
        store = self.store
        end = min(store.count, self.done + limit)
        start = self.done
        if end <= start:
            return 0
        kinds = store.kinds.names
        types = store.types.names
        close = store.opcodes.index.get("close")
        for i in range(start, end):
            conn = store.conn[i]
            if conn == 0 and kinds[store.kind[i]] in ("dropped", "summary"):
                continue
            info = self.sessions.get(conn)
            if info is None:
                info = self.sessions[conn] = SessionInfo(conn)
            ts = store.ts[i]
            if not info.first_ts:
                info.first_ts = ts
            info.last_ts = ts
            if i in store.violations:
                info.violations += 1
            kind = kinds[store.kind[i]]
            if kind != "message":
                self._event(info, kind, store.record(i))
                continue
            side = store.dir[i] - 1
            if side < 0:
                continue
            info.messages[side] += 1
            info.bytes[side] += store.size[i]
            tname = types[store.type[i]]
            if info.state == "connecting":
                info.state = "open" if tname not in ("Handshake", "Challenge") else "handshake"
            if tname in SEQUENCED:
                self._sequenced(info, side, store.seq[i])
            aux = store.aux[i]
            if tname == "Acknowledge" and aux >= 0:
                info.acked[1 - side] = max(info.acked[1 - side], aux)
            elif tname == "Heartbeat" and aux >= 0:
                self._heartbeat(info, side, aux >> 1, bool(aux & 1), ts)
            elif tname == "Batch" and aux >= 0:
                run = batch_run(aux)
                self._sequenced(info, side, run[0])
                if len(run) > 1:
                    self._sequenced(info, side, run[-1])
            elif tname in _READ_TYPES or store.opcode[i] == close:
                self._fact(info, side, tname, ts, store.record(i))
        self.done = end
        self.version += 1
        return end - start

    def _event(self, info: SessionInfo, kind: str, rec: dict[str, Any]) -> None:
        if kind in ("connected", "connection"):
            info.peer = str(rec.get("peer") or rec.get("client") or info.peer)
            info.server = str(rec.get("server") or info.server)
            info.subprotocol = str(rec.get("subprotocol") or info.subprotocol or "")
            version = rec.get("version")
            if isinstance(version, int):
                info.version = version
            elif info.subprotocol.startswith("wsp.v"):
                info.version = int(info.subprotocol[5:]) if info.subprotocol[5:].isdigit() else None
            opened = kind == "connection" and rec.get("status") is not None
            if opened and info.state == "connecting":
                info.state = "open"
        elif kind == "authenticated":
            info.state = "open"
            info.identity = str(rec.get("identity") or "")
        elif kind == "resumed":
            info.state = "open"
            info.resumes += 1
            info.identity = str(rec.get("identity") or info.identity)
        elif kind == "closed":
            info.state = "closed" if not rec.get("resumable") else "detached"
            code = rec.get("code")
            info.close_code = code if isinstance(code, int) else info.close_code
            info.close_reason = str(rec.get("reason") or "")
        elif kind == "state":
            info.state = str(rec.get("state") or info.state)
        if not info.peer and rec.get("peer"):
            info.peer = str(rec["peer"])
        if not info.identity and rec.get("identity"):
            info.identity = str(rec["identity"])

    @staticmethod
    def _sequenced(info: SessionInfo, side: int, seq: int) -> None:
        """A sequenced message: a number at or below the highest sent is sent again."""
        if 0 < seq <= info.sent[side]:
            info.retransmits += 1
        elif seq > info.sent[side]:
            info.sent[side] = seq

    @staticmethod
    def _heartbeat(info: SessionInfo, side: int, probe: int, reply: bool, ts: float) -> None:
        """A probe, or the other side's reply that echoes its id: the RTT (S.5)."""
        if not reply:
            info.probes[(side, probe)] = ts
            if len(info.probes) > 64:
                info.probes.pop(next(iter(info.probes)))
            return
        sent = info.probes.pop((1 - side, probe), None)
        if sent is not None:
            info.rtt_ms = round((ts - sent) * 1000, 3)

    def _fact(self, info: SessionInfo, side: int, tname: str, ts: float,
              rec: dict[str, Any]) -> None:
        wsp = rec.get("wsp")
        wsp = wsp if isinstance(wsp, dict) else {}
        found = wsp.get("payload")
        payload: dict[str, Any] = found if isinstance(found, dict) else {}
        if tname == "Handshake":
            info.state = "handshake"
            if payload.get("resume_token"):
                info.resumes += 1
        elif tname == "HandshakeResponse":
            info.state = "open"
            info.session_id = payload.get("session_id", info.session_id)
            if isinstance(payload.get("window"), int):
                info.window = payload["window"]
            if isinstance(payload.get("heartbeat_ms"), int):
                info.heartbeat_ms = payload["heartbeat_ms"]
        elif tname == "Batch":  # a Batch that is not one run of sequenced messages
            for item in payload.get("messages") or ():
                if not isinstance(item, dict):
                    continue
                name = str(item.get("type"))
                if name in SEQUENCED and isinstance(item.get("sequence"), int):
                    self._sequenced(info, side, item["sequence"])
                elif name in ("Acknowledge", "Heartbeat", "WindowUpdate", "Close"):
                    self._fact(info, side, name, ts, {"wsp": item})
        elif tname == "WindowUpdate" and isinstance(payload.get("window"), int):
            info.window = payload["window"]
        elif tname == "Acknowledge":
            seq = payload.get("sequence")
            if isinstance(seq, int):
                other = 1 - side
                info.acked[other] = max(info.acked[other], seq)
        elif tname == "Heartbeat":
            probe = payload.get("id")
            if isinstance(probe, int):
                self._heartbeat(info, side, probe, bool(payload.get("reply")), ts)
        elif tname == "Close":
            info.state = "closing"
            code = payload.get("code")
            if isinstance(code, int):
                info.close_code = code
            if payload.get("reason"):
                info.close_reason = str(payload["reason"])
        if rec.get("opcode") == "close":
            info.state = "closed"
            if rec.get("close_code") is not None:
                info.close_code = rec["close_code"]
            if rec.get("close_reason"):
                info.close_reason = str(rec["close_reason"])
        if rec.get("identity") and not info.identity:
            info.identity = str(rec["identity"])
