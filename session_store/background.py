"""A process's background greenlets (reaper, liveness, acknowledgements): each
runs its step again and again; a Redis outage is logged, never fatal."""

from __future__ import annotations

import logging

import gevent

from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.outage import redis_outage

log = logging.getLogger("sockhop.background")


class Background:
    name = "background task"

    def __init__(self) -> None:
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def step(self) -> object:
        raise NotImplementedError

    def pause(self) -> None:
        """Until the next step."""
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            try:
                self.step()
            except StoreUnavailable as exc:
                redis_outage.failed(self.name, exc)
            except Exception:
                log.exception("%s failed", self.name)
            self.pause()
