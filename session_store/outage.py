"""Redis outages in the log with backoff. While Redis is down every background loop and
every held request of a process fails, many times a second; one line says so at once,
then lines come 1, 2, 4, ... up to 60 s apart (each counting the failures it stands
for), and one line says when Redis answers again."""

from __future__ import annotations

import logging
import time

FIRST_GAP = 1.0
MAX_GAP = 60.0


class OutageLog:
    def __init__(self, log: logging.Logger, first_gap: float = FIRST_GAP,
                 max_gap: float = MAX_GAP) -> None:
        self._log = log
        self._first_gap = first_gap
        self._max_gap = max_gap
        self._since: float | None = None  # None: no outage
        self._next_line = 0.0
        self._gap = first_gap
        self._failures = 0
        self._unreported = 0

    def failed(self, what: str, error: object) -> None:
        """Redis did not answer `what` (e.g. "pub/sub reader"); error says how."""
        now = time.monotonic()
        self._failures += 1
        if self._since is None:
            self._since, self._gap = now, self._first_gap
            self._next_line = now + self._gap
            self._log.warning("Redis unavailable: %s: %s", what, error)
            return
        self._unreported += 1
        if now < self._next_line:
            return
        self._log.warning("Redis still unavailable after %.0f s (%d failures since the last "
                          "line): %s: %s", now - self._since, self._unreported, what, error)
        self._unreported = 0
        self._gap = min(self._gap * 2, self._max_gap)
        self._next_line = now + self._gap

    def recovered(self) -> None:
        """Redis answered: ends an outage (and says so); cheap when there is none."""
        if self._since is None:
            return
        self._log.warning("Redis recovered after %.1f s (%d failures)",
                          time.monotonic() - self._since, self._failures)
        self._since = None
        self._failures = self._unreported = 0


# One per process: every part of it that talks to Redis reports here.
redis_outage = OutageLog(logging.getLogger("sockhop.redis"))
