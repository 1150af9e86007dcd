"""Prompt acknowledgement: what receivers wrote to their clients leaves the
queue within ~100 ms, in one script call per batch for the whole process.

Until acknowledged, a written item is still at the head of its session's
queue, so a process killed with -9 makes the next receiver send it again:
the batch interval bounds that window, and costs one Redis command per
interval whatever the number of sessions.
"""

from __future__ import annotations

import logging
from typing import Protocol

import gevent
import gevent.event

from session_store.errors import StoreUnavailable
from session_store.sessions import Acknowledgement, SessionStore

log = logging.getLogger("sockhop.acknowledgements")

ACK_INTERVAL = 0.1
# Sessions per script call (three keys each).
ACK_BATCH = 300


class Acknowledging(Protocol):
    def acknowledgement(self) -> Acknowledgement | None:
        """What was written since the last call (and forget it), or None."""


class Acknowledgements:
    def __init__(self, store: SessionStore, interval: float = ACK_INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self._marked: dict[Acknowledging, None] = {}
        self._due = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def mark(self, source: Acknowledging) -> None:
        """source wrote something: acknowledge it with the next batch."""
        self._marked[source] = None
        self._due.set()

    def flush(self) -> None:
        marked, self._marked = self._marked, {}
        self._due.clear()
        batch = [ack for source in marked if (ack := source.acknowledgement()) is not None]
        sent = [self.store.acknowledge(batch[i:i + ACK_BATCH])
                for i in range(0, len(batch), ACK_BATCH)]
        for replies in sent:
            replies.get()

    def _run(self) -> None:
        while True:
            self._due.wait()
            gevent.sleep(self.interval)
            try:
                self.flush()
            except StoreUnavailable as exc:
                # Unacknowledged items are sent again by the next receiver.
                log.warning("acknowledgements: Redis unavailable (%s)", exc)
            except Exception:
                log.exception("acknowledgement batch failed")
