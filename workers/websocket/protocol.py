"""What a sans-IO framing protocol (RFC 6455 or hixie-76) reports and offers.

The IO side (connection.py) feeds received bytes in and writes the bytes
the protocol builds; it never looks at frames itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A complete message: str for text, bytes for binary."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class PingReceived:
    payload: bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    payload: bytes


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The peer sent a close frame (its code, or 1005 when it sent none)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The peer broke the protocol: fail the connection with this code."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Dropped:
    """The transport ended without a close frame."""


Event = MessageReceived | PingReceived | PongReceived | PeerClosed | Failed | Dropped


class FramingProtocol(Protocol):
    """The sans-IO half of a websocket. Methods that build frames return None
    when the frame cannot be sent in the current state."""

    supports_ping: bool

    def receive_data(self, data: bytes | None) -> list[Event]:
        """Feed received bytes (None: end of stream) and return what they completed."""
        ...

    def message(self, data: str | bytes) -> bytes:
        """Frame one message; raises ConnectionClosed once a close frame went out."""
        ...

    def ping(self, payload: bytes) -> bytes | None: ...

    def pong(self, payload: bytes) -> bytes | None: ...

    def close(self, code: int, reason: str) -> bytes | None: ...
