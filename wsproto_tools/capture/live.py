"""The live tap: packets from a network interface, as raw bytes, with drop counters.

scapy opens the Linux ``PF_PACKET`` socket and compiles and attaches the BPF
filter (which needs libpcap, or tcpdump, installed); after that the socket is
read directly with ``recvmsg`` -- no scapy dissection on the hot path -- and the
packets go through the same :class:`~wsproto_tools.capture.decoder.CaptureDecoder`
as a file's.

On a loopback interface the kernel shows every packet twice, once outgoing and
once incoming: the kernel is asked not to queue the outgoing copy
(``PACKET_IGNORE_OUTGOING``, Linux 4.20 and later; on older kernels it is read and
dropped here). Drops are read from the kernel's own counters
(``PACKET_STATISTICS``).

Stopping loses nothing that was captured: :meth:`LiveCapture.freeze` attaches a
filter that lets no more packets in, and :meth:`LiveCapture.backlog` then reads
what the socket still holds (what a slow reader had not read yet);
:meth:`LiveCapture.discard` counts (and hands on) the rest without decoding it,
when the backlog must not be decoded.
"""

from __future__ import annotations

__all__ = ["LiveCapture", "TapStats", "bpf_for"]

import ctypes
import logging
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from wsproto_tools.capture.reader import RawPacket
from wsproto_tools.exceptions import CaptureError

_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_PACKET_OUTGOING = 4
_PACKET_IGNORE_OUTGOING = 23
_SO_RCVBUFFORCE = 33
_SO_ATTACH_FILTER = 26
_SO_DETACH_FILTER = 27
_BPF_RET_K = 0x06
#: ``struct sock_filter``: one classic BPF instruction
_INSN = struct.Struct("HBBI")
#: ``ret #0``: no packet is kept
_DROP_ALL = _INSN.pack(_BPF_RET_K, 0, 0, 0)
#: Bytes kept of each packet (the most recvmsg reads).
SNAPLEN = 262144
_SCM_TIMESTAMPNS = 35
_ARPHRD_TO_LINKTYPE = {1: 1, 772: 1, 65534: 101, 776: 1, 280: 1}
_TIMESPEC = struct.Struct("@qq")
#: Kernel receive buffer asked for (root may exceed rmem_max).
RECEIVE_BUFFER = 64 * 1024 * 1024
#: Most packets read in one go before the caller gets them.
BATCH = 4096


@dataclass
class TapStats:
    """Packet counters of a live capture."""

    received: int = 0
    kept: int = 0
    #: loopback's outgoing copies read and dropped here (0 when the kernel skips them)
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


def _compile(bpf: str, iface: str) -> bytes:
    """The BPF program of the expression ``bpf`` (libpcap compiles it, through scapy),
    keeping whole packets: libpcap's ``ret`` gives the snapshot length it was told
    (scapy says 65,535), and loopback's packets can be longer (65,549 bytes)."""
    from scapy.arch.common import compile_filter, free_filter

    compiled = compile_filter(bpf, iface)
    try:
        raw = ctypes.string_at(compiled.bf_insns, compiled.bf_len * _INSN.size)
    finally:
        free_filter(compiled)
    program = bytearray()
    for code, jt, jf, k in _INSN.iter_unpack(raw):
        if code == _BPF_RET_K and k:
            k = SNAPLEN
        program += _INSN.pack(code, jt, jf, k)
    return bytes(program)


def _attach(sock: socket.socket, program: bytes) -> None:
    """Attach the classic BPF ``program`` (``struct sock_filter`` array) to ``sock``."""
    code = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HP", len(program) // _INSN.size, ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


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
            program = None if bpf is None else _compile(bpf, iface)
            self._scapy: Any = L2ListenSocket(iface=iface)
        except ImportError as error:
            raise CaptureError(
                f"cannot set the capture filter on {iface} ({error}); the tap needs libpcap "
                "(Debian: libpcap0.8) or tcpdump to compile BPF filters"
            ) from None
        except Scapy_Exception as error:
            raise CaptureError(f"cannot set the capture filter on {iface}: {error}") from None
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or error
            raise CaptureError(f"cannot capture on {iface}: {reason}") from None
        finally:
            quiet.setLevel(level)
        self.iface = iface
        sock: socket.socket = self._scapy.ins
        self._sock = sock
        sock.setblocking(False)
        # As libpcap does: nothing in, what came before the filter thrown away, the filter.
        _attach(sock, _DROP_ALL)
        while True:
            try:
                sock.recv(1)
            except BlockingIOError:
                break
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        if program is None:
            sock.setsockopt(socket.SOL_SOCKET, _SO_DETACH_FILTER, 0)
        else:
            _attach(sock, program)
        hatype = sock.getsockname()[3]
        self.linktype = _ARPHRD_TO_LINKTYPE.get(hatype, 1)
        self.loopback = hatype == 772
        #: whether the kernel itself leaves out loopback's outgoing copies
        self.skips_outgoing = False
        if self.loopback:
            try:
                sock.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
                self.skips_outgoing = True
            except OSError:  # before Linux 4.20: they are dropped as they are read
                pass
        self.stats = TapStats()
        #: whether :meth:`freeze` was called (no more packets come in)
        self.frozen = False
        self._number = 0
        # Reading the statistics resets them: what was dropped before the filter
        # was attached (scapy binds with a receive buffer of 0) is not the capture's loss.
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

    def _read(self, limit: int = BATCH) -> list[RawPacket]:
        """The packets waiting in the socket, at most ``limit`` of them (no waiting)."""
        recvmsg = self._sock.recvmsg
        linktype = self.linktype
        skip = self.loopback  # also the copies queued before the kernel skipped them
        stats = self.stats
        unpack = _TIMESPEC.unpack_from
        number = self._number
        batch: list[RawPacket] = []
        append = batch.append
        try:
            for _ in range(limit):
                try:
                    data, ancdata, _flags, address = recvmsg(SNAPLEN, 256)
                except BlockingIOError:
                    break
                except InterruptedError:
                    continue
                stats.received += 1
                if skip and address[2] == _PACKET_OUTGOING:
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
                append((number, ts, linktype, data))
        finally:  # also when a signal interrupts the read: what was read is counted
            stats.kept += number - self._number
            self._number = number
        return batch

    def batches(
        self,
        *,
        duration: float | None = None,
        stop: Callable[[], bool] | None = None,
        idle: float = 0.05,
    ) -> Iterator[list[RawPacket]]:
        """Yield the packets read at each wake-up, as ``(number, ts, linktype, data)``
        lists, until ``duration`` seconds have passed or ``stop()`` says so; an empty
        list after ``idle`` seconds without packets (time to flush the output)."""
        sock = self._sock
        deadline = None if duration is None else time.monotonic() + duration
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if stop is not None and stop():
                return
            wait = idle
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            ready, _, _ = select.select([sock], [], [], wait)
            yield self._read() if ready else []

    def packets(
        self, *, duration: float | None = None, stop: Callable[[], bool] | None = None
    ) -> Iterator[RawPacket]:
        """Yield packets as ``(number, ts, linktype, data)`` until ``duration`` or ``stop()``."""
        for batch in self.batches(duration=duration, stop=stop):
            yield from batch

    def freeze(self) -> None:
        """Let no more packets in: what the socket holds now is the rest of the capture."""
        if self.frozen:
            return
        _attach(self._sock, _DROP_ALL)
        self.frozen = True

    def backlog(self) -> Iterator[list[RawPacket]]:
        """After :meth:`freeze`: the packets still waiting in the socket, in batches."""
        self.freeze()
        while batch := self._read():
            yield batch

    def discard(self, keep: Callable[[RawPacket], Any] | None = None) -> int:
        """After :meth:`freeze`: read the packets still waiting without decoding them,
        handing each to ``keep`` (to save it); how many there were."""
        self.freeze()
        count = 0
        while batch := self._read():
            count += len(batch)
            if keep is not None:
                for pkt in batch:
                    keep(pkt)
        return count

    def close(self) -> None:
        self._scapy.close()
