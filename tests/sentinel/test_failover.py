"""A Sentinel failover under live load: the master is killed with -9 while clients of
every transport send and receive (support/live_load.py says what is checked)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from support.live_load import ENV, LiveLoad
from support.servers import (
    ProcessRegistry,
    SentinelRedis,
    start_sentinel_set,
    start_sockhop_processes,
)
from support.waiting import wait_for


@pytest.fixture
def sentinel(process_registry: ProcessRegistry) -> Iterator[SentinelRedis]:
    redis = start_sentinel_set(process_registry, "failover-redis")
    yield redis
    process_registry.stop([redis.proc])


def replicas_online(sentinel: SentinelRedis) -> int:
    """Replicas the master of the moment lists as online (ROLE)."""
    with sentinel.client() as master:
        return len(master.execute_command("ROLE")[2])


def waits_run(sentinel: SentinelRedis) -> int:
    """WAIT commands the master of the moment has run (durable writes)."""
    with sentinel.client() as master:
        return int(master.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


@pytest.mark.timeout(240)
def test_failover_under_load_loses_nothing_acknowledged(
    process_registry: ProcessRegistry, sentinel: SentinelRedis
) -> None:
    _, addresses = start_sockhop_processes(
        process_registry, "failover", sentinel.url, count=2, workers=2, env=ENV)
    load = LiveLoad([f"http://{h}:{p}" for h, p in addresses])
    load.start()
    try:
        old_master = sentinel.master_port()
        killed_at = time.monotonic()
        os.kill(sentinel.proc.pid, signal.SIGKILL)
        wait_for(lambda: sentinel.master_port() != old_master, 20, interval=0.1,
                 message="the sentinels promoted the replica")
        promoted_after = time.monotonic() - killed_at
        # Service resumes by itself, with the old master still down: the promoted
        # replica has no replica of its own, and writes are acknowledged without one.
        load.wait_resumed()
        resumed_after = load.resumed_after(killed_at)
        assert replicas_online(sentinel) == 0
        waits, acknowledged = waits_run(sentinel), load.acknowledged()
        wait_for(lambda: load.acknowledged() >= acknowledged + 100, 30, interval=0.1,
                 message="sends go on being answered 204")
        assert waits_run(sentinel) == waits, "no replica online, yet writes waited for one"
        # Its supervisor starts the killed server again; the sentinels make it the new
        # master's replica, and durable writes wait for it again.
        restarted = process_registry.start(sentinel.proc.name, sentinel.proc.argv)
        wait_for(lambda: replicas_online(sentinel) == 1, 30, interval=0.1,
                 message="the old master is the new one's replica")
        replica_back_after = time.monotonic() - killed_at
        wait_for(lambda: waits_run(sentinel) >= waits + 50, 10, interval=0.1,
                 message="writes wait for the returned replica")
    finally:
        load.stop_sending()
        if "restarted" in locals():
            process_registry.companions[sentinel.proc].append(restarted)
    load.finish()
    print(f"\nfailover: replica promoted {promoted_after:.1f} s after kill -9 of the master; "
          f"every client's sends answered 204 again {resumed_after:.1f} s after the kill, "
          f"with no replica; the old master was the new one's replica after "
          f"{replica_back_after:.1f} s, and writes waited for it again")
    load.check()
