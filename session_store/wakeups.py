"""One pub/sub subscription per process wakes that process's waiting receivers.

A waiting poll or stream holds no Redis connection: the session's lease names
this process, an enqueue publishes the session tag on this process's channel,
and the reader greenlet sets the local waiter's event. Pub/sub is only a
wake-up: the data stays in Redis, so after a reconnect every waiter re-reads.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections import defaultdict

import gevent
import gevent.event
import redis

from session_store.connection import REDIS_ERRORS

log = logging.getLogger("sockhop.wakeups")


class Waiter:
    """A receiving request's doorbell. Register it before taking the lease."""

    __slots__ = ("event", "tag")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.event = gevent.event.Event()

    def wait(self, timeout: float) -> bool:
        """True if rung (new items, a probe, a reconnect or shutdown)."""
        return self.event.wait(timeout)

    def reset(self) -> None:
        """Clear before reading the queue, so a ring after the read is never lost."""
        self.event.clear()


class Wakeups:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.process_id = uuid.uuid4().hex[:16]
        self.channel = f"sh:p:{self.process_id}"
        self.subscribed = gevent.event.Event()
        self._waiters: defaultdict[str, set[Waiter]] = defaultdict(set)
        self._reader: gevent.Greenlet | None = None

    def start(self, ready_timeout: float = 5.0) -> None:
        """Subscribe before serving: until then, other processes would think us dead."""
        self._reader = gevent.spawn(self._read_forever)
        self.subscribed.wait(ready_timeout)

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.kill(block=False)

    def register(self, tag: str) -> Waiter:
        waiter = Waiter(tag)
        self._waiters[tag].add(waiter)
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        waiters = self._waiters.get(waiter.tag)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[waiter.tag]

    def ring(self, tag: str) -> None:
        for waiter in self._waiters.get(tag, ()):
            waiter.event.set()

    def ring_all(self) -> None:
        for waiters in list(self._waiters.values()):
            for waiter in waiters:
                waiter.event.set()

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    def _read_forever(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                # Wait for the confirmation: only then does PUBLISH count us alive.
                while pubsub.get_message(timeout=1.0) is None:
                    pass
                self.subscribed.set()
                backoff = 0.1
                # Anything published while we were away is lost: everyone re-reads.
                self.ring_all()
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self.ring(message["data"].decode())
            except REDIS_ERRORS as exc:
                self.subscribed.clear()
                log.warning("wake-up subscription lost (%s); reconnecting", exc)
                gevent.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(REDIS_ERRORS):
                    pubsub.close()
