"""Batched fan-out: what a receiver takes from the announcements that arrive together.

No Redis: the test plays the process's pub/sub reader, handing a channel's
announcements to the fan-out in batches as `Wakeups` does.
"""

from __future__ import annotations

from types import SimpleNamespace

from session_store.channels import announce_channel
from session_store.fanout import ChannelFanout, runs_of
from session_store.wakeups import Handler, Wakeups
from workers.application import Service, SessionHandler
from workers.transports.receiver import Frame, Receiver

CHANNEL = "c"
CLOSE = b'c[3000,"Go away!"]'


class LocalWakeups(Wakeups):
    """Subscriptions confirmed at once; announce() is the reader's batch."""

    def __init__(self) -> None:
        super().__init__(client=None, commands=None)  # type: ignore[arg-type]  # never connects
        self.handlers: dict[str, Handler] = {}

    def subscribe(self, channel: str, handler: Handler) -> bool:
        self.handlers[channel] = handler
        return True

    def wait_subscribed(self, channel: str) -> bool:
        return True

    def announce(self, *offsets: int) -> None:
        """One batch: the publications at offsets, in this order, payload "m<offset>"."""
        self.handlers[announce_channel(CHANNEL)]([b'%d "m%d"' % (n, n) for n in offsets])


def make_runtime() -> SimpleNamespace:
    wakeups = LocalWakeups()
    return SimpleNamespace(wakeups=wakeups, fanout=ChannelFanout(wakeups),
                           new_holder=lambda: "proc:1", draining=False)


def follower(runtime: SimpleNamespace, offset: int) -> Receiver:
    """A receiver following CHANNEL from offset, as if its first catch-up found nothing new."""
    receiver = Receiver(runtime, Service("svc", SessionHandler()), f"s{offset}")  # type: ignore[arg-type]
    receiver._follow(b"1", {CHANNEL: offset})
    receiver.catch_up.clear()
    receiver.waiter.reset()
    return receiver


def test_runs_of_splits_announcements_at_gaps() -> None:
    runs = runs_of([b'1 "a"', b'2 "b"', b'4 "d"', b'5 "e"'])
    assert [(r.first, r.last, r.joined) for r in runs] == [(1, 2, b'"a","b"'), (4, 5, b'"d","e"')]


def test_a_batch_wakes_each_follower_once_with_one_run_joined_once_for_all() -> None:
    runtime = make_runtime()
    a, b = follower(runtime, 0), follower(runtime, 0)
    runtime.wakeups.announce(1, 2, 3)
    assert a.waiter.event.is_set() and b.waiter.event.is_set()
    assert len(a.publications) == 1 and a.publications[0] is b.publications[0]
    assert a.frames() == [Frame(b'a["m1","m2","m3"]', 0, {CHANNEL: 3})]
    assert b.positions[CHANNEL] == 3


def test_what_a_follower_already_has_is_never_taken_twice() -> None:
    runtime = make_runtime()
    receiver = follower(runtime, 0)
    runtime.wakeups.announce(1, 2)
    assert receiver.frames()[0].data == b'a["m1","m2"]'
    receiver.waiter.reset()
    runtime.wakeups.announce(2)  # a duplicate only: nothing to do, nobody woken
    assert not receiver.waiter.event.is_set() and receiver.frames() == []
    runtime.wakeups.announce(1, 2, 3, 4)  # overlapping: only the new part
    assert receiver.frames()[0].data == b'a["m3","m4"]'
    assert receiver.positions[CHANNEL] == 4


def test_a_follower_that_joined_mid_batch_takes_what_follows_its_offset() -> None:
    runtime = make_runtime()
    early, late = follower(runtime, 0), follower(runtime, 2)
    runtime.wakeups.announce(1, 2, 3, 4)
    assert early.frames()[0].data == b'a["m1","m2","m3","m4"]'
    assert late.frames() == [Frame(b'a["m3","m4"]', 0, {CHANNEL: 4})]


def test_a_gap_makes_the_follower_catch_up_never_skip() -> None:
    runtime = make_runtime()
    receiver = follower(runtime, 0)
    runtime.wakeups.announce(3, 4)  # 1 and 2 were never announced here
    assert receiver.catch_up == {CHANNEL}
    assert receiver.positions[CHANNEL] == 0 and receiver.publications == []
    assert receiver.waiter.event.is_set()

    receiver.catch_up.clear()
    runtime.wakeups.announce(1, 2, 4, 5)  # two runs: the first is taken, the gap before 4 is not
    assert receiver.positions[CHANNEL] == 2 and receiver.catch_up == {CHANNEL}
    assert receiver.publications == [b'"m1","m2"']


def test_queue_items_and_a_close_frame_follow_the_publications_as_before() -> None:
    runtime = make_runtime()
    receiver = follower(runtime, 0)
    runtime.wakeups.announce(1, 2)
    receiver.items = [b'"q1"', CLOSE, b'"late"']
    assert receiver.frames() == [
        Frame(b'a["m1","m2","q1"]', 1, {CHANNEL: 2}),  # one queue item written with it
        Frame(CLOSE, 1),
    ]
