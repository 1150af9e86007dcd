"""Acknowledgements name absolute queue positions: applied twice, late, or in
another order than sent (a script call sent again after NOSCRIPT runs after
what was queued behind it), they never drop an item that was not written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.servers import RedisServer

from session_store.autopipeline import AutoPipeline
from session_store.items import message_item
from session_store.sessions import (
    Acknowledgement,
    Created,
    Held,
    SessionKey,
    SessionStore,
    StoreLimits,
)

HOLDER = "p1:1"


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[SessionStore]:
    client = AutoPipeline(redis_server.url)
    client.call("FLUSHDB")
    yield SessionStore(client, StoreLimits(lease_ms=30_000, disconnect_ms=5_000,
                                           max_queue=100, overflow_item=b"c3008 overflow"))
    client.close()


def held(store: SessionStore, key: SessionKey, upto: int) -> Held:
    reply = store.next_items(key, HOLDER, upto)
    assert isinstance(reply, Held)
    return reply


def test_late_or_repeated_acknowledgements_drop_nothing_unwritten(store: SessionStore) -> None:
    key = SessionKey("svc", "s1")
    assert isinstance(store.open_receiver(key, HOLDER, poll=False, probe=False), Created)
    store.enqueue(key, [message_item(f"m{n}") for n in range(1, 5)])
    assert held(store, key, 0).items == [message_item(f"m{n}") for n in range(1, 5)]

    def acknowledge(upto: int) -> None:
        store.acknowledge([Acknowledgement(key, HOLDER, upto, {})]).get()

    acknowledge(3)  # m1..m3 written
    acknowledge(1)  # an older acknowledgement landing late: changes nothing
    acknowledge(3)  # the same one twice: changes nothing
    reply = held(store, key, 3)
    assert (reply.head, reply.items) == (3, [message_item("m4")])


def test_a_read_before_an_acknowledgement_lands_returns_where_the_head_was(
    store: SessionStore,
) -> None:
    key = SessionKey("svc", "s2")
    store.open_receiver(key, HOLDER, poll=False, probe=False)
    store.enqueue(key, [message_item("a"), message_item("b")])
    reply = held(store, key, 0)  # read while "a" is written but not yet acknowledged
    assert (reply.head, reply.items) == (0, [message_item("a"), message_item("b")])
    # The receiver knows it wrote up to 1: it skips what lies before (Receiver.renew).
    store.acknowledge([Acknowledgement(key, HOLDER, 1, {})]).get()
    reply = held(store, key, 2)
    assert (reply.head, reply.items) == (2, [])
