"""The steps a case is made of: what each sends and what the target must do.

Every action has a name (the ``action`` of a :class:`~.steps.Step`), a
generator of its arguments (plain JSON values, chosen from the case's seeded
random source and the abstract state of the case) and an executor that binds
live values (sequence numbers, session id, tokens, offsets, keys) on a
:class:`~.session.Peer`, sends, and returns the :class:`~.model.Outcome` the
spec demands. Close codes come from the rule book (:class:`Rule`).
"""

from __future__ import annotations

__all__ = ["ACTIONS", "Action", "Context", "Plan"]

import asyncio
import functools
import hashlib
import random
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from wsproto_tools.codec import (
    Acknowledge,
    Authenticate,
    Batch,
    BinaryData,
    Close,
    DeltaCopy,
    DeltaUpdate,
    Error,
    Flags,
    Handshake,
    Heartbeat,
    Message,
    Payload,
    Publish,
    Request,
    Subscribe,
    TextData,
    Unsubscribe,
    WindowUpdate,
    encode,
)
from wsproto_tools.codec.compression import compress
from wsproto_tools.codec.schema import TYPES, PayloadKind, v2_type_byte
from wsproto_tools.engine.auth import client_proof
from wsproto_tools.engine.rules import Rule
from wsproto_tools.fuzz.wsp.model import (
    CLIENT_TYPES,
    SERVER_ONLY_TYPES,
    Outcome,
    field_mutations,
    payload_map,
    valid_value,
)
from wsproto_tools.fuzz.wsp.session import Credentials, Peer

#: Capabilities the fuzzer may offer (S.2); ``ack`` is always offered.
CAPABILITIES = ("batch", "pubsub", "encrypt", "compress", "delta")
TOPICS = 3  # topics of a case: <tag>.<case>.0 .. 2


@dataclass
class Plan:
    """An abstract state while a case is generated (no live values)."""

    auth: str
    caps: tuple[str, ...]
    subscribed: set[int] = field(default_factory=set)
    resumed_once: bool = False
    jwt_subjects: bool = False  # the fuzzer can mint tokens for other subjects
    claims: bool = False  # a JWT session may use some topics only
    token_key: bool = False


@dataclass
class Context:
    """The live state of a running case, shared by its steps."""

    host: str
    port: int
    path: str
    creds: Credentials
    tag: str  # a run-unique prefix for topic names (bound at run time)
    case: int
    timeout: float
    peer: Peer
    auth: str = "hmac"
    offered: tuple[str, ...] = ()
    subject: str = "fuzz-a"
    old_keys: tuple[bytes, bytes] | None = None
    request_id: int = 1_000_000  # above the edge values a mutated Request id takes
    probe_id: int = 0
    publish_id: int = 0
    forbidden: str = ""  # a topic the credential does not allow, when there is one
    old_nonce: bytes = b""  # the Challenge nonce of the previous connection
    may_close: frozenset[int] = frozenset()  # closes recent valid steps allow
    may_close_step: int = 0
    answers_due: list[tuple[int, str]] = field(default_factory=list)
    judged_close: bool = False
    settle: Callable[[], Awaitable[None]] | None = None  # set by the runner
    sent_before: int = 0  # messages sent on the case's earlier connections

    def topic(self, k: int) -> str:
        return f"{self.tag}.{self.case}.{k}"

    def next_request(self) -> int:
        self.request_id += 1
        return self.request_id


Executor = Callable[[Context, dict[str, Any]], Awaitable[Outcome]]
Generator = Callable[[random.Random, Plan], dict[str, Any] | None]


@dataclass(frozen=True)
class Action:
    """One kind of step. ``valid`` steps keep the session going; the others are
    mutations. ``terminal`` ones end it (the target must close)."""

    name: str
    weight: float
    valid: bool
    generate: Generator
    run: Executor
    terminal: bool = False


# ====================================================================== helpers
def _sequenced(payload: Payload) -> bool:
    return type(payload) in (Publish, TextData, BinaryData, DeltaUpdate, Error)


async def _send(ctx: Context, payload: Payload, *, flags: Flags = Flags.NONE) -> bytes:
    peer = ctx.peer
    seq = peer.next_seq() if _sequenced(payload) else 0
    wire = peer.encode(payload, sequence=seq, flags=flags)
    if seq:
        peer.last_sealed = wire
    await peer.send_wire(wire)
    return wire


def _raw_payload(
    ctx: Context, code: int, body: bytes, *, sequence: int = 0, flags: Flags = Flags.NONE
) -> bytes:
    """A message with a hand-made payload under a real (sealed when needed) header."""
    return ctx.peer.raw(code, body, sequence=sequence, flags=int(flags))


def _v2_header(code: int, seq: int, head_bits: int = 0) -> bytes:
    tb = v2_type_byte(code)
    type_bytes = bytes((tb,)) if tb is not None else b"\xc0" + code.to_bytes(2, "little")
    return bytes((0x40 | head_bits,)) + type_bytes + _varint(seq)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


# ====================================================================== valid steps
def _g_publish(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {
        "topic": rng.randrange(TOPICS),
        "size": rng.choice((0, 1, 8, 64, 700, 4096)),
        "ack": rng.random() < 0.5,
        "id": rng.random() < 0.5,
    }


async def _publish(ctx: Context, args: dict[str, Any]) -> Outcome:
    topic = ctx.topic(int(args["topic"]))
    ctx.publish_id += 1
    data = f"{ctx.case}:{ctx.publish_id}:".encode() + b"p" * int(args["size"])
    track = ctx.peer.topics.get(topic)
    if track is not None and not track.lost:
        track.expected.append(data)
    pid = ctx.publish_id if args.get("id") else None
    flags = Flags.ACK_REQUESTED if args.get("ack") else Flags.NONE
    await _send(ctx, Publish(topic, data, pid), flags=flags)
    return Outcome.go_on()


def _g_subscribe(rng: random.Random, plan: Plan) -> dict[str, Any] | None:
    if "pubsub" not in plan.caps:
        return None
    k = rng.randrange(TOPICS)
    plan.subscribed.add(k)
    return {"topic": k, "from": rng.choice(("live", "live", "start", "next", "huge"))}


async def _subscribe(ctx: Context, args: dict[str, Any], reconnected: bool = False) -> Outcome:
    from wsproto_tools.fuzz.wsp.session import TopicTrack

    topic = ctx.topic(int(args["topic"]))
    peer = ctx.peer
    mode = args.get("from", "live")
    old = peer.topics.get(topic)
    if old is not None and (not old.confirmed or mode != "next" or not reconnected):
        # one subscription per topic and connection: a second Subscribe would
        # race the first one's Delivers (the target may answer both ways)
        return Outcome.go_on()
    from_offset: int | None = None
    epoch: int | None = None
    if mode == "start":
        from_offset = 0
    elif mode == "next" and old is not None and old.next_offset is not None:
        from_offset, epoch = old.next_offset, old.epoch
    elif mode == "huge":
        from_offset = 2**63 + 5
    track = TopicTrack(topic)
    if from_offset is not None and old is not None and mode == "next":
        track.expected = list(old.expected)
        track.next_offset, track.epoch = old.next_offset, old.epoch
        # a topic whose content was unknown stays so: what was published while it
        # was (the replay after a ContinuityLost) is not in ``expected``
        track.lost, track.requested = old.lost, old.requested
    elif from_offset is not None:
        track.lost = True  # a replay of unknown content: offsets are checked, not data
        track.requested = from_offset
    peer.topics[topic] = track
    peer.subscribing.add(topic)
    await _send(ctx, Subscribe(topic, from_offset, epoch))
    return Outcome.go_on()


def _g_unsubscribe(rng: random.Random, plan: Plan) -> dict[str, Any] | None:
    if not plan.subscribed:
        return None
    k = rng.choice(sorted(plan.subscribed))
    plan.subscribed.discard(k)
    return {"topic": k}


async def _unsubscribe(ctx: Context, args: dict[str, Any]) -> Outcome:
    topic = ctx.topic(int(args["topic"]))
    peer = ctx.peer
    # wait for the Subscribed first: Delivers may still come until the Unsubscribe is read
    await peer.wait_for(lambda: topic not in peer.subscribing)
    peer.topics.pop(topic, None)
    await _send(ctx, Unsubscribe(topic))
    peer.unsubscribed.add(topic)
    return Outcome.go_on()


def _g_request(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"method": rng.choice(("echo", "echo", "echo", "nope")), "size": rng.randrange(40)}


async def _request(ctx: Context, args: dict[str, Any]) -> Outcome:
    rid = ctx.next_request()
    data = bytes(range(int(args["size"]) % 256))[: int(args["size"])]
    method = str(args["method"])
    ctx.peer.requests[rid] = data if method == "echo" else b"\x00status:1003"
    await _send(ctx, Request(rid, method, data))
    return Outcome.go_on(Rule.REQUEST_ANSWER)


def _g_data(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"text": rng.random() < 0.5, "size": rng.choice((0, 5, 300))}


async def _data(ctx: Context, args: dict[str, Any]) -> Outcome:
    size = int(args["size"])
    if args.get("text"):
        text = ("é" + "t" * size)[: max(size, 1)]
        ctx.peer.expect_echo.append(text.encode())
        await _send(ctx, TextData(text))
    else:
        data = bytes(i % 251 for i in range(size))
        ctx.peer.expect_echo.append(data)
        await _send(ctx, BinaryData(data))
    return Outcome.go_on()


def _g_heartbeat(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {}


async def _heartbeat(ctx: Context, args: dict[str, Any]) -> Outcome:
    ctx.probe_id += 1
    ctx.peer.probes.add(ctx.probe_id)
    await _send(ctx, Heartbeat(ctx.probe_id, False))
    return Outcome.go_on(Rule.HEARTBEAT_ANSWER)


def _g_window(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"window": rng.choice((1, 16, 1024, 2**32 - 1))}


async def _window(ctx: Context, args: dict[str, Any]) -> Outcome:
    await _send(ctx, WindowUpdate(int(args["window"])))
    return Outcome.go_on()


def _g_delta(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {
        "base": rng.choice((0, 1, 2**32)),
        "copy": rng.choice(([0, 0], [0, 4], [2**32, 7], [5, 2**63])),
    }


async def _delta(ctx: Context, args: dict[str, Any]) -> Outcome:
    """A DeltaUpdate with a base the target never had or copies out of any range:
    a receiver that applies deltas must refuse it (1002), one that does not
    must at least not choke on it."""
    copy = [int(v) for v in args["copy"]]
    delta = DeltaUpdate(
        "ch", int(args["base"]), int(args["base"]) + 1, (DeltaCopy(copy[0], copy[1]), b"x"), 0
    )
    await _send(ctx, delta)
    if "delta" not in ctx.peer.granted:
        return Outcome.codes(4007, 1002, may_continue=True, rule=Rule.FLAG_NEGOTIATED)
    return Outcome.codes(1002, 1007, may_continue=True)


def _g_batch(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"n": rng.choice((1, 2, 10))}


async def _batch(ctx: Context, args: dict[str, Any]) -> Outcome:
    peer = ctx.peer
    items = []
    for _ in range(int(args["n"])):
        rid = ctx.next_request()
        peer.requests[rid] = b"b"
        items.append(Message(Request(rid, "echo", b"b")))
    await peer.send_wire(peer.encode(Batch(tuple(items))))
    if "batch" not in peer.granted:
        peer.requests.clear()
        return Outcome.close(Rule.BATCH_NEGOTIATED)
    return Outcome.go_on()


def _g_compressed(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"size": rng.choice((10, 3000))}


async def _compressed(ctx: Context, args: dict[str, Any]) -> Outcome:
    peer = ctx.peer
    rid = ctx.next_request()
    data = b"z" * int(args["size"])
    body = compress(msgpack.packb({"id": rid, "method": "echo", "data": data}))
    wire = _raw_payload(ctx, int(Request.TYPE), body, flags=Flags.COMPRESSED)
    await peer.send_wire(wire)
    if "compress" not in peer.granted:
        return Outcome.close(Rule.FLAG_NEGOTIATED)
    peer.requests[rid] = data
    return Outcome.go_on()


def _g_flood(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"n": rng.choice((50, 200, 1000)), "kind": rng.choice(("request", "publish"))}


async def _flood(ctx: Context, args: dict[str, Any]) -> Outcome:
    """Many valid messages in one write: served, or refused with 4004 (rate)."""
    peer = ctx.peer
    wires = []
    for _ in range(int(args["n"])):
        if args.get("kind") == "publish":
            ctx.publish_id += 1
            topic = ctx.topic(2)
            data = f"{ctx.case}:{ctx.publish_id}:f".encode()
            track = peer.topics.get(topic)
            if track is not None and not track.lost:
                track.expected.append(data)
            wires.append(peer.encode(Publish(topic, data), sequence=peer.next_seq()))
        else:
            rid = ctx.next_request()
            peer.requests[rid] = b"f"
            wires.append(peer.encode(Request(rid, "echo", b"f")))
    await peer.send_wire(*wires)
    return Outcome.codes(4004, 4005, may_continue=True)


def _g_slow(rng: random.Random, plan: Plan) -> dict[str, Any] | None:
    if "pubsub" not in plan.caps:
        return None
    plan.subscribed.add(1)
    return {"n": rng.choice((16, 64)), "size": rng.choice((1024, 32768))}


async def _slow(ctx: Context, args: dict[str, Any]) -> Outcome:
    """Subscribe, stop reading, publish a lot: the target buffers within its
    limit or closes with 4005; it never grows without bound."""
    peer = ctx.peer
    topic = ctx.topic(1)
    if topic not in peer.topics:
        await _subscribe(ctx, {"topic": 1, "from": "live"})
        await peer.wait_for(lambda: topic not in peer.subscribing)
    peer.paused = True
    try:
        for _ in range(int(args["n"])):
            ctx.publish_id += 1
            data = f"{ctx.case}:{ctx.publish_id}:".encode() + b"s" * int(args["size"])
            track = peer.topics.get(topic)
            if track is not None and not track.lost:
                track.expected.append(data)
            await peer.send_wire(peer.encode(Publish(topic, data), sequence=peer.next_seq()))
        await asyncio.sleep(0.05)
    finally:
        peer.paused = False
        peer.resume_reading()
    return Outcome.codes(4005, may_continue=True)


def _g_unknown(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"code": rng.choice((0x0040, 0x00FF, 0x0150, 0x02FE, 0x7777, 0xFFFF))}


async def _unknown(ctx: Context, args: dict[str, Any]) -> Outcome:
    await ctx.peer.send_wire(_raw_payload(ctx, int(args["code"]), b"\x80"))
    return Outcome.go_on(Rule.UNKNOWN_TYPE, answer="error:1003")


def _g_dup(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {}


async def _duplicate(ctx: Context, args: dict[str, Any]) -> Outcome:
    """The last sequenced message again, byte for byte (sealed: a replayed nonce)."""
    peer = ctx.peer
    if peer.last_sealed is None:
        await _publish(ctx, {"topic": 0, "size": 3, "ack": True, "id": True})
    assert peer.last_sealed is not None
    await peer.send_wire(peer.last_sealed)
    return Outcome.go_on(Rule.SEQUENCE_DUPLICATE)


def _g_ack_back(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {}


async def _ack_backwards(ctx: Context, args: dict[str, Any]) -> Outcome:
    await _send(ctx, Acknowledge(0))
    return Outcome.go_on(Rule.ACK_BACKWARDS)


def _g_reconnect(rng: random.Random, plan: Plan) -> dict[str, Any] | None:
    kinds = ["resume", "resume", "forged", "future", "fresh"]
    if plan.jwt_subjects and plan.auth == "jwt":
        kinds.append("foreign")
    if plan.token_key:
        kinds.append("expired")
    kind = rng.choice(kinds)
    plan.resumed_once = True
    return {"kind": kind, "drop": rng.random() < 0.5}


async def _reconnect(ctx: Context, args: dict[str, Any]) -> Outcome:
    from wsproto_tools.fuzz.wsp import handshake

    return await handshake.reconnect(ctx, str(args["kind"]), bool(args.get("drop")))


# ====================================================================== mutations (terminal)
def _g_none(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {}


async def _garbage(ctx: Context, args: dict[str, Any]) -> Outcome:
    """Bytes that are no wsp header: a v1 magic under v2, a reserved bit, a
    truncated header, an unknown first byte."""
    choice = int(args.get("kind", 0)) % 4
    body = [
        b"\xd1\xc0\x01\x00",  # v1's magic on a v2 connection
        _v2_header(int(Request.TYPE), 0, 0x08) + msgpack.packb({"id": 1, "method": "echo"}),
        b"\x40",  # a head byte and nothing else
        b"\x00\x01\x02",
    ][choice]
    if ctx.peer.version == 1:
        body = b"\xd1\xc0\x09" + b"\x00" * 3
    await ctx.peer.send_wire(body)
    return Outcome.close(Rule.HEADER, 1007) if ctx.peer.send_cipher else Outcome.close(Rule.HEADER)


def _g_garbage(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"kind": rng.randrange(4)}


async def _text_frame(ctx: Context, args: dict[str, Any]) -> Outcome:
    await ctx.peer.send_wire(b"hello", opcode=1)
    return Outcome.close(Rule.BINARY_ONLY)


def _g_field(rng: random.Random, plan: Plan) -> dict[str, Any] | None:
    classes = [c for c in CLIENT_TYPES if c.KIND is PayloadKind.MSGPACK]
    cls = rng.choice(classes)
    mutations = field_mutations(cls)
    if not mutations:
        return None
    return {"type": TYPES[int(cls.TYPE)].name, "mutation": rng.randrange(len(mutations))}


async def _field(ctx: Context, args: dict[str, Any]) -> Outcome:
    """A valid message of a client type with one field mutated by its kind."""
    cls = next(spec.cls for spec in TYPES.values() if spec.name == args["type"])
    mutations = field_mutations(cls)
    mutation = mutations[int(args["mutation"]) % len(mutations)]
    payload = _example(ctx, cls)
    body = payload_map(payload)
    if mutation.absent:
        body.pop(mutation.field, None)
    else:
        body[mutation.field] = mutation.value
    if cls is Heartbeat and body.get("reply") is not True:
        probe = body.get("id")
        ctx.peer.loose_probes.add(probe if isinstance(probe, int) else 0)
    seq = ctx.peer.next_seq() if _sequenced(payload) else 0
    raw = msgpack.packb(body, use_bin_type=True)
    await ctx.peer.send_wire(_raw_payload(ctx, int(cls.TYPE), raw, sequence=seq))
    outcome = mutation.outcome
    if outcome.may_continue and seq:
        # the message may have been refused: its sequence number is then not acked
        ctx.peer.maybe_refused = seq
    if outcome.may_continue and cls is Request and not mutation.absent:
        rid = body.get("id")
        if isinstance(rid, int) and not isinstance(rid, bool):
            ctx.peer.loose_requests.add(rid)
    if cls is Subscribe and outcome.may_continue:
        # a Subscribe the target may take in any way: its topic's Delivers prove nothing
        ctx.peer.topics.pop(ctx.topic(0), None)
        ctx.peer.subscribing.discard(ctx.topic(0))
        ctx.peer.ignored.add(ctx.topic(0))
    return outcome


def _example(ctx: Context, cls: type[Payload]) -> Payload:
    """A valid payload of a client type for this case."""
    rng = random.Random(ctx.case)
    if cls is Publish:
        return Publish(ctx.topic(0), b"m")
    if cls is Subscribe:
        return Subscribe(ctx.topic(0))
    if cls is Unsubscribe:
        return Unsubscribe(ctx.topic(0))
    if cls is Request:
        return Request(ctx.next_request() + 10_000, "echo", b"e")
    if cls is Acknowledge:
        return Acknowledge(ctx.peer.recv_seq)
    if cls is Heartbeat:
        return Heartbeat(0, False)
    if cls is WindowUpdate:
        return WindowUpdate(64)
    if cls is DeltaUpdate:
        return DeltaUpdate("ch", 0, 1, (b"x",), 0)
    from wsproto_tools.codec.schema import payload_fields

    values = {name: valid_value(spec.kind, rng) for name, spec in payload_fields(cls)}
    return cls(**values)


def _g_wrong_side(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"type": TYPES[int(rng.choice(SERVER_ONLY_TYPES).TYPE)].name}


async def _wrong_side(ctx: Context, args: dict[str, Any]) -> Outcome:
    """A server-only type (or the retired Resume) from the client: rules 25 and 26."""
    cls = next(spec.cls for spec in TYPES.values() if spec.name == args["type"])
    from wsproto_tools.codec.schema import Resume, payload_fields

    rng = random.Random(1)
    values = {name: valid_value(spec.kind, rng) for name, spec in payload_fields(cls)}
    if "topic" in values:
        values["topic"] = ctx.topic(0)
    body = msgpack.packb(values, use_bin_type=True)
    await ctx.peer.send_wire(_raw_payload(ctx, int(cls.TYPE), body))
    return Outcome.close(Rule.RESUME_RETIRED if cls is Resume else Rule.DIRECTION)


async def _handshake_again(ctx: Context, args: dict[str, Any]) -> Outcome:
    await _send(ctx, Handshake(("ack",), "fuzz", ctx.auth, None, b"\x01" * 16))
    return Outcome.close(Rule.HANDSHAKE_ONCE)


async def _authenticate_again(ctx: Context, args: dict[str, Any]) -> Outcome:
    peer = ctx.peer
    proof = client_proof(ctx.creds.secret or b"x", peer.server_nonce, peer.client_nonce)
    await _send(ctx, Authenticate("hmac", proof))
    return Outcome.close(Rule.AUTHENTICATE, 4001)


async def _seq_gap(ctx: Context, args: dict[str, Any]) -> Outcome:
    peer = ctx.peer
    peer.sent_seq += 2
    await peer.send_wire(peer.encode(Publish(ctx.topic(0), b"gap"), sequence=peer.sent_seq))
    return Outcome.close(Rule.SEQUENCE_GAP)


async def _ack_future(ctx: Context, args: dict[str, Any]) -> Outcome:
    await _send(ctx, Acknowledge(ctx.peer.recv_seq + 1 + int(args.get("ahead", 0))))
    return Outcome.close(Rule.ACK_RANGE)


def _g_ahead(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"ahead": rng.choice((0, 1, 1000, 2**32))}


async def _stray_reply(ctx: Context, args: dict[str, Any]) -> Outcome:
    await _send(ctx, Heartbeat(999_999, True))
    return Outcome.close(Rule.HEARTBEAT_REPLY)


async def _session_id(ctx: Context, args: dict[str, Any]) -> Outcome:
    peer = ctx.peer
    wire = encode(
        Message(Request(ctx.next_request(), "echo"), session_id=peer.session_id + 1),
        version=peer.version,
        cipher=peer.send_cipher,
    )
    if peer.send_cipher is not None:
        wire = encode(
            Message(
                Request(ctx.request_id, "echo"),
                session_id=peer.session_id + 1,
                flags=Flags.ENCRYPTED,
            ),
            version=peer.version,
            cipher=peer.send_cipher,
        )
    await peer.send_wire(wire)
    return Outcome.close(Rule.SESSION_ID)


def _g_flag(rng: random.Random, plan: Plan) -> dict[str, Any] | None:
    missing = [f for f in ("compress", "encrypt") if f not in plan.caps]
    if not missing:
        return None
    return {"flag": rng.choice(missing)}


async def _flag(ctx: Context, args: dict[str, Any]) -> Outcome:
    """A flag the session did not negotiate (rule 22)."""
    peer = ctx.peer
    if args["flag"] in peer.granted:
        return Outcome.go_on()
    flag = Flags.COMPRESSED if args["flag"] == "compress" else Flags.ENCRYPTED
    body = msgpack.packb({"id": ctx.next_request(), "method": "echo"})
    if flag is Flags.COMPRESSED:
        body = compress(body)
    await peer.send_wire(
        _v2_header(int(Request.TYPE), 0, int(flag)) + body
        if peer.version == 2
        else _raw_payload(ctx, int(Request.TYPE), body, flags=flag)
    )
    return Outcome.close(Rule.FLAG_NEGOTIATED)


def _g_encrypted(rng: random.Random, plan: Plan) -> dict[str, Any] | None:
    if "encrypt" not in plan.caps:
        return None
    return {"kind": rng.choice(("clear", "wrong-key", "old-key", "truncated"))}


async def _encrypted(ctx: Context, args: dict[str, Any]) -> Outcome:
    """Encryption broken: a message in clear, sealed with a wrong or an earlier
    connection's key, or shorter than nonce + tag (rules 18, 24)."""
    from wsproto_tools.codec import Cipher, counter_nonces

    peer = ctx.peer
    if peer.send_cipher is None:
        return Outcome.go_on()
    kind = args["kind"]
    request = Request(ctx.next_request(), "echo", b"k")
    if kind == "clear":
        await peer.send_wire(encode(Message(request), version=peer.version))
        return Outcome.close(Rule.RESPONSE_IN_CLEAR)
    if kind == "truncated":
        await peer.send_wire(
            peer.raw(int(Request.TYPE), b"\x00" * 20, flags=Flags.ENCRYPTED, seal=False)
        )
        return Outcome.close(Rule.DECRYPTION)
    key = ctx.old_keys[0] if kind == "old-key" and ctx.old_keys else hashlib.sha256(b"k").digest()
    cipher = Cipher(key, counter_nonces(b"wspc", 0))
    wire = encode(Message(request, flags=Flags.ENCRYPTED), version=peer.version, cipher=cipher)
    await peer.send_wire(wire)
    return Outcome.close(Rule.DECRYPTION)


def _g_bomb(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"kind": rng.choice(("flag", "flag", "bad-deflate", "pmd")), "mib": rng.choice((2, 64))}


async def _bomb(ctx: Context, args: dict[str, Any]) -> Outcome:
    """A compression bomb: a COMPRESSED payload or a permessage-deflate message
    that inflates far past the limits (1009), or an invalid DEFLATE stream (1007)."""
    peer = ctx.peer
    size = int(args["mib"]) << 20
    kind = args["kind"]
    if kind == "pmd":
        if not peer.deflate:
            kind = "flag"
        else:
            stream = _zeros_deflated(size >> 20, raw=True)
            await peer.send_frames(peer.frame(stream, rsv1=True))
            return Outcome.close(Rule.LIMITS)
    if "compress" not in peer.granted:
        await peer.send_wire(peer.raw(int(Publish.TYPE), b"\x78", flags=Flags.COMPRESSED))
        return Outcome.close(Rule.FLAG_NEGOTIATED)
    if kind == "bad-deflate":
        wire = _raw_payload(ctx, int(Request.TYPE), b"\xff\xfe\xfd", flags=Flags.COMPRESSED)
        await peer.send_wire(wire)
        return Outcome.close(Rule.PAYLOAD)
    wire = _raw_payload(
        ctx, int(Request.TYPE), _zeros_deflated(size >> 20, raw=False), flags=Flags.COMPRESSED
    )
    await peer.send_wire(wire)
    return Outcome.close(Rule.LIMITS, 1007)


@functools.lru_cache(maxsize=8)
def _zeros_deflated(mib: int, *, raw: bool) -> bytes:
    """``mib`` MiB of zeros deflated: a permessage-deflate message (raw DEFLATE,
    its sync-flush tail removed, RFC 7692 7.2.1) or a zlib stream (the
    COMPRESSED flag's, section 5.1) inside a Request payload's msgpack."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15 if raw else 15)
    head = b"" if raw else msgpack.packb({"id": 1, "method": "echo", "data": b""})[:-1]
    chunk = b"\x00" * (1 << 20)
    parts = [deflater.compress(head)] + [deflater.compress(chunk) for _ in range(mib)]
    if raw:
        return b"".join(parts) + deflater.flush(zlib.Z_SYNC_FLUSH)[:-4]
    return b"".join(parts) + deflater.flush()


def _g_topic(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {
        "kind": rng.choice(("long", "empty", "forbidden", "forbidden")),
        "op": rng.choice(("sub", "pub")),
        "from": rng.choice((None, None, 0, 1)),
    }


async def _topic(ctx: Context, args: dict[str, Any]) -> Outcome:
    """Topic names past the limits (S.7: 1-256 characters, else 1008) or outside
    the credential's topics (rule 34, 4003), subscribed live or from an offset."""
    from fnmatch import fnmatchcase

    kind = args["kind"]
    sub = args.get("op") == "sub"
    start = args.get("from")
    jwt = ctx.auth == "jwt"
    patterns = (ctx.creds.sub if sub else ctx.creds.pub) if jwt else None
    if kind.startswith("forbidden"):
        if (
            not ctx.forbidden
            or patterns is None
            or any(fnmatchcase(ctx.forbidden, p) for p in patterns)
        ):
            kind = "long"
        else:
            topic = ctx.forbidden
            if sub:
                await _send(ctx, Subscribe(topic, start, None if start is None else 0))
            else:
                await _send(ctx, Publish(topic, b"forbidden"))
            return Outcome.close(Rule.TOPIC_ALLOWED)
    prefix = f"{ctx.tag}." if patterns is not None else ""
    topic = prefix + "t" * (257 - len(prefix)) if kind == "long" else ""
    if sub:
        await _send(ctx, Subscribe(topic, start))
    else:
        await _send(ctx, Publish(topic, b"x"))
    if kind != "long" and patterns is not None:
        return Outcome.codes(1008, 4003)  # "" is no topic the claim names either
    return Outcome.codes(1008)


def _g_forbidden(rng: random.Random, plan: Plan) -> dict[str, Any] | None:
    if plan.auth != "jwt" or not plan.claims:
        return None
    return {"kind": "forbidden", "op": rng.choice(("sub", "pub")), "from": rng.choice((None, 0, 1))}


def _g_oversize(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"extra": rng.choice((1, 4096))}


async def _oversize(ctx: Context, args: dict[str, Any]) -> Outcome:
    """One message just past the target's message size limit (1 MiB by default)."""
    data = b"o" * ((1 << 20) + int(args["extra"]))
    await _send(ctx, BinaryData(data))
    return Outcome.close(Rule.LIMITS)


def _g_close(rng: random.Random, plan: Plan) -> dict[str, Any]:
    return {"code": rng.choice((1000, 1001, 4000, 4999))}


async def _close(ctx: Context, args: dict[str, Any]) -> Outcome:
    """A wsp Close: the target answers a Close with the same code (rule 42)."""
    await _send(ctx, Close(int(args["code"]), "fuzz"))
    return Outcome(frozenset({int(args["code"])}), False, int(Rule.CLOSE_ANSWER))


def _g_nested_batch(rng: random.Random, plan: Plan) -> dict[str, Any] | None:
    return {} if "batch" in plan.caps else None


async def _nested_batch(ctx: Context, args: dict[str, Any]) -> Outcome:
    peer = ctx.peer
    inner = encode(Message(Request(ctx.next_request(), "echo")), version=peer.version)
    item = encode(Message(Batch((Message(Request(1, "echo")),))), version=peer.version)
    body = _varint(len(item)) + item + _varint(len(inner)) + inner
    from wsproto_tools.codec.schema import MessageType

    await peer.send_wire(_raw_payload(ctx, int(MessageType.BATCH), body))
    return Outcome.close(Rule.HEADER, 1007)


def _g_hmac_twice(rng: random.Random, plan: Plan) -> dict[str, Any] | None:
    return {} if plan.auth == "hmac" else None


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        # valid steps
        Action("publish", 8, True, _g_publish, _publish),
        Action("subscribe", 4, True, _g_subscribe, _subscribe),
        Action("unsubscribe", 1, True, _g_unsubscribe, _unsubscribe),
        Action("request", 4, True, _g_request, _request),
        Action("data", 3, True, _g_data, _data),
        Action("heartbeat", 2, True, _g_heartbeat, _heartbeat),
        Action("window", 1, True, _g_window, _window),
        Action("batch", 1.5, True, _g_batch, _batch),
        Action("compressed", 1.5, True, _g_compressed, _compressed),
        Action("flood", 0.7, True, _g_flood, _flood),
        Action("slow-reader", 0.3, True, _g_slow, _slow),
        Action("reconnect", 1.5, True, _g_reconnect, _reconnect),
        # mutations the target must survive without closing
        Action("unknown-type", 1, False, _g_unknown, _unknown),
        Action("duplicate", 1, False, _g_dup, _duplicate),
        Action("ack-backwards", 0.5, False, _g_ack_back, _ack_backwards),
        Action("delta", 1, False, _g_delta, _delta),
        # mutations that end the session
        Action("field", 6, False, _g_field, _field, terminal=True),
        Action("garbage", 1, False, _g_garbage, _garbage, terminal=True),
        Action("text-frame", 0.5, False, _g_none, _text_frame, terminal=True),
        Action("wrong-side", 1, False, _g_wrong_side, _wrong_side, terminal=True),
        Action("handshake-again", 0.5, False, _g_none, _handshake_again, terminal=True),
        Action("authenticate-again", 0.5, False, _g_hmac_twice, _authenticate_again, terminal=True),
        Action("sequence-gap", 1, False, _g_none, _seq_gap, terminal=True),
        Action("ack-future", 1, False, _g_ahead, _ack_future, terminal=True),
        Action("stray-reply", 0.5, False, _g_none, _stray_reply, terminal=True),
        Action("session-id", 0.5, False, _g_none, _session_id, terminal=True),
        Action("flag", 1, False, _g_flag, _flag, terminal=True),
        Action("encrypted", 1, False, _g_encrypted, _encrypted, terminal=True),
        Action("bomb", 1, False, _g_bomb, _bomb, terminal=True),
        Action("topic", 1, False, _g_topic, _topic, terminal=True),
        Action("forbidden-topic", 1.5, False, _g_forbidden, _topic, terminal=True),
        Action("oversize", 0.3, False, _g_oversize, _oversize, terminal=True),
        Action("close", 0.5, False, _g_close, _close, terminal=True),
        Action("nested-batch", 0.3, False, _g_nested_batch, _nested_batch, terminal=True),
    )
}
