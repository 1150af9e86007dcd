"""The reaper: expires sessions whose receiver has not come back in time.

Every process runs one. Due sessions are claimed per bucket by one script, so
processes rarely check the same session twice; even when they do, the expire
script lets exactly one of them win and run the close hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent

from session_store.connection import StoreUnavailable
from session_store.sessions import SessionKey, SessionStore

log = logging.getLogger("sockhop.expiry")

CLAIM_MS = 5_000
BATCH = 200


class Reaper:
    def __init__(
        self,
        store: SessionStore,
        on_expired: Callable[[SessionKey], None],
        interval: float = 0.25,
    ) -> None:
        self.store = store
        self.on_expired = on_expired
        self.interval = interval
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def run_once(self) -> int:
        """Check every due session once; returns how many this call expired."""
        expired = 0
        for key in self.store.claim_due(CLAIM_MS, BATCH):
            if self.store.expire(key):
                expired += 1
                try:
                    self.on_expired(key)
                except Exception:
                    log.exception("close hook failed for %s", key.tag)
        return expired

    def _run(self) -> None:
        while True:
            try:
                self.run_once()
            except StoreUnavailable as exc:
                log.warning("reaper: Redis unavailable (%s)", exc)
            except Exception:
                log.exception("reaper iteration failed")
            gevent.sleep(self.interval)
