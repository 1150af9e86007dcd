"""What the receive cycle hands a transport: typed events, no wire format
(in the style of h11's events). Each protocol renders them its own way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sockhop.session_store.items import Close


@dataclass(frozen=True, slots=True)
class Opened:
    """This request created the session."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Nothing to send for heartbeat_delay: say the connection is alive."""


# Tuples: one is made per message on the hot path, where a frozen dataclass's
# __init__ cost several times as much.
class Part(NamedTuple):
    """Stored messages (see session_store.items.text) in order. `shared` is
    given when every follower of a channel run gets exactly these: what a
    protocol builds from them once may be kept there for the others."""

    payloads: Sequence[bytes]
    shared: dict[object, Any] | None = None


class Messages(NamedTuple):
    """Messages for the client; writing them delivers `queue_items` queue
    items and the channel offsets in `positions`."""

    parts: Sequence[Part]
    queue_items: int = 0
    positions: dict[str, int] | None = None


class Ping(Messages):
    """The application's own heartbeat (Service.heartbeat_message, e.g.
    Centrifugo's `{}`): written as messages; a transport that holds its client
    to an answer (Service.heartbeat_answer) starts the clock."""

    __slots__ = ()


class Closing(NamedTuple):
    """The session's close (or, for this request only, 2010): nothing follows."""

    close: Close
    queue_items: int = 0


Event = Opened | Heartbeat | Messages | Closing  # a Ping is Messages

OPENED = Opened()
HEARTBEAT = Heartbeat()
