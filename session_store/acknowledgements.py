"""Prompt acknowledgement: what receivers wrote to their clients leaves the
queue within ~100 ms, in one script call per batch for the whole process.

Until acknowledged, a written item is still at the head of its session's
queue, so a process killed with -9 makes the next receiver send it again:
the batch interval bounds that window, and costs one Redis command per
interval whatever the number of sessions.
"""

from __future__ import annotations

from typing import Protocol

import gevent
import gevent.event

from sockhop.session_store.background import Background
from sockhop.session_store.sessions import Acknowledgement, SessionStore

ACK_INTERVAL = 0.1
# Sessions per script call (three keys each).
ACK_BATCH = 300


class Acknowledging(Protocol):
    def acknowledgement(self) -> Acknowledgement | None:
        """What was written, if more than the last call said, or None."""


class Acknowledgements(Background):
    name = "acknowledgements"

    def __init__(self, store: SessionStore, interval: float = ACK_INTERVAL) -> None:
        super().__init__()
        self.store = store
        self.interval = interval
        self._marked: dict[Acknowledging, None] = {}
        self._due = gevent.event.Event()

    def mark(self, source: Acknowledging) -> None:
        """source wrote something: acknowledge it with the next batch."""
        self._marked[source] = None
        self._due.set()

    def step(self) -> None:
        """Acknowledge what was marked (unacknowledged items are sent again by
        the next receiver if this fails)."""
        marked, self._marked = self._marked, {}
        self._due.clear()
        batch = [ack for source in marked if (ack := source.acknowledgement()) is not None]
        sent = [self.store.acknowledge(batch[i:i + ACK_BATCH])
                for i in range(0, len(batch), ACK_BATCH)]
        for replies in sent:
            replies.get()

    def pause(self) -> None:
        """Until something was written, and then the batch interval."""
        self._due.wait()
        gevent.sleep(self.interval)
