"""Channels: each publication is appended once to a bounded stream and
announced once; followers catch up by offset.

Publishing costs the same whatever the audience: no write per subscriber.
A follower that finds its offset no longer kept is told so (it cannot
silently skip what it missed). Each stream has a position (offset, epoch)
that outlives its publications, so a client can tell "nothing new" from
"history lost".
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sockhop.session_store.autopipeline import Command
from sockhop.session_store.router import Router
from sockhop.session_store.sessions import load_scripts

CATCH_UP_LIMIT = 1000


def stream_key(channel: str) -> str:
    return f"sh:{{ch:{channel}}}:s"


def position_key(channel: str) -> str:
    return f"sh:{{ch:{channel}}}:i"


def announce_channel(channel: str) -> str:
    """The pub/sub channel of a channel's announcements: tagged like its keys, so
    that it is followed on the server that publishes it (the channel's shard; on a
    Cluster, a shard channel in the keys' slot)."""
    return f"sh:{{ch:{channel}}}:a"


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How a channel's stream keeps its publications. `offset_marker` is put
    between a publication's head and its offset in the stored text ("": the
    text carries no offset)."""

    size: int
    ttl_ms: int = 0
    position_ttl_ms: int = 0
    offset_marker: bytes = b""


@dataclass(frozen=True, slots=True)
class StreamPosition:
    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Publications after an offset. behind: some were no longer kept."""

    items: list[bytes]
    top: int
    epoch: str = ""
    behind: bool = False


def position_of(reply: list[Any]) -> StreamPosition:
    """A position_command reply (channel_top's, or HMGET's: nil for what is not set)."""
    top, epoch = reply
    return StreamPosition(int(top or 0), (epoch or b"").decode())


class ChannelStore:
    def __init__(self, router: Router, history_size: int) -> None:
        self.router = router
        self.default = StreamOptions(size=history_size)
        self._announce_with = "SPUBLISH" if router.sharded_pubsub else "PUBLISH"
        self._publish, self._since, self._top, self._history = load_scripts(
            router, "channel_publish", "channel_since", "channel_top", "channel_history")

    def publish_command(self, channel: str, message: bytes, *, tail: bytes = b"",
                        options: StreamOptions | None = None) -> Command:
        """The script call appending one publication, stored as
        message [+ offset marker + offset] + tail; it answers [offset, epoch]."""
        o = options or self.default
        return self._publish.command(
            keys=[stream_key(channel), position_key(channel)],
            args=[message, o.offset_marker, tail, o.size, o.ttl_ms, o.position_ttl_ms,
                  secrets.token_hex(4), announce_channel(channel), self._announce_with],
        )

    def top(self, channel: str) -> int:
        return self.position(channel).offset

    def position(self, channel: str, options: StreamOptions | None = None) -> StreamPosition:
        """With options, a channel that has no position yet gets one (an epoch)."""
        return position_of(self.router.call(*self.position_command(channel, options)))

    def position_command(self, channel: str, options: StreamOptions | None = None) -> Command:
        """Its reply makes a StreamPosition (position_of). Without options it only
        reads, as a plain HMGET: what channel_top does then, at a fraction of a
        script call's cost in Redis."""
        if options is None:
            return ("HMGET", position_key(channel), "top", "ep")
        return self._top.command([position_key(channel)],
                                 [secrets.token_hex(4), options.position_ttl_ms])

    def since(self, channel: str, offset: int, limit: int = CATCH_UP_LIMIT) -> CatchUp:
        reply = self._since(keys=[stream_key(channel), position_key(channel)],
                            args=[offset, limit])
        return CatchUp(list(reply[3:]), int(reply[1]), reply[2].decode(),
                       behind=reply[0] == b"behind")

    def history(self, channel: str, since: int, limit: int,
                reverse: bool) -> tuple[StreamPosition, list[tuple[int, bytes]]]:
        """Kept publications after `since` (before it, newest first, when
        reverse); limit -1 is all of them."""
        reply = self._history(keys=[stream_key(channel), position_key(channel)],
                              args=[since, limit, int(reverse)])
        entries = [(int(reply[i]), reply[i + 1]) for i in range(2, len(reply), 2)]
        return StreamPosition(int(reply[0]), reply[1].decode()), entries

    def remove_history(self, channel: str) -> None:
        """Drop the publications, keep the position."""
        self.router.call("DEL", stream_key(channel))


class Publications:
    """Publications sent in order without waiting for each reply, so that a
    burst of them costs one round trip; wait() collects their positions (once
    a replica has them too, with Sentinel: a publisher told of success).

    Each is queued on its channel's shard as it is added, so it runs before
    anything the same greenlet sends there afterwards.
    """

    def __init__(self, store: ChannelStore) -> None:
        self.store = store
        self._replies = store.router.replies(durable=True)

    def add(self, channel: str, message: bytes, *, tail: bytes = b"",
            options: StreamOptions | None = None) -> None:
        self._replies.send([self.store.publish_command(channel, message, tail=tail,
                                                       options=options)])

    def wait(self) -> list[StreamPosition]:
        """The positions of what was added since the last wait, in order; raises
        StoreUnavailable if any of them may not have been published."""
        replies, self._replies = self._replies, self.store.router.replies(durable=True)
        return [StreamPosition(int(offset), epoch.decode()) for offset, epoch in replies.get()]
