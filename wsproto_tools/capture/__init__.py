"""Capture analysis: pcap/pcapng files and live packets to WebSocket and wsp messages.

* :mod:`.reader` -- streaming pcap/pcapng (plain or gzip) reader, raw bytes only;
* :mod:`.net` -- link layer, IP and TCP headers to a :class:`~.net.Segment`;
* :mod:`.tcp` -- per-direction TCP reassembly with gap detection;
* :mod:`.decoder` -- connections, WebSocket detection and decoding through
  :mod:`wsproto_tools.ws`, wsp through :mod:`wsproto_tools.codec`;
* :mod:`.stats`, :mod:`.filters` -- the summary and the user's filters;
* :mod:`.live` -- the live tap (scapy sockets, raw bytes, kernel drop counters);
* :mod:`.pipeline` -- packets through the decoder into a sink, from a file, a
  stream or the live tap; :mod:`.parallel` -- one file decoded by several processes;
* :mod:`.scapy_layer` -- a scapy layer for the wsp header, built from the codec's
  description and registered by :func:`~.scapy_layer.register`.
"""

from wsproto_tools.capture.decoder import (
    CaptureDecoder,
    CapturedMessage,
    CaptureWarning,
    Connection,
    ConnectionSeen,
)
from wsproto_tools.capture.filters import MessageFilter
from wsproto_tools.capture.reader import CaptureInfo, Packet, PacketReader, open_capture
from wsproto_tools.capture.stats import CaptureStats

__all__ = [
    "CaptureDecoder",
    "CaptureInfo",
    "CaptureStats",
    "CaptureWarning",
    "CapturedMessage",
    "Connection",
    "ConnectionSeen",
    "MessageFilter",
    "Packet",
    "PacketReader",
    "open_capture",
]
