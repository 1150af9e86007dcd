"""What a session's queue holds: the application's messages and its close,
typed, never a wire format. Each protocol renders them at delivery (SockJS
frames, raw websocket messages, Centrifugo pushes).

An item is one kind byte and its payload. The scripts know one kind: a close
(`c`) ends a session's items. Messages are stored as the application's text
(lone surrogates kept, as a JSON client may send them).
"""

from __future__ import annotations

from dataclasses import dataclass

MESSAGE = b"m"
CLOSE = b"c"
_TEXT = ("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class Close:
    """Why a session or a connection ends: a code and a reason for the client."""

    code: int
    reason: str


def message_item(text: str) -> bytes:
    return MESSAGE + stored(text)


def close_item(close: Close) -> bytes:
    return CLOSE + f"{close.code} {close.reason}".encode(*_TEXT)


def is_close(item: bytes) -> bool:
    return item[:1] == CLOSE


def close_of(item: bytes) -> Close:
    code, _, reason = item[1:].decode(*_TEXT).partition(" ")
    return Close(int(code), reason)


def payload_of(item: bytes) -> bytes:
    """A message item's text, as stored (see text())."""
    return item[1:]


def text(payload: bytes) -> str:
    """A stored message (queue item payload or channel publication) as text."""
    return payload.decode(*_TEXT)


def stored(message: str) -> bytes:
    """A message as channel histories store it (the text alone)."""
    return message.encode(*_TEXT)
