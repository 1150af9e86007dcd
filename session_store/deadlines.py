"""Sessions due for a check at a given time, whichever process is alive then:
a hub connection that must connect, or refresh its token, by a deadline.

One sorted set of session tags by due time (on each shard: a session's entry
is on its session's shard); each process claims what is due (pushing it a
little into the future, so others skip it meanwhile) and asks its callback
whether to keep it for later.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent

from sockhop.session_store.autopipeline import AutoPipeline
from sockhop.session_store.background import Background
from sockhop.session_store.router import OnShard, Router
from sockhop.session_store.sessions import load_scripts

CLAIM_MS = 5000
BATCH = 200


class Deadlines(Background):
    name = "deadlines"

    def __init__(self, router: Router, key: str,
                 on_due: Callable[[str], float | None], interval: float = 0.5) -> None:
        super().__init__()
        self.router = router
        self.key = key
        self.on_due = on_due
        self.interval = interval
        (self._claim,) = load_scripts(router, "claim_due")

    def set_command(self, tag: str, due: float) -> OnShard:
        """Check tag at `due` (unix s)."""
        return OnShard(tag, ("ZADD", self.key, int(due * 1000), tag))

    def clear_command(self, tag: str) -> OnShard:
        return OnShard(tag, ("ZREM", self.key, tag))

    def step(self) -> int:
        """Check what is due; on_due answers when to check again (None: never)."""
        return sum(self.router.on_every_shard(self._step_on))

    def _step_on(self, shard: AutoPipeline) -> int:
        """Written back where claimed (a tag's shard may have changed since it was set)."""
        tags = shard.call(*self._claim.command([self.key], [CLAIM_MS, BATCH]))
        commands = []
        for raw in tags:
            tag = raw.decode()
            again = self.on_due(tag)
            commands.append(self.clear_command(tag) if again is None
                            else self.set_command(tag, max(again, time.time())))
        if commands:
            shard.call_many([routed.command for routed in commands])
        return len(tags)

    def pause(self) -> None:
        gevent.sleep(self.interval)
