"""The reaper: expires sessions whose receiver has not come back in time.

Every process runs one, over every shard. Due sessions are claimed per bucket
by one script, so processes rarely check the same session twice; even when
they do, the expire script lets exactly one of them win and run the close hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent

from sockhop.session_store.autopipeline import AutoPipeline
from sockhop.session_store.background import Background
from sockhop.session_store.sessions import SessionKey, SessionStore

log = logging.getLogger("sockhop.expiry")

CLAIM_MS = 5_000
BATCH = 200  # claimed per bucket and step
# Checked per round trip: see SessionStore.expire.
EXPIRE_BATCH = 100


class Reaper(Background):
    name = "reaper"

    def __init__(
        self,
        store: SessionStore,
        on_expired: Callable[[SessionKey, bytes], None],
        interval: float = 0.25,
    ) -> None:
        super().__init__()
        self.store = store
        self.on_expired = on_expired
        self.interval = interval

    def step(self) -> int:
        """Check every due session once; returns how many this call expired."""
        return sum(self.store.router.on_every_shard(self._reap))

    def _reap(self, shard: AutoPipeline) -> int:
        keys = self.store.claim_due(shard, CLAIM_MS, BATCH)
        expired = 0
        for start in range(0, len(keys), EXPIRE_BATCH):
            batch = keys[start:start + EXPIRE_BATCH]
            for key, state in zip(batch, self.store.expire(shard, batch), strict=True):
                if state is not None:
                    expired += 1
                    try:
                        self.on_expired(key, state)
                    except Exception:
                        log.exception("close hook failed for %s", key.tag)
        return expired

    def pause(self) -> None:
        gevent.sleep(self.interval)
