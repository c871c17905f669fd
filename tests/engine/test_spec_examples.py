"""docs/protocol.md S.10, "A whole session, byte by byte": the examples are the engine's.

Every hex block of S.10 (a line ``Example `s10-...` `` then a ```` ```hex ```` block)
is read from the spec and

1. decoded and compared with the message written down here by hand from the
   spec text (the oracle is the spec, not the encoder), then re-encoded byte for
   byte; the rows of its annotation table must add up to the block;
2. produced again by the engine: the deterministic run S.10 describes
   (ClientSession and ServerSession back to back, fixed nonces, session id, token
   key and clocks) must write exactly these bytes, in this order;
3. for the encrypted examples: the keys are derived with an HKDF written here from
   RFC 5869 (stdlib hmac/hashlib), the proofs of S.2's worked example with stdlib
   hmac, and the sealed payloads are opened with ``cryptography``'s
   ChaCha20Poly1305 directly (nonce = prefix || u64le counter, associated data =
   the header bytes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

import msgpack
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from wsproto_tools.codec import (
    Acknowledge,
    Authenticate,
    Challenge,
    Cipher,
    Deliver,
    Flags,
    Handshake,
    HandshakeResponse,
    Heartbeat,
    Message,
    Publish,
    Sealed,
    Subscribe,
    Subscribed,
    counter_nonces,
    decode,
    encode,
)
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.client_session import ClientSession
from wsproto_tools.engine.server_session import ServerSession
from wsproto_tools.engine.session import Credentials, ServerAuth, SessionConfig

SPEC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

# ----------------------------------------------------------------- the run's inputs (S.10)
SECRET = b"s3cret"  # the UTF-8 bytes of the text secret (S.2)
TOKEN_KEY = bytes(range(0x40, 0x60))
SESSION_ID = 0x0102030405060708
T0 = 1700000000.0  # handshake, subscribe, publish
T_HB = 1700000015.0  # heartbeat probe and reply
T1 = 1700000020.0  # the second connection
N_SERVER_1 = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
N_CLIENT_1 = bytes.fromhex("101112131415161718191a1b1c1d1e1f")
N_SERVER_2 = bytes.fromhex("202122232425262728292a2b2c2d2e2f")
N_CLIENT_2 = bytes.fromhex("303132333435363738393a3b3c3d3e3f")

# ----------------------------------------------------------------- S.2's worked example
CLIENT_PROOF = bytes.fromhex("22cb0787e729a803180978813302cb929cbd953a0ef7216969e887d487f60c29")
SERVER_PROOF = bytes.fromhex("a4c36c1fd4a616528dea5470fde4e2327d7e08842803a86d5739544972d87a36")
KEY_C2S = bytes.fromhex("a476b72ccf8e234697e9ddc31983642e3dede9fde5ff2ec9f8d023091877d1a7")
KEY_S2C = bytes.fromhex("b00a4425c64c4accee5ec17753e7920c25bf416d8801111c9306b6613004cf76")
# connection 2's proofs, as S.10 gives them
CLIENT_PROOF_2 = bytes.fromhex("e26d89ed1129dcd2d079a315faeac139f0b1d3123fe2eb7b059a92718d9858ee")
SERVER_PROOF_2 = bytes.fromhex("e7d8b530631b19a23c0cc6323bd53cfda6cc6b693e038bb68bf88964c7a713ad")

# ----------------------------------------------------------------- the resume token (S.10)
TOKEN_BODY_B64 = "lM8BAgMEBQYHCMtB2VT8QAAAAMtB2VT8iwAAAMQQ-czZK7avTLReQxE4Z-Ydqw"
TOKEN_TAG_B64 = "JAJ8UwGkSCIVfISvnteX6uiKYXbTiwOzrnNlbFPLw74"
TOKEN = f"{TOKEN_BODY_B64}.{TOKEN_TAG_B64}".encode("ascii")
TOKEN_BODY = bytes.fromhex(
    "94 cf0102030405060708 cb41d954fc40000000 cb41d954fc8b000000"
    " c410 f9ccd92bb6af4cb45e43113867e61dab"
)
TOKEN_TAG = bytes.fromhex("24027c5301a44822157c84af9ed797eae88a6176d38b03b3ae73656c53cbc3be")
# reissued by the resume, at T1
TOKEN_2_BODY_B64 = "lM8BAgMEBQYHCMtB2VT8RQAAAMtB2VT8kAAAAMQQ-czZK7avTLReQxE4Z-Ydqw"
TOKEN_2_TAG_B64 = "BwjEremF9rBy6fzEZ-qpRxyi1jAtW5jK1NUNjbaPTAk"
TOKEN_2 = f"{TOKEN_2_BODY_B64}.{TOKEN_2_TAG_B64}".encode("ascii")
TOKEN_2_BODY = bytes.fromhex(
    "94 cf0102030405060708 cb41d954fc45000000 cb41d954fc90000000"
    " c410 f9ccd92bb6af4cb45e43113867e61dab"
)
TOKEN_2_TAG = bytes.fromhex("0708c4ade985f6b072e9fcc467eaa9471ca2d6302d5b98cad4d50d8db68f4c09")

# ----------------------------------------------------------------- the expected messages
PUBSUB = ("pubsub",)
ACK = Flags.ACK_REQUESTED

#: name -> the message the spec text says the block holds (v2 unless named v1)
EXPECTED: dict[str, Message] = {
    "s10-challenge": Message(Challenge(N_SERVER_1, ("hmac",))),
    "s10-handshake": Message(Handshake(capabilities=PUBSUB, auth="hmac", client_nonce=N_CLIENT_1)),
    "s10-authenticate": Message(Authenticate("hmac", CLIENT_PROOF)),
    "s10-handshake-response": Message(
        HandshakeResponse(
            session_id=SESSION_ID,
            capabilities=PUBSUB,
            resume_token=TOKEN,
            server_nonce=N_SERVER_1,
            heartbeat_ms=15000,
            window=1024,
            resumed=False,
            last_received=0,
            server_proof=SERVER_PROOF,
        )
    ),
    "s10-subscribe": Message(Subscribe("news")),
    "s10-subscribed": Message(Subscribed("news", 7, 1)),
    "s10-publish": Message(Publish("news", b"hi", 1), sequence=1, flags=ACK),
    "s10-acknowledge": Message(Acknowledge(1)),
    "s10-deliver": Message(Deliver("news", 7, 1, b"hi")),
    "s10-heartbeat-probe": Message(Heartbeat(1, False), timestamp=1700000015000000),
    "s10-heartbeat-reply": Message(Heartbeat(1, True), timestamp=1700000015000000),
    "s10-resume-challenge": Message(Challenge(N_SERVER_2, ("hmac",))),
    "s10-resume-handshake": Message(
        Handshake(
            capabilities=PUBSUB,
            auth="hmac",
            client_nonce=N_CLIENT_2,
            resume_token=TOKEN,
            last_received=0,
        )
    ),
    "s10-resume-authenticate": Message(Authenticate("hmac", CLIENT_PROOF_2)),
    "s10-resume-handshake-response": Message(
        HandshakeResponse(
            session_id=SESSION_ID,
            capabilities=PUBSUB,
            resume_token=TOKEN_2,
            server_nonce=N_SERVER_2,
            heartbeat_ms=15000,
            window=1024,
            resumed=True,
            last_received=1,
            server_proof=SERVER_PROOF_2,
        )
    ),
    "s10-resume-subscribe": Message(Subscribe("news", 2, 7)),
    "s10-resume-subscribed": Message(Subscribed("news", 7, 2)),
    "s10-encrypted-publish": Message(
        Publish("news", b"hi", 1), sequence=1, flags=ACK | Flags.ENCRYPTED
    ),
    "s10-encrypted-acknowledge": Message(Acknowledge(1), flags=Flags.ENCRYPTED),
    "s10-v1-publish": Message(
        Publish("news", b"hi", 1), sequence=1, session_id=SESSION_ID, flags=ACK
    ),
}
#: the main run, in wire order, with each message's direction
MAIN_RUN = [
    ("s10-challenge", "s2c"),
    ("s10-handshake", "c2s"),
    ("s10-authenticate", "c2s"),
    ("s10-handshake-response", "s2c"),
    ("s10-subscribe", "c2s"),
    ("s10-subscribed", "s2c"),
    ("s10-publish", "c2s"),
    ("s10-acknowledge", "s2c"),
    ("s10-deliver", "s2c"),
    ("s10-heartbeat-probe", "c2s"),
    ("s10-heartbeat-reply", "s2c"),
    ("s10-resume-challenge", "s2c"),
    ("s10-resume-handshake", "c2s"),
    ("s10-resume-authenticate", "c2s"),
    ("s10-resume-handshake-response", "s2c"),
    ("s10-resume-subscribe", "c2s"),
    ("s10-resume-subscribed", "s2c"),
]
ENCRYPTED = {"s10-encrypted-publish": KEY_C2S, "s10-encrypted-acknowledge": KEY_S2C}
PREFIX = {"s10-encrypted-publish": b"wspc", "s10-encrypted-acknowledge": b"wsps"}
#: the plaintexts of the encrypted examples, written from S.10's tables
PLAINTEXT = {
    "s10-encrypted-publish": bytes.fromhex(
        "83 a5746f706963 a46e657773 a464617461 c4026869 a26964 01"
    ),
    "s10-encrypted-acknowledge": bytes.fromhex("81 a873657175656e6365 01"),
}
V1 = {"s10-v1-publish"}
ORDER = [name for name, _ in MAIN_RUN] + [*ENCRYPTED, *V1]


# ----------------------------------------------------------------- reading the spec
def _section() -> str:
    text = SPEC.read_text(encoding="utf-8")
    start = text.find("\n### S.10 ")
    assert start >= 0, "docs/protocol.md has no section S.10"
    return text[start:]


#: ``Example `name` `` and the rest of its paragraph, a blank line, the hex block
_EXAMPLE = re.compile(
    r"^Example `(s10-[a-z0-9-]+)`(?:[^\n]|\n(?!\n))*\n\n```hex\n(.*?)\n```\n", re.M | re.S
)


def _hex(text: str) -> bytes:
    return bytes.fromhex(re.sub(r"[\s|]", "", text))


def spec_examples() -> dict[str, tuple[bytes, list[str]]]:
    """name -> (the block's bytes, the first cells of the table that follows it)."""
    section = _section()
    found: dict[str, tuple[bytes, list[str]]] = {}
    matches = list(_EXAMPLE.finditer(section))
    for i, match in enumerate(matches):
        name = match.group(1)
        assert name not in found, f"example {name} appears twice"
        end = matches[i + 1].start() if i + 1 < len(matches) else len(section)
        rest = section[match.end() : end]
        rows = [line for line in rest.splitlines() if line.startswith("|")]
        cells = [row.split("|")[1].strip().strip("`") for row in rows[2:]]
        found[name] = (_hex(match.group(2)), cells)
    return found


EXAMPLES = spec_examples()


def wire(name: str) -> bytes:
    return EXAMPLES[name][0]


# ----------------------------------------------------------------- the engine run
Wire = list[tuple[str, bytes]]


class _Link:
    """One client and whichever server session holds its connection, back to back."""

    def __init__(self, client: ClientSession) -> None:
        self.client = client
        self.wire: Wire = []

    def c2s(self, server: ServerSession, now: float) -> list[ev.Event]:
        out: list[ev.Event] = []
        for chunk in self.client.data_to_send():
            self.wire.append(("c2s", chunk))
            out.extend(server.receive_data(chunk, now))
        return out

    def s2c(self, server: ServerSession, now: float) -> list[ev.Event]:
        out: list[ev.Event] = []
        for chunk in server.data_to_send():
            self.wire.append(("s2c", chunk))
            out.extend(self.client.receive_data(chunk, now))
        return out


def run_main(version: int = 2) -> Wire:
    """S.10's run: connection 1 (handshake, pub/sub, heartbeat), connection 2 (resume)."""
    config = SessionConfig(capabilities=PUBSUB)
    auth = ServerAuth(secret=SECRET, token_key=TOKEN_KEY)
    link = _Link(ClientSession(Credentials(secret=SECRET), config))
    client = link.client
    server = ServerSession(auth, config)
    server.connection_made(T0, version=version, nonce=N_SERVER_1)
    client.connection_made(T0, version=version, nonce=N_CLIENT_1)
    link.s2c(server, T0)  # Challenge
    events = link.c2s(server, T0)  # Handshake, Authenticate
    assert isinstance(events[-1], ev.AuthSucceeded) and events[-1].resume is None
    server.accept(SESSION_ID, T0)
    (accepted,) = link.s2c(server, T0)  # HandshakeResponse
    assert isinstance(accepted, ev.Accepted) and not accepted.resumed
    client.subscribe("news", T0)
    (asked,) = link.c2s(server, T0)
    assert isinstance(asked, ev.SubscribeRequested) and asked.from_offset is None
    server.subscribed("news", 7, 1, T0)
    link.s2c(server, T0)
    client.publish("news", b"hi", T0, publish_id=1)
    (published,) = link.c2s(server, T0)
    assert isinstance(published, ev.PublishReceived)
    server.deliver("news", 7, 1, b"hi", T0)  # the client is the topic's subscriber
    link.s2c(server, T0)  # Acknowledge, Deliver
    client.heartbeat(T_HB)
    link.c2s(server, T_HB)  # the probe
    (answered,) = link.s2c(server, T_HB)  # the reply
    assert isinstance(answered, ev.HeartbeatAnswered)
    # the TCP connection dies; connection 2 resumes the session
    client.connection_lost(T1)
    server.connection_lost(T1)
    fresh = ServerSession(auth, config)
    fresh.connection_made(T1, version=version, nonce=N_SERVER_2)
    client.connection_made(T1, version=version, nonce=N_CLIENT_2)
    link.s2c(fresh, T1)  # Challenge
    events = link.c2s(fresh, T1)  # Handshake (resume_token, last_received), Authenticate
    ok = events[-1]
    assert isinstance(ok, ev.AuthSucceeded) and ok.resume is not None
    assert ok.resume.session_id == SESSION_ID
    server.adopt(fresh, ok.last_received, T1)
    (accepted,) = link.s2c(server, T1)  # HandshakeResponse, resumed
    assert isinstance(accepted, ev.Accepted) and accepted.resumed
    (asked,) = link.c2s(server, T1)  # Subscribe again, from the cursor
    assert isinstance(asked, ev.SubscribeRequested)
    server.subscribed("news", 7, 2, T1)
    link.s2c(server, T1)
    return link.wire


def run_encrypted() -> Wire:
    """S.10's second run: ``encrypt`` granted, on S.2's worked-example inputs."""
    config = SessionConfig(capabilities=("encrypt", "pubsub"))
    auth = ServerAuth(secret=SECRET, token_key=TOKEN_KEY)
    link = _Link(ClientSession(Credentials(secret=SECRET), config))
    client = link.client
    server = ServerSession(auth, config)
    server.connection_made(T0, version=2, nonce=N_SERVER_1)
    client.connection_made(T0, version=2, nonce=N_CLIENT_1)
    link.s2c(server, T0)
    link.c2s(server, T0)
    server.accept(SESSION_ID, T0)
    (accepted,) = link.s2c(server, T0)
    assert isinstance(accepted, ev.Accepted) and "encrypt" in accepted.capabilities
    client.publish("news", b"hi", T0, publish_id=1)
    (published,) = link.c2s(server, T0)
    assert isinstance(published, ev.PublishReceived) and published.data == b"hi"
    (acked,) = link.s2c(server, T0)
    assert isinstance(acked, ev.Acked) and acked.sequence == 1
    return link.wire


# ----------------------------------------------------------------- 1. the blocks
def test_every_example_is_in_the_spec_in_order() -> None:
    assert list(EXAMPLES) == ORDER
    assert set(EXPECTED) == set(ORDER)


@pytest.mark.parametrize("name", ORDER)
def test_table_covers_every_byte(name: str) -> None:
    data, cells = EXAMPLES[name]
    assert cells, f"{name}: no annotation table"
    assert b"".join(_hex(cell) for cell in cells) == data


@pytest.mark.parametrize("name", [n for n in ORDER if n not in ENCRYPTED])
def test_decodes_to_the_spec_message_and_back(name: str) -> None:
    data = wire(name)
    version = 1 if name in V1 else 2
    assert data[0] == 0xD1 if version == 1 else data[0] & 0xC0 == 0x40  # section 1
    msg = decode(data)
    assert msg == EXPECTED[name]
    assert encode(EXPECTED[name], version=version) == data


@pytest.mark.parametrize("name", list(ENCRYPTED))
def test_encrypted_decodes_and_reencodes(name: str) -> None:
    data = wire(name)
    key = ENCRYPTED[name]
    sealed = decode(data)  # without the key: unchecked ciphertext
    assert isinstance(sealed.payload, Sealed)
    assert sealed.payload.code == EXPECTED[name].type_code
    assert sealed.flags == EXPECTED[name].flags
    assert decode(data, cipher=Cipher(key)) == EXPECTED[name]
    again = encode(EXPECTED[name], cipher=Cipher(key, counter_nonces(PREFIX[name], 0)))
    assert again == data


def test_v2_headers_after_the_handshake_carry_no_session_id() -> None:
    """Section 4: S = 0 in both directions; the session id is in the payload only."""
    for name in ORDER:
        if name in V1:
            continue
        head = wire(name)[0]
        assert head & 0xC0 == 0x40 and head & 0x08 == 0
        assert head & 0x20 == 0, f"{name}: S bit set"


# ----------------------------------------------------------------- 2. the engine writes them
def test_the_engine_writes_exactly_these_bytes() -> None:
    produced = run_main(2)
    assert [d for d, _ in produced] == [d for _, d in MAIN_RUN]
    for (name, _), (_, data) in zip(MAIN_RUN, produced, strict=True):
        assert data.hex(" ") == wire(name).hex(" "), name


def test_the_encrypted_run_writes_exactly_these_bytes() -> None:
    produced = run_encrypted()
    both = "92 a7656e6372797074 a6707562737562"  # ["encrypt", "pubsub"]
    one = "91 a6707562737562"  # ["pubsub"]

    def with_both(name: str) -> bytes:
        data = wire(name).hex()
        assert data.count(one.replace(" ", "")) == 1
        return bytes.fromhex(data.replace(one.replace(" ", ""), both.replace(" ", "")))

    assert [d for d, _ in produced] == ["s2c", "c2s", "c2s", "s2c", "c2s", "s2c"]
    challenge, hello, proof, answer, publish, ack = (data for _, data in produced)
    assert challenge == wire("s10-challenge")
    assert hello == with_both("s10-handshake") and len(hello) == 74
    assert proof == wire("s10-authenticate")
    assert answer == with_both("s10-handshake-response") and len(answer) == 302
    assert answer[0] & Flags.ENCRYPTED == 0  # the HandshakeResponse is in clear (rule 18)
    assert publish == wire("s10-encrypted-publish")
    assert ack == wire("s10-encrypted-acknowledge")


def _v2_payload(data: bytes) -> bytes:
    """What follows a v2 header (section 4): head, type, sequence, [session_id], [timestamp]."""
    at = 2 if data[1] != 0xC0 else 4
    for present in (True, bool(data[0] & 0x20), bool(data[0] & 0x10)):
        if present:
            while data[at] & 0x80:
                at += 1
            at += 1
    return data[at:]


def test_v1_is_the_same_payloads_behind_30_byte_headers() -> None:
    v1 = run_main(1)
    v2 = run_main(2)
    assert v1[6][1] == wire("s10-v1-publish")
    assert _v2_payload(wire("s10-publish")) == wire("s10-v1-publish")[30:]
    for (_, one), (_, two) in zip(v1, v2, strict=True):
        assert one[30:] == _v2_payload(two)
        assert int.from_bytes(one[26:30], "little") == len(one) - 30


# ----------------------------------------------------------------- 3. keys, proofs, AEAD
def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869, section 2: extract, then expand (stdlib only)."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def test_hkdf_is_rfc_5869() -> None:
    """RFC 5869, A.1 (test case 1), so the HKDF below is trusted on its own."""
    okm = hkdf_sha256(
        bytes.fromhex("0b" * 22),
        bytes.fromhex("000102030405060708090a0b0c"),
        bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_session_keys_of_the_worked_example() -> None:
    okm = hkdf_sha256(SECRET, N_SERVER_1 + N_CLIENT_1, b"wsp session keys v1", 64)
    assert okm[:32] == KEY_C2S and okm[32:] == KEY_S2C
    spec = SPEC.read_text(encoding="utf-8")
    for key in (KEY_C2S, KEY_S2C, CLIENT_PROOF, SERVER_PROOF):
        assert spec.count(key.hex()) >= 1


def _proof(label: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    msg = label + len(server_nonce).to_bytes(2, "big") + server_nonce + client_nonce
    return hmac.new(SECRET, msg, hashlib.sha256).digest()


def test_proofs() -> None:
    assert _proof(b"wsp-auth-v1", N_SERVER_1, N_CLIENT_1) == CLIENT_PROOF
    assert _proof(b"wsp-server-v1", N_SERVER_1, N_CLIENT_1) == SERVER_PROOF
    assert _proof(b"wsp-auth-v1", N_SERVER_2, N_CLIENT_2) == CLIENT_PROOF_2
    assert _proof(b"wsp-server-v1", N_SERVER_2, N_CLIENT_2) == SERVER_PROOF_2
    assert CLIENT_PROOF in wire("s10-authenticate")
    assert SERVER_PROOF in wire("s10-handshake-response")
    assert CLIENT_PROOF_2 in wire("s10-resume-authenticate")
    assert SERVER_PROOF_2 in wire("s10-resume-handshake-response")


@pytest.mark.parametrize("name", list(ENCRYPTED))
def test_sealed_payload_opens_with_chacha20poly1305(name: str) -> None:
    data = wire(name)
    header, nonce, sealed = data[:3], data[3:15], data[15:]
    assert nonce == PREFIX[name] + (0).to_bytes(8, "little")
    direction = slice(0, 32) if PREFIX[name] == b"wspc" else slice(32, 64)
    key = hkdf_sha256(SECRET, N_SERVER_1 + N_CLIENT_1, b"wsp session keys v1", 64)[direction]
    assert key == ENCRYPTED[name]
    plain = ChaCha20Poly1305(key).decrypt(nonce, sealed, header)
    assert plain == PLAINTEXT[name]
    # the plaintext is the clear message's payload (examples 7 and 8)
    clear = {"s10-encrypted-publish": "s10-publish", "s10-encrypted-acknowledge": "s10-acknowledge"}
    assert wire(clear[name])[3:] == plain
    with pytest.raises(InvalidTag):  # the header is the associated data
        ChaCha20Poly1305(key).decrypt(nonce, sealed, bytes([header[0] ^ 0x04]) + header[1:])


def test_resume_token() -> None:
    """S.2: base64url(msgpack([session_id, issued_at, expires_at, identity_tag]))
    "." base64url(HMAC-SHA256(token_key, body)), checked with the stdlib."""

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    body_text, tag_text = TOKEN.decode("ascii").split(".")
    assert unb64(body_text) == TOKEN_BODY
    assert unb64(tag_text) == TOKEN_TAG
    assert hmac.new(TOKEN_KEY, TOKEN_BODY, hashlib.sha256).digest() == TOKEN_TAG
    assert msgpack.unpackb(TOKEN_BODY) == [
        SESSION_ID,
        T0,
        T0 + 300.0,
        hashlib.sha256(b"hmac").digest()[:16],
    ]
    assert len(TOKEN) == 106
    for name in ("s10-handshake-response", "s10-resume-handshake"):
        assert b"\xc4\x6a" + TOKEN in wire(name)
    # a resume reissues the token: a fresh lifetime from the resume
    body_text, tag_text = TOKEN_2.decode("ascii").split(".")
    assert unb64(body_text) == TOKEN_2_BODY and unb64(tag_text) == TOKEN_2_TAG
    assert hmac.new(TOKEN_KEY, TOKEN_2_BODY, hashlib.sha256).digest() == TOKEN_2_TAG
    assert msgpack.unpackb(TOKEN_2_BODY) == [
        SESSION_ID,
        T1,
        T1 + 300.0,
        hashlib.sha256(b"hmac").digest()[:16],
    ]
    assert b"\xc4\x6a" + TOKEN_2 in wire("s10-resume-handshake-response")
