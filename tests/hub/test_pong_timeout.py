"""client.pong_timeout: a websocket client that does not answer the server's
`{}` ping within pong_timeout is closed 3012 "no pong" (reconnect), as
Centrifugo does; one that answers stays.

Over a native websocket the close is the websocket's own close frame; over
SockJS's websocket transport it is SockJS's `c[3012,"no pong"]` frame, the
only close code a SockJS client sees. (On SockJS's HTTP transports the pong
may reach any process; those clients are held to their polls and streams
instead: docs/hub.md.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.servers import ProcessRegistry, start_redis
from support.waiting import wait_for

from .jwts import Jwts
from .serve import serve_hubs
from .test_api import Hub
from .wire import SockjsWsWire, Wire, WsWire

SECRET = "hmac-key-of-the-pong-timeout-tests"
PING_INTERVAL = 2.0
PONG_TIMEOUT = 1.0
# Room for a busy 2-core machine between the ping's write and the close's.
MARGIN = 1.0
CONFIG: dict[str, Any] = {
    "client": {"token": {"hmac_secret_key": SECRET}, "allowed_origins": ["*"],
               "ping_interval": f"{PING_INTERVAL:g}s", "pong_timeout": f"{PONG_TIMEOUT:g}s"},
    "http_api": {"key": "api-key-of-the-pong-timeout-tests"},
    "sockjs": True,
    "channel": {"without_namespace": {"allow_subscribe_for_client": True}},
}
WIRES = {"websocket": WsWire, "sockjs-websocket": SockjsWsWire}


@pytest.fixture(scope="module", params=["25s", "0.5s"], ids=["ws-pings-25s", "ws-pings-0.5s"])
def hub(process_registry: ProcessRegistry, request: pytest.FixtureRequest) -> Iterator[Hub]:
    """With the websocket's own pings at their default (after 25 s of
    silence), and after 0.5 s: the client's websocket library answers those
    by itself, which is no answer to the hub's ping."""
    redis = start_redis(process_registry, "pong-timeout-redis")
    config = CONFIG | {"websocket_ping_interval": request.param}
    (hub,) = serve_hubs(process_registry, redis, "pong-timeout-hub", config, workers=1)
    yield hub
    process_registry.stop([hub.proc])
    process_registry.stop([redis.proc])


@pytest.mark.parametrize("transport", WIRES)
def test_a_client_that_does_not_answer_a_ping_is_closed_3012(
        hub: Hub, wires: list[Wire], transport: str) -> None:
    wire = WIRES[transport](hub)
    wires.append(wire)
    wire.answers_pings = False
    connected = wire.connect(Jwts(SECRET).connect("silent"))["connect"]
    assert connected["pong"] is True
    assert wire.close_frame(PING_INTERVAL + PONG_TIMEOUT + MARGIN + 2) == (3012, "no pong")
    assert len(wire.pings) == 1, wire.pings
    waited = time.monotonic() - wire.pings[0]
    print(f"\n{transport}: closed {waited:.2f} s after the unanswered ping")
    assert PONG_TIMEOUT - 0.2 <= waited <= PONG_TIMEOUT + MARGIN, waited


@pytest.mark.parametrize("transport", WIRES)
def test_a_client_that_answers_stays_connected(
        hub: Hub, wires: list[Wire], transport: str) -> None:
    wire = WIRES[transport](hub)
    wires.append(wire)
    wire.start_reading()
    assert "connect" in wire.connect(Jwts(SECRET).connect("answering"))
    wait_for(lambda: len(wire.pings) >= 4 or wire.closed, 4 * PING_INTERVAL + 2 * MARGIN,
             message="four pings answered")
    assert wire.closed is None, wire.closed
    assert "subscribe" in wire.call("subscribe", {"channel": "news"})  # still served
