"""The credentials of a wsp fuzz run, from the command line's options.

``--secret`` (hmac), ``--token`` (a JWT used as it is) and ``--jwt-key FILE``
(the server's HS256 key: the fuzzer mints tokens itself, for several subjects,
expired ones and ones without ``exp``) can be combined. The topics a JWT
allows are read from its ``wsp`` claim (unverified: the fuzzer is the client)
so that the security oracle knows what must be refused.
"""

from __future__ import annotations

__all__ = ["FUZZ_TOPICS", "build_credentials", "forbidden_topic", "topic_tag"]

import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from wsproto_tools.exceptions import ConfigError
from wsproto_tools.fuzz.wsp.session import Credentials

#: The topics minted tokens allow: every topic the fuzzer's cases use.
FUZZ_TOPICS = ("fz*",)


def build_credentials(
    secret: bytes | None = None,
    token: str | None = None,
    jwt_key_file: str | None = None,
    token_key: bytes | None = None,
    audience: str | None = None,
) -> Credentials:
    """Credentials for the run; a ConfigError names what is wrong."""
    mint = None
    pub: tuple[str, ...] | None = None
    sub: tuple[str, ...] | None = None
    if jwt_key_file is not None:
        try:
            key = Path(jwt_key_file).read_bytes().strip()
        except OSError as error:
            raise ConfigError(f"cannot read the JWT key {jwt_key_file}: {error.strerror}") from None
        if b"PRIVATE KEY" in key or b"PUBLIC KEY" in key:
            raise ConfigError("--jwt-key: only an HS256 secret can mint tokens")
        mint = _minter(key, audience)
        pub = sub = FUZZ_TOPICS
    if token is not None:
        claims = _claims(token)
        wsp = claims.get("wsp") if isinstance(claims.get("wsp"), dict) else {}
        pub = _patterns(wsp.get("pub")) if wsp else None
        sub = _patterns(wsp.get("sub")) if wsp else None
    return Credentials(secret=secret, token=token, mint=mint, token_key=token_key, pub=pub, sub=sub)


def _patterns(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError("--token: the 'wsp' claim's pub/sub must be lists of strings")


def _claims(token: str) -> dict[str, Any]:
    import jwt

    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise ConfigError(f"--token is not a JWT: {error}") from None
    return claims


def _minter(key: bytes, audience: str | None) -> Any:
    import jwt

    def mint(subject: str, exp: Any = "default", **extra: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": subject,
            "iat": now,
            "wsp": {"pub": list(FUZZ_TOPICS), "sub": list(FUZZ_TOPICS)},
        }
        if exp == "default":
            claims["exp"] = now + 3600
        elif exp is not None:
            claims["exp"] = exp
        if audience:
            claims["aud"] = audience
        claims.update(extra)
        import warnings

        with warnings.catch_warnings():  # the key is the server's: short keys are its choice
            warnings.simplefilter("ignore")
            return str(jwt.encode(claims, key, algorithm="HS256"))

    return mint


def forbidden_topic(creds: Credentials) -> str:
    """A topic outside every topic list the credential has ("" if it has none)."""
    lists = [p for p in (creds.sub, creds.pub) if p is not None]
    if not lists:
        return ""
    for candidate in ("secret.plans", "zz-forbidden", "_private.x", "other"):
        if not any(fnmatchcase(candidate, p) for patterns in lists for p in patterns):
            return candidate
    return ""


def topic_tag(creds: Credentials, tag: str) -> str:
    """The prefix of the run's topic names, inside the credential's topics: the
    first pattern with its first ``*`` made the run's tag."""
    lists = [p for p in (creds.sub, creds.pub) if p is not None]
    if not lists:
        return tag
    for pattern in lists[0]:
        if "*" not in pattern:
            continue
        head = pattern.split("*", 1)[0]
        candidate = f"{head}{tag}"
        probe = f"{candidate}.0.0"
        if all(any(fnmatchcase(probe, p) for p in patterns) for patterns in lists):
            return candidate
    return tag
