"""A session moved between servers through its snapshot (engine/snapshot.py), and
a resume's ``last_received`` acknowledging what it covers."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from wsproto_tools.engine import events as ev
from wsproto_tools.engine.snapshot import SnapshotError, restore, snapshot
from wsproto_tools.engine.states import State


def test_a_session_resumes_on_another_server_from_its_snapshot(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.publish("t", b"applied", p.now)
    p.pump()
    sid = p.server.session_id
    p.server.send_text("hello", p.now)  # sequenced; lost with the connection
    assert p.server.unacked
    data = snapshot(p.server)
    p.lose()
    # "another node": nothing of the first server's objects, only the bytes
    moved = restore(data, p.auth, p.config)
    assert moved.state is State.RECONNECTING
    assert (moved.session_id, moved.recv_seq, moved.send_seq) == (
        sid, p.server.recv_seq, p.server.send_seq)
    p.sessions = {sid: moved}
    p.connect()
    assert p.server is moved and p.server.state is State.ACTIVE
    accepted = [e for e in p.client_events if isinstance(e, ev.Accepted)]
    assert accepted[-1].resumed and accepted[-1].session_id == sid
    texts = [e.payload.text for e in p.client_events if isinstance(e, ev.DataReceived)]
    assert texts == ["hello"]  # retransmitted by the new server
    # the publish is not applied twice: its sequence was in the snapshot
    published = [e.data for e in p.server_events if isinstance(e, ev.PublishReceived)]
    assert published == [b"applied"]


def test_the_snapshot_keeps_applied_publish_ids(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.client.publish("t", b"x", p.now, publish_id=41)
    p.pump()
    moved = restore(snapshot(p.server), p.auth, p.config)
    assert moved.applied_ids is not None and list(moved.applied_ids) == [41]


@pytest.mark.parametrize("data", [
    b"", b"\x01", msgpack.packb([2, 1, "hmac", 0, 0, [], [], []]),
    msgpack.packb([1, 0, "hmac", 0, 0, [], [], []]),
    msgpack.packb([1, 5, "hmac", "x", 0, [], [], []]),
    msgpack.packb([1, 5, "hmac", 0, 0, [b"\xff\xff"], [], []]),
])
def test_an_unreadable_snapshot_is_a_typed_error(make_pair: Any, data: bytes) -> None:
    with pytest.raises(SnapshotError):
        restore(data, make_pair().auth)


def test_a_resume_acknowledges_what_the_server_had_received(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    seq = p.client.publish("t", b"x", p.now)
    p.to_server()  # applied; the Acknowledge is lost with the connection
    p.lose()
    p.client_events.clear()
    p.connect()
    acked = [e for e in p.client_events if isinstance(e, ev.Acked)]
    assert [(a.sequence, a.count) for a in acked] == [(seq, 1)]
    assert acked[0].payloads[0].data == b"x"


def test_a_snapshot_over_the_store_limit_is_partial_and_refused(make_pair: Any) -> None:
    p = make_pair()
    p.connect()
    p.server.send_binary(b"x" * 40_000, p.now)  # waits for its ack
    whole = snapshot(p.server, limit=1 << 20)
    assert restore(whole, p.auth).send_seq == p.server.send_seq
    partial = snapshot(p.server, limit=32_768)
    assert len(partial) < 200
    with pytest.raises(SnapshotError, match="partial"):
        restore(partial, p.auth)
