"""The store over a 3-primary Redis Cluster: sessions on the node that owns their
slot, and commands that follow a slot migration (MOVED, ASK) while they run, none
lost and none run twice (what every multi-server layout shares is in
test_many_servers.py)."""

from __future__ import annotations

import gevent
from support.servers import RedisStore
from support.slot_migration import Migration
from support.store import make_store, new_keys
from support.waiting import wait_for

from sockhop.session_store.cluster import ClusterRouter
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.router import hash_tag, slot_of
from sockhop.session_store.sessions import Created

SESSIONS = 60


def test_each_session_lives_on_the_node_that_owns_its_slot(cluster_router: ClusterRouter,
                                                           cluster: RedisStore) -> None:
    router = cluster_router
    store = make_store(router)
    keys = new_keys(SESSIONS)
    for key in keys:
        assert store.open_receiver(key, "p:1", poll=False, probe=False) == Created()
    for key in keys:
        assert cluster.client_for(key.keys[0]).hget(key.keys[0], "st") == b"o"
    assert len({router.for_tag(k.tag) for k in keys}) == 3


def test_a_slot_migrated_under_load_loses_and_repeats_nothing(cluster_router: ClusterRouter,
                                                              cluster: RedisStore) -> None:
    """Enqueues run on one session while its slot moves to another node: each one
    that returned is in the queue once, in order (ASK while the slot migrates, MOVED
    once it has moved); the router then sends the slot's commands to the new owner."""
    router = cluster_router
    store = make_store(router, max_queue=100_000)
    (key,) = new_keys(1)
    store.open_receiver(key, "p:1", poll=False, probe=False)
    slot = slot_of(hash_tag(key.keys[0]))
    migration = Migration(cluster, slot)
    stored: list[bytes] = []
    refused: list[bytes] = []
    stop = False

    def load() -> None:
        n = 0
        while not stop and n < 100_000:
            item = b"m%d" % n
            try:
                store.enqueue(key, [item])
            except StoreUnavailable:  # TRYAGAIN: did not run
                refused.append(item)
            else:
                stored.append(item)
            n += 1
            gevent.sleep(0.001)

    def more(enqueues: int, message: str, tried: bool = False) -> None:
        """Let the loader run (this test's thread is not monkey-patched: sleep in gevent)
        until more enqueues returned (with tried: or were refused)."""
        def count() -> int:
            return len(stored) + (len(refused) if tried else 0)

        target = count() + enqueues
        wait_for(lambda: gevent.sleep(0.01) or count() >= target, 30, message=message)

    loader = gevent.spawn(load)
    try:
        more(20, "enqueues before the migration")
        migration.start()
        # A key of the session's that does not exist (its subscriptions) makes either
        # node answer TRYAGAIN (after ASK) until the slot has moved: refused, after a
        # few tries; only a session with all its keys runs on (ASK) meanwhile.
        more(5, "enqueues while migrating, before the keys moved", tried=True)
        assert migration.move_keys() >= 2
        more(5, "enqueues after the keys moved (ASK)", tried=True)
        # A command on one key follows ASK to the importing node, leaving the slot map.
        assert router.call("HGET", key.keys[0], "st") == b"o"
        assert router.for_tag(key.tag).endpoint.port != migration.target_port
        migration.finish()
        more(20, "enqueues after the slot moved (MOVED)")
    finally:
        stop = True
        loader.join(5)
        migration.close()
    with cluster.client_for(key.keys[1]) as owner:
        queue = owner.lrange(key.keys[1], 0, -1)
    assert queue[-len(stored):] == stored
    assert not set(queue) & set(refused)
    assert router.for_tag(key.tag).endpoint.port == migration.target_port
