"""Presence: who is subscribed to a channel, kept by the connections themselves.

An entry is added when a client subscribes and removed when it unsubscribes
or its session ends, whichever process ends it (a killed process's sessions
expire within seconds and run their close hook exactly once). The keys also
carry a TTL, renewed by every join, as a backstop. Stats are two HLENs:
constant time whatever the channel's size.
"""

from __future__ import annotations

from sockhop.session_store.autopipeline import Command
from sockhop.session_store.router import Router
from sockhop.session_store.sessions import load_scripts

PRESENCE_TTL_MS = 24 * 3600 * 1000


def _keys(channel: str) -> list[str]:
    return [f"sh:{{pr:{channel}}}:c", f"sh:{{pr:{channel}}}:u"]


class PresenceStore:
    def __init__(self, router: Router) -> None:
        self.router = router
        self._join, self._leave = load_scripts(router, "presence_join", "presence_leave")

    def join_command(self, channel: str, client: str, user: str, info: bytes) -> Command:
        return self._join.command(keys=_keys(channel),
                                  args=[client, user, info, PRESENCE_TTL_MS])

    def leave_command(self, channel: str, client: str, user: str) -> Command:
        return self._leave.command(keys=_keys(channel), args=[client, user])

    def clients(self, channel: str) -> dict[str, bytes]:
        """client id -> its ClientInfo as stored (JSON)."""
        flat = self.router.call("HGETALL", _keys(channel)[0])
        return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}

    def stats(self, channel: str) -> tuple[int, int]:
        clients, users = self.router.call_many([("HLEN", k) for k in _keys(channel)])
        return int(clients), int(users)
