"""The hub's registry: every connection by user (so the server API can reach
a user's connections in any process), and how many connections are
subscribed to each channel and connected per user (the `channels` and `info`
calls). Kept by the connections: added at connect and subscribe, removed at
unsubscribe and when the session ends (its close hook runs exactly once,
whichever process ends it).

With several shards, each shard has its own count hashes: a channel's count
is on its channel's shard (next to its stream), a user's on the shard of the
user's connections; the totals and the `channels` call read every shard.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from sockhop.session_store.endpoint import Command
from sockhop.session_store.router import OnShard, Routable, Router, hash_tag
from sockhop.session_store.sessions import load_scripts

CHANNELS_KEY = "sh:hub:channels"
USERS_KEY = "sh:hub:users"


def user_key(user: str) -> str:
    return f"sh:hub:u:{user}"


class Registry:
    def __init__(self, router: Router) -> None:
        self.router = router
        self._count, self._admit = load_scripts(router, "count", "user_admit")

    def connected_commands(self, user: str, client: str, tag: str, *,
                           admitted: bool = False) -> list[Routable]:
        """admitted: registered already (admit), only the count is left."""
        count = self._user_count(user, 1)
        return [count] if admitted else [("HSET", user_key(user), client, tag), count]

    def admit(self, user: str, client: str, tag: str, limit: int) -> bool:
        """client registered as user's connection unless user has limit
        connections already (a registration made again is admitted again)."""
        return bool(self._admit(keys=[user_key(user)], args=[client, tag, limit]))

    def forget(self, user: str, clients: Iterable[str]) -> None:
        """Registrations whose session is gone without its close hook: a
        process died between admitting a connection and writing its state."""
        self.router.call("HDEL", user_key(user), *clients)

    def disconnected_commands(self, user: str, client: str) -> list[Routable]:
        return [("HDEL", user_key(user), client), self._user_count(user, -1)]

    def _user_count(self, user: str, delta: int) -> OnShard:
        return OnShard(hash_tag(user_key(user)), self._add(USERS_KEY, user, delta))

    def subscribed_command(self, channel: str, delta: int) -> OnShard:
        return OnShard(f"ch:{channel}", self._add(CHANNELS_KEY, channel, delta))

    def _add(self, key: str, member: str, delta: int) -> Command:
        """A count going up is a plain HINCRBY (a count never stays at zero or below,
        so the script would remove nothing): a script call costs Redis several
        times more. Going down, the script removes a count that reaches zero."""
        if delta > 0:
            return ("HINCRBY", key, member, delta)
        return self._count.command(keys=[key], args=[member, delta])

    def connections(self, user: str) -> dict[str, str]:
        """client id -> session tag, for every connection of user."""
        flat = self.router.call("HGETALL", user_key(user))
        return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}

    def channels(self, pattern: str = "") -> dict[str, int]:
        counts: dict[str, int] = {}
        for flat in self.router.on_every_shard(lambda shard: shard.call("HGETALL", CHANNELS_KEY)):
            for i in range(0, len(flat), 2):
                channel = flat[i].decode()
                counts[channel] = counts.get(channel, 0) + int(flat[i + 1])
        if pattern:
            counts = {c: n for c, n in counts.items() if fnmatch.fnmatchcase(c, pattern)}
        return counts

    def totals(self) -> tuple[int, int, int]:
        """(connections, users, channels) across every process and shard."""
        per_shard = self.router.on_every_shard(lambda shard: shard.call_many(
            [("HVALS", USERS_KEY), ("HLEN", CHANNELS_KEY)]))
        users = [int(n) for counts, _ in per_shard for n in counts]
        return sum(users), len(users), sum(int(channels) for _, channels in per_shard)
