"""Opening handshake: validate a WSGI environ and build the 101 response bytes.

Pure functions, no IO: RFC 6455 (version 13) and the legacy hixie-76 draft
(Sec-WebSocket-Key1/Key2 plus an 8-byte key3 after the headers), which the
SockJS protocol suite still checks (Websocket.test_haproxy).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sockhop.workers.websocket.errors import HandshakeError

RFC6455_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = "13"
HIXIE76_KEY3_LENGTH = 8

BAD_UPGRADE_BODY = b'Can "Upgrade" only to "WebSocket".'
BAD_CONNECTION_BODY = b'"Connection" must be "Upgrade".'


@dataclass(frozen=True, slots=True)
class Rfc6455Request:
    """A valid RFC 6455 upgrade: the client's key and its extension offers."""

    key: str
    extension_offers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hixie76Request:
    """A valid hixie-76 upgrade: the two decoded key numbers and the echo values."""

    number1: int
    number2: int
    origin: str
    location: str


def header_tokens(value: str | None) -> list[str]:
    """Comma-separated header tokens, lower-cased (gunicorn joins repeats with ',')."""
    if not value:
        return []
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def validate(environ: Mapping[str, Any]) -> Rfc6455Request | Hixie76Request:
    """Check the upgrade request; raise HandshakeError with the HTTP answer if refused.

    Order matters for the SockJS suite: the method is checked first (a POST
    with upgrade headers is 405), then Upgrade, then Connection.
    """
    if environ.get("REQUEST_METHOD") != "GET":
        raise HandshakeError("405 Method Not Allowed", b"", [("Allow", "GET")])
    if "websocket" not in header_tokens(environ.get("HTTP_UPGRADE")):
        raise HandshakeError("400 Bad Request", BAD_UPGRADE_BODY)
    if "upgrade" not in header_tokens(environ.get("HTTP_CONNECTION")):
        raise HandshakeError("400 Bad Request", BAD_CONNECTION_BODY)
    if environ.get("SERVER_PROTOCOL", "HTTP/1.1") in ("HTTP/1.0", "HTTP/0.9"):
        raise HandshakeError("400 Bad Request", b"WebSocket needs HTTP/1.1.")

    key1 = environ.get("HTTP_SEC_WEBSOCKET_KEY1")
    key2 = environ.get("HTTP_SEC_WEBSOCKET_KEY2")
    if key1 is not None and key2 is not None and "HTTP_SEC_WEBSOCKET_VERSION" not in environ:
        return _validate_hixie76(environ, key1, key2)

    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip()
    if version != SUPPORTED_VERSION:
        raise HandshakeError("426 Upgrade Required", b"Unsupported WebSocket version.",
                             [("Sec-WebSocket-Version", SUPPORTED_VERSION)])
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        raw_key = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw_key = b""
    if len(raw_key) != 16:
        raise HandshakeError("400 Bad Request", b"Invalid Sec-WebSocket-Key.")
    offers = tuple(offer.strip() for offer in
                   environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS", "").split(",") if offer.strip())
    return Rfc6455Request(key=key, extension_offers=offers)


def accept_value(key: str) -> str:
    """Sec-WebSocket-Accept for a client key (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1(key.encode("ascii") + RFC6455_GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def rfc6455_response(key: str, extensions: str | None = None) -> bytes:
    """The 101 response head. No Content-Length: the SockJS suite checks it is absent."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_value(key)}",
    ]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def hixie76_response(request: Hixie76Request) -> bytes:
    """The hixie-76 101 head, sent before key3 arrives (the client waits for it)."""
    lines = [
        "HTTP/1.1 101 WebSocket Protocol Handshake",
        "Upgrade: WebSocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Origin: {request.origin}",
        f"Sec-WebSocket-Location: {request.location}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def hixie76_challenge(number1: int, number2: int, key3: bytes) -> bytes:
    """The 16-byte answer: MD5 of both key numbers (big-endian 32-bit) and key3."""
    if len(key3) != HIXIE76_KEY3_LENGTH:
        raise ValueError("key3 must be 8 bytes")
    return hashlib.md5(struct.pack(">II", number1, number2) + key3).digest()


def hixie76_key_number(key: str) -> int:
    """Decode Key1/Key2: the digits as a number divided by the count of spaces."""
    digits = "".join(ch for ch in key if "0" <= ch <= "9")
    spaces = key.count(" ")
    if not digits or spaces == 0:
        raise HandshakeError("400 Bad Request", b"Invalid Sec-WebSocket-Key1/Key2.")
    number = int(digits)
    if number % spaces:
        raise HandshakeError("400 Bad Request", b"Invalid Sec-WebSocket-Key1/Key2.")
    number //= spaces
    if number > 0xFFFFFFFF:
        raise HandshakeError("400 Bad Request", b"Invalid Sec-WebSocket-Key1/Key2.")
    return number


def _validate_hixie76(environ: Mapping[str, Any], key1: str, key2: str) -> Hixie76Request:
    number1 = hixie76_key_number(key1)
    number2 = hixie76_key_number(key2)
    origin = environ.get("HTTP_ORIGIN") or environ.get("HTTP_SEC_WEBSOCKET_ORIGIN") or "null"
    host = environ.get("HTTP_HOST")
    if not host:
        host = f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    scheme = "wss" if environ.get("wsgi.url_scheme") == "https" else "ws"
    location = f"{scheme}://{host}{request_target(environ)}"
    if any(ch in value for value in (origin, location) for ch in "\r\n\0"):
        raise HandshakeError("400 Bad Request", b"Invalid header value.")
    return Hixie76Request(number1=number1, number2=number2, origin=origin, location=location)


def request_target(environ: Mapping[str, Any]) -> str:
    """Path and query as the client sent them (RAW_URI), for the Location echo."""
    raw = environ.get("RAW_URI")
    if raw:
        if raw.startswith(("http://", "https://")):  # absolute-form request target
            slash = raw.find("/", raw.index("://") + 3)
            raw = raw[slash:] if slash >= 0 else "/"
        return raw
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    path = quote(path.encode("latin-1"), safe="/;=,@")
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path
