"""A connection busy with its own commands keeps its lease and its session.

The receiver lease that lets any process reach a connection's session is
renewed with the heartbeat (the hub's `{}` ping). The heartbeat was due a ping
interval after the connection's last wake-up, not after its last renewal. So a
client whose own commands woke its connection more often than that (here: it
subscribes and unsubscribes every 0.5 s) got no ping, and its lease lapsed.
The reaper then took the session for abandoned and ended it while the client
was still talking to it: closed 1000 after the lease and the disconnect delay
(~14 s with a 2 s ping interval).

Over a native websocket the client's commands wake its connection in memory
(no renewal), so every renewal is a heartbeat's; over SockJS xhr-streaming
its replies come through the session's queue, whose wake-ups renew too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.servers import ProcessRegistry, RedisServer, start_redis
from support.waiting import Deadline, wait_for

from sockhop.workers.transports.lease import lease_ms

from .jwts import Jwts
from .redis_state import SESSION
from .serve import serve_hubs
from .test_api import Hub
from .wire import SockjsWire, Wire, WsWire

SECRET = "hmac-key-of-the-busy-connection-tests"
PING_INTERVAL_S = 2
CONFIG: dict[str, Any] = {
    "client": {"token": {"hmac_secret_key": SECRET}, "allowed_origins": ["*"],
               "ping_interval": f"{PING_INTERVAL_S}s", "pong_timeout": "1s"},
    "http_api": {"key": "api-key-of-the-busy-connection-tests"},
    "sockjs": True,
    "channel": {"without_namespace": {"allow_subscribe_for_client": True}},
}
# Past the lease (workers/transports/lease.py) and the disconnect delay (5 s) after
# it: by then a session whose lease lapsed has been ended.
BUSY_FOR = lease_ms(PING_INTERVAL_S) / 1000 + 5 + 4
WAKE_EVERY = 0.5  # the client's pace: a quarter of the ping interval


@pytest.fixture(scope="module")
def hub(process_registry: ProcessRegistry) -> Iterator[tuple[Hub, RedisServer]]:
    redis = start_redis(process_registry, "busy-connection-redis")
    (hub,) = serve_hubs(process_registry, redis, "busy-connection-hub", CONFIG, workers=1)
    yield hub, redis
    process_registry.stop([hub.proc])
    process_registry.stop([redis.proc])


def open_sessions(redis: RedisServer) -> list[bytes]:
    with redis.client() as r:
        return [key for key in r.scan_iter("sh:{hub:*}:m")
                if SESSION.match(key.decode()) and r.hget(key, "st") == b"o"]


def lease(redis: RedisServer) -> tuple[int, int]:
    """When the one open hub session's receiver lease expires, and Redis's clock (ms)."""
    metas = open_sessions(redis)
    assert len(metas) == 1, metas
    with redis.client() as r:
        expires = int(r.hget(metas[0], "rx") or 0)
        seconds, micros = r.time()
    return expires, seconds * 1000 + micros // 1000


def lease_left_ms(redis: RedisServer) -> int:
    """How long the one open hub session's receiver lease has left, by Redis's clock."""
    expires, now = lease(redis)
    return expires - now


@pytest.mark.parametrize("transport", ["websocket", "xhr_streaming"])
def test_a_connection_busy_with_its_own_commands_keeps_its_lease_and_session(
        hub: tuple[Hub, RedisServer], transport: str) -> None:
    server, redis = hub
    wire: Wire = WsWire(server) if transport == "websocket" else SockjsWire(server, transport)
    try:
        wire.start_reading()  # pings are answered as they come
        assert "connect" in wire.connect(Jwts(SECRET).connect("busy"))
        started = time.monotonic()
        least = None
        while time.monotonic() - started < BUSY_FOR:
            for method in ("subscribe", "unsubscribe"):
                reply = wire.call(method, {"channel": "own"})
                assert "error" not in reply, reply
            left = lease_left_ms(redis)
            assert left > 0, f"{transport}: the lease lapsed {-left} ms ago while busy"
            least = left if least is None else min(least, left)
            time.sleep(WAKE_EVERY)  # the client's pace, not a wait for anything
        assert wire.closed is None, f"{transport}: closed {wire.closed} while busy"
        print(f"\n{transport}: the lease never had less than {least} ms left")
    finally:
        wire.close()


@pytest.mark.parametrize("transport", ["websocket", "xhr_streaming"])
def test_an_idle_connection_renews_its_lease_at_every_other_ping(
        hub: tuple[Hub, RedisServer], transport: str) -> None:
    """A renewal is one Redis script per connection; renewed at each ping, it was
    most of what an idle connection costs. The lease (3 pings + 5 s) is renewed
    by a ping only when less than 1.5 pings + 5 s is left: every other ping,
    with a ping and 5 s still to spare (workers/transports/lease.py)."""
    server, redis = hub
    wire: Wire = WsWire(server) if transport == "websocket" else SockjsWire(server, transport)
    try:
        wire.start_reading()
        assert "connect" in wire.connect(Jwts(SECRET).connect("idle"))
        # The session of the test before ends as its client left it.
        wait_for(lambda: len(open_sessions(redis)) == 1, 10, message="one open session")
        expiries: set[int] = set()
        least = None
        deadline = Deadline(6 * PING_INTERVAL_S + PING_INTERVAL_S / 2)
        while not deadline.expired():
            expires, now = lease(redis)
            expiries.add(expires)
            least = expires - now if least is None else min(least, expires - now)
            time.sleep(0.05)  # sampling the lease, not waiting for anything
        pings, renewals = len(wire.pings), len(expiries) - 1
        print(f"\n{transport}: {pings} pings, {renewals} renewals, "
              f"the lease never had less than {least} ms left")
        assert wire.closed is None, wire.closed
        assert pings >= 5, wire.pings
        assert abs(renewals - pings / 2) <= 1, f"{renewals} renewals for {pings} pings"
        assert least is not None and least >= (PING_INTERVAL_S + 5 - 1) * 1000, least
    finally:
        wire.close()
