"""The gunicorn worker class sockhop runs: gunicorn's gevent worker (process
management, signals, accept loop, connection pool, graceful shutdown) with
sockhop's own HTTP/1.1 connection handling in place of gunicorn's."""

from __future__ import annotations

from typing import Any

from gunicorn.workers.ggevent import GeventWorker

from workers.httpserver.connection import Connection, Limits, base_environ

# Used when the app does not say (a plain WSGI app under this worker).
DEFAULT_WRITE_TIMEOUT = 10.0
DEFAULT_MAX_BODY_SIZE = 1024 * 1024


class SockhopWorker(GeventWorker):  # type: ignore[misc]
    _environ: dict[str, Any] | None = None
    _limits: Limits | None = None

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
        name = listener.getsockname()
        server = (str(name[0]), str(name[1])) if isinstance(name, tuple) else (str(name), "")
        try:
            Connection(client, addr, server, self.wsgi, self._limits, self._environ,
                       self._request_served).serve()
        finally:
            client.close()

    def _request_served(self) -> bool:
        """Count a request (gunicorn's max_requests restarts the worker, as its own
        workers do); False once this worker is stopping: close after the answer."""
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        return bool(self.alive)
