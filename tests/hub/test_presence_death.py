"""Presence survives process death: the clients of a hub process killed with -9
leave presence, and their channel's other subscribers get a `leave` for each.

Three `sockhop serve --config` processes (two workers each) share one Redis.
Clients subscribe to one channel with presence and join/leave, over a native
websocket, SockJS xhr-streaming and SockJS xhr-polling (each client talks to
one process only). The process holding four of them is SIGKILLed (its whole
process group: nothing runs a close hook). A killed process lets go of nothing,
so its sessions end the way every session of a vanished client does: the other
processes find it dead after liveness.DEAD_AFTER_MS without a beat (checked
every BEAT_INTERVAL), let go of its leases as of its last beat, and the
sessions expire disconnect_delay later; their close hooks (run once, by a live
process) remove presence and publish the leaves.

So the bound asserted is disconnect_delay + DEAD_AFTER_MS + BEAT_INTERVAL +
MARGIN after the kill, well inside the presence keys' own TTL (a backstop of a
day). The measured times are printed.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from support.procs import ManagedProcess
from support.servers import ProcessRegistry, start_redis
from support.waiting import Deadline

from sockhop.session_store.liveness import BEAT_INTERVAL, DEAD_AFTER_MS

from .jwts import Jwts
from .serve import serve_hubs
from .test_api import Hub
from .wire import SockjsWire, Wire, WsWire

SECRET = "hmac-key-of-the-presence-death-tests"
API_KEY = "api-key-of-the-presence-death-tests"
DISCONNECT_DELAY = 2.0
# Time for Redis round trips, the reaper's claim interval and a busy 2-core machine.
MARGIN = 2.0
BOUND = DISCONNECT_DELAY + DEAD_AFTER_MS / 1000 + BEAT_INTERVAL + MARGIN
CHANNEL = "room"
CONFIG: dict[str, Any] = {
    # Pings every minute: no client has to answer one during the test.
    "client": {"token": {"hmac_secret_key": SECRET}, "allowed_origins": ["*"],
               "ping_interval": "60s"},
    "http_api": {"key": API_KEY},
    "sockjs": True,
    "disconnect_delay": f"{DISCONNECT_DELAY:g}s",
    "channel": {"without_namespace": {
        "presence": True, "join_leave": True, "force_push_join_leave": True,
        "allow_subscribe_for_client": True, "allow_presence_for_subscriber": True,
    }},
}
JWTS = Jwts(SECRET)


@dataclass
class HubCluster:
    processes: list[Hub]
    clients: dict[str, Wire] = field(default_factory=dict)  # client id -> its wire

    def api(self, method: str, body: dict[str, Any], process: int = 1) -> dict[str, Any]:
        answer = requests.post(self.processes[process].api(method), data=json.dumps(body),
                               headers={"X-API-Key": API_KEY}, timeout=5)
        assert answer.status_code == 200, answer.text
        reply = answer.json()
        assert "result" in reply, reply
        return reply["result"]

    def presence(self) -> set[str]:
        return set(self.api("presence", {"channel": CHANNEL})["presence"])

    def stats(self) -> tuple[int, int]:
        result = self.api("presence_stats", {"channel": CHANNEL})
        return result["num_clients"], result["num_users"]

    def join(self, wire: Wire, user: str) -> str:
        """Connect and subscribe wire; its client id."""
        client = wire.connect(JWTS.connect(user))["connect"]["client"]
        subscribed = wire.call("subscribe", {"channel": CHANNEL, "join_leave": True})
        assert "subscribe" in subscribed, subscribed
        self.clients[client] = wire
        return client


@pytest.fixture
def hub_cluster(process_registry: ProcessRegistry) -> Iterator[HubCluster]:
    """Three hub processes (two workers each) on one Redis; one of them is killed."""
    redis = start_redis(process_registry, "presence-death-redis")
    hubs = serve_hubs(process_registry, redis, "presence-death-hub", CONFIG, count=3)
    cluster = HubCluster(hubs)
    yield cluster
    for wire in cluster.clients.values():
        wire.close()
    process_registry.stop([hub.proc for hub in hubs])
    process_registry.stop([redis.proc])


def kill_group(proc: ManagedProcess) -> None:
    """SIGKILL the process we started and its workers (its own process group)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.popen.wait(5)


def hold_poll(wire: SockjsWire) -> None:
    """Leave a receiving poll held (nothing pending for it to answer with)."""
    for _ in range(20):
        wire.start_poll()
        assert wire.poll is not None
        if not wire.poll.ready(0.3):
            return
        wire.read(Deadline(1))
    pytest.fail(f"{wire.name}: every poll was answered at once: {wire.inbox}")


def test_the_clients_of_a_killed_process_leave_presence_and_the_others_stay(
        hub_cluster: HubCluster) -> None:
    doomed_hub, *surviving_hubs = hub_cluster.processes
    doomed: dict[str, Wire] = {}
    survivors: dict[str, Wire] = {}
    first, second = surviving_hubs
    for n, wire in enumerate([WsWire(first), SockjsWire(first, "xhr"),
                              WsWire(second), SockjsWire(second, "xhr_streaming")]):
        survivors[hub_cluster.join(wire, f"survivor-{n}-{wire.name}")] = wire
        wire.start_reading()  # a polling session must keep polling to stay
    # The polling one last: its poll is held from just after its subscribe.
    polling = SockjsWire(doomed_hub, "xhr")
    for n, wire in enumerate([WsWire(doomed_hub), WsWire(doomed_hub),
                              SockjsWire(doomed_hub, "xhr_streaming"), polling]):
        doomed[hub_cluster.join(wire, f"doomed-{n}-{wire.name}")] = wire
    hold_poll(polling)
    assert hub_cluster.presence() == set(doomed) | set(survivors)
    assert hub_cluster.stats() == (8, 8)

    killed_at = time.monotonic()
    kill_group(doomed_hub.proc)

    gone_at: dict[str, float] = {}
    deadline = Deadline(BOUND)
    while len(gone_at) < len(doomed):
        present = hub_cluster.presence()
        now = time.monotonic()
        assert set(survivors) <= present, f"survivors left presence: {set(survivors) - present}"
        for client in set(doomed) - present - set(gone_at):
            gone_at[client] = now - killed_at
        assert not deadline.expired(), (
            f"still present {BOUND:.1f} s after the kill: "
            f"{[doomed[c].name for c in set(doomed) - set(gone_at)]}")
        time.sleep(0.05)
    assert hub_cluster.presence() == set(survivors)
    assert hub_cluster.stats() == (4, 4)
    asked = next(w for w in survivors.values() if w.name == "websocket")
    assert set(asked.call("presence", {"channel": CHANNEL})["presence"]["presence"]) == set(
        survivors)

    leaves_at: dict[str, float] = {}
    for client, wire in survivors.items():
        left = set()
        deadline = Deadline(max(0.0, killed_at + BOUND - time.monotonic()))
        while left != set(doomed):
            try:
                push = wire.push("leave", CHANNEL, timeout=max(deadline.remaining(), 0.01))
            except AssertionError:
                pytest.fail(f"{wire.name} {client}: leaves for {len(left)} of {len(doomed)} "
                            f"dead clients within {BOUND:.1f} s of the kill")
            leaving = push["info"]["client"]
            assert leaving in doomed and leaving not in left, f"unexpected leave {push}"
            left.add(leaving)
        leaves_at[client] = max(at for at, m in wire.log
                                if "leave" in m.get("push", {})) - killed_at

    published = hub_cluster.api("publish", {"channel": CHANNEL, "data": {"after": "kill"}})
    assert published == {}
    for wire in survivors.values():
        assert wire.push("pub", CHANNEL)["data"] == {"after": "kill"}
        assert wire.closed is None, (wire.name, wire.closed)

    print(f"\nkill -9 of a hub process: bound {BOUND:.1f} s (disconnect_delay "
          f"{DISCONNECT_DELAY:g} + liveness {DEAD_AFTER_MS / 1000:g} + beat "
          f"{BEAT_INTERVAL:g} + margin {MARGIN:g})")
    for client, at in sorted(gone_at.items(), key=lambda item: item[1]):
        print(f"  out of presence after {at:.2f} s: {doomed[client].name}")
    for client, at in leaves_at.items():
        print(f"  last leave received after {at:.2f} s by {survivors[client].name}")
