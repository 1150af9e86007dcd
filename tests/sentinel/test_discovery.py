"""Finding the master through sentinels that disagree: the newest word wins.

A sentinel that has not heard of a failover yet still names the old master. Restarted
after a crash, that server is empty and says ROLE master until the sentinels make it a
replica, so a process that believed the first sentinel to answer would log in to an
empty dataset (sessions "not found", acknowledged messages gone).
"""

from __future__ import annotations

import pytest
import redis
from support.procs import LOCALHOST
from support.servers import (
    SENTINEL_MASTER,
    SENTINEL_PASSWORD,
    ProcessRegistry,
    sentinel_client,
    start_sentinel,
    start_sentinel_set,
    start_standalone_redis,
)
from support.waiting import wait_for

from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.topology import SentinelLogin, SentinelSet, parse_topology


def named_master(sentinel_port: int) -> int | None:
    """The master's port as one sentinel names it (None: it does not answer yet)."""
    try:
        with sentinel_client(sentinel_port) as sentinel:
            reply = sentinel.execute_command(
                "SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER)
    except redis.RedisError:
        return None
    return int(reply[1]) if reply else None


def test_a_sentinel_that_missed_the_failover_is_outvoted(
    process_registry: ProcessRegistry,
) -> None:
    current = start_sentinel_set(process_registry, "discovery-redis")
    # A sentinel cut off from the set during the failover below: it watches, under the
    # same name, an empty server (the old master, restarted), and never hears otherwise.
    stale_master = start_standalone_redis(process_registry, "discovery-stale-redis")
    stale, stale_port = start_sentinel(process_registry, "discovery-stale-sentinel",
                                       stale_master.port, quorum=1)
    process_registry.companions[current.proc] += [stale, stale_master.proc]
    wait_for(lambda: named_master(stale_port) == stale_master.port, 10, interval=0.1,
             message="the stale sentinel names its master")

    old = current.master_port()
    with sentinel_client(current.sentinel_ports[0], socket_timeout=5.0) as sentinel:
        sentinel.execute_command("SENTINEL", "FAILOVER", SENTINEL_MASTER)
    wait_for(lambda: {named_master(p) for p in current.sentinel_ports} == {current.replica_port},
             20, interval=0.1, message="every sentinel of the set names the promoted replica")
    assert current.replica_port != old

    hosts = ",".join(f"{LOCALHOST}:{p}" for p in [stale_port, *current.sentinel_ports])
    url = f"redis+sentinel://{hosts}/{SENTINEL_MASTER}/0"
    topology = parse_topology(url, sentinel_login=SentinelLogin(password=SENTINEL_PASSWORD))
    assert isinstance(topology, SentinelSet)
    # Asked first, the stale sentinel answers first; its word is older (config-epoch 0).
    assert topology.locate(2.0).port == current.replica_port

    # Without the sentinels' password: refused, saying why.
    with pytest.raises(StoreUnavailable, match="NOAUTH"):
        parse_topology(url).locate(2.0)
