"""Connection and subscription JWTs for the hub's clients, good and bad on purpose.

Made with PyJWT as an application backend would make them; each bad variant
breaks exactly one thing Centrifugo checks (signature, expiry, audience,
claims), so a test names what the hub must notice.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt


@dataclass(frozen=True)
class Jwts:
    secret: str
    audience: str = ""  # put in every token as `aud` unless a test overrides it

    def connect(self, user: str, *, ttl: float = 3600, **claims: Any) -> str:
        """A connection token; a negative ttl makes it already expired."""
        return self.sign({"sub": user, **claims}, ttl)

    def subscription(self, user: str, channel: str, *, ttl: float = 3600,
                     **claims: Any) -> str:
        return self.sign({"sub": user, "channel": channel, **claims}, ttl)

    def forged(self, claims: dict[str, Any], ttl: float = 3600) -> str:
        """Well formed, signed with a key the hub does not know."""
        return self.sign(claims, ttl, key=secrets.token_hex(32))

    def sign(self, claims: dict[str, Any], ttl: float, key: str | None = None) -> str:
        now = int(time.time())
        full = {"iat": now, "exp": now + int(ttl), **claims}
        if self.audience and "aud" not in claims:
            full["aud"] = self.audience
        return jwt.encode(full, key or self.secret, algorithm="HS256")


def unsigned(claims: dict[str, Any]) -> str:
    """`alg: none`: a token anyone can write, which no hub may accept."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return part({"alg": "none", "typ": "JWT"}) + "." + part(claims) + "."
