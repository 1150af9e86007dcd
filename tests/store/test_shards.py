"""The store over three independent redis-servers: each session's keys on the
server the router names, scripts over many sessions split per server, the
dead-holder probe answered by the session's server, and the reaper and
liveness working on every server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from support.servers import ProcessRegistry, RedisStore, start_standalone_redis
from support.waiting import wait_for

from sockhop.session_store.autopipeline import AutoPipeline
from sockhop.session_store.expiry import Reaper
from sockhop.session_store.router import Router
from sockhop.session_store.sessions import (
    Acknowledgement,
    Busy,
    Created,
    Opened,
    SessionKey,
    SessionStore,
    StoreLimits,
)
from sockhop.session_store.wakeups import Wakeups

SESSIONS = 60


@pytest.fixture(scope="module")
def shards(process_registry: ProcessRegistry) -> Iterator[RedisStore]:
    store = RedisStore([start_standalone_redis(process_registry, f"shard{i}-redis")
                        for i in range(3)])
    yield store
    process_registry.stop(store.procs)


@pytest.fixture
def router(shards: RedisStore) -> Iterator[Router]:
    router = Router([AutoPipeline(server.endpoint) for server in shards.servers])
    router.on_every_shard(lambda shard: shard.call("FLUSHDB"))
    yield router
    router.close()


def make_store(router: Router, disconnect_ms: int = 5_000) -> SessionStore:
    return SessionStore(router, StoreLimits(lease_ms=30_000, disconnect_ms=disconnect_ms,
                                            max_queue=100, overflow_item=b"c3008 overflow"))


def new_keys(count: int) -> list[SessionKey]:
    return [SessionKey("echo", uuid.uuid4().hex[:8]) for _ in range(count)]


def test_each_session_lives_on_its_routers_server_and_every_server_has_some(
    router: Router, shards: RedisStore,
) -> None:
    store = make_store(router)
    keys = new_keys(SESSIONS)
    for key in keys:
        assert store.open_receiver(key, "p:1", poll=False, probe=False) == Created()
    servers = [s.client() for s in shards.servers]
    for key in keys:
        holding = [i for i, server in enumerate(servers) if server.exists(key.keys[0])]
        assert holding == [router.shard_index(key.tag)], key
        assert shards.client_for(key.keys[0]).hget(key.keys[0], "st") == b"o"
    assert all(server.dbsize() > 0 for server in servers)


def test_acknowledgements_of_sessions_on_every_server_arrive(router: Router,
                                                             shards: RedisStore) -> None:
    store = make_store(router)
    keys = new_keys(SESSIONS)
    for key in keys:
        store.open_receiver(key, "p:1", poll=False, probe=False)
        store.enqueue(key, [b"ma", b"mb"])
    store.acknowledge([Acknowledgement(k, "p:1", 1, {}) for k in keys]).get()
    for key in keys:
        assert shards.client_for(key.keys[1]).lrange(key.keys[1], 0, -1) == [b"mb"]


def test_the_dead_holder_probe_asks_the_sessions_server(router: Router) -> None:
    """A live process follows its wake-up channel on every server: its sessions
    are busy wherever they live; a process that follows none is dead everywhere."""
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


def test_the_reaper_expires_sessions_on_every_server(router: Router) -> None:
    store = make_store(router, disconnect_ms=100)
    expired: list[SessionKey] = []
    reaper = Reaper(store, lambda key, _: expired.append(key))
    keys = new_keys(30)
    for key in keys:
        store.open_receiver(key, "p:1", poll=True, probe=False)  # a poll lets go at once

    def all_expired() -> bool:
        reaper.step()
        return set(expired) == set(keys)

    wait_for(all_expired, 10, interval=0.2, message="every session expired")
    assert len(expired) == len(keys)  # each close hook ran once
