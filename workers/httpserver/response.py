"""HTTP/1.1 response framing: bytes out, no sockets here."""

from __future__ import annotations

import time
from email.utils import formatdate
from enum import Enum

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding"})


class Framing(Enum):
    LENGTH = "length"  # Content-Length: the body is known or announced
    CHUNKED = "chunked"  # HTTP/1.1 stream
    CLOSE = "close"  # HTTP/1.0 stream: the end of the body is the end of the connection
    NONE = "none"  # HEAD, 1xx, 204, 304


def has_no_body(method: str, status: str) -> bool:
    return method == "HEAD" or status[:1] == "1" or status[:3] in ("204", "304")


def choose_framing(headers: list[tuple[str, str]], *, version: str, no_body: bool,
                   known_length: int | None) -> tuple[Framing, list[tuple[str, str]]]:
    """How the body is delimited, and the headers that say so.

    The app's own Connection and Transfer-Encoding headers are dropped: the
    server alone decides how the connection is used.
    """
    kept = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
    if no_body:
        return Framing.NONE, kept
    if any(n.lower() == "content-length" for n, _ in kept):
        return Framing.LENGTH, kept
    if known_length is not None:
        return Framing.LENGTH, [*kept, ("Content-Length", str(known_length))]
    if version == "1.1":
        return Framing.CHUNKED, [*kept, ("Transfer-Encoding", "chunked")]
    return Framing.CLOSE, kept


_date: tuple[int, str] = (0, "")


def http_date() -> str:
    """The Date header's value, formatted once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


def response_head(status: str, headers: list[tuple[str, str]], *, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status}\r\nDate: {http_date()}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    if not keep_alive:
        lines.append("Connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; never call it with b'' (that ends the body)."""
    return b"%X\r\n%s\r\n" % (len(data), data)


def error_response(status: str, body: str) -> bytes:
    data = body.encode()
    head = response_head(status, [("Content-Type", "text/plain; charset=UTF-8"),
                                  ("Content-Length", str(len(data)))], keep_alive=False)
    return head + data
