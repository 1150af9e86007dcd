"""Centrifugo JWTs (HS256, made with PyJWT) for the hub's clients, as an application
backend would make them."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt


@dataclass(frozen=True)
class Token:
    token: str
    exp: int | None

    def answer(self) -> dict[str, Any]:
        """What a script's ask for a token gets back."""
        return {"token": self.token, "exp": self.exp}


@dataclass(frozen=True)
class TokenMaker:
    secret: str

    def connect(
        self,
        user: str,
        *,
        ttl: float | None = 3600,
        channels: list[str] | None = None,
        info: Any = None,
    ) -> Token:
        """A connection token; ttl None: no `exp`; ttl < 0: already expired."""
        claims: dict[str, Any] = {"sub": user}
        if channels:
            claims["channels"] = channels
        if info is not None:
            claims["info"] = info
        return self._sign(claims, ttl, self.secret)

    def subscription(self, user: str, channel: str, *, ttl: float | None = 3600) -> Token:
        return self._sign({"sub": user, "channel": channel}, ttl, self.secret)

    def forged(self, user: str) -> Token:
        """Well-formed and unexpired, signed with a key the hub does not know."""
        return self._sign({"sub": user}, 3600, secrets.token_hex(32))

    @staticmethod
    def _sign(claims: dict[str, Any], ttl: float | None, key: str) -> Token:
        now = int(time.time())
        exp = None if ttl is None else now + int(ttl)
        if exp is not None:
            claims = {**claims, "exp": exp}
        return Token(jwt.encode({"iat": now, **claims}, key, algorithm="HS256"), exp)
