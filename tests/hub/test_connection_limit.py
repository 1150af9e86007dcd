"""client.user_connection_limit: a user's connections are counted over every
process, and a connect beyond the limit is closed 3504 "connection limit"
(terminal, as Centrifugo), race-free and without leaking a place.

Two `sockhop serve --config` processes share one Redis; clients connect to
either, over a native websocket and SockJS xhr-streaming. The registry the
limit counts (`sh:hub:u:<user>`: client id -> session) is read from Redis to
check that every admitted connection, and only those, is registered, and that
each place comes back when its connection ends, also when its process is
killed with -9.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.servers import ProcessRegistry, RedisServer, start_redis
from support.waiting import Deadline, wait_for

from sockhop.session_store.liveness import BEAT_INTERVAL, DEAD_AFTER_MS

from .jwts import Jwts
from .serve import serve_hubs
from .test_api import Hub
from .wire import SockjsWire, Wire, WsWire

SECRET = "hmac-key-of-the-connection-limit-tests"
LIMIT = 2
DISCONNECT_DELAY = 2.0
# A killed process's sessions end within this (tests/hub/test_presence_death.py).
CRASH_BOUND = DISCONNECT_DELAY + DEAD_AFTER_MS / 1000 + BEAT_INTERVAL + 2.0
CONFIG: dict[str, Any] = {
    "client": {"token": {"hmac_secret_key": SECRET}, "allowed_origins": ["*"],
               "ping_interval": "60s", "user_connection_limit": LIMIT,
               "allow_anonymous_connect_without_token": True},
    "http_api": {"key": "api-key-of-the-connection-limit-tests"},
    "sockjs": True,
    "disconnect_delay": f"{DISCONNECT_DELAY:g}s",
}
JWTS = Jwts(SECRET)
LIMIT_CLOSE = (3504, "connection limit")


@pytest.fixture(scope="module")
def hubs(process_registry: ProcessRegistry) -> Iterator[tuple[list[Hub], RedisServer]]:
    redis = start_redis(process_registry, "connection-limit-redis")
    processes = serve_hubs(process_registry, redis, "connection-limit-hub", CONFIG, count=2)
    yield processes, redis
    process_registry.stop([hub.proc for hub in processes])
    process_registry.stop([redis.proc])


def open_wire(hub: Hub, transport: str, opened: list[Wire]) -> Wire:
    wire: Wire = WsWire(hub) if transport == "websocket" else SockjsWire(hub, transport)
    opened.append(wire)
    return wire


def try_connect(wire: Wire, token: str | None) -> str | tuple[int, str]:
    """The client id if connected, else how the server closed the connection."""
    command_id = wire.command("connect", {"token": token} if token is not None else {})
    deadline = Deadline(10)
    while True:
        with wire.lock:
            for message in wire.inbox:
                if message.get("id") == command_id:
                    assert "connect" in message, message
                    return message["connect"]["client"]
        if wire.closed is not None:
            return wire.closed
        assert not deadline.expired(), f"{wire.name}: neither connected nor closed"
        wire.next(deadline)


def registered(redis: RedisServer, user: str) -> dict[str, str]:
    """client id -> session tag: the connections the limit counts for user."""
    with redis.client() as r:
        return {k.decode(): v.decode() for k, v in r.hgetall(f"sh:hub:u:{user}").items()}


def user_count(redis: RedisServer, user: str) -> int:
    with redis.client() as r:
        return int(r.hget("sh:hub:users", user) or 0)


def test_a_connect_beyond_the_limit_is_closed_3504_on_any_process_and_transport(
        hubs: tuple[list[Hub], RedisServer], wires: list[Wire]) -> None:
    (first, second), redis = hubs
    token = JWTS.connect("limited")
    admitted = [try_connect(open_wire(first, "websocket", wires), token),
                try_connect(open_wire(second, "xhr_streaming", wires), token)]
    assert all(isinstance(client, str) for client in admitted), admitted
    for hub, transport in [(first, "xhr_streaming"), (second, "websocket"),
                           (first, "websocket")]:
        assert try_connect(open_wire(hub, transport, wires), token) == LIMIT_CLOSE, transport
    assert set(registered(redis, "limited")) == set(admitted)
    assert user_count(redis, "limited") == LIMIT
    # Other users, and anonymous connections (never limited), connect as before.
    assert isinstance(try_connect(open_wire(second, "websocket", wires),
                                  JWTS.connect("someone-else")), str)
    for _ in range(LIMIT + 1):
        assert isinstance(try_connect(open_wire(first, "websocket", wires), None), str)


def test_a_place_comes_back_when_a_connection_ends(
        hubs: tuple[list[Hub], RedisServer], wires: list[Wire]) -> None:
    (first, second), redis = hubs
    token = JWTS.connect("returning")
    leaving = open_wire(first, "websocket", wires)
    staying = open_wire(second, "xhr_streaming", wires)
    staying.start_reading()
    left_client = try_connect(leaving, token)
    stayed_client = try_connect(staying, token)
    assert try_connect(open_wire(second, "websocket", wires), token) == LIMIT_CLOSE
    leaving.close()
    wait_for(lambda: set(registered(redis, "returning")) == {stayed_client}, 10,
             message=f"{left_client}'s registration removed when it closed")
    back = try_connect(open_wire(first, "xhr_streaming", wires), token)
    assert isinstance(back, str), back
    assert set(registered(redis, "returning")) == {stayed_client, back}
    assert user_count(redis, "returning") == LIMIT


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_connects_of_one_user_admit_exactly_the_limit(
        hubs: tuple[list[Hub], RedisServer], wires: list[Wire], round_: int) -> None:
    """Twelve connects of one user at once, over both processes (two workers
    each) and both transports: exactly LIMIT pass."""
    processes, redis = hubs
    user = f"racer-{round_}"
    token = JWTS.connect(user)
    racing = [open_wire(processes[n % 2], ("websocket", "xhr_streaming")[n // 2 % 2], wires)
              for n in range(12)]
    start = threading.Barrier(len(racing))
    outcomes: list[str | tuple[int, str]] = []

    def race(wire: Wire) -> None:
        start.wait(10)
        outcome = try_connect(wire, token)
        with wire.lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=race, args=(wire,)) for wire in racing]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    admitted = {o for o in outcomes if isinstance(o, str)}
    refused = [o for o in outcomes if not isinstance(o, str)]
    assert len(outcomes) == len(racing), outcomes
    assert len(admitted) == LIMIT and refused == [LIMIT_CLOSE] * (len(racing) - LIMIT), outcomes
    assert set(registered(redis, user)) == admitted
    assert user_count(redis, user) == LIMIT


def test_a_registration_left_by_a_process_that_died_mid_connect_frees_its_place(
        hubs: tuple[list[Hub], RedisServer], wires: list[Wire]) -> None:
    """A process that dies between admitting a connection and writing its
    state leaves a registration no close hook removes (its session never had
    a connection). Written here as that process would have left it."""
    (first, _), redis = hubs
    token = JWTS.connect("half-connected")
    live = try_connect(open_wire(first, "websocket", wires), token)
    with redis.client() as r:
        r.hset("sh:hub:u:half-connected", "client-of-a-dead-process", "hub:a-gone-session")
    assert len(registered(redis, "half-connected")) == LIMIT
    admitted = try_connect(open_wire(first, "xhr_streaming", wires), token)
    assert isinstance(admitted, str), admitted
    assert set(registered(redis, "half-connected")) == {live, admitted}


def test_the_places_of_a_killed_process_come_back_once_its_sessions_end(
        process_registry: ProcessRegistry, hubs: tuple[list[Hub], RedisServer],
        wires: list[Wire]) -> None:
    (survivor, _), redis = hubs
    (doomed,) = serve_hubs(process_registry, redis, "connection-limit-doomed", CONFIG)
    token = JWTS.connect("crashed")
    for transport in ("websocket", "xhr_streaming"):
        assert isinstance(try_connect(open_wire(doomed, transport, wires), token), str)
    os.killpg(doomed.proc.pid, signal.SIGKILL)
    doomed.proc.popen.wait(5)
    killed_at = time.monotonic()
    # Its sessions are still open (nobody knows yet): their places are taken.
    assert try_connect(open_wire(survivor, "websocket", wires), token) == LIMIT_CLOSE
    wait_for(lambda: not registered(redis, "crashed"), CRASH_BOUND,
             message="the killed process's connections unregistered")
    print(f"\nplaces back {time.monotonic() - killed_at:.1f} s after the kill")
    assert user_count(redis, "crashed") == 0
    for transport in ("websocket", "xhr_streaming"):
        assert isinstance(try_connect(open_wire(survivor, transport, wires), token), str)
