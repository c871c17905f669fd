"""Exporting records: synthetic pcapng, NDJSON and cassettes (the TUI's Export).

Records are the dicts of :mod:`wsproto_tools.render.records`: ``wsp decode
--ndjson`` message objects and connection records, inspector-feed records and
session events, possibly from several connections. Each export is a generator,
so the caller writes as it goes:

- :func:`export_ndjson` writes every record verbatim, one JSON object a line.
- :func:`export_cassette` writes the handshakes and the messages as a cassette
  (:mod:`wsproto_tools.replay.cassette`, docs/replay.md); events are dropped.
- :func:`export_pcapng` writes the messages as a capture of loopback TCP/IPv4
  (:mod:`wsproto_tools.ws.synth`): per connection the TCP handshake, the Upgrade
  (with the subprotocol, ``wsp.v2``/``wsp.v1`` for wsp messages), one frame a
  message, the teardown; connections interleaved by time. Payloads are written
  uncompressed (no permessage-deflate is offered) and fragmented messages as one
  frame, so ``wsp decode`` of the export gives the same messages with
  ``compressed: false``.
"""

from __future__ import annotations

__all__ = ["export_cassette", "export_ndjson", "export_pcapng", "pcapng_of_cassette"]

import heapq
import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from wsproto_tools.replay.cassette import Cassette, cassette_of_records
from wsproto_tools.ws.pcapng import LINKTYPE_ETHERNET
from wsproto_tools.ws.synth import LOOPBACK_MSS, SyntheticConnection, SynthPacket, pcapng_bytes

#: Seconds the synthetic TCP and HTTP handshake takes before a connection's first message.
HANDSHAKE_LEAD = 0.001


def export_ndjson(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Every record as one compact JSON line (ending with a newline), unchanged."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def export_cassette(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The handshakes and messages of ``records`` as cassette lines."""
    return cassette_of_records(records).lines()


def _connection_packets(cassette: Cassette, conn: int, *, linktype: int,
                        mss: int) -> Iterator[SynthPacket]:
    connection = cassette.connections[conn]
    messages = cassette.messages_of(conn)
    synth = SyntheticConnection(conn, linktype=linktype, mss=mss)
    start = connection.ts
    yield from synth.open(max(0.0, start - HANDSHAKE_LEAD), path=connection.path,
                          subprotocols=connection.subprotocols,
                          headers=connection.headers)
    last = start
    for message in messages:
        last = start + message.t
        sender: Literal["client", "server"] = (
            "client" if message.direction == "client" else "server")
        yield from synth.message(last, sender, message.opcode_number, message.payload())
    yield from synth.teardown(last, first="server")


def pcapng_of_cassette(cassette: Cassette, *, linktype: int = LINKTYPE_ETHERNET,
                       mss: int = LOOPBACK_MSS) -> Iterator[bytes]:
    """A pcapng capture of ``cassette``, block by block (connections merged by time)."""
    streams = [_connection_packets(cassette, conn, linktype=linktype, mss=mss)
               for conn in cassette.connections]
    merged = heapq.merge(*streams, key=lambda packet: packet.ts)
    return pcapng_bytes(merged, linktype=linktype)


def export_pcapng(records: Iterable[dict[str, Any]], *, linktype: int = LINKTYPE_ETHERNET,
                  mss: int = LOOPBACK_MSS) -> Iterator[bytes]:
    """The messages of ``records`` as a pcapng capture of synthetic loopback TCP/IP.

    Connections are those of the cassette (:func:`cassette_of_records`), so the
    same records are left out (fan-out deliveries, fragments that were never
    reassembled, messages without a payload).
    """
    cassette = cassette_of_records(records, keep_wsp=False)  # the bytes are enough
    return pcapng_of_cassette(cassette, linktype=linktype, mss=mss)
