"""Sans-I/O parts of issue 10 §4: resume tokens bound to an identity and capped by
the credential's expiry, JWT ``exp`` required, PEM keys loaded or refused."""

from __future__ import annotations

import jwt
import msgpack
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wsproto_tools.codec import Handshake, Message
from wsproto_tools.engine import events as ev
from wsproto_tools.engine.auth import Grant, JwtVerifier
from wsproto_tools.engine.keys import _b64, issue_resume_token, verify_resume_token
from wsproto_tools.engine.server_session import ServerSession
from wsproto_tools.engine.session import ServerAuth
from wsproto_tools.exceptions import AuthenticationError, ConfigError

NOW = 1_700_000_000.0
KEY = b"k" * 32
TOKEN_KEY = b"t" * 32


def test_identities() -> None:
    assert Grant(method="hmac").identity == "hmac"
    assert Grant().identity == "none"
    assert Grant(subject="alice", method="jwt").identity == "jwt:alice"
    assert not Grant(method="hmac").expired(NOW)
    assert Grant(method="jwt", expires_at=NOW).expired(NOW)
    assert not Grant(method="jwt", expires_at=NOW + 1).expired(NOW)


def test_resume_token_is_bound_and_capped() -> None:
    token = issue_resume_token(b"node", 7, NOW, 300, "jwt:alice", NOW + 10)
    claims = verify_resume_token(b"node", token, NOW)
    assert claims.belongs_to("jwt:alice")
    assert not claims.belongs_to("jwt:bob") and not claims.belongs_to("hmac")
    assert claims.expires_at == NOW + 10
    with pytest.raises(AuthenticationError, match="expired"):
        verify_resume_token(b"node", token, NOW + 10)
    # a token of the old form (no identity) is bound to nobody
    import hashlib
    import hmac

    body = msgpack.packb([7, NOW, NOW + 300])
    old = f"{_b64(body)}.{_b64(hmac.new(b'node', body, hashlib.sha256).digest())}"
    legacy = verify_resume_token(b"node", old, NOW)
    assert not legacy.belongs_to("none") and not legacy.belongs_to("hmac")


def server_auth(token: str, resume: bytes | None) -> ev.AuthSucceeded:
    server = ServerSession(ServerAuth(jwt=JwtVerifier(KEY), token_key=TOKEN_KEY))
    server.connection_made(NOW, nonce=b"n" * 16)
    hello = Handshake(auth="jwt", token=token, client_nonce=b"c" * 16, resume_token=resume)
    (event,) = [e for e in server.receive(Message(hello, 0, 0, 0), NOW) if e is not None]
    assert isinstance(event, ev.AuthSucceeded)
    return event


def test_engine_resumes_only_for_the_same_subject() -> None:
    alice = jwt.encode({"sub": "alice", "exp": NOW + 60}, KEY, "HS256")
    bob = jwt.encode({"sub": "bob", "exp": NOW + 60}, KEY, "HS256")
    first = ServerSession(ServerAuth(jwt=JwtVerifier(KEY), token_key=TOKEN_KEY))
    first.connection_made(NOW, nonce=b"n" * 16)
    first.receive(Message(Handshake(auth="jwt", token=alice), 0, 0, 0), NOW)
    first.accept(42, NOW)
    assert first.grant.expires_at == NOW + 60
    token = first.resume_token
    assert verify_resume_token(TOKEN_KEY, token.decode(), NOW).expires_at == NOW + 60
    other = server_auth(bob, token)
    assert other.resume is None and other.grant.identity == "jwt:bob"
    same = server_auth(jwt.encode({"sub": "alice", "exp": NOW + 90}, KEY, "HS256"), token)
    assert same.resume is not None and same.resume.session_id == 42


def test_exp_required_unless_allowed() -> None:
    no_exp = jwt.encode({"sub": "a"}, KEY, "HS256")
    with pytest.raises(AuthenticationError, match="no 'exp'"):
        JwtVerifier(KEY).verify(no_exp, NOW)
    grant = JwtVerifier(KEY, require_exp=False).verify(no_exp, NOW)
    assert grant.expires_at is None and grant.identity == "jwt:a"


def test_pem_keys_loaded_or_refused() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    verifier = JwtVerifier(pkcs1)
    assert verifier.algorithms == ("RS256",)
    token = jwt.encode({"sub": "a", "exp": NOW + 5}, private, "RS256")
    assert verifier.verify(token, NOW).subject == "a"
    with pytest.raises(ConfigError, match="private key"):
        JwtVerifier(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ConfigError, match="P-256"):
        JwtVerifier(
            p384.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    with pytest.raises(ConfigError, match="not a usable PEM"):
        JwtVerifier(b"-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n")
