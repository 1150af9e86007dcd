"""Per-process fan-out: one announcement per channel per process, handed to
every local follower in memory.

Followers keep their offset; an announcement at offset n is taken as is only
by a follower at n-1, so nothing is delivered twice or out of order, and a
follower that sees a gap catches up from the channel's history.

The announcements that arrived together are handed over as runs of
consecutive offsets, each shared by all its followers: a follower is woken
once per batch, and what a protocol builds from a run is built once.

A follower that joins at offset n need not read the history when nothing
after n can have been missed (`announced_after`): the process has followed
the channel without a break since it read the channel's top t, so every
publication after t is announced to it, and none it has taken since is past n.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import gevent

from sockhop.session_store.channels import announce_channel
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.wakeups import Wakeups

# Keep a channel's subscription this long after its last local follower left:
# polling receivers come and go every round trip.
LINGER = 10.0


class Run:
    """Publications of one channel at consecutive offsets, first to last."""

    __slots__ = ("first", "last", "payloads", "shared")

    def __init__(self, first: int, payloads: list[bytes]) -> None:
        self.first = first
        self.last = first + len(payloads) - 1
        self.payloads = payloads
        # What the followers that take the whole run would each build alike from
        # it (a protocol's frame, a transport's chunk): built by the first,
        # reused by the others.
        self.shared: dict[object, Any] = {}

    def payloads_after(self, offset: int) -> list[bytes]:
        """The payloads past offset (offset >= first - 1)."""
        if offset < self.first:
            return self.payloads
        return self.payloads[offset + 1 - self.first:]


def runs_of(announcements: list[bytes]) -> list[Run]:
    """Split `<offset> <payload>` announcements, in arrival order, into runs."""
    runs: list[Run] = []
    payloads: list[bytes] = []
    first = expected = 0
    for data in announcements:
        offset, _, payload = data.partition(b" ")
        n = int(offset)
        if n != expected and payloads:
            runs.append(Run(first, payloads))
            payloads = []
        if not payloads:
            first = n
        payloads.append(payload)
        expected = n + 1
    if payloads:
        runs.append(Run(first, payloads))
    return runs


# Told after each batch: messages written at once by transport, and the batch's duration.
Delivered = Callable[[Mapping[str, int], float], None]


class Follower(Protocol):
    transport: str  # what the follower writes to, in what `Delivered` is told

    def offer(self, channel: str, run: Run) -> int:
        """Publications first..last of channel were announced; returns how many of
        them were written at once (not left for the follower's own wake-up)."""

    def lost_track(self, channel: str) -> None:
        """Announcements may have been missed: catch up from the history."""


class ChannelFanout:
    def __init__(self, wakeups: Wakeups, delivered: Delivered | None = None,
                 top: Callable[[str], int] | None = None) -> None:
        self.wakeups = wakeups
        self.delivered = delivered
        self._top = top  # a channel's top offset, read from Redis
        # By channel followed without a break since its top was read: the highest
        # offset known (that top, or the last announced since).
        self._heard: dict[str, int] = {}
        # Channels whose top is being read: the highest offset announced meanwhile
        # (-1: none), which the read may not have seen.
        self._reading: dict[str, int] = {}
        self._generation = 0  # moves on whenever announcements may have been lost
        # By channel, then by the transport they write to (counted per group, not
        # per follower: the delivery loop is the hot path).
        self._followers: dict[str, dict[str, set[Follower]]] = {}
        self._subscribed: set[str] = set()

    def follow(self, channel: str, follower: Follower) -> bool:
        """Start handing channel's announcements to follower; True once they flow.

        Read the history only after this returns, or a publication could fall
        between the read and the subscription.
        """
        self._followers.setdefault(channel, {}).setdefault(follower.transport, set()).add(follower)
        if channel in self._subscribed:
            flowing = self.wakeups.wait_subscribed(announce_channel(channel))
        else:
            self._subscribed.add(channel)
            flowing = self.wakeups.subscribe(
                announce_channel(channel), lambda announced: self._announce(channel, announced),
                lambda: self.announcements_lost(channel))
        if flowing and channel not in self._heard:
            self._read_top(channel)
        return flowing

    def announced_after(self, channel: str, offset: int) -> bool:
        """True if every publication of channel after offset reaches the
        followers through announcements (see the module docstring); ask after
        follow() returned."""
        heard = self._heard.get(channel)
        return heard is not None and heard <= offset

    def announcements_lost(self, channel: str) -> None:
        """channel's announcements may have been missed (its subscription was made
        again: a pub/sub reconnect, its Cluster slot moved): its followers catch
        up, and its top is read again before anyone may skip that."""
        self._generation += 1  # a read of a top in flight must not count
        self._heard.pop(channel, None)
        for group in list(self._followers.get(channel, {}).values()):
            for follower in list(group):
                follower.lost_track(channel)

    def _read_top(self, channel: str) -> None:
        """Once per channel followed (and after announcements were lost): read
        after the subscription was confirmed, the top bounds what was missed."""
        if self._top is None or channel in self._reading:
            return
        self._reading[channel] = -1
        generation = self._generation
        try:
            top = self._top(channel)
        except StoreUnavailable:
            return
        finally:
            announced = self._reading.pop(channel)
        if generation == self._generation and channel in self._subscribed:
            self._heard[channel] = max(top, announced, self._heard.get(channel, top))

    def unfollow(self, channel: str, follower: Follower) -> None:
        groups = self._followers.get(channel)
        group = groups.get(follower.transport) if groups is not None else None
        if groups is None or group is None:
            return
        group.discard(follower)
        if not group:
            del groups[follower.transport]
        if not groups:
            del self._followers[channel]
            gevent.spawn_later(LINGER, self._drop_if_unfollowed, channel)

    def _drop_if_unfollowed(self, channel: str) -> None:
        if channel not in self._followers and channel in self._subscribed:
            self._subscribed.discard(channel)
            self._heard.pop(channel, None)
            self._generation += 1  # a read of its top in flight must not count
            self.wakeups.unsubscribe(announce_channel(channel))

    def _announce(self, channel: str, announced: list[bytes]) -> None:
        runs = runs_of(announced)
        last = max(run.last for run in runs)
        # Followers or not, one may join next: what went by counts.
        if channel in self._heard:
            self._heard[channel] = max(self._heard[channel], last)
        if channel in self._reading:
            self._reading[channel] = max(self._reading[channel], last)
        groups = self._followers.get(channel)
        if not groups:
            return
        started = time.perf_counter()
        written: dict[str, int] = {}
        for run in runs:
            for transport, group in list(groups.items()):
                count = 0
                for follower in list(group):
                    count += follower.offer(channel, run)
                if count:
                    written[transport] = written.get(transport, 0) + count
        if self.delivered is not None:  # once per batch, not per follower: the hot path
            self.delivered(written, time.perf_counter() - started)
