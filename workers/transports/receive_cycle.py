"""The receive cycle: the one loop of every receiving transport (polls,
streams, websockets): open → events → wait → heartbeat → limit or close.

It hands typed events (events.py) to a Transport, which renders and writes
them its own way. The cycle is a generator that yields after each write and
is resumed once that write is complete, so what follows a yield may count the
event as delivered. Before the client can see its response end (a poll's one
answer, a stream's last chunk) the cycle lets go of the lease.

A Redis outage (a failover, a restart) ends an HTTP transport's response: its
client comes back to the same session. A websocket's session ends with its
connection, so a websocket rides the outage out instead: it keeps its client
and tries again for as long as the lease it holds lasts, then renews and carries
on (what was queued meanwhile is read then).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from functools import lru_cache
from typing import Protocol

import gevent

from sockhop.session_store import StoreUnavailable
from sockhop.session_store.items import stored
from sockhop.session_store.outage import redis_outage
from sockhop.workers import metrics
from sockhop.workers.transports.events import HEARTBEAT, Closing, Event, Messages, Part, Ping
from sockhop.workers.transports.lease import renew_below
from sockhop.workers.transports.receiver import Ended, Express, Receiver

# Between tries to reach Redis again while a transport rides an outage out.
OUTAGE_RETRY = 0.25
# An outage is ridden out until this long before the lease would lapse.
LEASE_MARGIN = 1.0


class Transport(Protocol):
    """A receiving connection as the receive cycle sees it (as centrifuge's
    transport.go): it writes events, ends, and says when it is full."""

    # Polling: one event answers the request, and the receiver lets go first.
    once: bool
    # Writes messages from another greenlet while the cycle waits (fan-out),
    # or None: only the cycle's own greenlet writes.
    express: Express | None
    # The cycle's driver waits for it: the cycle yields a Park (the heartbeat
    # delay: how long to wait) and is sent back whether the waiter rang.
    # False: the cycle waits itself, blocking its greenlet.
    parks: bool
    # Keeps its client through a Redis outage (see the module's docstring).
    rides_outages: bool

    def write(self, event: Event) -> None:
        """Render and write (or hand to the driver to write before resuming)."""

    def full(self) -> bool:
        """The response reached its size limit: end it, the client reconnects."""


class Park(float):
    """Yielded by the cycle of a parking transport: wait (at most this many
    seconds) for the receiver's waiter, then send() whether it rang."""


class Pause(Park):
    """A Park that waits the whole time, whatever rings (Redis is out)."""


@lru_cache(maxsize=8)
def heartbeat_event(message: str | None) -> Event:
    """What a heartbeat is: the protocol's own (`h`), or the application's
    ping message (Service.heartbeat_message)."""
    return HEARTBEAT if message is None else Ping([Part([stored(message)])])


def receive(receiver: Receiver, transport: Transport,
            heartbeat_delay: float) -> Generator[Park | None, bool, None]:
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
            try:
                yield from _serve(receiver, transport, heartbeat, heartbeat_delay)
                return
            except StoreUnavailable as exc:
                if not transport.rides_outages:
                    raise
                redis_outage.failed(f"websocket session {receiver.key.tag} waits", exc)
                metrics.RIDING_OUTAGES.inc()
                try:
                    yield from _renew_after_outage(receiver, transport)
                finally:
                    metrics.RIDING_OUTAGES.dec()
    except Ended:
        if transport.once:  # a poll always answers: a heartbeat is well-formed
            receiver.let_go()
            transport.write(heartbeat)
            yield
    finally:
        receiver.let_go()


def _serve(receiver: Receiver, transport: Transport, heartbeat: Event,
           heartbeat_delay: float) -> Generator[Park | None, bool, None]:
    """The cycle once open, until it must end (returns, or raises Ended).

    The heartbeat is due heartbeat_delay after the last heartbeat or renewal,
    however often the cycle wakes meanwhile: counted from each wake-up, a
    client whose own commands woke it more often than that got no heartbeat,
    and its lease (renewed at heartbeats) lapsed."""
    renewal_due_below = renew_below(heartbeat_delay)  # lease left: see lease.py
    beat_at = receiver.renewed_at
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
        until_heartbeat = max(beat_at, receiver.renewed_at) + heartbeat_delay - time.monotonic()
        receiver.express = transport.express  # only while waiting: events keep their order
        try:
            if until_heartbeat <= 0:
                outcome = HEARTBEAT
            elif not transport.parks:
                outcome = receiver.wait(until_heartbeat)
            elif receiver.must_wait():
                outcome = receiver.woken((yield Park(until_heartbeat)))
            else:
                outcome = None
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
            beat_at = time.monotonic()
            if receiver.lease_lapses() - beat_at < renewal_due_below:
                receiver.renew()


def _renew_after_outage(receiver: Receiver,
                        transport: Transport) -> Generator[Park | None, bool, None]:
    """Try to renew until Redis answers (the queue is read again: what a failed
    renewal would have loaded is not lost); StoreUnavailable once the lease is
    about to lapse, or if it is gone when Redis answers."""
    give_up = receiver.lease_lapses() - LEASE_MARGIN
    while True:
        if transport.parks:
            yield Pause(OUTAGE_RETRY)
        else:
            gevent.sleep(OUTAGE_RETRY)
        if receiver.client_gone or receiver.runtime.draining:
            raise Ended  # what a ring would have said, unheard during the pause
        try:
            receiver.renew()
            return
        except StoreUnavailable:
            if time.monotonic() >= give_up:
                raise
        except Ended:  # the lease lapsed meanwhile (or was lost in a failover)
            raise StoreUnavailable("the lease lapsed during the outage") from None
