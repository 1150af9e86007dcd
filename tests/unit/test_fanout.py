"""Batched fan-out: what a receiver takes from the announcements that arrive together.

No Redis: the test plays the process's pub/sub reader, handing a channel's
announcements to the fan-out in batches as `Wakeups` does.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest

from sockhop.session_store.autopipeline import AutoPipeline
from sockhop.session_store.channels import announce_channel
from sockhop.session_store.endpoint import RedisEndpoint
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.fanout import ChannelFanout, runs_of
from sockhop.session_store.items import close_item, message_item
from sockhop.session_store.router import Router
from sockhop.session_store.wakeups import Handler, Lost, Wakeups
from sockhop.workers.application import Service, SessionHandler
from sockhop.workers.disconnect import GO_AWAY
from sockhop.workers.sockjs.framing import frame_of
from sockhop.workers.transports.events import Closing, Messages
from sockhop.workers.transports.receiver import Receiver

CHANNEL = "c"
CLOSE = close_item(GO_AWAY)


class LocalWakeups(Wakeups):
    """Subscriptions confirmed at once; announce() is the reader's batch."""

    def __init__(self) -> None:
        super().__init__(Router([AutoPipeline(RedisEndpoint(port=1))]))  # never connects
        self.handlers: dict[str, Handler] = {}

    def subscribe(self, channel: str, handler: Handler, lost: Lost) -> bool:
        self.handlers[channel] = handler
        return True

    def wait_subscribed(self, channel: str) -> bool:
        return True

    def announce(self, *offsets: int) -> None:
        """One batch: the publications at offsets, in this order, payload "m<offset>"."""
        self.handlers[announce_channel(CHANNEL)]([b"%d m%d" % (n, n) for n in offsets])


def make_runtime(top: Callable[[str], int] | None = None) -> SimpleNamespace:
    wakeups = LocalWakeups()
    return SimpleNamespace(wakeups=wakeups, fanout=ChannelFanout(wakeups, top=top),
                           new_holder=lambda: "proc:1", draining=False)


def follower(runtime: SimpleNamespace, offset: int) -> Receiver:
    """A receiver following CHANNEL from offset, as if its first catch-up found nothing new."""
    receiver = Receiver(runtime, Service("svc", SessionHandler()), f"s{offset}",  # type: ignore[arg-type]
                        transport="xhr_streaming")
    receiver._follow(b"1", {CHANNEL: offset})
    receiver.catch_up.clear()
    receiver.waiter.reset()
    return receiver


def frames(receiver: Receiver) -> list[bytes]:
    return [frame_of(event) for event in receiver.events()]


def test_runs_of_splits_announcements_at_gaps() -> None:
    runs = runs_of([b"1 a", b"2 b", b"4 d", b"5 e b"])
    assert [(r.first, r.last, r.payloads) for r in runs] == [
        (1, 2, [b"a", b"b"]), (4, 5, [b"d", b"e b"])]


def test_a_batch_wakes_each_follower_once_with_one_run_joined_once_for_all() -> None:
    runtime = make_runtime()
    a, b = follower(runtime, 0), follower(runtime, 0)
    runtime.wakeups.announce(1, 2, 3)
    assert a.waiter.event.is_set() and b.waiter.event.is_set()
    assert len(a.outbox.publications) == 1
    assert a.outbox.publications[0].shared is b.outbox.publications[0].shared is not None
    events = a.events()
    assert events == [Messages(events[0].parts, 0, {CHANNEL: 3})]  # type: ignore[union-attr]
    assert frame_of(events[0]) == b'a["m1","m2","m3"]'
    assert frames(b) == [b'a["m1","m2","m3"]']
    assert b.positions[CHANNEL] == 3


def test_what_a_follower_already_has_is_never_taken_twice() -> None:
    runtime = make_runtime()
    receiver = follower(runtime, 0)
    runtime.wakeups.announce(1, 2)
    assert frames(receiver) == [b'a["m1","m2"]']
    receiver.waiter.reset()
    runtime.wakeups.announce(2)  # a duplicate only: nothing to do, nobody woken
    assert not receiver.waiter.event.is_set() and receiver.events() == []
    runtime.wakeups.announce(1, 2, 3, 4)  # overlapping: only the new part
    assert frames(receiver) == [b'a["m3","m4"]']
    assert receiver.positions[CHANNEL] == 4


def test_a_follower_that_joined_mid_batch_takes_what_follows_its_offset() -> None:
    runtime = make_runtime()
    early, late = follower(runtime, 0), follower(runtime, 2)
    runtime.wakeups.announce(1, 2, 3, 4)
    assert frames(early) == [b'a["m1","m2","m3","m4"]']
    events = late.events()
    assert [frame_of(e) for e in events] == [b'a["m3","m4"]']
    assert events[0].positions == {CHANNEL: 4}  # type: ignore[union-attr]
    assert events[0].parts[0].shared is None  # type: ignore[union-attr]  # its own slice


def test_a_gap_makes_the_follower_catch_up_never_skip() -> None:
    runtime = make_runtime()
    receiver = follower(runtime, 0)
    runtime.wakeups.announce(3, 4)  # 1 and 2 were never announced here
    assert receiver.catch_up == {CHANNEL}
    assert receiver.positions[CHANNEL] == 0 and receiver.outbox.publications == []
    assert receiver.waiter.event.is_set()

    receiver.catch_up.clear()
    runtime.wakeups.announce(1, 2, 4, 5)  # two runs: the first is taken, the gap before 4 is not
    assert receiver.positions[CHANNEL] == 2 and receiver.catch_up == {CHANNEL}
    assert [list(p.payloads) for p in receiver.outbox.publications] == [[b"m1", b"m2"]]


def test_queue_items_go_before_the_publications_and_a_close_frame_ends_them() -> None:
    """A reply queued with a subscription must reach the client before what the
    subscription brings (Centrifugo's subscribe reply, then publications)."""
    runtime = make_runtime()
    receiver = follower(runtime, 0)
    runtime.wakeups.announce(1, 2)
    receiver.outbox.items = [message_item("q1"), CLOSE, message_item("late")]
    events = receiver.events()
    assert [frame_of(e) for e in events] == [b'a["q1","m1","m2"]', b'c[3000,"Go away!"]']
    assert events[0] == Messages(events[0].parts, 1, {CHANNEL: 2})  # type: ignore[union-attr]
    assert events[1] == Closing(GO_AWAY, 1)  # nothing after the close


def joining(runtime: SimpleNamespace, offset: int) -> Receiver:
    """A receiver that starts following CHANNEL from offset (catch-up left as decided)."""
    receiver = Receiver(runtime, Service("svc", SessionHandler()), f"j{offset}",  # type: ignore[arg-type]
                        transport="xhr_streaming")
    receiver._follow(b"1", {CHANNEL: offset})
    return receiver


def test_a_follower_skips_the_history_only_when_nothing_after_its_offset_was_missed() -> None:
    runtime = make_runtime(top=lambda channel: 5)  # the top, read once subscribed
    assert joining(runtime, 5).catch_up == set()  # every publication after 5 is announced
    assert joining(runtime, 4).catch_up == {CHANNEL}  # 5 went by before it followed
    runtime.wakeups.announce(6, 7)
    assert joining(runtime, 6).catch_up == {CHANNEL}  # 7 was announced before it followed
    assert joining(runtime, 7).catch_up == set()


def test_announcements_taken_with_no_follower_still_count() -> None:
    runtime = make_runtime(top=lambda channel: 5)
    first = joining(runtime, 5)
    runtime.fanout.unfollow(CHANNEL, first)  # nobody follows; the subscription lingers
    runtime.wakeups.announce(6)
    assert joining(runtime, 5).catch_up == {CHANNEL}


def test_without_a_top_read_since_announcements_may_have_been_lost_everyone_catches_up() -> None:
    assert joining(make_runtime(top=None), 5).catch_up == {CHANNEL}
    tops = iter([5, 9])
    runtime = make_runtime(top=lambda channel: next(tops))
    present = joining(runtime, 5)
    assert present.catch_up == set()
    runtime.fanout.announcements_lost(CHANNEL)  # pub/sub reconnected
    assert present.catch_up == {CHANNEL}
    assert joining(runtime, 5).catch_up == {CHANNEL}  # the top is read again: 9
    assert joining(runtime, 9).catch_up == set()


def test_a_top_read_while_announcements_were_lost_is_not_trusted() -> None:
    runtime: SimpleNamespace

    def top_during_a_reconnect(channel: str) -> int:
        runtime.fanout.announcements_lost(CHANNEL)
        return 5

    runtime = make_runtime(top=top_during_a_reconnect)
    assert joining(runtime, 5).catch_up == {CHANNEL}


def test_an_announcement_taken_while_the_top_was_read_counts() -> None:
    runtime: SimpleNamespace

    def top_overtaken_by_an_announcement(channel: str) -> int:
        runtime.wakeups.announce(6)  # published after the read, taken before its answer
        return 5

    runtime = make_runtime(top=top_overtaken_by_an_announcement)
    first = Receiver(runtime, Service("svc", SessionHandler()), "j",  # type: ignore[arg-type]
                     transport="xhr_streaming")
    runtime.fanout.follow(CHANNEL, first)  # subscribes, then reads the top
    assert joining(runtime, 5).catch_up == {CHANNEL}  # 6 went by before it followed
    assert joining(runtime, 6).catch_up == set()


def test_a_catch_up_that_met_a_redis_outage_is_still_to_do() -> None:
    """A websocket rides an outage out: the history read it could not make is made
    once Redis answers again, not forgotten."""

    def unavailable(channel: str, offset: int) -> None:
        raise StoreUnavailable("Redis is out")

    runtime = make_runtime()
    runtime.channels = SimpleNamespace(since=unavailable)
    receiver = joining(runtime, 3)  # no top known: it must catch up
    assert receiver.catch_up == {CHANNEL}
    with pytest.raises(StoreUnavailable):
        receiver.events()
    assert receiver.catch_up == {CHANNEL}
