"""A session's change reaches its lease holder: through Redis (PUBLISH on the
holder's process channel) when the holder is elsewhere, in memory when it is
in the process that made the change (a change of channels alone is handed
over with the channels as they are now); and a renewal brings the
subscriptions along when they changed since the holder last followed them."""

from __future__ import annotations

import pytest

from sockhop.session_store.items import message_item
from sockhop.session_store.sessions import Created, EnqueueResult, Held, SessionKey, SessionStore

HERE, ELSEWHERE = "phere", "pelsewhere"


class Holders:
    """What the store told this process's receivers."""

    def __init__(self) -> None:
        self.rung: list[str] = []
        self.handed_over: list[tuple[str, bytes, dict[str, int]]] = []

    def ring(self, tag: str) -> None:
        self.rung.append(tag)

    def hand_over(self, tag: str, version: bytes, subscriptions: dict[str, int]) -> None:
        self.handed_over.append((tag, version, subscriptions))


@pytest.fixture
def holders(store: SessionStore) -> Holders:
    told = Holders()
    store.serve_here(HERE, told)
    return told


def _publishes(store: SessionStore) -> int:
    """PUBLISH calls so far (a script's too)."""
    for line in store.router.call("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_publish:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def opened(store: SessionStore, process: str, name: str) -> SessionKey:
    key = SessionKey("svc", f"{name}-{process}")
    assert isinstance(store.open_receiver(key, f"{process}:1", poll=False, probe=False), Created)
    return key


@pytest.mark.parametrize("holder_process", [HERE, ELSEWHERE])
def test_the_holder_is_woken_in_memory_only_in_its_own_process(
        store: SessionStore, holders: Holders, holder_process: str) -> None:
    key = opened(store, holder_process, "items")
    before = _publishes(store)
    assert store.update(key, items=[message_item("m1")]) == EnqueueResult.OK
    assert store.update(key, channels={"news": 4}, items=[message_item("m2")]) \
        == EnqueueResult.OK
    assert holders.handed_over == []  # items to read: the holder reads them, channels too
    if holder_process == HERE:
        assert holders.rung == [key.tag, key.tag]
        assert _publishes(store) == before
    else:
        assert holders.rung == []
        assert _publishes(store) == before + 2


@pytest.mark.parametrize("holder_process", [HERE, ELSEWHERE])
def test_a_change_of_channels_alone_is_handed_over_with_them_all(
        store: SessionStore, holders: Holders, holder_process: str) -> None:
    key = opened(store, holder_process, "channels")
    before = _publishes(store)
    store.update(key, channels={"news": 7, "chat": 3})
    store.update(key, channels={"news": None})
    if holder_process == HERE:
        assert holders.handed_over == [(key.tag, b"1", {"news": 7, "chat": 3}),
                                       (key.tag, b"2", {"chat": 3})]
        assert _publishes(store) == before
    else:
        assert holders.handed_over == []
        assert _publishes(store) == before + 2
    assert holders.rung == []


def test_a_renewal_brings_the_subscriptions_when_they_changed(store: SessionStore) -> None:
    key = opened(store, ELSEWHERE, "subs")
    holder = f"{ELSEWHERE}:1"
    unchanged = store.next_items(key, holder, 0, version=b"0")
    assert isinstance(unchanged, Held) and unchanged.subscriptions is None
    store.update(key, channels={"news": 7, "chat": 3})
    changed = store.next_items(key, holder, 0, version=b"0")
    assert isinstance(changed, Held)
    assert changed.version == b"1" and changed.subscriptions == {"news": 7, "chat": 3}
    store.update(key, channels={"news": None})
    left = store.next_items(key, holder, 0, version=changed.version)
    assert isinstance(left, Held) and left.subscriptions == {"chat": 3}
    again = store.next_items(key, holder, 0, version=left.version)
    assert isinstance(again, Held) and again.subscriptions is None
