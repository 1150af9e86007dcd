"""The process's own pub/sub connection (session_store/pubsub.py) on a real Redis:
order and batching, log-in with an ACL user, and the health PING that notices a Redis
that stopped answering without closing its socket."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Iterator

import gevent
import pytest
from support.servers import ProcessRegistry, RedisServer, start_redis

from sockhop.session_store.autopipeline import AutoPipeline
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.pubsub import Message, PubSubConnection

READ_TIMEOUT = 5.0


@pytest.fixture
def commands(redis_server: RedisServer) -> Iterator[AutoPipeline]:
    client = AutoPipeline(redis_server.endpoint)
    yield client
    client.close()


def read_until(conn: PubSubConnection, done: int) -> list[Message]:
    """Read until `done` messages arrived (or fail after READ_TIMEOUT)."""
    got: list[Message] = []
    with gevent.Timeout(READ_TIMEOUT, AssertionError(f"only {got} of {done} messages")):
        while len(got) < done:
            got += conn.read()
    return got


def test_messages_arrive_in_order_and_a_read_takes_what_arrived(
        redis_server: RedisServer, commands: AutoPipeline) -> None:
    conn = PubSubConnection(redis_server.endpoint)
    try:
        conn.send("SUBSCRIBE", "ps:a", "ps:b")
        assert read_until(conn, 2) == [[b"subscribe", b"ps:a", 1], [b"subscribe", b"ps:b", 2]]
        commands.call_many([("PUBLISH", "ps:a" if n % 2 else "ps:b", str(n))
                            for n in range(200)])
        reads = 0
        got: list[Message] = []
        with gevent.Timeout(READ_TIMEOUT, AssertionError("publications missing")):
            while len(got) < 200:
                got += conn.read()
                reads += 1
        assert [m[2] for m in got] == [str(n).encode() for n in range(200)]
        assert [m[1] for m in got] == [b"ps:a" if n % 2 else b"ps:b" for n in range(200)]
        assert reads < 200  # published in one batch: read in far fewer wake-ups
    finally:
        conn.close()


def test_an_acl_user_logs_in_and_a_wrong_password_is_refused(
        redis_server: RedisServer, commands: AutoPipeline) -> None:
    commands.call("ACL", "SETUSER", "ps-user", "reset", "on", ">ps-secret", "&ps:*",
                  "+subscribe", "+unsubscribe", "+ping")
    try:
        user = dataclasses.replace(redis_server.endpoint, username="ps-user",
                                   password="ps-secret")
        conn = PubSubConnection(user)
        try:
            conn.send("SUBSCRIBE", "ps:acl")
            assert read_until(conn, 1) == [[b"subscribe", b"ps:acl", 1]]
        finally:
            conn.close()
        with pytest.raises(StoreUnavailable, match="refused the pub/sub log-in"):
            PubSubConnection(dataclasses.replace(user, password="nope"))
    finally:
        commands.call("ACL", "DELUSER", "ps-user")


def test_an_idle_connection_pings_and_stays(redis_server: RedisServer) -> None:
    conn = PubSubConnection(redis_server.endpoint, health_interval=0.2)
    try:
        conn.send("SUBSCRIBE", "ps:idle")
        assert read_until(conn, 1) == [[b"subscribe", b"ps:idle", 1]]
        # Nothing is published: the next read returns only after a PING was answered.
        assert read_until(conn, 1) == [[b"pong", b""]]
    finally:
        conn.close()


def test_a_redis_that_stops_answering_is_noticed(process_registry: ProcessRegistry) -> None:
    redis = start_redis(process_registry, "pubsub-frozen-redis")
    conn = PubSubConnection(redis.endpoint, health_interval=0.3)
    try:
        conn.send("SUBSCRIBE", "ps:frozen")
        read_until(conn, 1)
        os.kill(redis.proc.pid, signal.SIGSTOP)  # alive, socket open, silent
        started = time.monotonic()
        try:
            with gevent.Timeout(READ_TIMEOUT, AssertionError("a silent Redis went unnoticed")), \
                    pytest.raises(StoreUnavailable, match="PING"):
                while True:
                    conn.read()
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        # One interval of silence, a PING, one more interval without its answer.
        assert 0.5 <= time.monotonic() - started < 3.0
    finally:
        conn.close()
