"""The gunicorn worker class sockhop runs: gunicorn's gevent worker (process
management, signals, connection pool, graceful shutdown) with sockhop's own
HTTP/1.1 connection handling in place of gunicorn's, and an accept loop that
stops exactly when shutdown says.

SIGTERM (the master forwards its own: a pod being deleted, a rolling update) turns
/readyz false at once, goes on accepting and serving for the app's `drain_delay`
(so balancers polling /readyz stop routing here while the port still answers), then
stops accepting and drains. The master closes only its own copies of the listening
sockets meanwhile (gunicorn's Arbiter.stop): the port answers as long as a worker
holds it. Any other way of stopping (max_requests, SIGQUIT) has no delay.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import gevent
import gevent.event
from gevent.pool import Group, Pool
from gevent.server import StreamServer
from gunicorn.errors import AppImportError
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker

from sockhop.workers.config import ConfigError
from sockhop.workers.health import Drain
from sockhop.workers.httpserver.connection import Connection, Limits, base_environ
from sockhop.workers.httpserver.listener import (
    HANDSHAKE_SETTLE,
    held_by,
    only_stopping_holders,
    refuse_to_start_connections,
    start_connections_again,
)

# Used when the app does not say (a plain WSGI app under this worker).
DEFAULT_WRITE_TIMEOUT = 10.0
DEFAULT_MAX_BODY_SIZE = 1024 * 1024
# How often the run loop tells the master it is alive (gunicorn's own pace).
NOTIFY_INTERVAL = 1.0


class ConnectionPool(Pool):  # type: ignore[misc]
    """The connections' handlers, and connections taken over from them (see
    streams.TakeOver: a waiting websocket holds no greenlet). Both count
    towards worker_connections, and joining waits for both."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.held = 0
        self._handing_over: set[Any] = set()
        self._none_held = gevent.event.Event()
        self._none_held.set()

    def take_over(self) -> Callable[[], None]:
        """streams.TakeOver: the current handler's connection outlives it. Its slot
        stays taken until release(), its socket is not closed when it returns."""
        self._handing_over.add(gevent.getcurrent())
        self.held += 1
        self._none_held.clear()
        return self.release

    def held_here(self) -> bool:
        """In a handler whose connection outlives it (take_over())."""
        return gevent.getcurrent() in self._handing_over

    def release(self) -> None:
        self.held -= 1
        self._semaphore.release()
        if not self.held:
            self._none_held.set()

    def _discard(self, greenlet: Any) -> None:
        if greenlet in self._handing_over:
            self._handing_over.discard(greenlet)
            Group._discard(self, greenlet)  # its slot went to the held connection
        else:
            super()._discard(greenlet)

    def free_count(self) -> int:
        return max(0, self.size - len(self) - self.held)

    def join(self, timeout: float | None = None, raise_error: bool = False) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not super().join(timeout, raise_error):
            return False
        return bool(self._none_held.wait(
            None if deadline is None else max(0.0, deadline - time.monotonic())))


class SockhopWorker(GeventWorker):  # type: ignore[misc]
    """`stopping` is set once this worker stops accepting (at SIGTERM + drain_delay,
    at once on max_requests or anything else that clears `alive`): it accepts no
    connection from then on, and what waits on it (the drain in gunicorn_hooks)
    starts at once."""

    _environ: dict[str, Any] | None = None
    _limits: Limits | None = None
    # When shutdown began (monotonic): the graceful timeout counts from here, as the
    # master's does from its SIGTERM.
    _shutdown_began: float | None = None

    def load_wsgi(self) -> None:
        """A configuration error of the app (create_app without a Redis URL, ...) in one line:
        gunicorn prints an AppImportError's message alone and stops the server."""
        try:
            super().load_wsgi()
        except ConfigError as exc:
            raise AppImportError(f"sockhop: configuration error: {exc}") from None

    def init_signals(self) -> None:
        # After fork and gevent's hub reinit, before post_worker_init (which waits on it).
        self.stopping = gevent.event.Event()
        # gevent keeps each greenlet's spawning stack (~10 frames) for debugging
        # tools: ~3 KiB per greenlet, which a worker holding thousands pays for.
        gevent.config.track_greenlet_tree = False
        self._servers: list[StreamServer] = []
        self._addresses: dict[Any, tuple[str, str]] = {}
        self._pools: dict[Any, ConnectionPool] = {}
        super().init_signals()
        # A SIGTERM the master sent before the line above went to the handler this
        # process inherited from the master, and is lost: the worker would serve on
        # until the master's graceful timeout kills it, resetting what it holds. The
        # master closes its listening sockets before it signals its workers, so one
        # that no longer holds ours is stopping them all.
        if self.sockets and held_by(self.ppid, os.fstat(self.sockets[0].fileno()).st_ino) is False:
            self.log.info("The master is stopping: so does this new worker (pid: %s)", self.pid)
            self.alive = False

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM, gunicorn's graceful stop: unready now, stop accepting after the
        app's drain_delay. gunicorn itself only clears `alive`, which its run loop
        reads once a second."""
        Drain.begin()
        super().handle_exit(sig, frame)
        self._begin_stopping(self._drain_delay())

    def _drain_delay(self) -> float:
        settings = getattr(self.wsgi, "settings", None)  # a plain WSGI app has none
        return float(getattr(settings, "drain_delay", 0.0))

    def _begin_stopping(self, delay: float = 0.0) -> None:
        """Have the event loop stop everything at its next turn, or `delay` seconds
        later. Idempotent. This may run in a signal handler, i.e. wherever Python next
        gets control, possibly inside the hub after this turn's callbacks have run: the
        thread-safe variant also wakes the loop, so the callback never waits for the
        next event or timer."""
        if self._shutdown_began is not None:
            return
        self._shutdown_began = time.monotonic()
        if delay > 0:
            self.log.info("Draining in %.1f s; not ready meanwhile (pid: %s)", delay, self.pid)
            gevent.get_hub().loop.run_callback_threadsafe(gevent.spawn_later, delay, self._stop)
        else:
            gevent.get_hub().loop.run_callback_threadsafe(self._stop)

    def _stop(self) -> None:
        """Stop taking connections, close the listeners, then wake whoever waits on
        `stopping`. Runs once (_begin_stopping).

        Once the master and every worker have closed it, the port refuses connections:
        a balancer moves on to another process, a new process can bind the port. But
        the kernel resets what is still queued on a listening socket when its last
        holder closes it, requests a proxy has already sent (for a POST, nginx answers
        502 and does not retry). When the whole server stops, the kernel first stops
        starting connections on it (listener.py); in any case what is queued is taken
        and served as usual, the last connections of this worker."""
        refusing = False
        for server in self._servers:
            if only_stopping_holders(server.socket, self.ppid):
                try:
                    refuse_to_start_connections(server.socket)
                    refusing = True
                except OSError as exc:  # a kernel without socket filters: close as before
                    self.log.warning("Cannot filter the listening socket: %s", exc)
        if refusing:
            gevent.spawn_later(HANDSHAKE_SETTLE, self._close_listeners)
        else:
            self._close_listeners()

    def _close_listeners(self) -> None:
        for server in self._servers:
            if not server.closed:
                with contextlib.suppress(OSError):  # best effort (EMFILE...): close anyway
                    while not server.full() and (queued := server.do_read()) is not None:
                        server.do_handle(*queued)  # do_read: None once the queue is empty
                server.close()
        self.stopping.set()

    def run(self) -> None:
        """GeventWorker.run, but it stops accepting as soon as shutdown starts instead
        of at its next 1 s tick, and exits as soon as the last connection is done
        instead of at the next 1 s check."""
        ssl_args = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        for listener in self.sockets:
            listener.setblocking(1)
            start_connections_again(listener)
            name = listener.getsockname()  # not per connection: the listener may be closed
            self._addresses[listener] = (
                (str(name[0]), str(name[1])) if isinstance(name, tuple) else (str(name), "")
            )
            pool = self._pools[listener] = ConnectionPool(self.worker_connections)
            server = _Server(listener, handle=partial(self.handle, listener),
                             spawn=pool, **ssl_args)
            if self.cfg.workers > 1:
                server.max_accept = 1  # leave the other workers their share
            self._servers.append(server)
            server.start()
        # Tests wait for this: a booting worker holds the listening socket but takes nothing.
        self.log.info("Accepting connections (pid: %s)", self.pid)
        while not self.stopping.is_set():
            if not self.alive:
                self._begin_stopping()  # whatever cleared `alive`, if not one of our own paths
            self.notify()  # during the drain delay too: the master kills a silent worker
            self.stopping.wait(NOTIFY_INTERVAL)
        self._finish_connections()

    def _finish_connections(self) -> None:
        """Let held connections end (the drain answers them) until graceful_timeout
        after shutdown began, then cut what is left, as gunicorn does."""
        assert self._shutdown_began is not None
        deadline = self._shutdown_began + self.cfg.graceful_timeout
        while busy := [s.pool for s in self._servers if s.pool.free_count() != s.pool.size]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
                for server in self._servers:
                    server.stop(timeout=1)
                return
            self.notify()
            busy[0].join(timeout=min(NOTIFY_INTERVAL, remaining))

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        if self._limits is None:
            settings = getattr(self.wsgi, "settings", None)
            self._limits = Limits(
                idle_timeout=float(self.cfg.keepalive) or 5.0,
                write_timeout=getattr(settings, "write_timeout", DEFAULT_WRITE_TIMEOUT),
                max_body_size=getattr(settings, "max_body_size", DEFAULT_MAX_BODY_SIZE),
            )
            self._environ = base_environ(multiprocess=self.cfg.workers > 1)
        assert self._environ is not None
        pool = self._pools[listener]
        # An SSL socket is closed by the server's wrapper whatever we say: never taken over.
        take_over = None if self.cfg.is_ssl else pool.take_over
        if client.family != socket.AF_UNIX:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            Connection(client, addr, self._addresses[listener], self.wsgi, self._limits,
                       self._environ, self._request_served, take_over).serve()
        finally:
            if not pool.held_here():
                client.close()

    def _request_served(self) -> bool:
        """Count a request (gunicorn's max_requests restarts the worker, as its own
        workers do); False once this worker is stopping: close after the answer."""
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
            self._begin_stopping()
        return bool(self.alive)


class _Server(StreamServer):  # type: ignore[misc]
    """A StreamServer that leaves a connection taken over open (ConnectionPool.take_over)."""

    def do_close(self, sock: Any, *args: Any) -> None:
        if not self.pool.held_here():
            sock.close()
