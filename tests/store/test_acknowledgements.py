"""Acknowledgements name absolute queue positions: applied twice, late, or in
another order than sent (a script call sent again after NOSCRIPT runs after
what was queued behind it), they never drop an item that was not written."""

from __future__ import annotations

from sockhop.session_store.items import message_item
from sockhop.session_store.sessions import (
    Acknowledgement,
    Created,
    Held,
    SessionKey,
    SessionStore,
)

HOLDER = "p1:1"


def held(store: SessionStore, key: SessionKey, upto: int) -> tuple[int, list[bytes]]:
    """Renew (acknowledging up to upto): the head's absolute position, and the items."""
    reply = store.next_items(key, HOLDER, upto)
    assert isinstance(reply, Held)
    return int(store.router.call("HGET", key.keys[0], "hd") or 0), reply.items


def test_late_or_repeated_acknowledgements_drop_nothing_unwritten(store: SessionStore) -> None:
    key = SessionKey("svc", "s1")
    assert isinstance(store.open_receiver(key, HOLDER, poll=False, probe=False), Created)
    store.enqueue(key, [message_item(f"m{n}") for n in range(1, 5)])
    assert held(store, key, 0) == (0, [message_item(f"m{n}") for n in range(1, 5)])

    def acknowledge(upto: int) -> None:
        store.acknowledge([Acknowledgement(key, HOLDER, upto, {})]).get()

    acknowledge(3)  # m1..m3 written
    acknowledge(1)  # an older acknowledgement landing late: changes nothing
    acknowledge(3)  # the same one twice: changes nothing
    assert held(store, key, 3) == (3, [message_item("m4")])


def test_a_read_before_an_acknowledgement_lands_keeps_its_items(
    store: SessionStore,
) -> None:
    key = SessionKey("svc", "s2")
    store.open_receiver(key, HOLDER, poll=False, probe=False)
    store.enqueue(key, [message_item("a"), message_item("b")])
    # Read while "a" is written but not yet acknowledged.
    assert held(store, key, 0) == (0, [message_item("a"), message_item("b")])
    # The late acknowledgement of "a", then a renewal that wrote "b" too: nothing
    # but what was written leaves (the renewal acknowledges before it reads).
    store.acknowledge([Acknowledgement(key, HOLDER, 1, {})]).get()
    assert held(store, key, 2) == (2, [])
