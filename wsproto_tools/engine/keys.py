"""Session keys (HKDF, RFC 5869) and signed resume tokens.

Keys: ``HKDF-SHA256(ikm=secret, salt=server_nonce|client_nonce,
info="wsp session keys v1")`` gives 64 bytes: the client->server key, then the
server->client key (32 bytes each, for the codec's AEAD flag). Keys exist only
when a shared secret authenticated the session (challenge-response): under JWT
or ``--no-auth`` there is nothing secret to derive from, and the encryption
capability is not granted.

Resume tokens are ``base64url(msgpack([session_id, issued_at, expires_at,
identity_tag])) "." base64url(HMAC-SHA256(node_key, body))``: any node that
holds the cluster's token key can verify one without shared state. The identity
tag (the first 16 bytes of SHA-256 over the identity that authenticated:
``hmac``, ``jwt:<sub>`` or ``none``) binds the token to who may present it:
a connection that authenticated as someone else cannot resume the session.
"""

from __future__ import annotations

__all__ = [
    "ResumeClaims",
    "SessionKeys",
    "derive_session_keys",
    "identity_tag",
    "issue_resume_token",
    "verify_resume_token",
]

import base64
import hashlib
import hmac
from dataclasses import dataclass

import msgpack
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wsproto_tools.exceptions import AuthenticationError, CloseCode

INFO = b"wsp session keys v1"


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The two directional AEAD keys of a session."""

    client_to_server: bytes
    server_to_client: bytes


def derive_session_keys(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> SessionKeys:
    """HKDF-SHA256 over the shared secret, salted with both nonces (RFC 5869)."""
    okm = HKDF(
        algorithm=hashes.SHA256(), length=64, salt=server_nonce + client_nonce, info=INFO
    ).derive(secret)
    return SessionKeys(client_to_server=okm[:32], server_to_client=okm[32:])


@dataclass(frozen=True, slots=True)
class ResumeClaims:
    """What a verified resume token says."""

    session_id: int
    issued_at: float
    expires_at: float
    identity_tag: bytes = b""

    def belongs_to(self, identity: str) -> bool:
        """Whether the session was opened by ``identity`` (the same method and subject)."""
        return bool(self.identity_tag) and hmac.compare_digest(
            self.identity_tag, identity_tag(identity)
        )


def identity_tag(identity: str) -> bytes:
    """What a resume token carries of an identity (a digest, not the subject itself)."""
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_resume_token(
    key: bytes,
    session_id: int,
    now: float,
    lifetime: float,
    identity: str = "none",
    not_after: float | None = None,
) -> str:
    """A token that lets ``identity`` resume ``session_id`` until ``now + lifetime``,
    or until ``not_after`` (the credential's own expiry) when that comes first."""
    expires = now + lifetime if not_after is None else min(now + lifetime, not_after)
    body = msgpack.packb([session_id, now, expires, identity_tag(identity)])
    tag = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(tag)}"


def verify_resume_token(key: bytes, token: str, now: float) -> ResumeClaims:
    """Check a resume token's signature and lifetime; raise 4009 when it is no good."""
    code = CloseCode.WSP_SESSION_UNKNOWN
    try:
        body_text, tag_text = token.split(".")
        body, tag = _unb64(body_text), _unb64(tag_text)
    except (ValueError, UnicodeError):
        raise AuthenticationError("resume token is malformed", close_code=code) from None
    if _b64(body) != body_text or _b64(tag) != tag_text:  # one spelling per token
        raise AuthenticationError("resume token is not in canonical form", close_code=code)
    expected = hmac.new(key, body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, tag):
        raise AuthenticationError("resume token signature does not verify", close_code=code)
    try:
        session_id, issued, expires, *rest = msgpack.unpackb(body)
        tag = rest[0] if rest and isinstance(rest[0], bytes) else b""  # none: bound to nobody
        claims = ResumeClaims(int(session_id), float(issued), float(expires), tag)
    except (ValueError, TypeError, msgpack.UnpackException):
        raise AuthenticationError("resume token body is malformed", close_code=code) from None
    if now >= claims.expires_at:
        raise AuthenticationError("resume token expired", close_code=code)
    return claims
