"""Channels: each publication is appended once to a bounded history stream
and announced once; followers catch up by offset.

Publishing costs the same whatever the audience: no write per subscriber.
A follower that finds its offset no longer kept is told so (it cannot
silently skip what it missed).
"""

from __future__ import annotations

from dataclasses import dataclass

from session_store.autopipeline import AutoPipeline, Command, Replies
from session_store.sessions import load_scripts

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
        self._publish, self._since, self._top = load_scripts(
            client, "channel_publish", "channel_since", "channel_top")

    def publish_command(self, channel: str, message: bytes) -> Command:
        """The script call appending one stored message; it answers the offset."""
        return self._publish.command(
            keys=[history_key(channel)],
            args=[message, self.history_size, announce_channel(channel)],
        )

    def top(self, channel: str) -> int:
        return int(self._top(keys=[history_key(channel)]))

    def since(self, channel: str, offset: int, limit: int = CATCH_UP_LIMIT) -> CatchUp:
        reply = self._since(keys=[history_key(channel)], args=[offset, limit])
        return CatchUp(list(reply[2:]), int(reply[1]), behind=reply[0] == b"behind")


class Publications:
    """Publications sent in order without waiting for each reply, so that a
    burst of them costs one round trip; wait() collects their offsets.

    Each is queued on the process's one connection as it is added, so it runs
    before anything the same greenlet sends afterwards.
    """

    def __init__(self, store: ChannelStore) -> None:
        self.store = store
        self._replies = Replies(store.client)

    def add(self, channel: str, message: bytes) -> None:
        self._replies.send([self.store.publish_command(channel, message)])

    def wait(self) -> list[int]:
        """The offsets of what was added since the last wait, in order; raises
        StoreUnavailable if any of them may not have been published."""
        replies, self._replies = self._replies, Replies(self.store.client)
        return [int(offset) for offset in replies.get()]
