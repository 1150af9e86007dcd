"""Per-process resources: the Redis clients (one per shard), store, wake-ups, liveness,
acknowledgements, reaper, drain state.

Created once per worker process, after fork (never with --preload: a Redis
connection or a greenlet made before fork is shared by every worker).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable

import gevent
import gevent.lock

from sockhop.session_store import Reaper, SessionStore, Wakeups, connect
from sockhop.session_store.acknowledgements import Acknowledgements
from sockhop.session_store.channels import ChannelStore
from sockhop.session_store.fanout import ChannelFanout
from sockhop.session_store.items import close_item
from sockhop.session_store.liveness import Liveness
from sockhop.session_store.sessions import StoreLimits
from sockhop.workers import metrics
from sockhop.workers.application import Dispatcher, Service
from sockhop.workers.config import Settings, redis_topology
from sockhop.workers.disconnect import QUEUE_OVERFLOW
from sockhop.workers.transports.lease import lease_ms

log = logging.getLogger("sockhop.runtime")


class Runtime:
    def __init__(self, settings: Settings, services: Iterable[Service]) -> None:
        self.settings = settings
        self.router = connect(redis_topology(settings), metrics.RedisObserver())
        self.store = SessionStore(
            self.router,
            StoreLimits(
                lease_ms=lease_ms(settings.heartbeat_delay),
                disconnect_ms=int(settings.disconnect_delay * 1000),
                max_queue=settings.max_queue_length,
                overflow_item=close_item(QUEUE_OVERFLOW),
            ),
        )
        self.channels = ChannelStore(self.router, settings.channel_history_size)
        self.dispatcher = Dispatcher(self.store, self.channels, services)
        self.wakeups = Wakeups(self.router)
        self.store.serve_here(self.wakeups.process_id, self.wakeups)
        self.fanout = ChannelFanout(self.wakeups, metrics.fanout_delivered, self.channels.top)
        self.reaper = Reaper(self.store, self.dispatcher.expired)
        self.liveness = Liveness(self.store, self.wakeups.process_id)
        self.acknowledgements = Acknowledgements(self.store)
        self.draining = False
        self._tokens = itertools.count(1)

    @property
    def process_id(self) -> str:
        return self.wakeups.process_id

    def new_holder(self) -> str:
        """A lease holder id: the process (whose liveness Redis can see) plus a token."""
        return f"{self.process_id}:{next(self._tokens)}"

    def start(self) -> None:
        self.wakeups.start()  # subscribed first: other processes probe it for liveness
        self.liveness.start()
        self.acknowledgements.start()
        self.reaper.start()

    def drain(self) -> None:
        """Stop holding receivers: each ends its response cleanly and lets go of its lease."""
        if not self.draining:
            log.info("draining: ending %d held receivers", self.wakeups.waiting)
            self.draining = True
            metrics.DRAINS.inc()
            self.reaper.stop()
            self.wakeups.ring_all()


class LazyRuntime:
    """Creates the Runtime on first use, once, even under 500 simultaneous first requests."""

    def __init__(self, settings: Settings, services: Iterable[Service]) -> None:
        self._settings = settings
        self._services = list(services)
        self._lock = gevent.lock.Semaphore()
        self._runtime: Runtime | None = None

    def get(self) -> Runtime:
        runtime = self._runtime
        if runtime is None:
            with self._lock:
                if self._runtime is None:
                    created = Runtime(self._settings, self._services)
                    created.start()
                    self._runtime = created
                runtime = self._runtime
        return runtime
