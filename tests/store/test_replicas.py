"""Durable writes wait for the replicas a master has online: a write no replica
confirmed is refused, a master left without replicas (a failover's promoted replica,
its old master still down) is written to alone until one is back. Real servers: a
master and its replica."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import gevent
import pytest
import redis
from support.procs import ManagedProcess
from support.servers import (
    ProcessRegistry,
    RedisServer,
    start_standalone_redis,
)
from support.waiting import wait_for

from sockhop.session_store.autopipeline import AutoPipeline
from sockhop.session_store.endpoint import RedisEndpoint
from sockhop.session_store.errors import StoreUnavailable


@dataclass
class MasterWithReplicas:
    """A Locator of a master whose durable writes wait for one replica (what a Sentinel
    set's and a Cluster's locators are), here without the sentinels: the test says
    which server is the master."""

    master: RedisEndpoint
    replicas_to_wait = 1

    @property
    def where(self) -> str:
        return self.master.where

    def locate(self, timeout: float) -> RedisEndpoint:
        return self.master


@dataclass
class Pair:
    master: RedisServer
    replica: RedisServer
    registry: ProcessRegistry
    replica_proc: ManagedProcess

    def stop_replica(self) -> None:
        self.registry.stop([self.replica_proc])

    def start_replica_again(self) -> None:
        self.replica_proc = self.registry.start(self.replica_proc.name, self.replica_proc.argv)

    def online(self) -> int:
        with self.master.client() as master:
            return len(master.execute_command("ROLE")[2])

    def waits(self) -> int:
        with self.master.client() as master:
            return int(master.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


@pytest.fixture
def pair(process_registry: ProcessRegistry) -> Iterator[Pair]:
    master = start_standalone_redis(process_registry, "replicas-redis",
                                    ("--repl-diskless-sync-delay", "0"))
    replica = start_standalone_redis(process_registry, "replicas-replica",
                                     ("--replicaof", "127.0.0.1", str(master.port)))
    pair = Pair(master, replica, process_registry, replica.proc)
    wait_for(lambda: pair.online() == 1, 10, interval=0.05, message="the replica is online")
    yield pair
    process_registry.stop([pair.replica_proc, master.proc])


def replicas_waited_for(client: AutoPipeline) -> int:
    gevent.sleep(0.05)  # the client's greenlets run while the test waits
    return client.replicas_to_wait


@pytest.fixture
def client(pair: Pair) -> Iterator[AutoPipeline]:
    c = AutoPipeline(MasterWithReplicas(pair.master.endpoint))
    yield c
    c.close()


def test_a_write_waits_for_the_replica_online(pair: Pair, client: AutoPipeline) -> None:
    waits = pair.waits()
    client.call("SET", "sh:k", "1", durable=True)
    assert pair.waits() == waits + 1
    with redis.Redis(port=pair.replica.port) as replica:
        assert replica.get("sh:k") == b"1"  # WAIT answered: it is there


def test_a_write_no_replica_confirms_is_refused(pair: Pair, client: AutoPipeline) -> None:
    client.call("PING")
    os.kill(pair.replica.proc.pid, signal.SIGSTOP)  # listed online, answering nothing
    try:
        with pytest.raises(StoreUnavailable, match="not on a replica"):
            client.call("SET", "sh:k", "2", durable=True)
        assert client.replicas_to_wait == 1  # the master still lists it: still waited for
    finally:
        os.kill(pair.replica.proc.pid, signal.SIGCONT)


def test_without_a_replica_writes_go_on_until_one_is_back(
    pair: Pair, client: AutoPipeline
) -> None:
    client.call("PING")
    pair.stop_replica()
    wait_for(lambda: replicas_waited_for(client) == 0, 5, interval=0.05,
             message="the client learns that the master has no replica online")
    waits = pair.waits()
    for n in range(20):
        client.call("SET", "sh:k", n, durable=True)
    assert pair.waits() == waits  # none waited for

    pair.start_replica_again()
    wait_for(lambda: replicas_waited_for(client) == 1, 10, interval=0.05,
             message="the client learns that the replica is back")
    client.call("SET", "sh:k", "back", durable=True)
    assert pair.waits() == waits + 1


def test_a_master_refusing_writes_without_replicas_means_not_now(
    pair: Pair, client: AutoPipeline
) -> None:
    """min-replicas-to-write set on the master: its NOREPLICAS is a 503, not a bug."""
    client.call("PING")
    pair.stop_replica()
    with pair.master.client() as master:
        master.config_set("min-replicas-to-write", 1)
    wait_for(lambda: replicas_waited_for(client) == 0, 5, interval=0.05,
             message="the client learns that the replica is gone")
    with pytest.raises(StoreUnavailable, match="NOREPLICAS"):
        client.call("SET", "sh:k", "3", durable=True)


def test_a_master_without_replicas_that_is_no_longer_named_is_left(
    pair: Pair, process_registry: ProcessRegistry
) -> None:
    """Cut off from its replica and (say) its sentinels, which promoted another server:
    writes acknowledged there would be lost when it rejoins as a replica."""
    other = start_standalone_redis(process_registry, "replicas-other")
    locator = MasterWithReplicas(pair.master.endpoint)
    client = AutoPipeline(locator)
    try:
        client.call("PING")
        locator.master = other.endpoint  # the sentinels name another master now
        pair.stop_replica()

        def moved_and_alone() -> bool:
            gevent.sleep(0.05)
            with contextlib.suppress(StoreUnavailable):
                client.call("PING")  # connects again once the old one is dropped
            return client.endpoint == other.endpoint and client.replicas_to_wait == 0

        wait_for(moved_and_alone, 10, interval=0.05,
                 message="the client left the deposed master for the one named now")
        client.call("SET", "sh:k", "new", durable=True)
        with other.client() as named, pair.master.client() as deposed:
            assert (named.get("sh:k"), deposed.get("sh:k")) == (b"new", None)
    finally:
        client.close()
        process_registry.stop([other.proc])
