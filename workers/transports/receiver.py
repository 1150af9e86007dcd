"""What every receiving transport shares: holding a session's lease and
turning its queue into frames.

A Receiver lives for one HTTP request (or one websocket). Items read from the
queue stay in Redis until written; `written` counts them and is acknowledged
with the next read or the release, so a worker killed mid-request loses
nothing that had not reached the client's socket.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import gevent

from session_store import Busy, Closed, Created, Opened, SessionKey, StoreUnavailable
from session_store.sessions import ReceiverResult
from workers.application import ANOTHER_CONNECTION, INTERRUPTED, Service
from workers.runtime import Runtime
from workers.sockjs.framing import HEARTBEAT_FRAME, OPEN_FRAME, close_frame, frames_from_items

log = logging.getLogger("sockhop.receiver")

BUSY_FRAME = close_frame(*ANOTHER_CONNECTION).encode()
# How long a receiver waits for a busy session's lease before answering 2010.
BUSY_GRACE = 1.0


def watch_disconnect(sock: Any, on_gone: Callable[[], None]) -> Callable[[], None]:
    """Call on_gone (from the event loop) when the client closes its end.

    gunicorn notices a vanished client only on the next write, which for an
    idle poll is the heartbeat 25 s later. Peeking when the socket turns
    readable tells a FIN (b'') from a pipelined next request (data). Returns
    a function that stops watching.
    """
    raw = getattr(sock, "_sock", sock)  # the plain socket under gevent's wrapper
    watcher = gevent.get_hub().loop.io(raw.fileno(), 1)

    def readable() -> None:
        try:
            data = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        watcher.stop()
        if not data:
            on_gone()

    watcher.start(readable)
    return watcher.stop


class Receiver:
    def __init__(self, runtime: Runtime, service: Service, session_id: str,
                 sock: Any = None) -> None:
        self.runtime = runtime
        self.service = service
        self.key = SessionKey(service.name, session_id)
        self.holder = runtime.new_holder()
        # Registered before the lease is taken, so no wake-up can be missed.
        self.waiter = runtime.wakeups.register(self.key.tag)
        self.items: list[bytes] = []
        self.written = 0
        self.holding = False
        self.client_gone = False
        self._stop_watch = watch_disconnect(sock, self.client_left) if sock else None

    def client_left(self) -> None:
        """The client ended the receiving connection; the waiting loop ends the session."""
        self.client_gone = True
        self.waiter.event.set()

    def open(self, *, create: bool = True) -> bytes | None:
        """Take the lease. Returns a frame that answers the request first
        (open, 2010, or the close frame), or None with queued items loaded."""
        result = self._take_lease(create)
        if isinstance(result, Created):
            self.holding = True
            self.runtime.hub.opened(self.service, self.key)
            return OPEN_FRAME
        if isinstance(result, Opened):
            self.holding = True
            self.items = result.items
            return None
        if isinstance(result, Busy):
            return BUSY_FRAME
        if isinstance(result, Closed):
            return result.frame
        raise LookupError(self.key.tag)  # Missing: only when create=False

    def _take_lease(self, create: bool) -> ReceiverResult:
        """Take the lease, giving a holder that is just letting go a moment to do so.

        A poll's client has its response before the old process releases the
        lease, and re-polls at once, often on another process: without the
        grace it would get 2010 and lose its session. The release wakes us.
        """
        deadline = time.monotonic() + BUSY_GRACE
        while True:
            self.waiter.reset()
            result = self.runtime.store.open_receiver(self.key, self.holder, create=create)
            remaining = deadline - time.monotonic()
            if not isinstance(result, Busy) or remaining <= 0 or self.runtime.draining:
                return result
            self.waiter.wait(remaining)

    def frames(self) -> list[tuple[bytes, int]]:
        """Frames of the loaded items; add each one's count to `written` once it went out."""
        frames = frames_from_items(self.items)
        self.items = []
        return frames

    def wait(self, timeout: float) -> bytes | None:
        """Wait for items. Returns None with items loaded, HEARTBEAT_FRAME when
        the heartbeat is due, or b'' when this receiver must end (client gone,
        lease lost, process draining)."""
        if self.runtime.draining:
            return b""
        rung = self.waiter.wait(timeout)
        if self.client_gone:
            # The client closed its receiving request itself: as in sockjs-node,
            # that ends the session (a lost *server* keeps it for disconnect_delay).
            self.runtime.hub.close(self.service, self.key, *INTERRUPTED, holder=self.holder)
            return b""
        if self.runtime.draining:
            return b""
        if not rung:
            return HEARTBEAT_FRAME
        return self.fetch()

    def heartbeat_sent(self) -> bool:
        """Renew the lease after a heartbeat. False if this receiver must end."""
        return self.fetch() is None

    def fetch(self) -> bytes | None:
        """Acknowledge what was written, renew the lease, load what is queued."""
        self.waiter.reset()
        items = self.runtime.store.next_items(self.key, self.holder, self.written)
        self.written = 0
        if items is None:
            self.holding = False
            return b""
        self.items = items
        return None

    def finish(self) -> None:
        """Acknowledge and let go; safe to call more than once."""
        if self._stop_watch is not None:
            self._stop_watch()
            self._stop_watch = None
        self.runtime.wakeups.unregister(self.waiter)
        if self.holding:
            self.holding = False
            try:
                self.runtime.store.release(self.key, self.holder, self.written)
            except StoreUnavailable:
                # The lease lapses by itself; unacknowledged items are sent again.
                log.warning("release of %s failed: Redis unavailable", self.key.tag)
            self.written = 0
