"""Channels: each publication is appended once to a bounded history stream
and announced once; followers catch up by offset.

Publishing costs the same whatever the audience: no write per subscriber.
A follower that finds its offset no longer kept is told so (it cannot
silently skip what it missed).
"""

from __future__ import annotations

from dataclasses import dataclass

from session_store.autopipeline import AutoPipeline
from session_store.sessions import load_script

CATCH_UP_LIMIT = 1000


def history_key(channel: str) -> str:
    return f"sh:{{ch:{channel}}}:s"


def announce_channel(channel: str) -> str:
    return f"sh:c:{channel}"


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Publications after an offset. behind: some were no longer kept."""

    items: list[bytes]
    top: int
    behind: bool = False


class ChannelStore:
    def __init__(self, client: AutoPipeline, history_size: int) -> None:
        self.client = client
        self.history_size = history_size
        self._publish = load_script(client, "channel_publish")
        self._since = load_script(client, "channel_since")
        self._top = load_script(client, "channel_top")

    def publish(self, channel: str, encoded: str) -> int:
        """Append one encoded message; returns its offset."""
        return int(self._publish(
            keys=[history_key(channel)],
            args=[encoded, self.history_size, announce_channel(channel)],
        ))

    def top(self, channel: str) -> int:
        return int(self._top(keys=[history_key(channel)]))

    def since(self, channel: str, offset: int, limit: int = CATCH_UP_LIMIT) -> CatchUp:
        reply = self._since(keys=[history_key(channel)], args=[offset, limit])
        return CatchUp(list(reply[2:]), int(reply[1]), behind=reply[0] == b"behind")
