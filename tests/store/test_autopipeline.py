"""The process's auto-pipelined Redis connection, against a real redis-server."""

from __future__ import annotations

import gevent
import pytest
from redis.exceptions import ConnectionError, ResponseError
from support.servers import ProcessRegistry, RedisServer, start_redis

from sockhop.session_store.autopipeline import AutoPipeline, Replies
from sockhop.session_store.errors import StoreUnavailable


@pytest.fixture
def client(redis_server: RedisServer) -> AutoPipeline:
    c = AutoPipeline(redis_server.endpoint)
    c.call("FLUSHDB")
    yield c
    c.close()


def test_each_greenlet_gets_its_own_replies_in_order(client: AutoPipeline) -> None:
    def worker(n: int) -> list[int]:
        return [client.call("INCR", f"k{n}") for _ in range(50)]

    greenlets = [gevent.spawn(worker, n) for n in range(200)]
    gevent.joinall(greenlets, raise_error=True)
    assert all(g.value == list(range(1, 51)) for g in greenlets)


def test_errors_come_back_to_the_caller_only(client: AutoPipeline) -> None:
    client.call("SET", "s", "x")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        client.call("HGET", "s", "f")
    assert client.call_many([("GET", "s"), ("INCR", "n")]) == [b"x", 1]


def test_scripts_are_loaded_before_their_first_call(redis_server: RedisServer) -> None:
    """A first call meeting NOSCRIPT would run after commands queued behind it:
    scripts known at connect, or registered later, are loaded before any call."""
    flusher = AutoPipeline(redis_server.endpoint)
    flusher.call("SCRIPT", "FLUSH")  # as a fresh Redis
    flusher.close()
    c = AutoPipeline(redis_server.endpoint)
    try:
        early = c.script("return 'known at connect'")
        assert c.call("SCRIPT", "EXISTS", early.sha) == [1]
        late = c.script("return 'registered later'")
        assert c.call("SCRIPT", "EXISTS", late.sha) == [1]
    finally:
        c.close()


def test_a_script_redis_forgot_is_loaded_again(client: AutoPipeline) -> None:
    script = client.script("return {KEYS[1], ARGV[1]}")
    assert script(["a"], ["1"]) == [b"a", b"1"]
    client.call("SCRIPT", "FLUSH")
    assert script(["b"], ["2"]) == [b"b", b"2"]
    assert client.call_many([script.command(["c"], ["3"]), ("PING",)]) == [[b"c", b"3"], b"PONG"]


def test_commands_sent_without_waiting_run_in_order_even_if_their_script_was_lost(
        client: AutoPipeline) -> None:
    script = client.script("return redis.call('RPUSH', KEYS[1], ARGV[1])")
    client.call("SCRIPT", "FLUSH")
    replies = Replies(client)
    for k in range(50):
        replies.send([script.command(["l"], [k])])
    assert client.call("LLEN", "l") == 0  # all 50 met NOSCRIPT before anything waited
    assert replies.get() == list(range(1, 51))
    assert client.call("LRANGE", "l", 0, -1) == [str(k).encode() for k in range(50)]


def test_redis_restart_fails_fast_then_reconnects(process_registry: ProcessRegistry) -> None:
    redis = start_redis(process_registry, "autopipeline")
    client = AutoPipeline(redis.endpoint, timeout=2)
    assert client.call("PING") == b"PONG"
    argv = redis.proc.argv
    redis.proc.stop()
    with pytest.raises(StoreUnavailable):  # the store's own error (a redis ConnectionError)
        client.call("PING")
    again = process_registry.start("autopipeline-again", argv)
    try:
        deadline = gevent.Timeout(10)
        with deadline:
            while True:
                try:
                    assert client.call("PING") == b"PONG"
                    break
                except ConnectionError:
                    gevent.sleep(0.05)
    finally:
        client.close()
        process_registry.stop([again])


def test_flush_puts_what_is_queued_on_the_wire_before_the_caller_goes_on(
        client: AutoPipeline, redis_server: RedisServer) -> None:
    """Commands sent without waiting are written when the caller next yields;
    flush writes them at once, so that a reply written to a client right after
    cannot overtake them: another process reading what they wrote (here, a
    blocking client: no greenlet runs meanwhile, as if this process stalled)
    sees it."""
    if redis_server.uses_tls:
        pytest.skip("a TLS connection is written by its writer greenlet only")
    client.call("PING")  # connected
    with redis_server.client() as other:
        client.send(("SET", "queued", "not flushed"))
        assert other.get("queued") is None  # still in this process
        client.send(("SET", "flushed", "on the wire"))
        client.flush()
        assert other.get("flushed") == b"on the wire"
        assert other.get("queued") == b"not flushed"  # written first, in order
    assert client.call("GET", "flushed") == b"on the wire"
