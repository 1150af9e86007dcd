"""A resharding under live load: the slots of every session of the load and of a
channel move to another primary (CLUSTER SETSLOT and MIGRATE, the steps of
`redis-cli --cluster reshard`) while clients of every transport send and receive
through two sockhop processes (support/live_load.py says what is checked: no
session lost, nothing acknowledged lost)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from support.live_load import ENV, RESUMED_SENDS, LiveLoad
from support.servers import (
    ProcessRegistry,
    RedisStore,
    shard_subscribers,
    start_cluster_redis,
    start_sockhop_processes,
)
from support.slot_migration import Migration
from support.waiting import wait_for

from sockhop.session_store.channels import announce_channel
from sockhop.session_store.router import hash_tag, slot_of
from sockhop.workers.examples import BROADCAST_CHANNEL

ANNOUNCE_CHANNEL = announce_channel(BROADCAST_CHANNEL)
CHANNEL_TAG = hash_tag(ANNOUNCE_CHANNEL)


@pytest.fixture
def cluster(process_registry: ProcessRegistry) -> Iterator[RedisStore]:
    store = start_cluster_redis(process_registry, "reshard-cluster-redis")
    yield store
    process_registry.stop(store.procs)


@pytest.mark.timeout(240)
def test_resharding_under_load_loses_no_session_nor_message(
    process_registry: ProcessRegistry, cluster: RedisStore
) -> None:
    _, addresses = start_sockhop_processes(
        process_registry, "reshard", cluster.url, count=2, workers=2, env=ENV)
    load = LiveLoad([f"http://{h}:{p}" for h, p in addresses], channel=True)
    load.start()
    slots = sorted({slot_of(c.tag) for c in load.clients} | {slot_of(CHANNEL_TAG)})
    owners_before = {slot: cluster.slot_owner(slot).port for slot in slots}
    try:
        started = time.monotonic()
        for slot in slots:
            migration = Migration(cluster, slot)
            try:
                migration.run()
            finally:
                migration.close()
        moved_after = time.monotonic() - started
        acked = [len(c.acked) for c in load.clients]
        wait_for(lambda: all(c.problems or len(c.acked) >= n + RESUMED_SENDS
                             for c, n in zip(load.clients, acked, strict=True)), 60,
                 message=f"{RESUMED_SENDS} more sends of every client answered 204 after the move")
        load.wait_resumed()
    finally:
        load.stop_sending()
    load.finish()
    print(f"\nresharding: {len(slots)} slots (every session's, the channel's) moved in "
          f"{moved_after:.1f} s under load")
    assert all(cluster.slot_owner(slot).port != owners_before[slot] for slot in slots)
    load.check()
    # The channel's announcements are followed on its slot's new owner only (sharded
    # pub/sub: the old owner dropped its subscribers when it gave the slot away).
    assert shard_subscribers(cluster.slot_owner(slot_of(CHANNEL_TAG)), ANNOUNCE_CHANNEL) >= 1
    before = cluster.node_at(owners_before[slot_of(CHANNEL_TAG)])
    assert shard_subscribers(before, ANNOUNCE_CHANNEL) == 0
