"""How a channel's publications are kept and shown: a stream per channel, and
a second one for its join and leave pushes.

A channel with history (history_size and history_ttl) shows offsets and
keeps history_size publications for history_ttl after the last one. A
channel without history still keeps a short stream, but only for delivery
(a SockJS poll between two requests catches up from it): its publications
carry no offset and it answers no history.
"""

from __future__ import annotations

from sockhop.session_store.channels import StreamOptions
from sockhop.workers.hub.config import ChannelOptions
from sockhop.workers.hub.protocol import OFFSET_MARKER

# A channel without history: how much and how long a subscriber between two
# requests (a SockJS poll) can fall behind before it must resubscribe.
DELIVERY_SIZE = 1000
DELIVERY_TTL_MS = 300_000
JOIN_LEAVE_SIZE = 200
JOIN_LEAVE_TTL_MS = 60_000


def join_leave_channel(channel: str) -> str:
    """Internal: no client channel name can start with a NUL."""
    return "\x00jl:" + channel


def is_join_leave(channel: str) -> bool:
    return channel.startswith("\x00jl:")


def history_enabled(options: ChannelOptions) -> bool:
    return options.history_size > 0 and options.history_ttl > 0


def stream_options(options: ChannelOptions, position_ttl: float) -> StreamOptions:
    """position_ttl: how long an idle channel keeps its offset and epoch (its
    followers' positions must not outlive it)."""
    ttl_ms = int((options.history_meta_ttl or position_ttl) * 1000)
    if history_enabled(options):
        return StreamOptions(size=options.history_size, ttl_ms=int(options.history_ttl * 1000),
                             position_ttl_ms=ttl_ms, offset_marker=OFFSET_MARKER.encode())
    return StreamOptions(size=DELIVERY_SIZE, ttl_ms=DELIVERY_TTL_MS, position_ttl_ms=ttl_ms)


def join_leave_options(options: ChannelOptions, position_ttl: float) -> StreamOptions:
    ttl_ms = int((options.history_meta_ttl or position_ttl) * 1000)
    return StreamOptions(size=JOIN_LEAVE_SIZE, ttl_ms=JOIN_LEAVE_TTL_MS, position_ttl_ms=ttl_ms)
