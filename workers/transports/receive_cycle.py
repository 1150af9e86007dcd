"""The receive cycle: the one loop of every receiving transport (polls,
streams, websockets): open → events → wait → heartbeat → limit or close.

It hands typed events (events.py) to a Transport, which renders and writes
them its own way. The cycle is a generator that yields after each write and
is resumed once that write is complete, so what follows a yield may count the
event as delivered. Before the client can see its response end (a poll's one
answer, a stream's last chunk) the cycle lets go of the lease.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Protocol

from sockhop.session_store.items import stored
from sockhop.workers import metrics
from sockhop.workers.transports.events import HEARTBEAT, Closing, Event, Messages, Part
from sockhop.workers.transports.receiver import Ended, Express, Receiver


class Transport(Protocol):
    """A receiving connection as the receive cycle sees it (as centrifuge's
    transport.go): it writes events, ends, and says when it is full."""

    # Polling: one event answers the request, and the receiver lets go first.
    once: bool
    # Writes messages from another greenlet while the cycle waits (fan-out),
    # or None: only the cycle's own greenlet writes.
    express: Express | None

    def write(self, event: Event) -> None:
        """Render and write (or hand to the driver to write before resuming)."""

    def full(self) -> bool:
        """The response reached its size limit: end it, the client reconnects."""


@lru_cache(maxsize=8)
def heartbeat_event(message: str | None) -> Event:
    """What a heartbeat is: the protocol's own (`h`), or the application's
    ping message (Service.heartbeat_message)."""
    return HEARTBEAT if message is None else Messages([Part([stored(message)])])


def receive(receiver: Receiver, transport: Transport,
            heartbeat_delay: float) -> Iterator[None]:
    """Serve the session over transport until it must end, letting go of the
    lease before the driver ends the response."""
    heartbeat = heartbeat_event(receiver.service.heartbeat_message)
    try:
        first = receiver.open()
        if first is None:
            yield  # the lease is ours: a stream's driver may start its response
        else:
            transport.write(first)
            yield
            if transport.once or isinstance(first, Closing):
                return  # answered; or 2010 or the session's close: nothing follows
        while True:
            for event in receiver.events():
                if transport.once:
                    receiver.let_go(event)  # the next receiver acknowledges it
                transport.write(event)
                if isinstance(event, Messages):  # once per wake-up, not per message
                    metrics.count_sent(receiver.transport,
                                       sum(len(part.payloads) for part in event.parts))
                yield
                receiver.sent(event)
                if transport.once or isinstance(event, Closing):
                    return
            if transport.full():
                return
            receiver.express = transport.express  # only while waiting: events keep their order
            try:
                outcome = receiver.wait(heartbeat_delay)
            finally:
                receiver.express = None
            yield  # the driver finishes what an express write left, before anything else
            if outcome is HEARTBEAT:
                if transport.once:
                    receiver.let_go()
                transport.write(heartbeat)
                yield
                if transport.once:
                    return
                receiver.renew()
    except Ended:
        if transport.once:  # a poll always answers: a heartbeat is well-formed
            receiver.let_go()
            transport.write(heartbeat)
            yield
    finally:
        receiver.let_go()
