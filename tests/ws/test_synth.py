"""Synthetic captures: checked by scapy, websockets' frame parser, tshark and the decoder.

The oracles are independent of ws/synth.py: scapy recomputes the IPv4 and TCP
checksums, websockets' own ``Frame.parse`` reads the reassembled streams, the
accept key comes from RFC 6455's formula (and its worked example), and tshark
(Wireshark) dissects the file with checksum validation on.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from websockets.frames import Frame
from websockets.streams import StreamReader

from wsproto_tools.capture import CaptureDecoder, CapturedMessage, PacketReader
from wsproto_tools.exceptions import ConfigError, LocalProtocolError
from wsproto_tools.ws.frames import Opcode
from wsproto_tools.ws.pcapng import LINKTYPE_ETHERNET, LINKTYPE_RAW
from wsproto_tools.ws.synth import (
    ETHERNET_MSS,
    SyntheticConnection,
    SynthPacket,
    masking_key,
    pcapng_bytes,
)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
BIG = bytes(range(256)) * 300  # 76,800 bytes: several segments at either MSS


def conversation(linktype: int = LINKTYPE_ETHERNET, mss: int = ETHERNET_MSS,
                 conn: int = 1, ipv6: bool = False) -> list[SynthPacket]:
    addresses = {"client_addr": "::1", "server_addr": "::1"} if ipv6 else {}
    c = SyntheticConnection(conn, linktype=linktype, mss=mss, **addresses)
    packets = c.open(1000.0, path="/feed", subprotocols=("wsp.v2", "wsp.v1"))
    packets += c.message(1000.1, "client", Opcode.TEXT, "héllo".encode())
    packets += c.message(1000.2, "server", Opcode.BINARY, BIG)
    packets += c.message(1000.3, "client", Opcode.BINARY, BIG[::-1])
    packets += c.message(1000.3, "client", Opcode.PING, b"p")  # same time: nudged 1 µs on
    packets += c.message(1000.3, "server", Opcode.PONG, b"p")
    packets += c.close(1000.4, "client", 1000, "bye")
    packets += c.close(1000.4, "server", 1000, "bye")
    packets += c.teardown(1000.5)
    return packets


def ip_of(packet: SynthPacket, linktype: int = LINKTYPE_ETHERNET) -> IP:
    if linktype == LINKTYPE_ETHERNET:
        ether = Ether(packet.data)
        assert ether.type == 0x0800
        return ether[IP]
    return IP(packet.data)


def test_checksums_as_scapy_computes_them() -> None:
    for packet in conversation():
        ip = ip_of(packet)
        fresh = ip.copy()
        del fresh.chksum
        del fresh[TCP].chksum
        rebuilt = IP(bytes(fresh))
        assert (ip.chksum, ip[TCP].chksum) == (rebuilt.chksum, rebuilt[TCP].chksum)
        assert ip.len == len(bytes(ip))


def test_ipv6_checksums_as_scapy_computes_them() -> None:
    for packet in conversation(ipv6=True):
        ether = Ether(packet.data)
        assert ether.type == 0x86DD
        ip = ether[IPv6]
        assert (ip.src, ip.dst, ip.nh, ip.plen) == ("::1", "::1", 6, len(bytes(ip.payload)))
        fresh = ip.copy()
        del fresh[TCP].chksum
        assert ip[TCP].chksum == IPv6(bytes(fresh))[TCP].chksum


def test_sequence_and_ack_numbers_follow_the_bytes() -> None:
    packets = [ip_of(p)[TCP] for p in conversation()]
    syn, syn_ack, ack = packets[:3]
    assert (syn.flags, syn_ack.flags, ack.flags) == ("S", "SA", "A")
    assert syn_ack.ack == syn.seq + 1 and ack.ack == syn_ack.seq + 1
    next_seq = {syn.sport: syn.seq + 1, syn_ack.sport: syn_ack.seq + 1}
    for tcp in packets[1:]:
        if tcp.flags == "SA":
            continue
        other = tcp.dport
        assert tcp.seq == next_seq[tcp.sport], tcp.summary()
        assert tcp.ack == next_seq[other], tcp.summary()
        next_seq[tcp.sport] += len(tcp.payload) + ("F" in tcp.flags)
    flags = [str(t.flags) for t in packets[-4:]]
    assert flags == ["FA", "A", "FA", "A"]


@pytest.mark.parametrize("mss", [ETHERNET_MSS, 65495, 7])
def test_segments_stay_within_the_mss_and_reassemble_to_frames(mss: int) -> None:
    packets = conversation(mss=mss)
    if mss == 7:  # tiny segments: the handshake alone takes dozens; check the first ones
        packets = packets[:60]
    streams: dict[str, bytes] = {"client": b"", "server": b""}
    for packet in packets:
        tcp = ip_of(packet)[TCP]
        payload = bytes(tcp.payload)
        assert len(payload) <= mss
        streams["client" if tcp.dport == 8080 else "server"] += payload
    if mss == 7:
        return
    frames = {}
    for side, data in streams.items():
        head, _, rest = data.partition(b"\r\n\r\n")
        reader = StreamReader()
        reader.feed_data(rest)
        reader.feed_eof()
        parsed = []
        while reader.buffer:
            parser = Frame.parse(reader.read_exact, mask=side == "client")
            try:
                next(parser)
            except StopIteration as done:
                parsed.append(done.value)
        frames[side] = (head, parsed)
    client = frames["client"][1]
    assert [(f.opcode.name, f.data) for f in client] == [
        ("TEXT", "héllo".encode()), ("BINARY", BIG[::-1]), ("PING", b"p"),
        ("CLOSE", b"\x03\xe8bye")]
    server = frames["server"][1]
    assert [(f.opcode.name, f.data) for f in server] == [
        ("BINARY", BIG), ("PONG", b"p"), ("CLOSE", b"\x03\xe8bye")]


def test_upgrade_carries_the_subprotocol_and_a_correct_accept() -> None:
    packets = conversation()
    request = bytes(ip_of(packets[3])[TCP].payload).decode()
    response = bytes(ip_of(packets[5])[TCP].payload).decode()
    assert request.startswith("GET /feed HTTP/1.1\r\n")
    headers = dict(line.split(": ", 1) for line in request.split("\r\n")[1:] if line)
    assert headers["Sec-WebSocket-Protocol"] == "wsp.v2, wsp.v1"
    assert len(base64.b64decode(headers["Sec-WebSocket-Key"])) == 16
    expected = base64.b64encode(
        hashlib.sha1((headers["Sec-WebSocket-Key"] + GUID).encode()).digest()).decode()
    assert response.startswith("HTTP/1.1 101 Switching Protocols\r\n")
    assert f"Sec-WebSocket-Accept: {expected}\r\n" in response
    assert "Sec-WebSocket-Protocol: wsp.v2\r\n" in response


def test_rfc6455_worked_example_of_the_accept_key() -> None:
    # The formula the test above applies, checked on the RFC's own example (section 1.3).
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode() == (
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")


def test_deterministic_masks_that_differ_frame_to_frame() -> None:
    assert conversation() == conversation()
    assert conversation(conn=2) != conversation(conn=1)
    keys = [masking_key(1, n) for n in range(1000)]
    assert len(set(keys)) == 1000 and b"\0\0\0\0" not in keys


def test_timestamps_strictly_increase() -> None:
    times = [round(p.ts * 1e6) for p in conversation()]
    assert times == sorted(set(times))
    assert times[0] == 1_000_000_000


def decoded(data: bytes) -> list[CapturedMessage]:
    decoder = CaptureDecoder()
    events = [e for p in PacketReader(io.BytesIO(data)) for e in decoder.packet(p)]
    events += decoder.finish()
    return [e for e in events if isinstance(e, CapturedMessage)]


@pytest.mark.parametrize(("linktype", "ipv6"), [(LINKTYPE_ETHERNET, False),
                                               (LINKTYPE_RAW, False), (LINKTYPE_RAW, True)])
def test_the_capture_decoder_reads_it_back(linktype: int, ipv6: bool) -> None:
    data = b"".join(pcapng_bytes(conversation(linktype, ipv6=ipv6), linktype=linktype))
    got = [(m.direction, m.msg.opcode, m.msg.payload, list(m.violations)) for m in decoded(data)]
    assert got == [
        ("client", 1, "héllo".encode(), []),
        ("server", 2, BIG, []),
        ("client", 2, BIG[::-1], []),
        ("client", 9, b"p", []),
        ("server", 10, b"p", []),
        ("client", 8, b"\x03\xe8bye", []),
        ("server", 8, b"\x03\xe8bye", []),
    ]


def test_misuse_is_refused() -> None:
    c = SyntheticConnection(3)
    with pytest.raises(LocalProtocolError, match="open"):
        c.message(1.0, "client", Opcode.TEXT, b"x")
    c.open(1.0)
    with pytest.raises(LocalProtocolError):
        c.open(2.0)
    c.teardown(3.0)
    with pytest.raises(LocalProtocolError):
        c.teardown(4.0)
    with pytest.raises(ConfigError, match="one is IPv4, the other IPv6"):
        SyntheticConnection(1, client_addr="::1")
    with pytest.raises(ConfigError, match="not an IP address"):
        SyntheticConnection(1, server_addr="localhost")
    with pytest.raises(ConfigError, match="MSS"):
        SyntheticConnection(1, mss=0)
    with pytest.raises(ConfigError, match="same address"):
        SyntheticConnection(1, client_port=8080)


def tshark(path: Path, *args: str) -> list[str]:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed (apt-get install tshark; .ci/run installs it)")
    result = subprocess.run(
        [exe, "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE",
         "-o", "ip.check_checksum:TRUE", *args],
        capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.splitlines()


@pytest.mark.parametrize(("linktype", "ipv6"), [(LINKTYPE_ETHERNET, False),
                                               (LINKTYPE_RAW, False), (LINKTYPE_ETHERNET, True)])
def test_wireshark_sees_clean_packets_and_every_frame(tmp_path: Path, linktype: int,
                                                      ipv6: bool) -> None:
    packets = conversation(linktype, ipv6=ipv6)
    path = tmp_path / "synth.pcapng"
    path.write_bytes(b"".join(pcapng_bytes(packets, linktype=linktype)))
    ip_status = "" if ipv6 else "1"  # IPv6 has no header checksum
    rows = tshark(path, "-T", "fields", "-E", "separator=|", "-e", "ip.checksum.status",
                  "-e", "tcp.checksum.status", "-e", "_ws.malformed", "-e", "_ws.expert.severity")
    assert len(rows) == len(packets)
    for row in rows:
        ip_ok, tcp_status, malformed, severity = row.split("|")
        assert (ip_ok, tcp_status, malformed) == (ip_status, "1", ""), row  # 1: Good
        # Expert notes/chats (connection setup, FIN) are fine; no warnings or errors.
        assert all(int(s) < 6291456 for s in severity.split(",") if s), row
    frames = tshark(path, "-Y", "websocket", "-T", "fields", "-E", "separator=|",
                    "-e", "websocket.opcode", "-e", "websocket.mask",
                    "-e", "websocket.payload.text", "-e", "websocket.payload.close.status_code")
    assert frames == ["1|1|héllo|", "2|0||", "2|1||", "9|1||", "10|0||", "8|1||1000",
                      "8|0||1000"]
    upgrade = tshark(path, "-Y", "http.response.code == 101", "-T", "fields",
                     "-e", "http.upgrade")
    assert upgrade == ["websocket"]


MESSAGES = st.lists(
    st.tuples(st.sampled_from(["client", "server"]),
              st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG]),
              st.binary(max_size=3000)),
    max_size=12)


@settings(max_examples=40, deadline=None)
@given(MESSAGES, st.integers(min_value=536, max_value=4000), st.integers(1, 70000),
       st.floats(min_value=0, max_value=2e9))
def test_any_conversation_decodes_back(messages: list[tuple[str, Opcode, bytes]], mss: int,
                                       conn: int, start: float) -> None:
    # MSS from 536 (RFC 9293's default): the decoder recognizes an Upgrade request by the
    # first bytes of one segment, as any real stack sends them.
    c = SyntheticConnection(conn, mss=mss)
    packets = c.open(start, subprotocols=("chat",))
    for n, (sender, opcode, payload) in enumerate(messages):
        if opcode == Opcode.TEXT:
            payload = payload.decode("latin-1").encode()  # valid UTF-8
        elif opcode in (Opcode.PING, Opcode.PONG):
            payload = payload[:125]
        packets += c.message(start + n, sender, opcode, payload)  # type: ignore[arg-type]
        messages[n] = (sender, opcode, payload)
    packets += c.teardown(start + len(messages))
    data = b"".join(pcapng_bytes(packets))
    got = [(m.direction, m.msg.opcode, m.msg.payload, list(m.violations)) for m in decoded(data)]
    assert got == [(s, int(o), p, []) for s, o, p in messages]


def test_connect_and_send_carry_the_streams_own_bytes() -> None:
    c = SyntheticConnection(9, server_port=80)
    request = (b"GET /raw HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
                b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    packets = c.connect(5.0) + c.send(5.0, "client", request) + c.send(5.0, "server", response)
    packets += c.send(6.0, "server", b"\x81\x02hi") + c.teardown(7.0)
    assert [bytes(ip_of(p)[TCP].payload) for p in packets if ip_of(p)[TCP].payload] == [
        request, response, b"\x81\x02hi"]
    got = [(m.direction, m.msg.payload) for m in decoded(b"".join(pcapng_bytes(packets)))]
    assert got == [("server", b"hi")]
