"""The store over a 3-primary Redis Cluster: sessions on the node that owns their
slot, and commands that follow a slot migration (MOVED, ASK) while they run, none
lost and none run twice (what every multi-server layout shares is in
test_many_servers.py)."""

from __future__ import annotations

import gevent
from support.servers import RedisServer, RedisStore
from support.slot_migration import Migration
from support.store import make_store, new_keys
from support.waiting import wait_for

from sockhop.session_store.channels import ChannelStore, announce_channel
from sockhop.session_store.cluster import ClusterRouter
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.router import hash_tag, slot_of
from sockhop.session_store.sessions import Created
from sockhop.session_store.wakeups import Wakeups

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


def test_announcements_travel_on_their_channels_node_and_follow_its_slot(
        cluster_router: ClusterRouter, cluster: RedisStore) -> None:
    """A channel's announcements are SPUBLISHed and followed (SSUBSCRIBE) on the node
    that owns the channel's slot, nowhere else; when the slot moves, that node drops
    the subscription, and it is made again on the new owner, the followers told they
    may have missed announcements (one published through ASK mid-move is)."""
    router = cluster_router
    streams = ChannelStore(router, history_size=10)
    wakeups = Wakeups(router)
    wakeups.start()
    announced: list[bytes] = []
    lost: list[bool] = []
    channel = announce_channel("news")
    assert wakeups.subscribe(channel, announced.extend, lambda: lost.append(True))
    slot = slot_of(hash_tag(channel))

    def subscribers(node: RedisServer) -> tuple[int, int, int]:
        """(shard subscribers of the channel, its classic ones, our wake-up channel's)."""
        with node.client() as client:
            return (client.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1],
                    client.execute_command("PUBSUB", "NUMSUB", channel)[1],
                    client.execute_command("PUBSUB", "NUMSUB", wakeups.channel)[1])

    def published(count: int) -> None:
        wait_for(lambda: gevent.sleep(0.01) or len(announced) >= count, 10,
                 message=f"{count} announcements arrived")

    owner = cluster.slot_owner(slot)
    assert subscribers(owner) == (1, 0, 1)
    assert [subscribers(n)[:2] for n in cluster.servers if n is not owner] == [(0, 0)] * 2
    router.call(*streams.publish_command("news", b"one"))
    published(1)

    migration = Migration(cluster, slot)
    try:
        migration.start()
        migration.move_keys()
        router.call(*streams.publish_command("news", b"mid-move"))  # ASK: run on the target
        migration.run()
    finally:
        migration.close()
    wait_for(lambda: gevent.sleep(0.01) or bool(lost), 10,
             message="the followers were told to catch up")
    new_owner = cluster.slot_owner(slot)
    assert new_owner.port == migration.target_port
    assert subscribers(new_owner) == (1, 0, 1) and subscribers(owner)[:2] == (0, 0)
    assert announced == [b"1 one"]  # the one published mid-move is for the catch-up
    router.call(*streams.publish_command("news", b"three"))
    published(2)
    assert announced == [b"1 one", b"3 three"]
