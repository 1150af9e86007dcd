"""A Sentinel failover under live load: the master is killed with -9 while clients of
every transport send and receive (support/live_load.py says what is checked); and a
poll whose take no replica confirmed, which must not lose what it took."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import requests
from support.live_load import ENV, HTTP_TIMEOUT, LiveLoad
from support.servers import (
    LOCALHOST,
    SENTINEL_MASTER,
    ProcessRegistry,
    SentinelRedis,
    sentinel_client,
    start_sentinel_set,
    start_sockhop_processes,
)
from support.waiting import wait_for


@pytest.fixture
def sentinel(process_registry: ProcessRegistry) -> Iterator[SentinelRedis]:
    redis = start_sentinel_set(process_registry, "failover-redis")
    yield redis
    process_registry.stop([redis.proc])


def live_load_on_two_processes(process_registry: ProcessRegistry, name: str,
                               sentinel: SentinelRedis) -> LiveLoad:
    """Two sockhop processes on the Sentinel set, and the live load on them, started."""
    _, addresses = start_sockhop_processes(
        process_registry, name, sentinel.url, count=2, workers=2, env=ENV)
    load = LiveLoad([f"http://{h}:{p}" for h, p in addresses])
    load.start()
    return load


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
    load = live_load_on_two_processes(process_registry, "failover", sentinel)
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


def master_flags(sentinel: SentinelRedis) -> set[str]:
    """The flags every answering sentinel gives the master it names (o_down, ...)."""
    flags: set[str] = set()
    for port in sentinel.sentinel_ports:
        try:
            with sentinel_client(port, decode_responses=True) as client:
                state = client.sentinel_master(SENTINEL_MASTER)
        except redis.RedisError:
            continue
        flags.update(state["flags"].split(","))
    return flags


@pytest.mark.timeout(240)
def test_a_master_restarted_during_its_failover_takes_no_writes(
    process_registry: ProcessRegistry, sentinel: SentinelRedis
) -> None:
    """A supervisor restarts the killed master (empty: no persistence) once the
    sentinels have promoted its replica but before they announce it: they still name
    the old master, which says ROLE master, and what is written there is lost when
    they make it a replica. sockhop must wait for the announcement instead. (Restarted
    before the promotion, the master would empty its replica by a full resync: no
    client can help that, docs/operations.md says so.)"""
    load = live_load_on_two_processes(process_registry, "restarted", sentinel)
    try:
        old_master = sentinel.master_port()
        os.kill(sentinel.proc.pid, signal.SIGKILL)
        with redis.Redis(LOCALHOST, sentinel.replica_port, socket_timeout=1.0) as replica:
            wait_for(lambda: replica.execute_command("ROLE")[0] == b"master", 20,
                     interval=0.01, message="the sentinels promote the replica")
        restarted = process_registry.start(sentinel.proc.name, sentinel.proc.argv)
        with redis.Redis(LOCALHOST, old_master, socket_timeout=1.0) as restarted_master:
            wait_for(restarted_master.ping, 10, message="the old master answers again")
        # The window this test is about: the old master is back, still named.
        assert sentinel.master_port() == old_master
        assert "failover_in_progress" in master_flags(sentinel)
        wait_for(lambda: sentinel.master_port() != old_master, 20, interval=0.1,
                 message="the sentinels announce the promoted replica")
        wait_for(lambda: replicas_online(sentinel) == 1, 30, interval=0.1,
                 message="the restarted master is the new one's replica")
        load.wait_resumed()
    finally:
        load.stop_sending()
        if "restarted" in locals():
            process_registry.companions[sentinel.proc].append(restarted)
    load.finish()
    load.check()


def test_a_poll_answered_503_leaves_what_it_took_for_the_next_poll(
    process_registry: ProcessRegistry, sentinel: SentinelRedis
) -> None:
    """A poll's take is a durable write: if no replica confirms it, the poll answers
    503, though the take ran on the master (and, in a failover, may have reached the
    replica promoted since). Its client polls again: that poll must not acknowledge
    the items the refused one took (they never reached the client) but answer them.
    The replica is stalled (SIGSTOP: still listed online, confirming nothing) so that
    the take runs and its WAIT fails, every time."""
    _, addresses = start_sockhop_processes(
        process_registry, "untake", sentinel.url, count=1, workers=1, env=ENV)
    host, port = addresses[0]
    url = f"http://{host}:{port}/echo/000/{uuid.uuid4().hex}"
    assert requests.post(f"{url}/xhr", timeout=HTTP_TIMEOUT).text == "o\n"
    assert requests.post(f"{url}/xhr_send", data='["a"]', timeout=HTTP_TIMEOUT).status_code == 204
    assert sentinel.replica is not None
    os.kill(sentinel.replica.pid, signal.SIGSTOP)
    try:
        refused = requests.post(f"{url}/xhr", timeout=HTTP_TIMEOUT)
    finally:
        os.kill(sentinel.replica.pid, signal.SIGCONT)
    assert refused.status_code == 503, refused.text
    assert requests.post(f"{url}/xhr", timeout=HTTP_TIMEOUT).text == 'a["a"]\n'
    # Once: the next poll finds nothing, and answers the heartbeat (1 s: ENV).
    assert requests.post(f"{url}/xhr", timeout=HTTP_TIMEOUT).text == "h\n"
