"""Codec benchmark: encode/decode rates, wire overhead, and a loopback echo yardstick.

Run: ``python benchmarks/codec.py`` (``--quick`` for a short run). Everything is
measured in the same run, so the codec/echo ratio holds on a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from wsproto_tools.codec import BinaryData, Message, decode, encode

SIZES = (16, 128, 1024)
SEQUENCE = 1000  # a two-byte varint in v2


def ws_header(length: int, masked: bool) -> int:
    """RFC 6455 frame header size for a payload of ``length`` bytes."""
    size = 2 if length <= 125 else 4 if length <= 0xFFFF else 10
    return size + (4 if masked else 0)


def per_call(func: Callable[[], object], seconds: float) -> float:
    """Seconds per call of ``func``: best of five runs of about ``seconds``/5 each."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            func()
        elapsed = time.perf_counter() - start
        if elapsed > 0.02:
            break
        loops *= 4
    best = elapsed / loops
    runs = max(1, int(seconds / 5 / elapsed))
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(loops * runs):
            func()
        best = min(best, (time.perf_counter() - start) / (loops * runs))
    return best


async def echo_cost(size: int, count: int, window: int) -> float:
    """Seconds per echo of a ``size``-byte binary message, ``window`` in flight."""

    async def handler(ws: ServerConnection) -> None:
        async for data in ws:
            await ws.send(data)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
            payload = bytes(size)
            for _ in range(200):  # warm-up
                await ws.send(payload)
                await ws.recv()
            best = float("inf")
            for _ in range(3):
                in_flight = asyncio.Semaphore(window)

                async def sender(in_flight: asyncio.Semaphore = in_flight) -> None:
                    for _ in range(count):
                        await in_flight.acquire()
                        await ws.send(payload)

                start = time.perf_counter()
                task = asyncio.create_task(sender())
                for _ in range(count):
                    await ws.recv()
                    in_flight.release()
                await task
                best = min(best, (time.perf_counter() - start) / count)
            return best


def corpus(seed: int, count: int) -> list[bytes]:
    """Realistic small application messages: chat, ticks, presence, events, control."""
    import json
    import random

    from wsproto_tools.codec import Acknowledge, Deliver, Publish, Subscribe
    from wsproto_tools.codec.payloads import encode_fields

    rng = random.Random(seed)
    words = [
        "hello", "there", "how", "are", "you", "doing", "today", "fine", "thanks", "see",
        "you", "later", "the", "build", "passed", "failed", "deploy", "rollback", "meeting",
        "lunch", "coffee", "ok", "yes", "no", "maybe",
    ]
    users = [f"user{n}" for n in range(50)]
    symbols = ["BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "MSFT", "EUR-USD"]
    out: list[bytes] = []
    for _ in range(count):
        kind = rng.randrange(6)
        ts = 1_700_000_000_000 + rng.randrange(10**9)
        if kind == 0:
            body = {"type": "chat", "room": rng.choice(["general", "random", "ops"]),
                    "user": rng.choice(users),
                    "text": " ".join(rng.choices(words, k=rng.randint(2, 12))),
                    "ts": ts}
            out.append(json.dumps(body, separators=(",", ":")).encode())
        elif kind == 1:
            body = {"type": "tick", "symbol": rng.choice(symbols),
                    "price": f"{rng.uniform(1, 70000):.2f}", "qty": rng.randint(1, 500),
                    "side": rng.choice(["buy", "sell"]), "ts": ts}
            out.append(json.dumps(body, separators=(",", ":")).encode())
        elif kind == 2:
            body = {"type": "presence", "user_id": rng.choice(users),
                    "status": rng.choice(["online", "away", "offline"]), "ts": ts}
            out.append(json.dumps(body, separators=(",", ":")).encode())
        elif kind == 3:
            body = {"type": "event", "name": rng.choice(["click", "view", "scroll"]),
                    "data": {"id": rng.randrange(10**6), "page": f"/p/{rng.randrange(100)}",
                             "ok": rng.random() < 0.5}, "ts": ts}
            out.append(json.dumps(body, separators=(",", ":")).encode())
        elif kind == 4:
            tick = json.dumps({"symbol": rng.choice(symbols),
                               "price": f"{rng.uniform(1, 70000):.2f}"}).encode()
            payload = rng.choice([
                Deliver(rng.choice(["prices", "chat.general"]), 1, rng.randrange(10**6), tick),
                Publish(rng.choice(["prices", "chat.general"]), tick, rng.randrange(1000)),
            ])
            out.append(encode_fields(payload))
        else:
            payload = rng.choice([Acknowledge(rng.randrange(10**5)),
                                  Subscribe(rng.choice(["prices", "chat.general"]),
                                            rng.randrange(1000))])
            out.append(encode_fields(payload))
    return out


def compression_study() -> None:
    """zlib raw DEFLATE with a preset dictionary vs zstd with a trained dictionary."""
    import zlib

    from wsproto_tools.codec.compression import compress, decompress
    from wsproto_tools.codec.dictionary import DICTIONARY

    train, test = corpus(1, 4000), corpus(2, 2000)
    raw = sum(map(len, test))
    print(f"compression on {len(test)} realistic small messages "
          f"({raw / len(test):.0f} bytes on average)")
    print(f"{'method':<42} {'size %':>7} {'grew':>5} {'comp µs':>8} {'decomp µs':>9}")

    def report(name: str, comp: Callable[[bytes], bytes],
               decomp: Callable[[bytes], bytes]) -> None:
        packed = [comp(m) for m in test]
        assert [decomp(p) for p in packed] == test
        grew = sum(len(p) >= len(m) for p, m in zip(packed, test, strict=True))
        start = time.perf_counter()
        for m in test:
            comp(m)
        c = (time.perf_counter() - start) / len(test)
        start = time.perf_counter()
        for p in packed:
            decomp(p)
        d = (time.perf_counter() - start) / len(test)
        print(f"{name:<42} {100 * sum(map(len, packed)) / raw:7.1f} {grew:>5} "
              f"{c * 1e6:8.2f} {d * 1e6:9.2f}")

    def zlib_with(zdict: bytes | None) -> tuple[Callable[[bytes], bytes],
                                                 Callable[[bytes], bytes]]:
        base = (zlib.compressobj(6, zlib.DEFLATED, -13, 4, zlib.Z_DEFAULT_STRATEGY, zdict)
                if zdict else zlib.compressobj(6, zlib.DEFLATED, -13, 4))

        def comp(data: bytes) -> bytes:
            stream = base.copy()
            return stream.compress(data) + stream.flush()

        def decomp(data: bytes) -> bytes:
            stream = (zlib.decompressobj(-15, zdict=zdict) if zdict
                      else zlib.decompressobj(-15))
            return stream.decompress(data)

        return comp, decomp

    report("zlib raw DEFLATE, no dictionary", *zlib_with(None))
    report(f"zlib raw DEFLATE + generic strings only ({len(HAND_STRINGS)} B)",
           *zlib_with(HAND_STRINGS))
    report(f"wsp: raw DEFLATE + wsp dictionary ({len(DICTIONARY)} B)", compress,
           lambda p: decompress(p, 0, 1 << 16))
    try:
        import zstandard
    except ImportError:
        print("(zstandard not installed: pip install zstandard to compare)")
        return
    magicless = zstandard.ZstdCompressionParameters.from_level(
        3, format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_content_size=False,
        write_checksum=False, write_dict_id=False)
    for size in (1024, 4096):
        trained = zstandard.train_dictionary(size, train)
        zc = zstandard.ZstdCompressor(dict_data=trained, compression_params=magicless)
        zd = zstandard.ZstdDecompressor(dict_data=trained,
                                        format=zstandard.FORMAT_ZSTD1_MAGICLESS)
        report(f"zstd 3 magicless + trained dict ({size} B)", zc.compress,
               lambda p, zd=zd: zd.decompress(p, max_output_size=1 << 16))
    raw_dict = zstandard.ZstdCompressionDict(DICTIONARY,
                                             dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    zc = zstandard.ZstdCompressor(dict_data=raw_dict, compression_params=magicless)
    zd = zstandard.ZstdDecompressor(dict_data=raw_dict, format=zstandard.FORMAT_ZSTD1_MAGICLESS)
    report(f"zstd 3 magicless + wsp dictionary as content ({len(DICTIONARY)} B)", zc.compress,
           lambda p: zd.decompress(p, max_output_size=1 << 16))


HAND_STRINGS = (
    b'{"type":"event","data":{"id":"user","name":"message","text":"hello",'
    b'"status":"ok","error":null,"result":true,"value":false,"count":0,'
    b'"timestamp":1700000000000,"price":"0.00","symbol":"BTC-USD","side":"buy",'
    b'"qty":1,"channel":"chat","room":"general","user_id":"","payload":{}}'
    b"\xa5topic\xa5epoch\xa6offset\xa4data\xa2id\xa6method\xa4echo\xa6status"
    b"\xa8sequence\xa6window\xa4code\xa6reason\xa7message\xa7channel"
    b"\xacbase_version\xa7version\xa3ops\xa8checksum"
)
DICTIONARY_SIZE = 4096


def train_dictionary() -> None:
    """Print wsproto_tools/codec/dictionary.py: zstd-trained content + HAND_STRINGS."""
    import zstandard

    trained = zstandard.train_dictionary(DICTIONARY_SIZE + 1024, corpus(1, 4000)).as_bytes()
    content = trained[-(DICTIONARY_SIZE - len(HAND_STRINGS)):] + HAND_STRINGS
    hexed = content.hex()
    lines = [f'    "{hexed[i:i + 80]}"' for i in range(0, len(hexed), 80)]
    print(DICTIONARY_TEMPLATE.format(size=len(content), lines="\n".join(lines)))


DICTIONARY_TEMPLATE = '''"""The wsp preset compression dictionary (docs/protocol.md, "Compression").

{size} bytes, used as the DEFLATE preset history (zlib ``zdict``). Generated by
``python benchmarks/codec.py --train-dictionary``: the content of a zstd dictionary
trained on realistic small messages (chat, ticks, presence, events, msgpack
control payloads), followed by the msgpack keys of the payload schemas and common
JSON fragments, which DEFLATE then reaches with the shortest distances. It is part
of the protocol: changing one byte makes every compressed message unreadable.
"""

from __future__ import annotations

__all__ = ["DICTIONARY"]

DICTIONARY: bytes = bytes.fromhex(
{lines}
)
assert len(DICTIONARY) == {size}
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter measurement")
    parser.add_argument("--compression", action="store_true",
                        help="only compare the compression dictionaries")
    parser.add_argument("--train-dictionary", action="store_true",
                        help="print a new wsproto_tools/codec/dictionary.py")
    args = parser.parse_args()
    if args.train_dictionary:
        train_dictionary()
        return
    if args.compression:
        compression_study()
        return
    seconds = 0.5 if args.quick else 2.0
    count = 2000 if args.quick else 10000

    print("wsp codec benchmark (BinaryData, sequence 1000; rates in messages/s)")
    print(f"{'payload':>7} {'ver':>3} {'header':>6} {'encode/s':>10} {'decode/s':>10} "
          f"{'enc+dec µs':>10} {'s->c %':>7} {'c->s %':>7}")
    results: dict[tuple[int, int], float] = {}
    for size in SIZES:
        msg = Message(BinaryData(bytes(range(256)) * (size // 256) + bytes(size % 256)),
                      sequence=SEQUENCE)
        for version in (1, 2):
            wire = encode(msg, version=version)
            assert decode(wire) == msg
            header = len(wire) - size
            enc = per_call(lambda m=msg, v=version: encode(m, version=v), seconds)
            dec = per_call(lambda w=wire: decode(w), seconds)
            results[(size, version)] = enc + dec
            s2c = 100 * (ws_header(len(wire), False) + header) / size
            c2s = 100 * (ws_header(len(wire), True) + header) / size
            print(f"{size:>7} {version:>3} {header:>6} {1 / enc:>10,.0f} {1 / dec:>10,.0f} "
                  f"{(enc + dec) * 1e6:>10.2f} {s2c:>7.1f} {c2s:>7.1f}")

    print()
    print("other paths, 128-byte body, v2 (enc+dec µs per message):")
    from wsproto_tools.codec import Cipher, Deliver, Flags, TextData, counter_nonces

    body = (b'{"symbol":"BTC-USD","price":"64000.10","qty":3,"side":"buy"}' * 3)[:128]
    cipher = Cipher(bytes(32), counter_nonces())
    others = {
        "Deliver (msgpack map)": (Message(Deliver("prices", 1, 123456, body)), None),
        "TextData + COMPRESSED": (
            Message(TextData(body.decode()), sequence=SEQUENCE, flags=Flags.COMPRESSED), None),
        "BinaryData + ENCRYPTED": (
            Message(BinaryData(body), sequence=SEQUENCE, flags=Flags.ENCRYPTED), cipher),
        "BinaryData + session id 7": (
            Message(BinaryData(body), sequence=SEQUENCE, session_id=7), None),
        "BinaryData + random 64-bit session id": (
            Message(BinaryData(body), sequence=SEQUENCE, session_id=0x9E3779B97F4A7C15), None),
        "BinaryData + session and timestamp": (
            Message(BinaryData(body), sequence=SEQUENCE, session_id=42,
                    timestamp=1_700_000_000_000_000), None),
    }
    for name, (msg, key) in others.items():
        wire = encode(msg, cipher=key)
        assert decode(wire, cipher=key) == msg
        enc = per_call(lambda m=msg, k=key: encode(m, cipher=k), seconds / 2)
        dec = per_call(lambda w=wire, k=key: decode(w, cipher=k), seconds / 2)
        print(f"  {name:<36} {(enc + dec) * 1e6:6.2f} µs, {len(wire)} bytes on the wire")

    print()
    print("yardstick: pipelined echo through a bare websockets connection on 127.0.0.1")
    echo = {size: asyncio.run(echo_cost(size, count, 64)) for size in SIZES}
    for size in SIZES:
        codec = results[(size, 2)]
        print(f"{size:>7} B echo {echo[size] * 1e6:7.2f} µs; v2 codec enc+dec "
              f"{codec * 1e6:5.2f} µs = {100 * codec / echo[size]:4.1f}% of one echo "
              f"(v1: {100 * results[(size, 1)] / echo[size]:4.1f}%)")
    ratio = results[(128, 2)] / echo[128]
    verdict = "meets" if ratio <= 0.10 else "MISSES"
    print(f"\ntarget: 128-byte v2 codec enc+dec <= 10% of one echo: {100 * ratio:.1f}% ({verdict})")


if __name__ == "__main__":
    main()
