"""The table line of `wsp inspect` for each kind of record."""

from __future__ import annotations

from wsproto_tools.render.inspect import record_line


def test_lines() -> None:
    message = {
        "kind": "message",
        "ts": 1.5,
        "session": 0xABCDEF0123,
        "direction": "client",
        "decrypted": True,
        "wsp": {"type": "Publish", "payload": {"topic": "t", "id": 3, "data": "6869"}},
    }
    line = record_line(message)
    assert "ef0123" in line and "->  Publish" in line
    assert "topic=t id=3 'hi' [decrypted]" in line
    fanout = {**message, "direction": "server", "session": None, "subscribers": 4}
    fanout["decrypted"] = False
    assert "<-  Publish" in record_line(fanout) and "(to 4 subscribers)" in record_line(fanout)
    dropped = record_line({"kind": "dropped", "ts": 2.0, "count": 7})
    assert "!!  dropped" in dropped and "7 records lost" in dropped
    closed = record_line(
        {"kind": "closed", "ts": 2.0, "session": 5, "identity": "alice", "code": 1000}
    )
    assert "**  closed" in closed and "identity=alice" in closed and "code=1000" in closed
