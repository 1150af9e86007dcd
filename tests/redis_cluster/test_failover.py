"""A Redis Cluster primary failing over to its replica under live load: the primary
holding a channel (its history, its sharded announcements; and the load's sessions
whose slots it serves) is killed with -9 while clients of every transport send and
receive through two sockhop processes (support/live_load.py says what is checked);
the cluster promotes the replica (node timeout 2 s) and the processes follow it by
themselves, their wake-up channels and the channel's subscription included."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from support.live_load import ENV, LiveLoad
from support.servers import (
    ProcessRegistry,
    RedisServer,
    RedisStore,
    shard_subscribers,
    start_cluster_redis,
    start_sockhop_processes,
)
from support.waiting import wait_for

from sockhop.session_store.channels import announce_channel
from sockhop.session_store.router import hash_tag, slot_of
from sockhop.workers.examples import BROADCAST_CHANNEL

ANNOUNCE_CHANNEL = announce_channel(BROADCAST_CHANNEL)


@pytest.fixture
def cluster(process_registry: ProcessRegistry) -> Iterator[RedisStore]:
    store = start_cluster_redis(process_registry, "failover-cluster-redis")
    yield store
    process_registry.stop(store.procs)


def role(node: RedisServer) -> str:
    with node.client() as client:
        return client.execute_command("ROLE")[0].decode()


def wake_up_channels(node: RedisServer) -> set[bytes]:
    with node.client() as client:
        return set(client.pubsub_channels("sh:p:*"))


@pytest.mark.timeout(240)
def test_primary_failover_under_load_loses_nothing_acknowledged(
    process_registry: ProcessRegistry, cluster: RedisStore
) -> None:
    _, addresses = start_sockhop_processes(
        process_registry, "cluster-failover", cluster.url, count=2, workers=2, env=ENV)
    load = LiveLoad([f"http://{h}:{p}" for h, p in addresses], channel=True)
    load.start()
    victim = cluster.slot_owner(slot_of(hash_tag(ANNOUNCE_CHANNEL)))
    replica = next(r for r in cluster.replicas if cluster.primary_of(r) is victim)
    held = [c.transport for c in load.clients if cluster.slot_owner(slot_of(c.tag)) is victim]
    try:
        killed_at = time.monotonic()
        os.kill(victim.proc.pid, signal.SIGKILL)
        wait_for(lambda: role(replica) == "master"
                 and cluster.slot_owner(slot_of(hash_tag(ANNOUNCE_CHANNEL))) is replica, 20,
                 interval=0.1, message="the cluster promoted the replica")
        promoted_after = time.monotonic() - killed_at
        # Nothing answers on the killed node's port meanwhile (its MOVED would show the way).
        load.wait_resumed()
        resumed_after = load.resumed_after(killed_at)
        # Every worker's wake-up channel is followed on the promoted replica too (the
        # dead-holder probe counts its subscribers there).
        other = next(p for p in cluster.servers if p is not victim)
        wait_for(lambda: wake_up_channels(replica) == wake_up_channels(other), 10,
                 message="the wake-up channels followed on the promoted replica")
        # And the channel's announcements (sharded: followed on its slot's owner only).
        wait_for(lambda: shard_subscribers(replica, ANNOUNCE_CHANNEL) >= 1, 10,
                 message="the channel's announcements followed on the promoted replica")
        # Its supervisor starts the killed node again: the cluster makes it a replica.
        restarted = process_registry.start(victim.proc.name, victim.proc.argv)
        wait_for(lambda: role(victim) == "slave", 30, interval=0.1,
                 message="the old primary is the new one's replica")
        replica_back_after = time.monotonic() - killed_at
    finally:
        load.stop_sending()
        if "restarted" in locals():
            process_registry.companions[victim.proc].append(restarted)
    load.finish()
    print(f"\ncluster failover: sessions on the killed primary: {held}; replica promoted "
          f"{promoted_after:.1f} s after kill -9; every client's sends answered 204 again "
          f"{resumed_after:.1f} s after the kill; the old primary restarted then, a replica "
          f"{replica_back_after:.1f} s after the kill")
    load.check()
