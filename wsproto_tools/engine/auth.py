"""Authentication for the wsp handshake: HMAC challenge-response and JWT.

Challenge-response: the server sends a random ``server_nonce`` (drawn by the
I/O layer and passed in); the client answers with its own ``client_nonce`` and
``HMAC-SHA256(secret, "wsp-auth-v1" | server_nonce | client_nonce)``. The server
proves it knows the secret too, with the same MAC under the label
``wsp-server-v1``: both sides authenticate each other (RFC 2104).

JWT (RFC 7519): HS256 with a shared secret, RS256/ES256 with a public key. The
time claims ``exp`` and ``nbf`` are checked here against the injected clock (not
the library's), and ``aud`` when an audience is configured. An optional claim
``wsp`` = ``{"pub": [...], "sub": [...]}`` (topic patterns, ``fnmatch`` style)
restricts what the session may publish and subscribe to; a missing list means
no restriction, an empty list means nothing.
"""

from __future__ import annotations

__all__ = [
    "CLIENT_LABEL",
    "MAX_NONCE",
    "MIN_NONCE",
    "SERVER_LABEL",
    "Grant",
    "JwtVerifier",
    "check_server_nonce",
    "client_proof",
    "server_proof",
    "verify_client_proof",
    "verify_server_proof",
]

import fnmatch
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jwt.types import Options  # pyjwt's TypedDict of decode options

from wsproto_tools.exceptions import AuthenticationError, CloseCode, ConfigError, HandshakeError

CLIENT_LABEL = b"wsp-auth-v1"
SERVER_LABEL = b"wsp-server-v1"
LEEWAY = 0.0
#: Bounds of a server nonce (Challenge.nonce), in bytes: the MAC input carries its
#: length in 2 bytes, and nothing needs more than a few dozen random bytes.
MIN_NONCE = 16
MAX_NONCE = 256


def _mac(label: bytes, secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    msg = label + len(server_nonce).to_bytes(2, "big") + server_nonce + client_nonce
    return hmac.new(secret, msg, hashlib.sha256).digest()


def check_server_nonce(server_nonce: bytes) -> None:
    """Raise :class:`HandshakeError` (1002) unless a Challenge nonce has 16 to 256 bytes."""
    if not MIN_NONCE <= len(server_nonce) <= MAX_NONCE:
        raise HandshakeError(
            f"Challenge nonce of {len(server_nonce)} bytes ({MIN_NONCE} to {MAX_NONCE} allowed)",
            close_code=CloseCode.PROTOCOL_ERROR,
        )


def client_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """The client's answer to a challenge: HMAC-SHA256 over both nonces."""
    return _mac(CLIENT_LABEL, secret, server_nonce, client_nonce)


def server_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """The server's proof that it holds the same secret."""
    return _mac(SERVER_LABEL, secret, server_nonce, client_nonce)


def verify_client_proof(
    secret: bytes, server_nonce: bytes, client_nonce: bytes, proof: bytes
) -> None:
    """Raise :class:`AuthenticationError` (4001) unless ``proof`` is right."""
    if len(client_nonce) < 16:
        raise AuthenticationError("client nonce shorter than 16 bytes")
    if not hmac.compare_digest(client_proof(secret, server_nonce, client_nonce), proof):
        raise AuthenticationError("wrong secret (HMAC proof does not match)")


def verify_server_proof(
    secret: bytes, server_nonce: bytes, client_nonce: bytes, proof: bytes
) -> None:
    """Raise :class:`AuthenticationError` unless the server's ``proof`` is right."""
    if not hmac.compare_digest(server_proof(secret, server_nonce, client_nonce), proof):
        raise AuthenticationError("server proof does not match (not our server)")


@dataclass(frozen=True, slots=True)
class Grant:
    """What an authenticated session may do. ``None`` patterns mean "anything".

    ``method`` and ``subject`` are who authenticated (:attr:`identity`);
    ``expires_at`` is when the credential stops being valid (a JWT's ``exp``,
    seconds since the epoch), ``None`` for a shared secret or no authentication.
    """

    subject: str = ""
    publish: tuple[str, ...] | None = None
    subscribe: tuple[str, ...] | None = None
    method: str = "none"
    expires_at: float | None = None

    @property
    def identity(self) -> str:
        """Who authenticated: ``"hmac"`` (whoever holds the shared secret),
        ``"jwt:" + sub``, or ``"none"``. A session resumes only for the same one."""
        if self.method == "jwt":
            return f"jwt:{self.subject}"
        return self.method

    def expired(self, now: float) -> bool:
        """Whether the credential behind this grant has expired at ``now``."""
        return self.expires_at is not None and now >= self.expires_at

    def may_publish(self, topic: str) -> bool:
        return _allowed(self.publish, topic)

    def may_subscribe(self, topic: str) -> bool:
        return _allowed(self.subscribe, topic)


def _allowed(patterns: tuple[str, ...] | None, topic: str) -> bool:
    if patterns is None:
        return True
    return any(fnmatch.fnmatchcase(topic, p) for p in patterns)


def _patterns(claims: dict[str, Any], name: str) -> tuple[str, ...] | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise AuthenticationError(f"token claim {name!r} must be a string or a list of strings")


class JwtVerifier:
    """Checks JWTs (RFC 7519) with a fixed key and algorithm set.

    ``key`` is the HS256 secret (bytes) or a PEM public key for RS256/ES256:
    ``BEGIN PUBLIC KEY`` (SubjectPublicKeyInfo), ``BEGIN RSA PUBLIC KEY``
    (PKCS#1, converted here) or a certificate's key. The key's type fixes the
    algorithm (RSA: RS256, EC P-256: ES256); any other PEM is a
    :class:`ConfigError`, so a bad key is refused at start, not at every token.
    A token must have ``exp`` unless ``require_exp`` is false.
    """

    def __init__(
        self,
        key: bytes | str,
        *,
        algorithms: Sequence[str] | None = None,
        audience: str | None = None,
        leeway: float = LEEWAY,
        require_exp: bool = True,
    ) -> None:
        text = key.decode("latin-1") if isinstance(key, bytes) else key
        if "-----BEGIN " in text:
            key, key_algorithms = _public_key(text.encode("latin-1"))
            algorithms = key_algorithms if algorithms is None else algorithms
        elif algorithms is None:
            algorithms = ("HS256",)
        unknown = set(algorithms) - {"HS256", "RS256", "ES256"}
        if unknown:
            raise ConfigError(f"unsupported JWT algorithms: {sorted(unknown)}")
        self.key = key
        self.algorithms = tuple(algorithms)
        self.audience = audience
        self.leeway = leeway
        self.require_exp = require_exp

    def verify(self, token: str, now: float) -> Grant:
        """The grant in ``token``, checked at time ``now`` (seconds since the epoch)."""
        import jwt  # pyjwt: pure computation, no I/O

        options: Options = {
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_aud": self.audience is not None,
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                options=options,
            )
        except jwt.InvalidAudienceError as error:
            raise AuthenticationError(f"token audience refused: {error}") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError(
                "token signature does not verify (forged or wrong key)"
            ) from None
        except jwt.PyJWTError as error:
            raise AuthenticationError(f"token refused: {error}") from None
        exp = claims.get("exp")
        if exp is None and self.require_exp:
            raise AuthenticationError("token has no 'exp' claim (an expiry is required)")
        if exp is not None:
            if not isinstance(exp, int | float) or isinstance(exp, bool):
                raise AuthenticationError("token claim 'exp' is not a number")
            if now >= exp + self.leeway:
                raise AuthenticationError("token expired")
        nbf = claims.get("nbf")
        if nbf is not None:
            if not isinstance(nbf, int | float):
                raise AuthenticationError("token claim 'nbf' is not a number")
            if now + self.leeway < nbf:
                raise AuthenticationError("token not valid yet (nbf)")
        scope = claims.get("wsp", {})
        if not isinstance(scope, dict):
            raise AuthenticationError("token claim 'wsp' must be an object")
        return Grant(
            subject=str(claims.get("sub", "")),
            publish=_patterns(scope, "pub"),
            subscribe=_patterns(scope, "sub"),
            method="jwt",
            expires_at=None if exp is None else float(exp) + self.leeway,
        )


def _public_key(pem: bytes) -> tuple[bytes, tuple[str, ...]]:
    """A PEM public key (SPKI, PKCS#1 or a certificate's) as SPKI PEM, and its algorithm."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if b"PRIVATE KEY-----" in pem:
        raise ConfigError("this is a private key: give the server the public key only")
    public: object
    try:
        if b"-----BEGIN CERTIFICATE-----" in pem:
            public = x509.load_pem_x509_certificate(pem).public_key()
        else:
            public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"not a usable PEM public key ({error})") from None
    if isinstance(public, rsa.RSAPublicKey):
        algorithms: tuple[str, ...] = ("RS256",)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        if not isinstance(public.curve, ec.SECP256R1):
            raise ConfigError(f"an EC key on {public.curve.name}: ES256 needs P-256 (secp256r1)")
        algorithms = ("ES256",)
    else:
        raise ConfigError(
            f"unsupported public key type {type(public).__name__}: RSA (RS256) or EC P-256 (ES256)"
        )
    spki = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return spki, algorithms
