"""Two writers of one connection's state at once lose nothing.

A client on hub process A subscribes and unsubscribes a channel of its own in
a tight loop (each frame reads the connection's state and writes it back),
while the server API on process B subscribes and unsubscribes the same
connection to and from other channels, one call after another. Each side's
write lands between the other's read and write many times over; with the
state compare-and-set, the loser runs again on what the winner wrote.

At the end the connection is exactly what the last operations made it, as
the client sees it: one `subscribe` or `unsubscribe` push per API call, in
order; publications from exactly the channels it is subscribed to; and its
own subscribe never answered "already subscribed".
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support.servers import ProcessRegistry, start_redis

from .jwts import Jwts
from .serve import serve_hubs
from .test_api import Hub
from .wire import Message, WsWire

SECRET = "hmac-key-of-the-state-race-tests"
API_KEY = "api-key-of-the-state-race-tests"
USER = "racer"
OWN = "own"  # the client's own channel
# Subscribed by the API once the race is over: its push is queued behind every
# earlier one, so when it arrives they all have.
LAST = "last"
CHANNELS = [f"api-{n}" for n in range(8)]  # the API's
ROUNDS = 25
CONFIG: dict[str, Any] = {
    "client": {"token": {"hmac_secret_key": SECRET}, "allowed_origins": ["*"],
               "ping_interval": "60s"},
    "http_api": {"key": API_KEY},
    "sockjs": True,
    "channel": {"without_namespace": {"allow_subscribe_for_client": True}},
}


@pytest.fixture
def two_hubs(process_registry: ProcessRegistry) -> Iterator[tuple[Hub, Hub]]:
    """Two hub processes of one worker each on one Redis: the client talks to
    the first only, the API to the second only."""
    redis = start_redis(process_registry, "state-race-redis")
    hubs = serve_hubs(process_registry, redis, "state-race-hub", CONFIG, count=2, workers=1)
    yield hubs[0], hubs[1]
    process_registry.stop([hub.proc for hub in hubs])
    process_registry.stop([redis.proc])


class Api:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.http = requests.Session()

    def __call__(self, method: str, **body: Any) -> None:
        answer = self.http.post(self.hub.api(method), data=json.dumps(body),
                                headers={"X-API-Key": API_KEY}, timeout=5)
        assert answer.status_code == 200, answer.text
        assert "result" in answer.json(), answer.json()


def api_operations() -> list[tuple[str, str]]:
    """Every API channel subscribed then unsubscribed, ROUNDS times; in the
    last round the even ones stay subscribed."""
    operations = []
    for round_ in range(ROUNDS):
        operations += [("subscribe", c) for c in CHANNELS]
        operations += [("unsubscribe", c) for n, c in enumerate(CHANNELS)
                       if round_ < ROUNDS - 1 or n % 2]
    return operations


def first_difference(expected: list[str], got: list[str]) -> int:
    return next((n for n, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
                min(len(expected), len(got)))


def own_loop(wire: WsWire, stop: threading.Event, problems: list[Message]) -> None:
    """Subscribe and unsubscribe OWN until stopped: every frame writes the state.
    Any reply that is not a result is a problem."""
    while not stop.is_set():
        for method in ("subscribe", "unsubscribe"):
            reply = wire.call(method, {"channel": OWN})
            if method not in reply:
                problems.append(reply)


def test_api_and_client_frames_writing_one_connection_at_once_lose_nothing(
        two_hubs: tuple[Hub, Hub]) -> None:
    client_hub, api_hub = two_hubs
    wire = WsWire(client_hub)
    api = Api(api_hub)
    try:
        assert "connect" in wire.connect(Jwts(SECRET).connect(USER))
        stop = threading.Event()
        problems: list[Message] = []
        loop = threading.Thread(target=own_loop, args=(wire, stop, problems), daemon=True)
        loop.start()
        operations = api_operations()
        try:
            for method, channel in operations:
                api(method, user=USER, channel=channel)
        finally:
            stop.set()
            loop.join(10)
        assert not loop.is_alive(), "the client's loop did not stop"
        failures = []
        if problems:
            failures.append(f"{len(problems)} of the client's own commands failed, "
                            f"the first: {problems[0]}")

        # One push per API call, in order, for each channel.
        api("subscribe", user=USER, channel=LAST)
        wire.push("subscribe", LAST, timeout=20)
        expected = {c: [m for m, ch in operations if ch == c] for c in CHANNELS}
        pushes: dict[str, list[str]] = {c: [] for c in CHANNELS}
        for _, message in wire.log:
            push = message.get("push", {})
            for kind in ("subscribe", "unsubscribe"):
                if kind in push and push.get("channel") in pushes:
                    pushes[push["channel"]].append(kind)
        failures += [f"{c}: {len(expected[c])} API calls, {len(pushes[c])} pushes, "
                     f"the first different at #{first_difference(expected[c], pushes[c])}"
                     for c in CHANNELS if pushes[c] != expected[c]]

        # Publications reach it from exactly the channels it is subscribed to.
        for channel in [OWN, *CHANNELS]:
            api("publish", channel=channel, data={"to": channel})
        subscribed = {c for n, c in enumerate(CHANNELS) if n % 2 == 0}
        arrived = {m["push"]["channel"] for m in wire.quiet_for(1.5)
                   if "pub" in m.get("push", {})}
        if arrived != subscribed:
            failures.append(f"publications from {sorted(arrived)}, "
                            f"subscribed to {sorted(subscribed)}")
        assert not failures, "\n".join(failures)
    finally:
        wire.close()
