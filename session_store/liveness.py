"""Process liveness: every process beats in Redis, and the sessions of a process
that stopped beating are let go within seconds, not when their leases run out.

A lease names the process holding it, but a process killed with -9 lets go
of nothing, and a session whose client never comes back would otherwise wait
for its lease to lapse (a minute) before expiring. So each process keeps a
set of the sessions it holds (`sh:h:{<process>}`), and any live process that
finds another one dead lets go of its leases: the client's time to come back
then runs from the dead process's last beat.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import gevent

from sockhop.session_store.autopipeline import AutoPipeline, Command
from sockhop.session_store.background import Background
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.sessions import MAX_BATCH, SessionKey, SessionStore, load_scripts

log = logging.getLogger("sockhop.liveness")

LIVENESS_KEY = "sh:procs"
BEAT_INTERVAL = 1.0
# Three missed beats, and its wake-up subscription gone: the process is dead.
DEAD_AFTER_MS = 3_000
# A claimed dead process is left to its claimer this long, then claimed again.
CLAIM_MS = 10_000
CLAIM_LIMIT = 20


def held_key(process: str) -> str:
    return f"sh:h:{{{process}}}"


class Liveness(Background):
    """With several shards, each runs this on its own: a shard has its own
    `sh:procs` and held sets for the sessions it holds, and the dead-holder
    probe (PUBLISH on the wake-up channel, which a process follows on every
    shard) asks the shard of the sessions concerned. A shard that is down
    holds up only its own sessions."""

    name = "liveness"

    def __init__(self, store: SessionStore, process_id: str,
                 interval: float = BEAT_INTERVAL) -> None:
        super().__init__()
        self.store = store
        self.router = store.router
        self.process_id = process_id
        self.interval = interval
        (self._beat,) = load_scripts(self.router, "process_beat")
        self._held_key = held_key(process_id)
        self._holding: Counter[str] = Counter()
        self._let_go: set[str] = set()
        # After an outage (a failover) every process's last beat is old: the others
        # get as long to come back as a live one may miss beats, before we judge them.
        self._judge_from = 0.0
        self._was_down = False

    # --- the sessions this process holds ---

    def hold(self, tag: str) -> None:
        """Record at once that a receiver of this process holds tag's lease."""
        self._holding[tag] += 1
        if self._holding[tag] == 1 and tag not in self._let_go:
            self.router.for_tag(tag).send(("SADD", self._held_key, tag))
        self._let_go.discard(tag)

    def let_go(self, tag: str) -> None:
        """Forget tag with the next beat (a stale entry only costs a check)."""
        self._holding[tag] -= 1
        if self._holding[tag] <= 0:
            del self._holding[tag]
            self._let_go.add(tag)

    # --- beats ---

    def step(self) -> int:
        """Beat, and let go of the sessions of processes found dead; returns how many."""
        let_go, self._let_go = self._let_go, set()
        by_shard: dict[AutoPipeline, list[str]] = {}
        for tag in let_go:
            by_shard.setdefault(self.router.for_tag(tag), []).append(tag)
        # After an outage every beat is stale: judge no one before they could beat again.
        judging = not self._was_down and time.monotonic() >= self._judge_from
        released = sum(self.router.on_every_shard(
            lambda shard: self._step_on(shard, by_shard.get(shard, []), judging)))
        if self._was_down:
            self._was_down = False
            self._judge_from = time.monotonic() + DEAD_AFTER_MS / 1000
        return released

    def _step_on(self, shard: AutoPipeline, let_go: list[str], judging: bool) -> int:
        limit = CLAIM_LIMIT if judging else 0
        commands: list[Command] = [self._beat.command(
            [LIVENESS_KEY], [self.process_id, DEAD_AFTER_MS, CLAIM_MS, limit])]
        if let_go:
            commands.append(("SREM", self._held_key, *let_go))
        try:
            claimed = shard.call_many(commands)[0]
        except StoreUnavailable:
            self._let_go |= set(let_go)
            self._was_down = True
            raise
        released = 0
        for i in range(0, len(claimed), 2):
            released += self._clean_up(shard, claimed[i].decode(), int(float(claimed[i + 1])))
        return released

    def _clean_up(self, shard: AutoPipeline, process: str, last_beat_ms: int) -> int:
        tags = [t.decode() for t in shard.call("SMEMBERS", held_key(process))]
        log.warning("process %s stopped beating: letting go of %d sessions", process, len(tags))
        # It died before the beat it missed (two intervals: a late beat is not rare).
        died_by_ms = last_beat_ms + int(2 * self.interval * 1000)
        for start in range(0, len(tags), MAX_BATCH):
            keys = [SessionKey.from_tag(tag) for tag in tags[start:start + MAX_BATCH]]
            self.store.holders_gone(shard, keys, process, died_by_ms)
        shard.call_many([("DEL", held_key(process)), ("ZREM", LIVENESS_KEY, process)])
        return len(tags)

    def pause(self) -> None:
        gevent.sleep(self.interval)
