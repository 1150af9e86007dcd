"""Paths under a service prefix, parsed to what they name."""

from __future__ import annotations

import re
from dataclasses import dataclass

TRANSPORTS = frozenset(
    {
        "websocket",
        "xhr",
        "xhr_send",
        "xhr_streaming",
        "eventsource",
        "htmlfile",
        "jsonp",
        "jsonp_send",
    }
)

_IFRAME = re.compile(r"iframe[0-9a-z._-]*\.html")
_SEGMENT = re.compile(r"[^/.]+")
_CALLBACK = re.compile(r"[a-zA-Z0-9_.\-]+")


@dataclass(frozen=True)
class Route:
    """kind is one of: greeting, info, iframe, raw_websocket, session."""

    kind: str
    session_id: str = ""
    transport: str = ""


GREETING = Route("greeting")
INFO = Route("info")
IFRAME = Route("iframe")
RAW_WEBSOCKET = Route("raw_websocket")


def route(rest: str) -> Route | None:
    """Route for the path after the service prefix ('' or starting with '/'), or None (404)."""
    if rest in ("", "/"):
        return GREETING
    parts = rest[1:].split("/")
    if len(parts) == 1:
        name = parts[0]
        if name == "info":
            return INFO
        if name == "websocket":
            return RAW_WEBSOCKET
        if _IFRAME.fullmatch(name):
            return IFRAME
        return None
    if len(parts) == 3:
        server, session, transport = parts
        if (
            transport in TRANSPORTS
            and _SEGMENT.fullmatch(server)
            and _SEGMENT.fullmatch(session)
        ):
            return Route("session", session_id=session, transport=transport)
    return None


def valid_callback(name: str) -> bool:
    return bool(_CALLBACK.fullmatch(name))
