"""The engine's small parts: auth, keys, resume tokens, timers, history."""

from __future__ import annotations

import random

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from wsproto_tools.engine.auth import (
    JwtVerifier,
    client_proof,
    server_proof,
    verify_client_proof,
    verify_server_proof,
)
from wsproto_tools.engine.history import ContinuityLost, TopicLog
from wsproto_tools.engine.keys import (
    derive_session_keys,
    issue_resume_token,
    verify_resume_token,
)
from wsproto_tools.engine.timing import AdaptiveWindow, Backoff, RttEstimator, TokenBucket
from wsproto_tools.exceptions import AuthenticationError, CloseCode, ConfigError

SN, CN = b"s" * 16, b"c" * 16


def test_hmac_proof_binds_both_nonces_and_the_secret() -> None:
    proof = client_proof(b"secret", SN, CN)
    verify_client_proof(b"secret", SN, CN, proof)
    with pytest.raises(AuthenticationError, match="wrong secret") as info:
        verify_client_proof(b"other", SN, CN, proof)
    assert info.value.close_code == CloseCode.WSP_AUTH_FAILED
    with pytest.raises(AuthenticationError):
        verify_client_proof(b"secret", b"x" * 16, CN, proof)
    with pytest.raises(AuthenticationError):
        verify_client_proof(b"secret", SN, b"d" * 16, proof)
    with pytest.raises(AuthenticationError, match="shorter"):
        verify_client_proof(b"secret", SN, b"c" * 4, client_proof(b"secret", SN, b"c" * 4))


def test_server_proof_is_not_the_client_proof() -> None:
    assert server_proof(b"k", SN, CN) != client_proof(b"k", SN, CN)
    verify_server_proof(b"k", SN, CN, server_proof(b"k", SN, CN))
    with pytest.raises(AuthenticationError):
        verify_server_proof(b"k", SN, CN, client_proof(b"k", SN, CN))


NOW = 1_700_000_000.0


def test_jwt_hs256_claims_and_time() -> None:
    key = b"k" * 32
    verifier = JwtVerifier(key, audience="wsp")
    token = jwt.encode(
        {
            "sub": "alice",
            "aud": "wsp",
            "exp": NOW + 60,
            "nbf": NOW - 1,
            "wsp": {"pub": ["news.*"], "sub": ["news.*", "chat"]},
        },
        key,
        "HS256",
    )
    grant = verifier.verify(token, NOW)
    assert grant.subject == "alice"
    assert grant.may_publish("news.eu") and not grant.may_publish("chat")
    assert grant.may_subscribe("chat") and not grant.may_subscribe("admin")
    with pytest.raises(AuthenticationError, match="expired"):
        verifier.verify(token, NOW + 60)
    with pytest.raises(AuthenticationError, match="not valid yet"):
        verifier.verify(token, NOW - 5)
    wrong_aud = jwt.encode({"aud": "other"}, key, "HS256")
    with pytest.raises(AuthenticationError, match="audience"):
        verifier.verify(wrong_aud, NOW)
    forged = jwt.encode({"aud": "wsp"}, b"x" * 32, "HS256")
    with pytest.raises(AuthenticationError, match="forged"):
        verifier.verify(forged, NOW)
    with pytest.raises(AuthenticationError):
        verifier.verify("not.a.token", NOW)
    unsigned = jwt.encode({"aud": "wsp"}, None, "none")
    with pytest.raises(AuthenticationError):
        verifier.verify(unsigned, NOW)


def test_jwt_without_scope_allows_everything() -> None:
    grant = JwtVerifier(b"k" * 32).verify(jwt.encode({"exp": NOW + 1}, b"k" * 32, "HS256"), NOW)
    assert grant.may_publish("anything") and grant.may_subscribe("x")


@pytest.mark.parametrize(
    "make",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        lambda: ec.generate_private_key(ec.SECP256R1()),
    ],
)
def test_jwt_public_key_algorithms(make: object) -> None:
    private = make()  # type: ignore[operator]
    alg = "RS256" if isinstance(private, rsa.RSAPrivateKey) else "ES256"
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = jwt.encode({"exp": NOW + 5}, private, alg)
    verifier = JwtVerifier(public)
    verifier.verify(token, NOW)
    with pytest.raises(AuthenticationError, match="expired"):
        verifier.verify(token, NOW + 10)
    # A token signed with HS256 using the public key as secret (alg confusion) fails.
    other = (
        ec.generate_private_key(ec.SECP256R1())
        if alg == "ES256"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    with pytest.raises(AuthenticationError):
        verifier.verify(jwt.encode({}, other, alg), NOW)


def test_jwt_config_errors() -> None:
    with pytest.raises(ConfigError):
        JwtVerifier(b"k", algorithms=["none"])


def test_hkdf_keys_differ_per_direction_and_nonce() -> None:
    a = derive_session_keys(b"secret", SN, CN)
    assert len(a.client_to_server) == 32 and a.client_to_server != a.server_to_client
    assert derive_session_keys(b"secret", SN, CN) == a
    assert derive_session_keys(b"secret", SN, b"d" * 16) != a


def test_resume_tokens() -> None:
    token = issue_resume_token(b"node-key", 42, NOW, 60)
    claims = verify_resume_token(b"node-key", token, NOW + 1)
    assert claims.session_id == 42
    with pytest.raises(AuthenticationError, match="expired") as info:
        verify_resume_token(b"node-key", token, NOW + 61)
    assert info.value.close_code == CloseCode.WSP_SESSION_UNKNOWN
    with pytest.raises(AuthenticationError, match="signature"):
        verify_resume_token(b"other-key", token, NOW)
    _body, tag = token.split(".")
    with pytest.raises(AuthenticationError):
        other = issue_resume_token(b"node-key", 43, NOW, 60).split(".")[0]
        verify_resume_token(b"node-key", other + "." + tag, NOW)
    with pytest.raises(AuthenticationError, match="malformed"):
        verify_resume_token(b"node-key", "garbage", NOW)


def test_rtt_estimator_follows_rfc6298() -> None:
    est = RttEstimator(initial_rto=1.0, min_rto=0.0)
    assert est.rto == 1.0
    est.sample(0.1)
    assert est.srtt == pytest.approx(0.1) and est.rttvar == pytest.approx(0.05)
    assert est.rto == pytest.approx(0.1 + 4 * 0.05)
    est.sample(0.2)
    assert est.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.1)
    assert est.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.2)
    before = est.rto
    est.backoff()
    assert est.rto == pytest.approx(2 * before)
    clamped = RttEstimator(min_rto=0.2)
    clamped.sample(0.001)
    assert clamped.rto == 0.2


def test_backoff_full_jitter_with_injected_random() -> None:
    b = Backoff(lambda: 1.0, base=0.1, cap=1.0, max_attempts=6)
    assert [round(b.next_delay(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.exhausted
    with pytest.raises(ConfigError):
        b.next_delay()
    b.reset()
    assert not b.exhausted
    rng = random.Random(7)
    j = Backoff(rng.random, base=0.1, cap=30.0)
    delays = [j.next_delay() for _ in range(20)]
    assert all(0 <= d <= 30 for d in delays) and len(set(delays)) == 20
    assert Backoff(lambda: 0.0).next_delay() == 0.0


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1)
    assert not bucket.take(0.1)
    assert bucket.take(10.0) and bucket.tokens == pytest.approx(2)


def test_adaptive_window_slow_start_then_aimd() -> None:
    w = AdaptiveWindow(initial=8, minimum=2, maximum=100)
    w.on_ack(8)
    assert w.size == 16  # slow start: doubles per window
    w.on_ack(16)
    assert w.size == 32
    w.on_timeout()
    assert (w.size, w.threshold) == (16, 16)
    w.on_ack(16)
    assert w.size == 18  # congestion avoidance: +1/8 per acknowledged window
    w.on_ack(10_000)
    assert w.size == 100
    for _ in range(10):
        w.on_timeout()
    assert w.size == 2


def test_topic_log_offsets_history_and_continuity() -> None:
    log = TopicLog("t", epoch=7, max_count=3)
    for i in range(5):
        assert log.append(b"%d" % i, False, now=float(i)).offset == i + 1
    assert [e.offset for e in log.entries] == [3, 4, 5]
    got = log.since(7, 2, now=5.0)
    assert isinstance(got, list) and [e.data for e in got] == [b"2", b"3", b"4"]
    assert log.since(7, 5, now=5.0) == []
    lost = log.since(7, 1, now=5.0)
    assert isinstance(lost, ContinuityLost) and lost.available == 3 and lost.requested == 1
    assert isinstance(log.since(6, 4, now=5.0), ContinuityLost)
    assert isinstance(log.since(7, 9, now=5.0), ContinuityLost)
    fresh = log.since(0, 0, now=5.0)
    assert isinstance(fresh, list) and len(fresh) == 3


def test_topic_log_age_bound() -> None:
    log = TopicLog("t", epoch=1, max_count=100, max_age=10.0)
    log.append(b"old", False, now=0.0)
    log.append(b"new", False, now=8.0)
    assert isinstance(log.since(1, 0, now=9.0), list)
    lost = log.since(1, 0, now=15.0)
    assert isinstance(lost, ContinuityLost) and lost.available == 2


def test_hub_bounds_topics_and_names() -> None:
    from wsproto_tools.engine.hub import Hub
    from wsproto_tools.exceptions import RemoteProtocolError

    hub = Hub(epoch=1, history=2, max_topics=2)
    hub.publish("a", b"1", 0.0)
    hub.subscribe("b", None, None, 0.0)
    with pytest.raises(RemoteProtocolError, match="too many topics") as info:
        hub.publish("c", b"x", 0.0)
    assert info.value.close_code == CloseCode.POLICY_VIOLATION
    hub.publish("a", b"2", 0.0)  # existing topics go on
    with pytest.raises(RemoteProtocolError, match="1 to 256"):
        Hub(epoch=1).publish("x" * 257, b"", 0.0)
    with pytest.raises(RemoteProtocolError):
        Hub(epoch=1).subscribe("", None, None, 0.0)


def test_a_resume_token_has_one_spelling() -> None:
    """base64url's last character carries padding bits the decoder ignores: a token
    spelled otherwise (the same bytes) is refused, as the bytes are compared."""
    from wsproto_tools.engine.keys import issue_resume_token, verify_resume_token

    token = issue_resume_token(b"k" * 32, 7, 100.0, 300.0, "hmac")
    assert verify_resume_token(b"k" * 32, token, 101.0).session_id == 7
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    # the tag is 32 bytes = 43 characters, the last holding 4 bits and 2 padding bits
    respelled = token[:-1] + alphabet[last ^ 1]
    assert respelled != token
    with pytest.raises(AuthenticationError, match="canonical"):
        verify_resume_token(b"k" * 32, respelled, 101.0)
