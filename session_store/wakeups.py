"""One pub/sub connection per process and Redis server: wake-ups for its
receivers, and the announcements of the channels its receivers follow.

A waiting poll or stream holds no Redis connection: the session's lease names
this process, an enqueue publishes the session tag on this process's channel,
and the reader greenlet sets the local waiter's event. Pub/sub is only a
wake-up: the data stays in Redis, so after a reconnect everyone re-reads.

With several shards, the process's wake-up channel is followed on every shard
(a session's scripts publish on the session's shard, and the dead-holder probe
counts the subscribers there), and a channel's announcements on the channel's
shard (where its publish script runs).

On a Redis Cluster the shards are the primaries serving slots now: when slots
change owners (a failover promotes a replica, a resharding moves a channel's
slot), a reader starts on each new primary (our wake-up channel subscribed
there, so the dead-holder probe finds us), a reader of a primary that serves no
more ends, and each channel's subscription moves to its slot's owner.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict
from collections.abc import Callable
from functools import partial

import gevent
import gevent.event
import gevent.lock

from sockhop.session_store.endpoint import RedisEndpoint
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.outage import redis_outage
from sockhop.session_store.pubsub import Message, PubSubConnection
from sockhop.session_store.router import Router, hash_tag

SUBSCRIBE_TIMEOUT = 5.0

# A channel's handler gets the announcements that arrived together, in order.
Handler = Callable[[list[bytes]], None]


class Waiter:
    """A receiving request's doorbell. Register it before taking the lease.

    queue_rung says the session's Redis state changed (new items, a close, a
    subscription change, a reconnect); a ring without it is local news only
    (channel publications already handed to the receiver, or `handed_over`:
    the session's channels as this process just changed them, with their
    version, so the receiver needs no read to follow them). client_present is
    set while the receiver holds the lease: it tells whether the receiver's
    client is still connected (asked when another receiver finds the session
    busy); told_busy, that the holder's process answered such a question: its
    client is there.
    """

    __slots__ = ("client_present", "event", "handed_over", "queue_rung", "tag", "told_busy")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.event = gevent.event.Event()
        self.queue_rung = False
        self.handed_over: tuple[bytes, dict[str, int]] | None = None
        self.client_present: Callable[[], bool] | None = None
        self.told_busy = False

    def wait(self, timeout: float) -> bool:
        return self.event.wait(timeout)

    def reset(self) -> None:
        """Clear before reading the queue, so a ring after the read is never lost."""
        self.event.clear()
        self.queue_rung = False
        self.handed_over = None


class Wakeups:
    def __init__(self, router: Router) -> None:
        self.router = router  # where to listen, and to answer other processes' questions
        for index, shard in enumerate(router.shards):
            shard.on_connect.append(partial(self._follow_master, index))
        self.process_id = uuid.uuid4().hex[:16]
        self.channel = f"sh:p:{self.process_id}"
        self.subscribed = gevent.event.Event()
        self.on_reconnect: Callable[[], None] = lambda: None
        # Lists, not sets: almost always one waiter per tag, and an idle stream
        # holds its entry for minutes (a one-item set costs 216 bytes, a list 64).
        self._waiters: defaultdict[str, list[Waiter]] = defaultdict(list)
        self._handlers: dict[str, Handler] = {}
        self._confirmed: dict[str, gevent.event.Event] = {}
        self._pubsubs: dict[int, PubSubConnection] = {}  # connected, by shard
        self._readers: dict[int, gevent.Greenlet] = {}
        self._listening: dict[int, bool] = {}  # our wake-up channel confirmed, by serving shard
        self._subscribed_on: dict[str, int] = {}  # the shard a channel is (to be) subscribed on
        self._lock = gevent.lock.Semaphore()
        router.on_layout_change.append(self._follow_layout)

    def start(self, ready_timeout: float = SUBSCRIBE_TIMEOUT) -> None:
        """Subscribe before serving: until then, other processes would think us dead."""
        for index in self.router.serving():
            self._start_reader(index)
        self.subscribed.wait(ready_timeout)

    def _start_reader(self, index: int) -> None:
        reader = self._readers.get(index)
        if reader is None or reader.dead:
            self._listening[index] = False
            self.subscribed.clear()
            self._readers[index] = gevent.spawn(self._read_forever, index)

    # --- receivers of this process ---

    def register(self, tag: str) -> Waiter:
        waiter = Waiter(tag)
        self._waiters[tag].append(waiter)
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        waiters = self._waiters.get(waiter.tag)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[waiter.tag]

    def ring(self, tag: str) -> None:
        for waiter in self._waiters.get(tag, ()):
            waiter.queue_rung = True
            waiter.event.set()

    def hand_over(self, tag: str, version: bytes, subscriptions: dict[str, int]) -> None:
        for waiter in self._waiters.get(tag, ()):
            waiter.handed_over = (version, subscriptions)
            waiter.event.set()

    def ring_all(self) -> None:
        for waiters in list(self._waiters.values()):
            for waiter in waiters:
                waiter.queue_rung = True
                waiter.event.set()

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    # --- channel announcements ---

    def subscribe(self, channel: str, handler: Handler) -> bool:
        """Deliver channel's messages to handler; True once Redis confirmed it.

        Everything already received when the reader wakes reaches a handler
        in one call: its followers are woken once per batch, not per message.

        Callers read a channel's history only after this, so that nothing
        published in between is missed.
        """
        self._handlers[channel] = handler
        confirmed = self._confirmed.setdefault(channel, gevent.event.Event())
        self._send_on_shard(channel, "SUBSCRIBE")
        return confirmed.wait(SUBSCRIBE_TIMEOUT)

    def wait_subscribed(self, channel: str) -> bool:
        confirmed = self._confirmed.get(channel)
        return confirmed is not None and confirmed.wait(SUBSCRIBE_TIMEOUT)

    def unsubscribe(self, channel: str) -> None:
        self._handlers.pop(channel, None)
        self._confirmed.pop(channel, None)
        self._send_on_shard(channel, "UNSUBSCRIBE")

    def _send_on_shard(self, channel: str, command: str) -> None:
        """SUBSCRIBE on the channel's shard, UNSUBSCRIBE where it was subscribed."""
        with self._lock:
            if command == "SUBSCRIBE":
                index = self._subscribed_on[channel] = self._shard_of(channel)
            else:
                index = self._subscribed_on.pop(channel, self._shard_of(channel))
            self._send_locked(index, command, channel)

    def _send_locked(self, index: int, command: str, channel: str) -> None:
        """On shard index's connection; if down, its reader subscribes on reconnecting."""
        pubsub = self._pubsubs.get(index)
        if pubsub is not None:
            with contextlib.suppress(StoreUnavailable):
                pubsub.send(command, channel)

    def _shard_of(self, channel: str) -> int:
        return self.router.shard_index(hash_tag(channel))

    # --- the readers, one per shard serving ---

    def _read_forever(self, index: int) -> None:
        shard = self.router.shards[index]
        backoff = 0.1
        while index in self.router.serving():
            pubsub: PubSubConnection | None = None
            try:
                pubsub = PubSubConnection(shard.locator.locate(SUBSCRIBE_TIMEOUT))
                with self._lock:
                    channels = [c for c in self._handlers if self._shard_of(c) == index]
                    pubsub.send("SUBSCRIBE", self.channel, *channels)
                    self._subscribed_on.update(dict.fromkeys(channels, index))
                    self._pubsubs[index] = pubsub
                backoff = 0.1
                while True:
                    self._act_on(index, pubsub.read())
            except StoreUnavailable as exc:
                if index not in self.router.serving():
                    break  # its slots have a new owner: hung up on purpose
                self._listening[index] = False
                self.subscribed.clear()
                for channel, event in self._confirmed.items():
                    if self._subscribed_on.get(channel) == index:
                        event.clear()
                redis_outage.failed(f"pub/sub reader of {shard.locator.where} (reconnecting)", exc)
                self.router.unavailable()
                gevent.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with self._lock:
                    self._pubsubs.pop(index, None)
                if pubsub is not None:
                    pubsub.close()

    def _follow_layout(self) -> None:
        """Slots changed owners (a Cluster's failover or resharding): a reader on every
        shard serving, none on one that serves no more, each channel on its shard."""
        if not self._readers:
            return  # not started
        serving = set(self.router.serving())
        for index in serving:
            self._start_reader(index)
        with self._lock:
            for index in [i for i in self._listening if i not in serving]:
                del self._listening[index]
                pubsub = self._pubsubs.get(index)
                if pubsub is not None:
                    pubsub.hang_up()
            if all(self._listening.values()):
                self.subscribed.set()
            for channel, was in list(self._subscribed_on.items()):
                now = self._subscribed_on[channel] = self._shard_of(channel)
                if now != was:
                    self._send_locked(was, "UNSUBSCRIBE", channel)
                    self._send_locked(now, "SUBSCRIBE", channel)

    def _follow_master(self, index: int, master: RedisEndpoint) -> None:
        """A shard's command connection found its master elsewhere (Sentinel): a
        process whose wake-up subscription is not on the master looks dead to the
        others (their PUBLISH there reaches nobody)."""
        with self._lock:
            pubsub = self._pubsubs.get(index)
            if pubsub is not None and pubsub.endpoint != master:
                pubsub.hang_up()

    def _act_on(self, index: int, messages: list[Message]) -> None:
        """Act on what arrived together from one shard; each channel's
        announcements are handed over in one batch, after the rest."""
        announced: dict[str, list[bytes]] = {}
        for message in messages:
            self._dispatch(index, message, announced)
        self._announce(announced)

    def _dispatch(self, index: int, message: Message,
                  announced: dict[str, list[bytes]]) -> None:
        """Act on one message; a channel's announcements are collected in announced."""
        kind = message[0]
        if kind == b"pong":
            return
        channel = message[1].decode()
        if kind == b"message":
            if channel == self.channel:
                data = message[2]
                if data[:1] == b"?":
                    self._asked(data[1:].decode())
                elif data[:1] == b"!":
                    self._told_busy(data[1:].decode())
                else:
                    self.ring(data.decode())
            else:
                announced.setdefault(channel, []).append(message[2])
        elif kind == b"subscribe":
            if channel == self.channel:
                if index in self._listening:
                    self._listening[index] = True
                redis_outage.recovered()
                if all(self._listening.values()):
                    self.subscribed.set()
                # Anything published while we were away is lost: everyone re-reads.
                self.ring_all()
                self.on_reconnect()
            elif channel in self._confirmed:
                self._confirmed[channel].set()

    def _asked(self, question: str) -> None:
        """`<process> <tag>`: that process found tag's session busy with a receiver
        of ours. If a client of ours left, its receiver lets go, which wakes the
        asker; if our client is there, say at once that the session really is busy.
        With no receiver of ours holding it, say nothing: one letting go has its
        release in flight, which wakes the asker (answering "busy" then sent a
        live session's next poll 2010)."""
        asker, _, tag = question.partition(" ")
        checks = [w.client_present for w in self._waiters.get(tag, ())
                  if w.client_present is not None]
        # Every check runs: each one that finds its client gone ends its receiver.
        present = [check() for check in checks]
        if any(present):
            with contextlib.suppress(StoreUnavailable):
                self.router.for_tag(tag).send(("PUBLISH", f"sh:p:{asker}", "!" + tag))

    def _told_busy(self, tag: str) -> None:
        """The answer to our question about tag: its holder's client is still there."""
        for waiter in self._waiters.get(tag, ()):
            waiter.told_busy = True
            waiter.event.set()

    def _announce(self, announced: dict[str, list[bytes]]) -> None:
        for channel, messages in announced.items():
            handler = self._handlers.get(channel)
            if handler is not None:
                handler(messages)
