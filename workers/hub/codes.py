"""Centrifugo's error codes (in replies) and disconnect codes (close frames).

Clients decide by range whether to retry: an error with code < 100, marked
temporary, or 109 is retried; a close in 3000-3499 or 4000-4499 reconnects,
3500-3999 and 4500-4999 stop the client for good. Reasons are plain text,
never JSON (centrifuge-js reads a JSON reason as old-style advice).
"""

from __future__ import annotations

from dataclasses import dataclass

from sockhop.session_store.items import Close


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: int
    message: str
    temporary: bool = False

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.temporary:
            out["temporary"] = True
        return out


class HubError(Exception):
    """A command or API call failed with one of Centrifugo's error codes."""

    def __init__(self, error: ErrorCode) -> None:
        super().__init__(error.message)
        self.error = error


INTERNAL = ErrorCode(100, "internal server error", temporary=True)
UNAUTHORIZED = ErrorCode(101, "unauthorized")
UNKNOWN_CHANNEL = ErrorCode(102, "unknown channel")
PERMISSION_DENIED = ErrorCode(103, "permission denied")
METHOD_NOT_FOUND = ErrorCode(104, "method not found")
ALREADY_SUBSCRIBED = ErrorCode(105, "already subscribed")
LIMIT_EXCEEDED = ErrorCode(106, "limit exceeded")
BAD_REQUEST = ErrorCode(107, "bad request")
NOT_AVAILABLE = ErrorCode(108, "not available")
TOKEN_EXPIRED = ErrorCode(109, "token expired")
EXPIRED = ErrorCode(110, "expired")
TOO_MANY_REQUESTS = ErrorCode(111, "too many requests", temporary=True)
UNRECOVERABLE_POSITION = ErrorCode(112, "unrecoverable position")

# Disconnects: reconnect (3000-3499) ...
CONNECTION_CLOSED = Close(3000, "connection closed")
SHUTDOWN = Close(3001, "shutdown")
SERVER_ERROR = Close(3004, "internal server error")
CONNECTION_EXPIRED = Close(3005, "connection expired")
SUBSCRIPTION_EXPIRED = Close(3006, "subscription expired")
SLOW = Close(3008, "slow")
WRITE_ERROR = Close(3009, "write error")
INSUFFICIENT_STATE = Close(3010, "insufficient state")
FORCE_RECONNECT = Close(3011, "force reconnect")
NO_PONG = Close(3012, "no pong")
TOO_MANY_REQUESTS_CLOSE = Close(3013, "too many requests")
# ... and terminal (3500-3999).
INVALID_TOKEN = Close(3500, "invalid token")
BAD_REQUEST_CLOSE = Close(3501, "bad request")
STALE = Close(3502, "stale")
FORCE_DISCONNECT = Close(3503, "force disconnect")
CONNECTION_LIMIT = Close(3504, "connection limit")
CHANNEL_LIMIT = Close(3505, "channel limit")
INAPPROPRIATE_PROTOCOL = Close(3506, "inappropriate protocol")
PERMISSION_DENIED_CLOSE = Close(3507, "permission denied")
NOT_AVAILABLE_CLOSE = Close(3508, "not available")
TOO_MANY_ERRORS = Close(3509, "too many errors")

# Unsubscribe push codes: < 2500 for good, >= 2500 the client resubscribes.
UNSUBSCRIBE_SERVER = (2000, "server unsubscribe")
UNSUBSCRIBE_INSUFFICIENT_STATE = (2500, "insufficient state")
UNSUBSCRIBE_EXPIRED = (2501, "subscription expired")
