"""JWT checks: which check fails first decides whether a client retries (109) or stops (3500)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import jwt.api_jws
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from sockhop.workers.config import ConfigError
from sockhop.workers.hub.config import TokenConfig
from sockhop.workers.hub.tokens import (
    ConnectToken,
    ExpiredToken,
    InvalidToken,
    SubscriptionToken,
    TokenVerifier,
)

NOW = 1_700_000_000
SECRET = "current-secret-" + "c" * 49
PREVIOUS_SECRET = "previous-secret-" + "p" * 48
LATER = NOW + 3600
EARLIER = NOW - 3600


def verifier(**config: Any) -> TokenVerifier:
    return TokenVerifier(TokenConfig(**{"hmac_secret_key": SECRET, **config}),
                         now=lambda: NOW + 0.5)


def hs256(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def signed_raw(payload: bytes, key: str = SECRET) -> str:
    """A genuinely signed token whose payload is any bytes (PyJWT checks nothing in them)."""
    return jwt.api_jws.encode(payload, key, algorithm="HS256")


def unchecked(claims: dict[str, Any], key: str = SECRET) -> str:
    """Like hs256, but PyJWT does not refuse claims of the wrong type (it does for iss)."""
    return signed_raw(json.dumps(claims).encode(), key)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_parts(header: bytes, payload: bytes, key: bytes = SECRET.encode()) -> str:
    """Any header bytes, HS256-signed: only the header is wrong in these tokens."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def pem(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# --- accepted tokens -------------------------------------------------------


def test_connect_token_claims() -> None:
    claims = {
        "sub": "u1", "exp": LATER, "expire_at": LATER + 60, "info": {"name": "Ann"},
        "b64info": "aWdub3JlZA==", "channels": ["news", "chat:1"], "meta": {"plan": 2},
        "subs": {"chat:2": {"info": 1, "override": {"presence": {"value": True}}}},
    }
    assert verifier().connect_token(hs256(claims)) == ConnectToken(
        user="u1", exp=LATER, expire_at=LATER + 60, info={"name": "Ann"},
        channels=("news", "chat:1"), subs={"chat:2": {"info": 1,
                                                     "override": {"presence": {"value": True}}}},
        meta={"plan": 2},
    )


def test_connect_token_minimal_is_anonymous_and_never_expires() -> None:
    assert verifier().connect_token(hs256({})) == ConnectToken(
        user="", exp=None, expire_at=None, info=None, channels=(), subs={}, meta=None
    )


def test_null_claims_count_as_absent() -> None:
    token = hs256({"sub": None, "exp": None, "channels": None, "subs": {"a": None},
                   "expire_at": None, "aud": None})
    found = verifier().connect_token(token)
    assert (found.user, found.exp, found.channels, found.subs, found.expire_at) == (
        "", None, (), {"a": {}}, None)


def test_expire_at_zero_is_kept_apart_from_absent() -> None:
    assert verifier().connect_token(hs256({"expire_at": 0})).expire_at == 0


def test_fractional_exp_is_kept_whole() -> None:
    assert verifier().connect_token(hs256({"exp": LATER + 0.75})).exp == LATER


def test_subscription_token_claims() -> None:
    claims = {
        "sub": "u1", "channel": "$private", "client": "c-1", "exp": LATER, "expire_at": 0,
        "info": ["i"], "data": {"greeting": "hi"}, "b64data": "eA==",
        "override": {"join_leave": {"value": False}, "force_recovery": {}},
    }
    assert verifier().subscription_token(hs256(claims)) == SubscriptionToken(
        user="u1", channel="$private", client="c-1", exp=LATER, expire_at=0, info=["i"],
        data={"greeting": "hi"},
        override={"join_leave": {"value": False}, "force_recovery": {}},
    )


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_hmac_algorithms(algorithm: str) -> None:
    assert verifier().connect_token(hs256({"sub": "u"}, algorithm=algorithm)).user == "u"


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512"])
def test_rsa_algorithms(rsa_key: rsa.RSAPrivateKey, algorithm: str) -> None:
    check = verifier(rsa_public_key=pem(rsa_key.public_key()))
    assert check.connect_token(jwt.encode({"sub": "u"}, rsa_key, algorithm=algorithm)).user == "u"


def test_rsa_key_may_come_in_a_certificate(rsa_key: rsa.RSAPrivateKey) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.test")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(rsa_key.public_key()).serial_number(1)
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
        .sign(rsa_key, hashes.SHA256())
    )
    check = verifier(rsa_public_key=certificate.public_bytes(serialization.Encoding.PEM).decode())
    assert check.connect_token(jwt.encode({"sub": "u"}, rsa_key, algorithm="RS256")).user == "u"


def test_es256(p256_key: ec.EllipticCurvePrivateKey) -> None:
    check = verifier(ecdsa_public_key=pem(p256_key.public_key()))
    assert check.connect_token(jwt.encode({"sub": "u"}, p256_key, algorithm="ES256")).user == "u"


def test_es384_needs_a_p384_key(p256_key: ec.EllipticCurvePrivateKey) -> None:
    p384_key = ec.generate_private_key(ec.SECP384R1())
    token = jwt.encode({"sub": "u"}, p384_key, algorithm="ES384")
    assert verifier(ecdsa_public_key=pem(p384_key.public_key())).connect_token(token).user == "u"
    with pytest.raises(InvalidToken):
        verifier(ecdsa_public_key=pem(p256_key.public_key())).connect_token(token)


@pytest.mark.parametrize(
    ("algorithm", "hash_algorithm", "accepted"),
    [("ES256", hashes.SHA256, True), ("ES384", hashes.SHA384, False)],
)
def test_es_algorithm_is_bound_to_the_key_curve(
    p256_key: ec.EllipticCurvePrivateKey, algorithm: str,
    hash_algorithm: type[hashes.SHA256 | hashes.SHA384], accepted: bool,
) -> None:
    """A genuine P-256 signature over SHA-384 still is not ES384 (RFC 7518 binds the curve)."""
    header, claims = json.dumps({"alg": algorithm}).encode(), json.dumps({"sub": "u"}).encode()
    signing_input = f"{b64url(header)}.{b64url(claims)}".encode()
    der = p256_key.sign(signing_input, ec.ECDSA(hash_algorithm()))
    r, s = decode_dss_signature(der)
    token = f"{signing_input.decode()}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    check = verifier(ecdsa_public_key=pem(p256_key.public_key()))
    if accepted:
        assert check.connect_token(token).user == "u"
    else:
        with pytest.raises(InvalidToken):
            check.connect_token(token)


# --- algorithms and keys ---------------------------------------------------


def test_alg_none_is_refused() -> None:
    with pytest.raises(InvalidToken):
        verifier().connect_token(jwt.encode({"sub": "u"}, "", algorithm="none"))


def test_wrong_hmac_key_is_refused() -> None:
    with pytest.raises(InvalidToken):
        verifier().connect_token(hs256({"sub": "u"}, key="another-secret-" + "x" * 49))


def test_algorithm_without_a_configured_key_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(InvalidToken):
        verifier().connect_token(jwt.encode({"sub": "u"}, rsa_key, algorithm="RS256"))
    with pytest.raises(InvalidToken):
        verifier(hmac_secret_key="", rsa_public_key=pem(rsa_key.public_key())).connect_token(
            hs256({"sub": "u"})
        )


def test_public_key_used_as_hmac_secret_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    """Algorithm confusion: the public key is no secret."""
    public_pem = pem(rsa_key.public_key())
    token = signed_parts(b'{"alg":"HS256"}', b'{"sub":"u"}', key=public_pem.encode())
    with pytest.raises(InvalidToken):
        verifier(hmac_secret_key="", rsa_public_key=public_pem).connect_token(token)


def test_tampered_rsa_and_ecdsa_signatures_are_refused(
    rsa_key: rsa.RSAPrivateKey, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    check = verifier(rsa_public_key=pem(rsa_key.public_key()),
                     ecdsa_public_key=pem(p256_key.public_key()))
    for key, algorithm in ((rsa_key, "RS256"), (p256_key, "ES256")):
        header, payload, signature = jwt.encode({"sub": "u"}, key, algorithm=algorithm).split(".")
        forged_payload = b64url(b'{"sub":"admin"}')
        for token in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.",
                      f"{header}.{payload}.{signature[:-8]}"):
            with pytest.raises(InvalidToken):
                check.connect_token(token)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rsa_public_key": "not a pem"}, "rsa_public_key"),
        ({"ecdsa_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
         "ecdsa_public_key"),
        ({"audience_regex": "("}, "audience_regex"),
        ({"issuer_regex": "[a-"}, "issuer_regex"),
    ],
)
def test_bad_config_fails_at_start(config: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        verifier(**config)


def test_key_of_the_wrong_kind_fails_at_start(
    rsa_key: rsa.RSAPrivateKey, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(ConfigError, match="ecdsa_public_key"):
        verifier(ecdsa_public_key=pem(rsa_key.public_key()))
    with pytest.raises(ConfigError, match="rsa_public_key"):
        verifier(rsa_public_key=pem(p256_key.public_key()))
    with pytest.raises(ConfigError, match="curve"):
        verifier(ecdsa_public_key=pem(ec.generate_private_key(ec.SECP256K1()).public_key()))


# --- key rotation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_until", "accepted"),
    [(0, True), (NOW + 1, True), (NOW, True), (NOW - 1, False)],
)
def test_previous_hmac_key_until_its_deadline(valid_until: int, accepted: bool) -> None:
    check = verifier(hmac_previous_secret_key=PREVIOUS_SECRET,
                     hmac_previous_secret_key_valid_until=valid_until)
    old_token = hs256({"sub": "u"}, key=PREVIOUS_SECRET)
    if accepted:
        assert check.connect_token(old_token).user == "u"
    else:
        with pytest.raises(InvalidToken):
            check.connect_token(old_token)
    assert check.connect_token(hs256({"sub": "new"})).user == "new"


def test_previous_key_is_not_accepted_unless_configured() -> None:
    with pytest.raises(InvalidToken):
        verifier().connect_token(hs256({"sub": "u"}, key=PREVIOUS_SECRET))


# --- audience and issuer ---------------------------------------------------


@pytest.mark.parametrize(
    ("config", "claims", "accepted"),
    [
        ({"audience": "hub"}, {"aud": "hub"}, True),
        ({"audience": "hub"}, {"aud": ["other", "hub"]}, True),
        ({"audience": "hub"}, {"aud": "hubs"}, False),
        ({"audience": "hub"}, {"aud": []}, False),
        ({"audience": "hub"}, {}, False),
        ({"issuer": "auth.test"}, {"iss": "auth.test"}, True),
        ({"issuer": "auth.test"}, {"iss": "auth.test.evil"}, False),
        ({"issuer": "auth.test"}, {}, False),
        ({"audience_regex": r"^hub-\d+$"}, {"aud": "hub-12"}, True),
        ({"audience_regex": r"^hub-\d+$"}, {"aud": ["x", "hub-3"]}, True),
        ({"audience_regex": r"^hub-\d+$"}, {"aud": ["x", "hub-a"]}, False),
        ({"audience_regex": r"^hub-\d+$"}, {}, False),
        ({"audience_regex": r"hub"}, {"aud": "my-hub-1"}, True),
        ({"issuer_regex": r"\.example\.com$"}, {"iss": "tenant1.example.com"}, True),
        ({"issuer_regex": r"\.example\.com$"}, {"iss": "example.com.evil"}, False),
        ({"issuer_regex": r"\.example\.com$"}, {}, False),
        ({}, {"aud": "anything", "iss": "anyone"}, True),
    ],
)
def test_audience_and_issuer(config: dict[str, str], claims: dict[str, Any],
                             accepted: bool) -> None:
    check = verifier(**config)
    for verify, extra in ((check.connect_token, {}), (check.subscription_token, {"channel": "c"})):
        token = hs256({"sub": "u", **claims, **extra})
        if accepted:
            assert verify(token).user == "u"
        else:
            with pytest.raises(InvalidToken):
                verify(token)


# --- expiry, and what wins over it ----------------------------------------


@pytest.mark.parametrize(
    "claims",
    [{"exp": EARLIER}, {"exp": NOW}, {"exp": 0}, {"nbf": LATER}, {"nbf": NOW + 1, "exp": LATER}],
)
def test_expired_or_not_yet_valid(claims: dict[str, int]) -> None:
    with pytest.raises(ExpiredToken):
        verifier().connect_token(hs256(claims))
    with pytest.raises(ExpiredToken):
        verifier().subscription_token(hs256({"channel": "c", **claims}))


def test_exp_and_nbf_exactly_now_are_not_valid() -> None:
    """cristalhq/jwt's rule, which Centrifugo uses: valid strictly before exp, after nbf."""
    check = TokenVerifier(TokenConfig(hmac_secret_key=SECRET), now=lambda: float(NOW))
    for claims in ({"exp": NOW}, {"nbf": NOW}):
        with pytest.raises(ExpiredToken):
            check.connect_token(hs256(claims))
    assert check.connect_token(hs256({"exp": NOW + 1, "nbf": NOW - 1})).exp == NOW + 1


def test_valid_window() -> None:
    found = verifier().connect_token(hs256({"nbf": EARLIER, "exp": NOW + 1, "iat": EARLIER}))
    assert found.exp == NOW + 1


@pytest.mark.parametrize(
    ("config", "claims", "key"),
    [
        ({}, {"sub": "u"}, "forged-secret-" + "f" * 50),
        ({"audience": "hub"}, {"aud": "other"}, SECRET),
        ({"issuer": "auth.test"}, {"iss": "other"}, SECRET),
        ({"audience_regex": "^hub$"}, {"aud": "other"}, SECRET),
        ({}, {"channel": "news"}, SECRET),
        ({}, {"sub": 5}, SECRET),
        ({}, {"channels": "news"}, SECRET),
        ({}, {"expire_at": "soon"}, SECRET),
    ],
)
def test_invalid_and_expired_connect_token_is_invalid(
    config: dict[str, str], claims: dict[str, Any], key: str
) -> None:
    """Centrifugo answers 3500 (stop), not 109 (fetch a new token), for these."""
    token = unchecked({"exp": EARLIER, **claims}, key)
    with pytest.raises(InvalidToken):
        verifier(**config).connect_token(token)


def test_connect_token_with_channel_claim_is_invalid() -> None:
    with pytest.raises(InvalidToken):
        verifier().connect_token(hs256({"sub": "u", "channel": "news", "exp": LATER}))
    assert verifier().connect_token(hs256({"sub": "u", "channel": ""})).user == "u"


def test_subscription_token_needs_a_channel() -> None:
    for claims in ({"sub": "u"}, {"sub": "u", "channel": ""}):
        with pytest.raises(InvalidToken):
            verifier().subscription_token(hs256(claims))


def test_expired_subscription_token_without_channel_is_expired() -> None:
    """Centrifugo's VerifySubscribeToken checks exp before the channel claim."""
    with pytest.raises(ExpiredToken):
        verifier().subscription_token(hs256({"sub": "u", "exp": EARLIER}))


def test_forged_and_expired_subscription_token_is_invalid() -> None:
    token = hs256({"sub": "u", "channel": "c", "exp": EARLIER}, key=PREVIOUS_SECRET)
    with pytest.raises(InvalidToken):
        verifier().subscription_token(token)


# --- user id claim ---------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "user"),
    [({"user_id": "u7", "sub": "ignored"}, "u7"), ({"user_id": 42}, "42"), ({"sub": "s"}, "")],
)
def test_custom_user_id_claim(claims: dict[str, Any], user: str) -> None:
    check = verifier(user_id_claim="user_id")
    assert check.connect_token(hs256(claims)).user == user
    assert check.subscription_token(hs256({"channel": "c", **claims})).user == user


@pytest.mark.parametrize("value", [True, 1.5, ["u"], {"id": "u"}])
def test_custom_user_id_claim_of_another_type_is_invalid(value: object) -> None:
    with pytest.raises(InvalidToken):
        verifier(user_id_claim="user_id").connect_token(hs256({"user_id": value}))


# --- malformed tokens ------------------------------------------------------

GOOD = hs256({"sub": "u"})
GOOD_HEADER, GOOD_PAYLOAD, GOOD_SIGNATURE = GOOD.split(".")


@pytest.mark.parametrize(
    "token",
    [
        "", "abc", f"{GOOD_HEADER}.{GOOD_PAYLOAD}",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}.{GOOD_SIGNATURE}.x",
        f".{GOOD_PAYLOAD}.{GOOD_SIGNATURE}", f"{GOOD_HEADER}..{GOOD_SIGNATURE}",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}=.{GOOD_SIGNATURE}",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}+.{GOOD_SIGNATURE}",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}a.{GOOD_SIGNATURE}",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}.{GOOD_SIGNATURE}$",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}.{GOOD_SIGNATURE}$$$$",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}.{GOOD_SIGNATURE}====",
        f"{GOOD_HEADER}.{GOOD_PAYLOAD}.{GOOD_SIGNATURE}é",
        f" {GOOD}",
    ],
    ids=["empty", "one-part", "two-parts", "four-parts", "no-header", "no-payload", "padding",
         "plus", "bad-length", "dollar", "dollars", "paddings", "non-ascii", "space"],
)
def test_malformed_shape_or_base64(token: str) -> None:
    with pytest.raises(InvalidToken):
        verifier().connect_token(token)


@pytest.mark.parametrize(
    "payload",
    [b"{", b"not json", b"[1, 2]", b'"sub"', b"42", b"null", b"\xff\xfe{}",
     b'{"exp": NaN}', b'{"info": Infinity}', b'{"info": 1e400}', b"[" * 100_000],
    ids=["truncated", "text", "list", "string", "number", "null", "not-utf8", "nan",
         "infinity", "overflow", "deep"],
)
def test_malformed_payload(payload: bytes) -> None:
    token = signed_raw(payload)
    for verify in (verifier().connect_token, verifier().subscription_token):
        with pytest.raises(InvalidToken):
            verify(token)


@pytest.mark.parametrize(
    "header",
    [b"{", b'["HS256"]', b'{"typ":"JWT"}', b'{"alg":256}', b'{"alg":null}',
     b'{"alg":["HS256"]}', b'{"alg":{}}', b'{"alg":"HS256","kid":7}', b'{"alg":"hs256"}'],
    ids=["truncated", "list", "no-alg", "alg-number", "alg-null", "alg-list", "alg-object",
         "kid-number", "alg-case"],
)
def test_malformed_header(header: bytes) -> None:
    with pytest.raises(InvalidToken):
        verifier().connect_token(signed_parts(header, b'{"sub":"u"}'))


def test_signed_parts_makes_tokens_we_accept() -> None:
    """Guards the malformed-header cases: with a good header the same token passes."""
    assert verifier().connect_token(signed_parts(b'{"alg":"HS256"}', b'{"sub":"u"}')).user == "u"


WRONG_COMMON_CLAIMS = [
    {"sub": 5}, {"sub": True}, {"exp": "1700003600"}, {"exp": True}, {"nbf": "0"},
    {"iat": []}, {"iss": 1}, {"jti": 1}, {"aud": 1}, {"aud": ["ok", 2]}, {"aud": {}},
    {"expire_at": 1.5}, {"expire_at": "0"}, {"expire_at": False}, {"b64info": 1},
]


@pytest.mark.parametrize("claims", [
    *WRONG_COMMON_CLAIMS,
    {"channel": 1}, {"channels": "news"}, {"channels": ["news", 1]}, {"channels": {}},
    {"subs": []}, {"subs": "news"}, {"subs": {"news": "yes"}}, {"subs": {"news": []}},
    {"subs": {"n": {"b64info": 1}}}, {"subs": {"n": {"b64data": 1}}},
    {"subs": {"n": {"override": []}}}, {"subs": {"n": {"override": {"presence": True}}}},
    {"subs": {"n": {"override": {"presence": {"value": 1}}}}},
], ids=repr)
def test_connect_claim_of_wrong_type(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        verifier().connect_token(unchecked({"sub": "u", **claims}))


@pytest.mark.parametrize("claims", [
    *WRONG_COMMON_CLAIMS,
    {"channel": 1}, {"channel": ["c"]}, {"client": 1}, {"b64data": {}},
    {"override": []}, {"override": {"join_leave": "yes"}},
    {"override": {"force_positioning": {"value": "true"}}},
], ids=repr)
def test_subscription_claim_of_wrong_type(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        verifier().subscription_token(unchecked({"sub": "u", "channel": "c", **claims}))


@pytest.mark.parametrize("verify_name", ["connect_token", "subscription_token"])
@pytest.mark.parametrize("token", [None, b"bytes", 5])
def test_token_that_is_not_text(verify_name: str, token: object) -> None:
    verify: Callable[[object], object] = getattr(verifier(), verify_name)
    with pytest.raises(InvalidToken):
        verify(token)
