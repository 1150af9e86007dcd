"""A receiving connection's hold on its session: the lease, and the channels it
follows. What to send when is the receive cycle's (receive_cycle.py).

A Receiver lives for one HTTP request (or one websocket). Queue items stay in
Redis until written; `sent()` counts them and the process acknowledges them
within ~100 ms (session_store.acknowledgements), so a worker killed
mid-request loses nothing that had not reached the client's socket and sends
again at most what it wrote in its last ~100 ms. Channel publications are
handed over in memory by the process's fan-out; the receiver keeps their
offsets and saves them when it lets go (and along with its acknowledgements
of queue items).

A receiver lets go of the lease *before* its client can see the answer end
(a poll's one chunk, a stream's last chunk), so that the client's next
request, on whichever process, finds the lease free: only a receiver that is
really open at the same time gets 2010.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import gevent

from sockhop.session_store import Busy, Created, Opened, SessionKey, StoreUnavailable, Taken
from sockhop.session_store.errors import NotSent
from sockhop.session_store.fanout import Run
from sockhop.session_store.items import close_of
from sockhop.session_store.outage import redis_outage
from sockhop.session_store.sessions import Acknowledgement, ReceiverResult
from sockhop.workers import metrics
from sockhop.workers.application import Service
from sockhop.workers.disconnect import ANOTHER_CONNECTION, INTERRUPTED
from sockhop.workers.httpserver.streams import DisconnectWatch
from sockhop.workers.runtime import Runtime
from sockhop.workers.transports.events import HEARTBEAT, OPENED, Closing, Event, Messages, Part
from sockhop.workers.transports.outbox import Outbox

log = logging.getLogger("sockhop.receiver")

# Receiver.express: write these messages now if possible; True when done.
Express = Callable[[Messages], bool]
# How long a receiver that found the session busy waits for the holder's process
# to say whether its client is still there (it answers in a round trip; this
# bound only matters if that process is stuck).
PROBE_TIMEOUT = 0.5
BUSY = Closing(ANOTHER_CONNECTION)
# A poll whose take failed answers 503 and undoes the take in the background, trying
# for this long from when the take was sent (a failover's promotion takes seconds)...
UNTAKE_WITHIN = 5.0
# ... this often.
UNTAKE_RETRY = 0.1
T = TypeVar("T")
P = ParamSpec("P")


def whole_run(run: Run) -> Messages:
    """A run as one event, made once for all the followers that take it whole
    (its part carries the run's `shared`, where protocols keep what they build)."""
    event = run.shared.get(Messages)
    if event is None:
        event = run.shared[Messages] = Messages([Part(run.payloads, run.shared)])
    return event  # type: ignore[no-any-return]


class Ended(Exception):
    """The receiver must end: client gone, lease lost, or process draining."""


class Receiver:
    # Slots: an idle stream holds one of these for minutes (memory per session).
    __slots__ = ("_watch", "acked_upto", "catch_up", "client_gone", "closed", "delivered",
                 "exclusive", "express", "finished", "holder", "holding", "key", "outbox",
                 "poll", "positions", "renewed_at", "runtime", "service", "transport",
                 "version", "waiter", "written_upto")

    def __init__(self, runtime: Runtime, service: Service, session_id: str,
                 sock: Any = None, *, transport: str, poll: bool = False,
                 exclusive: bool = False) -> None:
        self.runtime = runtime
        self.service = service
        self.transport = transport  # its name in metrics
        self.finished = False
        metrics.receiver_opened(transport)
        self.key = SessionKey(service.name, session_id)
        self.holder = runtime.new_holder()
        # A poll answers one event and lets go in the same step as it takes it.
        self.poll = poll
        # Registered before the lease is taken, so no wake-up can be missed.
        self.waiter = runtime.wakeups.register(self.key.tag)
        self.outbox = Outbox()
        # Absolute queue positions: written up to, and acknowledged up to.
        # Acknowledging a position is idempotent, whatever the order it lands in.
        self.written_upto = 0
        self.acked_upto = 0
        self.holding = False
        self.renewed_at = 0.0  # when the lease was last taken or renewed (monotonic)
        self.client_gone = False
        # The session is closed (this receiver closed it, or wrote its close).
        self.closed = False
        # No other receiver ever asks for this session (a websocket's: its id is
        # its own), so once closed there is no one to wake as it lets go.
        self.exclusive = exclusive
        # Channels: offsets buffered up to, offsets written up to, and what is buffered.
        self.version = b""
        self.positions: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.catch_up: set[str] = set()
        # Set by the receive cycle while it waits, if its transport can write from
        # another greenlet: a delivery then needs no wake-up of this receiver.
        self.express: Express | None = None
        self._watch = DisconnectWatch(sock, self.client_left) if sock else None

    def client_left(self) -> None:
        """The client ended the receiving connection; the waiting loop ends the session."""
        self.client_gone = True
        self.waiter.event.set()

    def client_present(self) -> bool:
        if self.client_gone:
            return False
        return self._watch is None or self._watch.check()

    # --- the lease ---

    def open(self) -> Event | None:
        """Take the lease. Returns an event that answers the request first
        (opened, 2010, or the session's close), or None with queued items loaded."""
        store = self.runtime.store
        self.waiter.reset()
        result = self._taking(store.open_receiver, self.key, self.holder, poll=self.poll,
                              probe=True)
        if isinstance(result, Busy):
            result = self._wait_for_holder()
        if isinstance(result, Opened | Taken):
            metrics.QUEUE_LOADED.observe(len(result.items))
        if isinstance(result, Opened):
            self._hold()
            self.outbox.items = result.items
            self.written_upto = self.acked_upto = result.head
            self._follow(result.version, result.subscriptions)
            return None
        if isinstance(result, Taken):
            self.outbox.items = result.items  # the lease is let go already
            return None
        if isinstance(result, Created):
            if not self.poll:
                self._hold()
            self.version = b"0"  # no subscriptions yet
            metrics.session_opened(self.transport)
            self.runtime.dispatcher.opened(self.service, self.key)
            return OPENED
        if isinstance(result, Busy):
            return BUSY
        return Closing(close_of(result.item))

    def _wait_for_holder(self) -> ReceiverResult:
        """The holder's process answers at once: its client is still there (2010
        now), or it has just left and the lease is let go (its release wakes us).
        Other rings of this session are not the answer (the close its holder just
        wrote, when it was aborted: the release follows): keep asking Redis until
        the answer or PROBE_TIMEOUT."""
        store = self.runtime.store
        deadline = time.monotonic() + PROBE_TIMEOUT
        while True:
            self.waiter.wait(max(0.0, deadline - time.monotonic()))
            told_busy = self.waiter.told_busy
            self.waiter.reset()  # before reading: a ring after the read is not lost
            result = self._taking(store.open_receiver, self.key, self.holder, poll=self.poll,
                                  probe=False)
            if not isinstance(result, Busy) or told_busy or time.monotonic() >= deadline:
                return result

    def _taking(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A Redis call that, for a poll, may take the queue's head and let go, leaving
        the items pending for the session's next receiver to acknowledge. If it
        fails once sent, the take may have run (and survived a failover, on the
        promoted replica) though this poll answers 503, and the client, which polls
        again, would never get those items: the take is undone. In the background:
        the 503 goes out at once (a Redis outage must not hold requests); the first
        attempt is queued before anything this process sends afterwards."""
        if not self.poll:
            return call(*args, **kwargs)
        sent = time.monotonic()
        try:
            return call(*args, **kwargs)
        except NotSent:
            raise  # it did not run
        except StoreUnavailable:
            gevent.spawn(self._untake, sent)
            raise

    def _untake(self, sent: float) -> None:
        """Undo this poll's take, if it ran, trying until UNTAKE_WITHIN after it was
        sent (Redis comes back, or the sentinels promote a replica); after that,
        what it took may be lost, as an answer that never arrives is."""
        while True:
            try:
                if self.runtime.store.untake(self.key, self.holder):
                    log.info("a poll of %s could not answer what it took: undone, "
                             "for the next receiver", self.key.tag)
                return
            except StoreUnavailable as exc:
                if time.monotonic() - sent >= UNTAKE_WITHIN:
                    log.warning("a poll of %s could not answer, nor undo what it may have "
                                "taken: %s", self.key.tag, exc)
                    return
            gevent.sleep(UNTAKE_RETRY)

    def _hold(self) -> None:
        self.holding = True
        self.renewed_at = time.monotonic()
        self.waiter.client_present = self.client_present
        self.runtime.liveness.hold(self.key.tag)

    def _not_holding(self) -> None:
        if self.holding:
            self.holding = False
            self.waiter.client_present = None
            self.runtime.liveness.let_go(self.key.tag)

    def let_go(self, last: Event | None = None) -> None:
        """Release the lease before the client can see the answer end; `last` is
        the event about to be written, which the next receiver acknowledges."""
        if not self.holding:
            return
        self._not_holding()
        if self.closed and self.exclusive:
            self._forget()
            return
        pending_upto = 0
        positions = self.delivered
        if isinstance(last, Messages | Closing):
            pending_upto = self.written_upto + last.queue_items
            if isinstance(last, Messages) and last.positions:
                positions = {**positions, **last.positions}
        try:
            self.runtime.store.release(self.key, self.holder, self.written_upto, pending_upto,
                                       positions)
        except StoreUnavailable as exc:
            # The lease lapses by itself; unacknowledged items are sent again.
            redis_outage.failed(f"release of {self.key.tag}", exc)

    def _forget(self) -> None:
        """Let go of a closed session that no one else waits for: nothing to
        acknowledge or save (closed sessions expire by key TTL), and the reaper
        would only find it closed, so its index entry goes now (a burst of
        closed websockets otherwise costs the reaper a visit each, seconds
        later)."""
        try:
            self.runtime.store.forget(self.key)
        except StoreUnavailable as exc:
            redis_outage.failed(f"index entry of closed {self.key.tag}", exc)

    def lease_lapses(self) -> float:
        """When the lease lapses unless renewed (monotonic; Redis's clock may run a
        round trip behind ours)."""
        return self.renewed_at + self.runtime.store.limits.lease_ms / 1000

    def renew(self) -> None:
        """Acknowledge what was written, renew the lease, load what is queued
        (a poll that finds something takes it and lets go). Raises Ended when
        the lease is lost."""
        self.waiter.reset()
        self.acked_upto = self.written_upto
        asked = time.monotonic()
        reply = self._taking(self.runtime.store.next_items, self.key, self.holder,
                             self.written_upto, poll=self.poll, version=self.version)
        if reply is None:
            self._not_holding()
            raise Ended
        self.renewed_at = asked
        metrics.QUEUE_LOADED.observe(len(reply.items))
        if isinstance(reply, Taken):
            self.outbox.items = reply.items
            self._not_holding()
            return
        self.outbox.items = reply.items  # read after written_upto was acknowledged
        if reply.subscriptions is not None:
            self._follow(reply.version, reply.subscriptions)

    # --- events ---

    def events(self) -> list[Event]:
        """Events of what is loaded (see Outbox.events); call sent() for each
        once it was written."""
        if self.catch_up:
            self._catch_up()
        return self.outbox.events(self.positions)

    def sent(self, event: Event) -> None:
        if isinstance(event, Messages) and event.positions is not None:
            self.delivered.update(event.positions)
        if isinstance(event, Closing) and event.queue_items:
            self.closed = True  # the session's close item, from its queue
        if isinstance(event, Messages | Closing) and event.queue_items:
            self.written_upto += event.queue_items
            if self.holding:
                self.runtime.acknowledgements.mark(self)

    def acknowledgement(self) -> Acknowledgement | None:
        """What was written since the last acknowledgement (the process's batch).

        Channel offsets ride along, but never call for a batch of their own: a
        write per follower would make a publication's cost grow with its
        audience. They are saved when the receiver lets go.
        """
        if not self.holding or self.written_upto <= self.acked_upto:
            return None
        self.acked_upto = self.written_upto
        return Acknowledgement(self.key, self.holder, self.written_upto, self.delivered)

    # --- waiting ---

    def wait(self, timeout: float) -> Event | None:
        """Wait for something to send: returns None with it loaded, or HEARTBEAT
        when the heartbeat is due. Raises Ended when this receiver must end."""
        if not self.must_wait():
            return None
        return self.woken(self.waiter.wait(timeout))

    def must_wait(self) -> bool:
        """False: something is loaded to send. Raises Ended when draining.
        (wait() in two halves, for a driver that waits without a greenlet.)"""
        if self.runtime.draining:
            raise Ended
        return not (self.outbox or self.catch_up)

    def woken(self, rung: bool) -> Event | None:
        """After waiting: rung, or the heartbeat is due (see wait())."""
        if self.client_gone:
            # The client closed its receiving request itself: as in sockjs-node,
            # that ends the session (a lost *server* keeps it for disconnect_delay).
            self.closed = self.runtime.dispatcher.close(self.service, self.key, INTERRUPTED,
                                                        holder=self.holder)
            raise Ended
        if self.runtime.draining:
            raise Ended
        if not rung:
            return HEARTBEAT
        if self.waiter.queue_rung:
            self.renew()
            return None
        handed_over = self.waiter.handed_over
        self.waiter.reset()  # handed over in memory: no Redis call
        if handed_over is not None and self.holding \
                and int(handed_over[0]) > int(self.version or 0):
            self._follow(*handed_over)  # not if a read brought a later version first
        return None

    def push(self, messages: list[bytes]) -> bool:
        """Messages sent from this process to the session this websocket holds."""
        direct = self.outbox.direct
        if len(direct) + len(messages) > self.runtime.settings.max_queue_length:
            return False
        if self.express is not None and not self._pending() \
                and self.express(Messages([Part(messages)])):
            metrics.count_sent(self.transport, len(messages))
            return True
        direct.extend(messages)
        self.waiter.event.set()
        return True

    # --- channels (the Follower protocol of the process's fan-out) ---

    def offer(self, channel: str, run: Run) -> int:
        position = self.positions.get(channel)
        if position is None or run.last <= position:
            return 0
        if run.first > position + 1:
            self.catch_up.add(channel)
        else:
            event = whole_run(run) if position < run.first \
                else Messages([Part(run.payloads_after(position))])
            self.positions[channel] = run.last
            if self.express is not None and not (self.outbox or self.catch_up) \
                    and self.express(event):
                self.delivered[channel] = run.last
                return len(event.parts[0].payloads)  # written without waking this receiver
            self.outbox.publications.append(event.parts[0])
        self.waiter.event.set()
        return 0

    def _pending(self) -> bool:
        return bool(self.outbox or self.catch_up)

    def lost_track(self, channel: str) -> None:
        if channel in self.positions:
            self.catch_up.add(channel)
            self.waiter.event.set()

    def _follow(self, version: bytes, subscriptions: dict[str, int]) -> None:
        """Match the channels followed to the session's subscriptions."""
        self.version = version
        fanout = self.runtime.fanout
        for channel in list(self.positions):
            if channel not in subscriptions:
                fanout.unfollow(channel, self)
                metrics.HUB_SUBSCRIPTIONS.dec()
                del self.positions[channel]
                self.delivered.pop(channel, None)
                self.catch_up.discard(channel)
        for channel, offset in subscriptions.items():
            position = self.positions.get(channel)
            if position is None:
                self.positions[channel] = offset
                fanout.follow(channel, self)  # subscribed before the history is read
                metrics.HUB_SUBSCRIPTIONS.inc()
                if not fanout.announced_after(channel, offset):
                    self.catch_up.add(channel)
            elif offset > position:
                # Left and joined again further on (e.g. resubscribed after falling
                # behind) while this receiver was not looking: start from there.
                self.positions[channel] = self.delivered[channel] = offset
                self.catch_up.add(channel)

    def _catch_up(self) -> None:
        channels = self.runtime.channels
        for channel in list(self.catch_up):
            self.catch_up.discard(channel)
            start = self.positions.get(channel)
            if start is None:
                continue
            try:
                result = channels.since(channel, start)
            except StoreUnavailable:
                self.catch_up.add(channel)  # still to do once a websocket rode the outage out
                raise
            if result.behind:
                log.info("session %s fell behind channel %s", self.key.tag, channel)
                self.runtime.dispatcher.fell_behind(self.service, self.key, channel)
                self.waiter.queue_rung = True
                self.waiter.event.set()
                continue
            # Announcements may have arrived while we read: skip what they brought.
            skip = self.positions[channel] - start
            fresh = result.items[skip:]
            if fresh:
                self.outbox.publications.append(Part(fresh))
            self.positions[channel] += len(fresh)
            if self.positions[channel] < result.top:
                self.catch_up.add(channel)  # more than one read's worth

    def finish(self) -> None:
        """Let go (acknowledging what was written) and stop listening; safe to call
        more than once."""
        if not self.finished:
            self.finished = True
            metrics.receiver_closed(self.transport)
            metrics.HUB_SUBSCRIPTIONS.dec(len(self.positions))
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        self.runtime.wakeups.unregister(self.waiter)
        for channel in self.positions:
            self.runtime.fanout.unfollow(channel, self)
        self.let_go()
