"""What a receiver has loaded and not yet handed to its transport, and the
events it makes: channel publications (handed over in memory), messages this
process sent to a session its websocket holds, and queue items."""

from __future__ import annotations

from sockhop.session_store.items import close_of, is_close, payload_of
from sockhop.workers.transports.events import Closing, Event, Messages, Part


class Outbox:
    __slots__ = ("direct", "items", "publications")

    def __init__(self) -> None:
        self.publications: list[Part] = []
        self.direct: list[bytes] = []
        self.items: list[bytes] = []

    def __bool__(self) -> bool:
        return bool(self.publications or self.direct or self.items)

    def events(self, positions: dict[str, int]) -> list[Event]:
        """Everything loaded, as events (and emptied): one event with the
        messages this process sent, then queue messages, then publications
        (which deliver the channels up to `positions`), and the session's close,
        if queued, ending the list. Queue messages go before publications: a
        reply queued with a subscription must precede what it subscribed to.
        """
        parts: list[Part] = []
        if self.direct:
            parts.append(Part(self.direct))
            self.direct = []
        items, self.items = self.items, []
        messages = 0
        while messages < len(items) and not is_close(items[messages]):
            messages += 1
        if messages:
            parts.append(Part([payload_of(item) for item in items[:messages]]))
        delivers = dict(positions) if self.publications else None
        parts += self.publications
        self.publications = []
        events: list[Event] = []
        if parts:
            events.append(Messages(parts, messages, delivers))
        if messages < len(items):
            events.append(Closing(close_of(items[messages]), 1))
        return events
