"""A session's change reaches its lease holder: through Redis (PUBLISH on the
holder's process channel) when the holder is elsewhere, in memory when it is
in the process that made the change; and a renewal brings the subscriptions
along when they changed since the holder last followed them."""

from __future__ import annotations

import pytest

from sockhop.session_store.items import message_item
from sockhop.session_store.sessions import Created, EnqueueResult, Held, SessionKey, SessionStore

HERE, ELSEWHERE = "phere", "pelsewhere"


@pytest.fixture
def rung(store: SessionStore) -> list[str]:
    tags: list[str] = []
    store.ring_here(HERE, tags.append)
    return tags


@pytest.mark.parametrize("holder_process", [HERE, ELSEWHERE])
def test_the_holder_is_woken_in_memory_only_in_its_own_process(
        store: SessionStore, rung: list[str], holder_process: str) -> None:
    key = SessionKey("svc", f"s-{holder_process}")
    holder = f"{holder_process}:1"
    assert isinstance(store.open_receiver(key, holder, poll=False, probe=False), Created)
    before = _publishes(store)
    assert store.update(key, items=[message_item("m1")]) == EnqueueResult.OK
    if holder_process == HERE:
        assert rung == [key.tag]
        assert _publishes(store) == before
    else:
        assert rung == []
        assert _publishes(store) == before + 1


def _publishes(store: SessionStore) -> int:
    """PUBLISH calls so far (a script's too)."""
    for line in store.router.call("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_publish:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_a_renewal_brings_the_subscriptions_when_they_changed(store: SessionStore) -> None:
    key = SessionKey("svc", "s-subs")
    holder = f"{ELSEWHERE}:1"
    assert isinstance(store.open_receiver(key, holder, poll=False, probe=False), Created)
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
