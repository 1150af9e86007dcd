"""A Sentinel failover under live load: the master is killed with -9 while clients of
every HTTP transport send (xhr_send, alternating processes) and receive.

Checked: no session lost (no receiver is answered a new session or a close), every
message whose send was answered 204 arrives, once, in order; sends during the
failover are answered 503 with Retry-After within the Redis timeout; service resumes
by itself. Websockets (whose session is the connection) must end with 1011 or carry
on, never hang. What happened is printed (pytest -s shows it).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
import websocket
from support.servers import (
    ProcessRegistry,
    SentinelRedis,
    start_sentinel_set,
    start_sockhop_processes,
)
from support.waiting import wait_for

REDIS_TIMEOUT = 5.0  # the command connection's (session_store.connection)
# A send refused during the failover answers within the Redis timeout (plus HTTP slack).
MOST_503_SECONDS = REDIS_TIMEOUT + 1.0
HTTP_TIMEOUT = 15.0
# Streams end when Redis fails; their lease (2 x heartbeat + 5 s) then lapses, and the
# client's time to come back must outlast it.
ENV = {"SOCKHOP_HEARTBEAT_DELAY": "1", "SOCKHOP_DISCONNECT_DELAY": "30"}
TRANSPORTS = ("xhr", "xhr_streaming", "eventsource")
CLIENTS_PER_TRANSPORT = 3
SEND_GAP = 0.05
RESUMED_SENDS = 20  # sends answered 204 after a client's last 503: the load goes on


@dataclass
class Client:
    """One session: a sender thread (xhr_send) and a receiver thread of one transport."""

    transport: str
    bases: list[str]
    session: str = field(default_factory=lambda: uuid.uuid4().hex)
    acked: list[int] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)
    refused: list[tuple[float, float, str]] = field(default_factory=list)  # at, took, retry-after
    received: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reconnects: int = 0
    busy_answers: int = 0

    def acked_since_refused(self) -> int:
        last_refused = max((at for at, _, _ in self.refused), default=0.0)
        return sum(at > last_refused for at in self.acked_at)

    def resends(self) -> int:
        """Messages received again: a stream's tail, written but not yet acknowledged
        when Redis failed, is sent again by the next receiver (at least once)."""
        return len(self.received) - len(set(self.received))

    def resumed(self, since: float) -> float | None:
        """How long after `since` sends were answered 204 again, after their last 503."""
        last_refused = max((at + took for at, took, _ in self.refused if at >= since),
                           default=since)
        return next((at - since for at in self.acked_at if at > last_refused), None)

    def url(self, n: int, what: str) -> str:
        return f"{self.bases[n % len(self.bases)]}/echo/000/{self.session}/{what}"

    def open(self) -> None:
        r = requests.post(self.url(0, "xhr"), timeout=HTTP_TIMEOUT)
        assert r.text == "o\n", r.text

    def send_until(self, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                r = requests.post(self.url(n, "xhr_send"), data=json.dumps([str(n)]),
                                  timeout=HTTP_TIMEOUT)
            except requests.RequestException as exc:
                self.problems.append(f"send {n}: {exc!r}")
                return
            took = time.monotonic() - started
            if r.status_code == 204:
                self.acked.append(n)
                self.acked_at.append(time.monotonic())
            elif r.status_code == 503:
                self.refused.append((started, took, r.headers.get("Retry-After", "")))
            else:
                self.problems.append(f"send {n}: {r.status_code} {r.text[:100]!r}")
                return
            n += 1
            time.sleep(SEND_GAP)

    def receive_until(self, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set() and not self.problems:
            try:
                frames = self._one_request(n, stop)
            except requests.RequestException:
                frames = []  # a stream cut by the failover: connect again
            n += 1
            for frame in frames:
                self._take(frame)
            self.reconnects += 1

    def _one_request(self, n: int, stop: threading.Event) -> Iterator[str]:
        method = requests.get if self.transport == "eventsource" else requests.post
        with method(self.url(n, self.transport), stream=True, timeout=(HTTP_TIMEOUT, 30)) as r:
            if r.status_code == 503:
                time.sleep(0.2)
                return iter(())
            if r.status_code != 200:
                self.problems.append(f"receiver: {r.status_code} {r.text[:100]!r}")
                return iter(())
            frames = []
            for line in r.iter_lines(decode_unicode=True):
                if stop.is_set():  # heartbeats come every second
                    break
                if self.transport == "eventsource":
                    if not line.startswith("data: "):
                        continue
                    line = line.removeprefix("data: ")
                frames.append(line)
                if self.transport == "xhr":
                    break
                self._take(line)
            return iter(frames if self.transport == "xhr" else ())

    def _take(self, frame: str) -> None:
        if frame.startswith("a["):
            self.received += [int(m) for m in json.loads(frame[1:])]
        elif frame.startswith('c[2010,'):
            self.busy_answers += 1  # the lease of a stream cut by the failover, until it lapses
            time.sleep(0.2)
        elif frame == "o":
            self.problems.append("session lost: a receiver opened a new one")
        elif frame.startswith("c["):
            self.problems.append(f"session closed: {frame}")
        elif frame not in ("h", "") and not frame.startswith("hhhh"):
            self.problems.append(f"unexpected frame {frame[:100]!r}")


def websocket_echo(base: str, stop: threading.Event, outcome: dict[str, object]) -> None:
    """A websocket session echoing through the failover: it must keep echoing or end 1011."""
    url = base.replace("http://", "ws://") + f"/echo/000/{uuid.uuid4().hex}/websocket"
    ws = websocket.create_connection(url, timeout=HTTP_TIMEOUT)
    assert ws.recv() == "o"
    n = 0
    try:
        while not stop.is_set():
            ws.send(json.dumps([str(n)]))
            while (frame := ws.recv()) == "h":
                pass
            if frame == "":  # the connection closed
                raise websocket.WebSocketConnectionClosedException
            if frame.startswith("c["):
                outcome["closed"] = frame
                return
            assert frame == f'a["{n}"]', frame
            n += 1
            time.sleep(SEND_GAP)
    except websocket.WebSocketConnectionClosedException:
        outcome["closed"] = "connection closed"
    finally:
        outcome["echoed"] = n
        ws.close()


@pytest.fixture
def sentinel(process_registry: ProcessRegistry) -> Iterator[SentinelRedis]:
    redis = start_sentinel_set(process_registry, "failover-redis")
    yield redis
    process_registry.stop([redis.proc])


@pytest.mark.timeout(240)
def test_failover_under_load_loses_nothing_acknowledged(
    process_registry: ProcessRegistry, sentinel: SentinelRedis
) -> None:
    _, addresses = start_sockhop_processes(
        process_registry, "failover", sentinel.url, count=2, workers=2, env=ENV)
    bases = [f"http://{h}:{p}" for h, p in addresses]
    clients = [Client(t, bases) for t in TRANSPORTS for _ in range(CLIENTS_PER_TRANSPORT)]
    for client in clients:
        client.open()
    stop_sending, stop_receiving = threading.Event(), threading.Event()
    websocket_outcome: dict[str, object] = {}
    threads = [threading.Thread(target=c.send_until, args=(stop_sending,)) for c in clients]
    threads += [threading.Thread(target=c.receive_until, args=(stop_receiving,))
                for c in clients]
    threads.append(threading.Thread(target=websocket_echo,
                                    args=(bases[1], stop_sending, websocket_outcome)))
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(len(c.received) >= 5 for c in clients), 20,
                 message="every client echoed before the failover")
        old_master = sentinel.master_port()
        killed_at = time.monotonic()
        os.kill(sentinel.proc.pid, signal.SIGKILL)
        wait_for(lambda: sentinel.master_port() != old_master, 20, interval=0.1,
                 message="the sentinels promoted the replica")
        promoted_after = time.monotonic() - killed_at
        # Its supervisor starts the killed server again; the sentinels make it the new
        # master's replica. Until then the master has no replica, and writes wait for one.
        restarted = process_registry.start(sentinel.proc.name, sentinel.proc.argv)
        wait_for(lambda: sentinel.client().info("replication")["connected_slaves"] == 1, 30,
                 interval=0.1, message="the old master is the new one's replica")
        replica_back_after = time.monotonic() - killed_at
        # (A client with a problem stops: its problem is reported below.)
        wait_for(lambda: all(c.problems or c.acked_since_refused() >= RESUMED_SENDS
                             for c in clients), 60, interval=0.1,
                 message=f"every client's last {RESUMED_SENDS} sends answered 204")
        resumed_after = max(c.resumed(killed_at) or 0.0 for c in clients)
    finally:
        stop_sending.set()
        for thread in threads[:len(clients)]:
            thread.join(HTTP_TIMEOUT)
        if "restarted" in locals():
            process_registry.companions[sentinel.proc].append(restarted)
    try:
        for client in clients:
            if client.acked:
                wait_for(lambda c=client: c.acked[-1] in c.received or c.problems, 30,
                         message=f"{client.transport} {client.session}: the last acknowledged "
                                 "message arrived")
    finally:
        stop_receiving.set()
        for thread in threads[len(clients):]:
            thread.join(HTTP_TIMEOUT)

    refused = [r for c in clients for r in c.refused]
    print(f"\nfailover: replica promoted {promoted_after:.1f} s after kill -9 of the master, "
          f"the old one its replica after {replica_back_after:.1f} s; every client's sends "
          f"answered 204 again {resumed_after:.1f} s after the kill")
    print(f"sends: {sum(len(c.acked) for c in clients)} answered 204, {len(refused)} answered 503 "
          f"(slowest {max((t for _, t, _ in refused), default=0):.2f} s)")
    for c in clients:
        lost = sorted(set(c.acked) - set(c.received))
        unacked_delivered = sorted(set(c.received) - set(c.acked))
        print(f"  {c.transport:14} acked {len(c.acked):4} received {len(c.received):4} "
              f"refused {len(c.refused):3} lost {len(lost)} re-sent "
              f"{c.resends()} refused-but-delivered "
              f"{len(unacked_delivered)} reconnects {c.reconnects} 2010s {c.busy_answers}")
    print(f"  websocket: {websocket_outcome}")

    for c in clients:
        assert not c.problems, (c.transport, c.problems)
        assert not sorted(set(c.acked) - set(c.received)), (c.transport, "acknowledged but lost")
        first_seen = list(dict.fromkeys(c.received))
        assert first_seen == sorted(first_seen), (c.transport, "out of order", c.received)
        for i, message in enumerate(c.received):  # again only as a repeat, never out of turn
            assert message > max(c.received[:i], default=-1) or message in c.received[:i]
        # A poll's take is durable: only streams repeat a tail.
        assert c.transport != "xhr" or not c.resends(), (c.transport, c.received)
    for _, took, retry_after in refused:
        assert took < MOST_503_SECONDS, took
        assert retry_after, "503 without Retry-After"
    closed = str(websocket_outcome.get("closed", "c[1011,"))
    assert closed.startswith("c[1011,") or closed == "connection closed", websocket_outcome
