"""The handshake of a case (S.2) and its mutations, and resuming on a new connection.

A case's first step is always ``hello``: the Challenge is read, then the
Handshake (and, for hmac, the Authenticate) is sent with real credentials, or
with one thing wrong (a replayed or wrong proof, a short nonce, an unknown
method or capability, the order broken, a forged or expired JWT...). The
``reconnect`` step drops or closes the connection and resumes on a new one,
with the session's token or with a forged, expired or another identity's one.
"""

from __future__ import annotations

__all__ = ["HELLO_VARIANTS", "check_response", "hello", "hello_args", "reconnect"]

import random
import time
from typing import Any

from wsproto_tools.codec import Authenticate, Handshake
from wsproto_tools.engine.auth import client_proof, server_proof
from wsproto_tools.engine.keys import issue_resume_token
from wsproto_tools.engine.rules import Rule
from wsproto_tools.fuzz.wsp.model import Outcome, field_mutations, payload_map
from wsproto_tools.fuzz.wsp.session import Peer

#: hello variants: the valid one first, then one mutation each.
HELLO_VARIANTS = (
    "ok",
    "wrong-proof",
    "replayed-proof",
    "short-nonce",
    "unknown-method",
    "unknown-capability",
    "authenticate-first",
    "data-first",
    "handshake-twice",
    "jwt-forged",
    "jwt-expired",
    "jwt-no-exp",
    "authenticate-with-jwt",
    "field",
)


def hello_args(rng: random.Random, methods: tuple[str, ...], mint: bool) -> dict[str, Any]:
    """The arguments of a case's ``hello`` step: method, capabilities, variant."""
    auth = rng.choice(methods)
    caps = sorted(
        {c for c in ("batch", "pubsub", "encrypt", "compress", "delta") if rng.random() < 0.6}
        | {"pubsub"}
    )
    if auth != "hmac":
        caps = [c for c in caps if c != "encrypt"]  # keys come from the hmac secret only
    variant = "ok"
    if rng.random() < 0.25:
        pool = [v for v in HELLO_VARIANTS[1:] if _fits(v, auth, mint)]
        variant = rng.choice(pool)
    args: dict[str, Any] = {
        "auth": auth,
        "caps": caps,
        "variant": variant,
        "version": 1 if rng.random() < 0.1 else 2,
    }
    if variant == "field":
        args["mutation"] = rng.randrange(len(field_mutations(Handshake)))
    if variant == "data-first":  # any client type the state table refuses before acceptance
        from wsproto_tools.codec.schema import TYPES
        from wsproto_tools.engine.session import HANDSHAKE_TYPES
        from wsproto_tools.fuzz.wsp.model import CLIENT_TYPES

        early = [c for c in CLIENT_TYPES if c not in HANDSHAKE_TYPES]
        args["early"] = TYPES[int(rng.choice(early).TYPE)].name
    return args


def _fits(variant: str, auth: str, mint: bool) -> bool:
    if variant in ("wrong-proof", "replayed-proof", "short-nonce", "authenticate-first"):
        return auth == "hmac"
    if variant in ("jwt-forged", "authenticate-with-jwt"):
        return auth == "jwt"
    if variant in ("jwt-expired", "jwt-no-exp"):
        return auth == "jwt" and mint
    return True


def _token(ctx: Any, subject: str, **claims: Any) -> str:
    creds = ctx.creds
    if creds.mint is not None:
        return str(creds.mint(subject, **claims))
    assert creds.token is not None
    return str(creds.token)


async def hello(
    ctx: Any,
    args: dict[str, Any],
    *,
    resume: bytes | None = None,
    last_received: int | None = None,
    subject: str | None = None,
) -> Outcome:
    """Connect, read the Challenge and authenticate by ``args`` (see module doc)."""
    peer: Peer = ctx.peer
    await peer.open(
        version=int(args.get("version", 2)),
        extensions="permessage-deflate" if args.get("deflate") else None,
    )
    if not await peer.wait_for(lambda: bool(peer.server_nonce)):
        return Outcome.codes()  # judged by the runner: no Challenge
    auth = str(args["auth"])
    ctx.auth = auth
    if auth == "jwt" and ctx.creds.sub is not None:  # only a JWT carries topic claims
        from fnmatch import fnmatchcase

        patterns = ctx.creds.sub
        peer.allowed_sub = lambda topic: any(fnmatchcase(topic, p) for p in patterns)
    caps = tuple(["ack", *args["caps"]])
    ctx.offered = caps
    variant = str(args.get("variant", "ok"))
    peer.client_nonce = random.Random(f"{ctx.case}:{peer.server_nonce.hex()}").randbytes(16)
    if variant == "short-nonce":
        peer.client_nonce = peer.client_nonce[:8]
    token: str | None = None
    subject = subject or ctx.subject
    if auth == "jwt":
        if variant == "jwt-expired":
            token = _token(ctx, subject, exp=int(time.time()) - 3600)
        elif variant == "jwt-no-exp":
            token = _token(ctx, subject, exp=None)
        else:
            token = _token(ctx, subject)
        if variant == "jwt-forged":
            head, claims, sig = token.split(".")
            token = f"{head}.{claims}.{sig[:-4]}{'AAAA' if not sig.endswith('AAAA') else 'BBBB'}"
    if variant == "unknown-method":
        auth = "kerberos"
    offered = caps + (("teleport",) if variant == "unknown-capability" else ())
    hs = Handshake(
        offered,
        "wsp-fuzz",
        None if auth == "none" else auth,
        token,
        peer.client_nonce,
        resume,
        last_received,
    )
    wires: list[bytes] = []
    if variant == "field":
        import msgpack

        mutation = field_mutations(Handshake)[int(args["mutation"])]
        body = payload_map(hs)
        if mutation.absent:
            body.pop(mutation.field, None)
        else:
            body[mutation.field] = mutation.value
        wires.append(peer.raw(int(Handshake.TYPE), msgpack.packb(body, use_bin_type=True)))
    else:
        wires.append(peer.encode(hs))
    proof = b""
    if auth == "hmac" or variant == "authenticate-with-jwt":
        secret = ctx.creds.secret or b""
        nonce = peer.server_nonce
        if variant == "replayed-proof":
            nonce = ctx.old_nonce or bytes(16)  # a proof made for another Challenge
        proof = client_proof(secret, nonce, peer.client_nonce)
        if variant == "wrong-proof":
            proof = bytes(b ^ 0x55 for b in proof)
        wires.append(peer.encode(Authenticate("hmac", proof)))
    if variant == "authenticate-first":
        wires.reverse()
    if variant == "data-first":  # before the Handshake, or between it and Authenticate
        from wsproto_tools.codec.schema import TYPES
        from wsproto_tools.fuzz.wsp.actions import _example, _sequenced

        name = str(args.get("early", "Publish"))
        cls = next(spec.cls for spec in TYPES.values() if spec.name == name)
        payload = _example(ctx, cls)
        early = peer.encode(payload, sequence=1 if _sequenced(payload) else 0)
        wires.insert(1 if auth == "hmac" else 0, early)
    if variant == "handshake-twice":
        wires.insert(1, wires[0])
    await peer.send_wire(*wires)
    ctx.old_nonce = peer.server_nonce
    return _hello_outcome(variant, auth, args)


def _hello_outcome(variant: str, auth: str, args: dict[str, Any]) -> Outcome:
    if variant == "ok":
        return Outcome.go_on()
    table = {
        "wrong-proof": Outcome.close(Rule.HMAC_PROOF),
        "replayed-proof": Outcome.close(Rule.HMAC_PROOF),
        "short-nonce": Outcome.close(Rule.HMAC_PROOF),
        "unknown-method": Outcome.close(Rule.AUTH_METHOD),
        "unknown-capability": Outcome.close(Rule.CAPABILITY_KNOWN),
        "authenticate-first": Outcome.close(Rule.AUTHENTICATE),
        "data-first": Outcome.close(Rule.NOT_YET_ACTIVE),
        "handshake-twice": Outcome.close(Rule.HANDSHAKE_ONCE),
        "jwt-forged": Outcome.close(Rule.JWT),
        "jwt-expired": Outcome.close(Rule.JWT),
        "jwt-no-exp": Outcome.close(Rule.JWT),
        "authenticate-with-jwt": Outcome.close(Rule.AUTHENTICATE, 4001),
    }
    if variant == "field":
        mutation = field_mutations(Handshake)[int(args["mutation"])]
        return mutation.outcome
    return table[variant]


def check_response(ctx: Any) -> list[str]:
    """Security checks of an accepted handshake: the server's proof (hmac)."""
    peer: Peer = ctx.peer
    problems: list[str] = []
    if ctx.auth == "hmac" and ctx.creds.secret is not None:
        want = server_proof(ctx.creds.secret, peer.server_nonce, peer.client_nonce)
        if getattr(peer, "_server_proof", None) != want:
            problems.append("the HandshakeResponse's server_proof is wrong or missing")
    if not set(peer.granted) <= set(ctx.offered):
        problems.append(
            f"capabilities granted but not offered: {sorted(set(peer.granted) - set(ctx.offered))}"
        )
    return problems


async def reconnect(ctx: Any, kind: str, drop: bool) -> Outcome:
    """Leave this connection and resume the session on a new one (see module doc)."""
    from wsproto_tools.fuzz.wsp.session import Peer as PeerClass

    old: Peer = ctx.peer
    if old.closed is not None or not old.answered:
        return Outcome.go_on()
    # let what was sent be answered first, so that the resume has nothing to guess
    if ctx.settle is not None:
        await ctx.settle()
    if drop:
        await old.close()
    else:  # a WebSocket close without a wsp Close: the connection ends, not the session
        from wsproto_tools.ws import encode_close

        await old.send_frames(old.frame(encode_close(1001, ""), opcode=0x8))
        await old.wait_for(lambda: old.closed is not None, 1.0)
        await old.close()
    token = old.resume_token or b""
    last = old.recv_seq
    subject = ctx.subject
    expect_resume = True
    if kind == "forged":
        token = token[:-3] + bytes(b ^ 0x01 for b in token[-3:]) if token else b"forged"
        expect_resume = False
    elif kind == "future":
        last = old.recv_seq + 7
    elif kind == "foreign" and ctx.auth == "jwt" and ctx.creds.mint is not None:
        # authenticates as another subject, with this session's token
        subject = "fuzz-b" if ctx.subject == "fuzz-a" else "fuzz-a"
        expect_resume = False
    elif kind == "expired" and ctx.creds.token_key is not None:
        key = ctx.creds.token_key
        now = time.time()
        identity = "hmac" if ctx.auth == "hmac" else f"jwt:{ctx.subject}"
        token = issue_resume_token(key, old.session_id, now - 7200, 60, identity).encode()
        expect_resume = False
    elif kind == "fresh":
        token, expect_resume = b"", False
    new = PeerClass(old.host, old.port, old.path, timeout=old.timeout, ssl=old.ssl)
    new.trace, new.connections = old.trace, old.connections
    new.conn_no = old.conn_no + 1
    ctx.sent_before += old.sent_messages
    ctx.peer = new
    ctx.old_keys = old.keys
    args = {
        "auth": ctx.auth,
        "caps": [c for c in ctx.offered if c != "ack"],
        "variant": "ok",
        "version": old.version,
    }
    await hello(
        ctx, args, resume=token or None, last_received=last if token else None, subject=subject
    )
    ctx.subject = subject  # the identity of the session from now on
    ok = await new.wait_for(lambda: new.answered)
    if kind == "future" and token:
        return Outcome.close(Rule.RESUME_LAST_RECEIVED)
    if not ok:
        return Outcome.go_on()  # judged by the runner (no answer)
    problems = check_response(ctx)
    resumed_same = bool(new.resumed) and new.session_id == old.session_id
    if expect_resume and not resumed_same and old.wsp_close is None:
        if kind == "resume" and old.closed is not None and old.closed.code not in (1006, 1001):
            pass  # a session the target ended cannot be resumed
        else:
            new.notes.append(
                f"a valid resume token got resumed={new.resumed}, session "
                f"{new.session_id} (was {old.session_id})"
            )
    if not expect_resume and (new.resumed or new.session_id == old.session_id):
        new.security.append(
            f"a {kind} resume token resumed session {old.session_id} "
            f"(resumed={new.resumed}, session {new.session_id})"
        )
    new.security.extend(problems)
    if ctx.auth == "hmac" and "encrypt" in new.granted and ctx.creds.secret:
        new.start_encryption(ctx.creds.secret)
    new.sent_seq = old.sent_seq if resumed_same else 0
    new.last_sealed = None
    new.recv_seq = old.recv_seq if resumed_same else 0
    new.acked = new.server_last_received if resumed_same else 0
    # subscriptions belong to a connection: subscribe again where we stopped
    from wsproto_tools.fuzz.wsp.actions import _subscribe

    for topic, track in old.topics.items():
        if not track.confirmed:
            continue
        k = int(topic.rsplit(".", 1)[1])
        new.topics[topic] = track
        await _subscribe(ctx, {"topic": k, "from": "next"}, reconnected=True)
    return Outcome.go_on(Rule.RESUME_TOKEN)
