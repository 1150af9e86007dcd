"""What the store does alike over several Redis servers, whichever way they share
the keys (independent servers, client-side shards; or a Redis Cluster's nodes):
scripts over many sessions split per server or slot, the dead-holder probe answered
on the session's server, the reaper working on every server."""

from __future__ import annotations

import pytest
from support.servers import RedisStore
from support.store import make_store, new_keys
from support.waiting import wait_for

from sockhop.session_store.expiry import Reaper
from sockhop.session_store.router import Router
from sockhop.session_store.sessions import Acknowledgement, Busy, Opened, SessionKey
from sockhop.session_store.wakeups import Wakeups

SESSIONS = 60


@pytest.fixture(params=["shards", "cluster"])
def layout(request: pytest.FixtureRequest) -> tuple[Router, RedisStore]:
    """The router and its servers, for each layout in turn."""
    return (request.getfixturevalue(f"{request.param}_router"),
            request.getfixturevalue(request.param))


def test_acknowledgements_of_sessions_on_every_server_arrive(
        layout: tuple[Router, RedisStore]) -> None:
    router, servers = layout
    store = make_store(router)
    keys = new_keys(SESSIONS)
    for key in keys:
        store.open_receiver(key, "p:1", poll=False, probe=False)
        store.enqueue(key, [b"ma", b"mb"])
    store.acknowledge([Acknowledgement(k, "p:1", 1, {}) for k in keys]).get()
    for key in keys:
        assert servers.client_for(key.keys[1]).lrange(key.keys[1], 0, -1) == [b"mb"]


def test_the_dead_holder_probe_asks_the_sessions_server(
        layout: tuple[Router, RedisStore]) -> None:
    """A live process follows its wake-up channel on every server: its sessions
    are busy wherever they live; a process that follows none is dead everywhere."""
    router, _ = layout
    store = make_store(router)
    wakeups = Wakeups(router)
    wakeups.start()
    assert wakeups.subscribed.is_set()
    alive, dead = f"{wakeups.process_id}:1", "0123456789abcdef:1"
    keys = new_keys(30)
    for key in keys:
        store.open_receiver(key, alive, poll=False, probe=False)
    assert {router.shard_index(k.tag) for k in keys} == {0, 1, 2}
    for key in keys:
        assert store.open_receiver(key, "other:1", poll=False, probe=False) == Busy()
    for key in new_keys(30):
        store.open_receiver(key, dead, poll=False, probe=False)
        assert isinstance(store.open_receiver(key, "other:1", poll=False, probe=False), Opened)


def polled_sessions_and_reaper(router: Router) -> tuple[list[SessionKey], Reaper,
                                                        list[SessionKey]]:
    """30 sessions a poll opened (it lets go at once), and a reaper that lists the
    sessions whose close hook it ran, in order."""
    store = make_store(router, disconnect_ms=100)
    keys = new_keys(30)
    for key in keys:
        store.open_receiver(key, "p:1", poll=True, probe=False)
    expired: list[SessionKey] = []
    return keys, Reaper(store, lambda key, _: expired.append(key)), expired


def reap_until(reaper: Reaper, expired: list[SessionKey], wanted: list[SessionKey]) -> None:
    def done() -> bool:
        reaper.step()
        return set(expired) == set(wanted)

    wait_for(done, 10, interval=0.2, message=f"{len(wanted)} sessions expired")


def test_the_reaper_expires_sessions_on_every_server(layout: tuple[Router, RedisStore]) -> None:
    router, _ = layout
    keys, reaper, expired = polled_sessions_and_reaper(router)
    reap_until(reaper, expired, keys)
    assert len(expired) == len(keys)  # each close hook ran once


def test_a_session_the_reaper_cannot_check_holds_up_no_other(
        layout: tuple[Router, RedisStore]) -> None:
    """The reaper checks a claimed batch in one round trip; a session whose check
    fails (here its meta key has the wrong type) is left for a later visit, and
    every other one in the batch expires, its close hook run once."""
    router, servers = layout
    keys, reaper, expired = polled_sessions_and_reaper(router)
    broken = keys[0]
    client = servers.client_for(broken.keys[0])
    client.delete(broken.keys[0])
    client.set(broken.keys[0], "not a hash")
    reap_until(reaper, expired, keys[1:])
    assert len(expired) == len(keys) - 1
    # Client-side shards: each has buckets of its own; a Cluster: the bucket's slot owner.
    holders = [servers.client_for(broken.expiry_bucket)] if servers.cluster \
        else [server.client() for server in servers.servers]
    assert any(c.zscore(broken.expiry_bucket, broken.tag) is not None for c in holders), \
        "the session that could not be checked stays indexed, for a later visit"
