"""Connection and subscription JWTs, checked in the order Centrifugo checks them.

The order decides what a client is told, so it is Centrifugo's
(internal/jwtverify VerifyConnectToken / VerifySubscribeToken): parse and
type-check every claim -> issuer/audience regex -> signature -> exact
audience/issuer -> `channel` claim -> exp/nbf. Every failure before the last
step is InvalidToken (connect: close 3500, subscribe: error 103), so a forged
token that is also expired is never reported as expired (109, which makes
the SDK fetch a new token and retry). A subscription token, like
Centrifugo's, is checked for expiry before its required `channel`.

PyJWT's algorithm objects check the signatures; the claim checks are ours,
since PyJWT's decode would check exp before we had decided the token is
genuine.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import get_default_algorithms

from sockhop.workers.config import ConfigError
from sockhop.workers.hub.protocol import loads


class InvalidToken(Exception):
    """Forged, malformed or not meant for us: the client must not retry with it."""


class ExpiredToken(Exception):
    """Genuine but outside its exp/nbf window: the client may fetch a new token."""


class TokenConfig(Protocol):
    """What the verifier reads of `client.token` / `client.subscription_token`."""

    @property
    def hmac_secret_key(self) -> str: ...
    @property
    def hmac_previous_secret_key(self) -> str: ...
    @property
    def hmac_previous_secret_key_valid_until(self) -> int: ...
    @property
    def rsa_public_key(self) -> str: ...
    @property
    def ecdsa_public_key(self) -> str: ...
    @property
    def audience(self) -> str: ...
    @property
    def audience_regex(self) -> str: ...
    @property
    def issuer(self) -> str: ...
    @property
    def issuer_regex(self) -> str: ...
    @property
    def user_id_claim(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ConnectToken:
    """Claims of a connection JWT; `expire_at` 0 means never, None means "use exp"."""

    user: str
    exp: int | None
    expire_at: int | None
    info: object | None
    channels: tuple[str, ...]
    subs: dict[str, dict]
    meta: object | None


@dataclass(frozen=True, slots=True)
class SubscriptionToken:
    """Claims of a subscription JWT; `override` is the JSON object as sent
    (e.g. {"presence": {"value": true}}), its shape already checked."""

    user: str
    channel: str
    client: str
    exp: int | None
    expire_at: int | None
    info: object | None
    data: object | None
    override: dict | None


_Verify = Callable[[bytes, bytes], bool]  # (signing input, signature) -> genuine?

_ALGORITHMS = get_default_algorithms()
_HMAC_NAMES = ("HS256", "HS384", "HS512")
_RSA_NAMES = ("RS256", "RS384", "RS512")
# ES algorithms fix the curve: a P-384 key can only ever verify ES384.
_EC_NAME_BY_CURVE = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_OVERRIDE_NAMES = ("presence", "join_leave", "force_push_join_leave", "force_recovery",
                   "force_positioning")
_TOKEN_SHAPE = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)")


class TokenVerifier:
    """Verifies tokens against one token config; keys and regexes are loaded once."""

    def __init__(self, config: TokenConfig, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._verifiers = _verifiers(config)
        self._previous_verifiers = _hmac_verifiers(config.hmac_previous_secret_key)
        self._previous_valid_until = config.hmac_previous_secret_key_valid_until
        self._audience = config.audience
        self._issuer = config.issuer
        self._audience_regex = _compiled(config.audience_regex, "audience_regex")
        self._issuer_regex = _compiled(config.issuer_regex, "issuer_regex")
        self._user_id_claim = config.user_id_claim or "sub"

    def connect_token(self, token: str) -> ConnectToken:
        now = self._now()
        claims = self._genuine_claims(token, now)
        if _text(claims, "channel"):
            raise InvalidToken("a connection token can not have a channel claim")
        found = ConnectToken(
            user=self._user(claims),
            exp=_timestamp(claims, "exp"),
            expire_at=_integer(claims, "expire_at"),
            info=claims.get("info"),
            channels=_texts(claims, "channels"),
            subs=_subs(claims),
            meta=claims.get("meta"),
        )
        _check_lifetime(claims, now)
        return found

    def subscription_token(self, token: str) -> SubscriptionToken:
        now = self._now()
        claims = self._genuine_claims(token, now)
        found = SubscriptionToken(
            user=self._user(claims),
            channel=_text(claims, "channel"),
            client=_text(claims, "client"),
            exp=_timestamp(claims, "exp"),
            expire_at=_integer(claims, "expire_at"),
            info=claims.get("info"),
            data=claims.get("data"),
            override=_override(claims.get("override")),
        )
        _text(claims, "b64data")  # binary data is for protobuf clients: only type-checked
        _check_lifetime(claims, now)
        if not found.channel:
            raise InvalidToken("a subscription token needs a channel claim")
        return found

    def _genuine_claims(self, token: str, now: float) -> dict[str, Any]:
        """Everything up to (not including) the token-kind checks and exp/nbf."""
        shape = _TOKEN_SHAPE.fullmatch(token) if isinstance(token, str) else None
        if shape is None:
            raise InvalidToken("not three base64url parts")
        header_part, claims_part, signature_part = shape.groups()
        header = _json_object(header_part, "header")
        claims = _json_object(claims_part, "claims")
        signature = _base64url(signature_part, "signature")
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise InvalidToken("header alg is not a string")
        # Type-checked first, as Centrifugo's decoder does (b64info: protobuf only).
        for name in ("typ", "cty", "kid"):
            _text(header, name)
        for name in ("sub", "iss", "jti", "b64info"):
            _text(claims, name)
        for name in ("exp", "nbf", "iat"):
            _timestamp(claims, name)
        audiences = _audiences(claims)
        issuer = _text(claims, "iss")

        if self._issuer_regex is not None and not self._issuer_regex.search(issuer):
            raise InvalidToken("issuer not matched")
        if self._audience_regex is not None and not any(
            self._audience_regex.search(audience) for audience in audiences
        ):
            raise InvalidToken("audience not matched")
        signing_input = f"{header_part}.{claims_part}".encode("ascii")
        if not self._signed(algorithm, signing_input, signature, now):
            raise InvalidToken(f"bad signature or disabled algorithm {algorithm!r}")
        if self._audience and self._audience not in audiences:
            raise InvalidToken("invalid audience")
        if self._issuer and issuer != self._issuer:
            raise InvalidToken("invalid issuer")
        return claims

    def _signed(self, algorithm: str, signing_input: bytes, signature: bytes, now: float) -> bool:
        verify = self._verifiers.get(algorithm)
        if verify is not None and verify(signing_input, signature):
            return True
        verify_previous = self._previous_verifiers.get(algorithm)
        if verify_previous is None:
            return False
        valid_until = self._previous_valid_until
        if valid_until > 0 and int(now) > valid_until:
            return False
        return verify_previous(signing_input, signature)

    def _user(self, claims: dict[str, Any]) -> str:
        # A custom claim is read the way Centrifugo reads it (gjson .String()):
        # absent is anonymous, an integer ID becomes its decimal text.
        value = claims.get(self._user_id_claim)
        if value is None or isinstance(value, str):
            return value or ""
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise InvalidToken(f"{self._user_id_claim} is not a string")


def _verifiers(config: TokenConfig) -> dict[str, _Verify]:
    verifiers = _hmac_verifiers(config.hmac_secret_key)
    if config.rsa_public_key:
        key = _public_key(config.rsa_public_key, "rsa_public_key")
        if not isinstance(key, rsa.RSAPublicKey):
            raise ConfigError("rsa_public_key: not an RSA public key")
        verifiers.update({name: _verifier(name, key) for name in _RSA_NAMES})
    if config.ecdsa_public_key:
        key = _public_key(config.ecdsa_public_key, "ecdsa_public_key")
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ConfigError("ecdsa_public_key: not an ECDSA public key")
        name = _EC_NAME_BY_CURVE.get(key.curve.name)
        if name is None:
            raise ConfigError(f"ecdsa_public_key: curve {key.curve.name} is not P-256/384/521")
        verifiers[name] = _verifier(name, key)
    return verifiers


def _hmac_verifiers(secret: str) -> dict[str, _Verify]:
    # The raw bytes, not PyJWT's prepare_key: it refuses secrets that look like
    # PEM keys, and Centrifugo takes any string as the HMAC secret.
    if not secret:
        return {}
    return {name: _verifier(name, secret.encode()) for name in _HMAC_NAMES}


def _verifier(name: str, key: object) -> _Verify:
    algorithm = _ALGORITHMS[name]
    return lambda signing_input, signature: algorithm.verify(signing_input, key, signature)


def _public_key(pem: str, option: str) -> object:
    """A PEM public key or, as Centrifugo also accepts, a certificate holding one."""
    data = pem.encode()
    try:
        return load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        pass
    try:
        return x509.load_pem_x509_certificate(data).public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{option}: not a PEM public key or certificate") from exc


def _compiled(pattern: str, option: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{option}: {exc}") from exc


def _base64url(part: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken(f"{what} is not base64url") from exc


def _json_object(part: str, what: str) -> dict[str, Any]:
    # NaN, Infinity and 1e400 are refused: re-encoded they would not be JSON.
    try:
        value = loads(_base64url(part, what).decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise InvalidToken(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidToken(f"{what} is not a JSON object")
    return value


def _text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidToken(f"{name} is not a string")
    return value


def _integer(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidToken(f"{name} is not an integer")
    return value


def _timestamp(claims: dict[str, Any], name: str) -> int | None:
    """A NumericDate: seconds, fractions allowed (kept whole, as Centrifugo does)."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"{name} is not a number")
    return int(value)


def _texts(claims: dict[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidToken(f"{name} is not a list of strings")
    return tuple(value)


def _audiences(claims: dict[str, Any]) -> tuple[str, ...]:
    """`aud` is one string or a list of them."""
    if isinstance(claims.get("aud"), str):
        return (claims["aud"],)
    return _texts(claims, "aud")


def _subs(claims: dict[str, Any]) -> dict[str, dict]:
    """channel -> options object (info, data, override, ...); null options are {}."""
    value = claims.get("subs")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidToken("subs is not an object")
    subs: dict[str, dict] = {}
    for channel, options in value.items():
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise InvalidToken(f"subs[{channel!r}] is not an object")
        _text(options, "b64info")
        _text(options, "b64data")
        _override(options.get("override"))
        subs[channel] = options
    return subs


def _override(value: object) -> dict | None:
    """Each known override is {"value": bool}, as in Centrifugo's claims."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidToken("override is not an object")
    for name in _OVERRIDE_NAMES:
        wrapped = value.get(name)
        if wrapped is None:
            continue
        if not isinstance(wrapped, dict) or type(wrapped.get("value")) not in (bool, type(None)):
            raise InvalidToken(f"override {name} is not {{\"value\": bool}}")
    return value


def _check_lifetime(claims: dict[str, Any], now: float) -> None:
    """Valid strictly before exp and strictly after nbf (cristalhq/jwt's rule)."""
    exp = claims.get("exp")
    nbf = claims.get("nbf")
    if exp is not None and not exp > now:
        raise ExpiredToken("token expired")
    if nbf is not None and not nbf < now:
        raise ExpiredToken("token not valid yet")
