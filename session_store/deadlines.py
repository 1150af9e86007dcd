"""Sessions due for a check at a given time, whichever process is alive then:
a hub connection that must connect, or refresh its token, by a deadline.

One sorted set of session tags by due time; each process claims what is due
(pushing it a little into the future, so others skip it meanwhile) and asks
its callback whether to keep it for later.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent

from sockhop.session_store.autopipeline import AutoPipeline, Command
from sockhop.session_store.background import Background
from sockhop.session_store.sessions import load_scripts

CLAIM_MS = 5000
BATCH = 200


class Deadlines(Background):
    name = "deadlines"

    def __init__(self, client: AutoPipeline, key: str,
                 on_due: Callable[[str], float | None], interval: float = 0.5) -> None:
        super().__init__()
        self.client = client
        self.key = key
        self.on_due = on_due
        self.interval = interval
        (self._claim,) = load_scripts(client, "claim_due")

    def set_command(self, tag: str, due: float) -> Command:
        """Check tag at `due` (unix s)."""
        return ("ZADD", self.key, int(due * 1000), tag)

    def clear_command(self, tag: str) -> Command:
        return ("ZREM", self.key, tag)

    def step(self) -> int:
        """Check what is due; on_due answers when to check again (None: never)."""
        tags = self._claim(keys=[self.key], args=[CLAIM_MS, BATCH])
        commands = []
        for raw in tags:
            tag = raw.decode()
            again = self.on_due(tag)
            commands.append(self.clear_command(tag) if again is None
                            else self.set_command(tag, max(again, time.time())))
        if commands:
            self.client.call_many(commands)
        return len(tags)

    def pause(self) -> None:
        gevent.sleep(self.interval)
