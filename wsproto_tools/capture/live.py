"""The live tap: packets from a network interface, as raw bytes, with drop counters.

scapy opens the Linux ``PF_PACKET`` socket and compiles and attaches the BPF
filter (which needs libpcap, or tcpdump, installed); after that the socket is
read directly with ``recvmsg`` -- no scapy dissection on the hot path -- and the
packets go through the same :class:`~wsproto_tools.capture.decoder.CaptureDecoder`
as a file's.

On a loopback interface the kernel shows every packet twice, once outgoing and
once incoming: the outgoing copy is dropped. Drops are read from the kernel's
own counters (``PACKET_STATISTICS``).
"""

from __future__ import annotations

__all__ = ["LiveCapture", "TapStats", "bpf_for"]

import logging
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wsproto_tools.capture.reader import RawPacket
from wsproto_tools.exceptions import CaptureError

_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_PACKET_OUTGOING = 4
_SO_RCVBUFFORCE = 33
_SCM_TIMESTAMPNS = 35
_ARPHRD_TO_LINKTYPE = {1: 1, 772: 1, 65534: 101, 776: 1, 280: 1}
_TIMESPEC = struct.Struct("@qq")
#: Kernel receive buffer asked for (root may exceed rmem_max).
RECEIVE_BUFFER = 64 * 1024 * 1024


@dataclass
class TapStats:
    """Packet counters of a live capture."""

    received: int = 0
    kept: int = 0
    duplicates: int = 0
    kernel_packets: int = 0
    kernel_drops: int = 0


def bpf_for(port: int | None, bpf: str | None) -> str | None:
    """The BPF expression for ``--port`` and ``--bpf`` together."""
    parts = []
    if port is not None:
        parts.append(f"tcp port {port}")
    if bpf:
        parts.append(f"({bpf})")
    return " and ".join(parts) or None


class LiveCapture:
    """Reads packets from ``iface`` until stopped; see the module docstring."""

    def __init__(self, iface: str, bpf: str | None = None) -> None:
        try:
            from scapy.arch.linux import L2ListenSocket
            from scapy.error import Scapy_Exception
        except ImportError as error:  # pragma: no cover - scapy is a dependency
            raise CaptureError(f"live capture needs scapy: {error}") from None
        quiet = logging.getLogger("scapy.runtime")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # scapy warns that it cannot name lo's link type
        try:
            self._scapy: Any = L2ListenSocket(iface=iface, filter=bpf)
        except Scapy_Exception as error:
            raise CaptureError(
                f"cannot set the capture filter on {iface} ({error}); the tap needs libpcap "
                "(Debian: libpcap0.8) or tcpdump to compile BPF filters"
            ) from None
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or error
            raise CaptureError(f"cannot capture on {iface}: {reason}") from None
        finally:
            quiet.setLevel(level)
        self.iface = iface
        sock: socket.socket = self._scapy.ins
        self._sock = sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setblocking(False)
        hatype = sock.getsockname()[3]
        self.linktype = _ARPHRD_TO_LINKTYPE.get(hatype, 1)
        self.loopback = hatype == 772
        self.stats = TapStats()
        # Reading the statistics resets them: what scapy's socket setup dropped
        # (its receive buffer is 0 until it is bound) is not the capture's loss.
        sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)

    def _read_kernel_stats(self) -> None:
        raw = self._sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8)
        packets, drops = struct.unpack("II", raw)
        self.stats.kernel_packets += packets
        self.stats.kernel_drops += drops

    def kernel_counters(self) -> tuple[int, int]:
        """(packets, drops) the kernel counted since the capture started."""
        self._read_kernel_stats()
        return self.stats.kernel_packets, self.stats.kernel_drops

    def packets(
        self, *, duration: float | None = None, stop: Any = None
    ) -> Iterator[RawPacket]:
        """Yield packets as ``(number, ts, linktype, data)`` until ``duration`` or ``stop()``."""
        sock = self._sock
        recvmsg = sock.recvmsg
        linktype = self.linktype
        loopback = self.loopback
        stats = self.stats
        deadline = None if duration is None else time.monotonic() + duration
        number = 0
        unpack = _TIMESPEC.unpack_from
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if stop is not None and stop():
                return
            ready, _, _ = select.select([sock], [], [], 0.1)
            if not ready:
                continue
            for _ in range(4096):
                try:
                    data, ancdata, _flags, address = recvmsg(262144, 256)
                except BlockingIOError:
                    break
                except InterruptedError:
                    continue
                stats.received += 1
                if loopback and address[2] == _PACKET_OUTGOING:
                    stats.duplicates += 1
                    continue
                ts = 0.0
                for level, kind, value in ancdata:
                    if level == socket.SOL_SOCKET and kind == _SCM_TIMESTAMPNS:
                        sec, nsec = unpack(value)
                        ts = sec + nsec * 1e-9
                if not ts:
                    ts = time.time()
                number += 1
                stats.kept += 1
                yield (number, ts, linktype, data)

    def close(self) -> None:
        self._scapy.close()
