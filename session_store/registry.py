"""The hub's registry: every connection by user (so the server API can reach
a user's connections in any process), and how many connections are
subscribed to each channel and connected per user (the `channels` and `info`
calls). Kept by the connections: added at connect and subscribe, removed at
unsubscribe and when the session ends (its close hook runs exactly once,
whichever process ends it).
"""

from __future__ import annotations

import fnmatch

from sockhop.session_store.autopipeline import AutoPipeline, Command
from sockhop.session_store.sessions import load_scripts

CHANNELS_KEY = "sh:hub:channels"
USERS_KEY = "sh:hub:users"


def user_key(user: str) -> str:
    return f"sh:hub:u:{user}"


class Registry:
    def __init__(self, client: AutoPipeline) -> None:
        self.client = client
        (self._count,) = load_scripts(client, "count")

    def connected_commands(self, user: str, client: str, tag: str) -> list[Command]:
        return [("HSET", user_key(user), client, tag),
                self._count.command(keys=[USERS_KEY], args=[user, 1])]

    def disconnected_commands(self, user: str, client: str) -> list[Command]:
        return [("HDEL", user_key(user), client),
                self._count.command(keys=[USERS_KEY], args=[user, -1])]

    def subscribed_command(self, channel: str, delta: int) -> Command:
        return self._count.command(keys=[CHANNELS_KEY], args=[channel, delta])

    def connections(self, user: str) -> dict[str, str]:
        """client id -> session tag, for every connection of user."""
        flat = self.client.call("HGETALL", user_key(user))
        return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}

    def channels(self, pattern: str = "") -> dict[str, int]:
        flat = self.client.call("HGETALL", CHANNELS_KEY)
        counts = {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        if pattern:
            counts = {c: n for c, n in counts.items() if fnmatch.fnmatchcase(c, pattern)}
        return counts

    def totals(self) -> tuple[int, int, int]:
        """(connections, users, channels) across every process."""
        users = self.client.call("HVALS", USERS_KEY)
        channels = self.client.call("HLEN", CHANNELS_KEY)
        return sum(int(n) for n in users), len(users), int(channels)
