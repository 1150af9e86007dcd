"""Live load of every transport through a Redis fault (a failover, a slot migration):
clients of each HTTP transport send (xhr_send, alternating processes) and receive, and
one websocket session echoes, while a test breaks Redis.

Checked at the end (check): no session lost (no receiver is answered a new session or
a close), every message whose send was answered 204 arrives, once, in order (a
stream may repeat its tail); sends refused meanwhile were answered 503 with
Retry-After within the Redis timeout; the websocket session carried on, open (its
session would end with its connection). What happened is printed (pytest -s shows it).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import requests
import websocket

from .waiting import wait_for

REDIS_TIMEOUT = 5.0  # the command connection's (session_store.connection)
# A send refused during the fault answers within the Redis timeout (plus HTTP slack).
MOST_503_SECONDS = REDIS_TIMEOUT + 1.0
HTTP_TIMEOUT = 15.0
# Streams end when Redis fails; their lease (3 x heartbeat + 5 s) then lapses, and the
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
    # broadcast: what the session sends reaches it through a channel (its only follower).
    service: str = "echo"
    session: str = field(default_factory=lambda: uuid.uuid4().hex)
    acked: list[int] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)
    refused: list[tuple[float, float, str]] = field(default_factory=list)  # at, took, retry-after
    received: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reconnects: int = 0
    busy_answers: int = 0

    @property
    def tag(self) -> str:
        """The hash tag of the session's Redis keys (its slot on a Cluster)."""
        return f"{self.service}:{self.session}"

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
        return f"{self.bases[n % len(self.bases)]}/{self.service}/000/{self.session}/{what}"

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
                frames = []  # a stream cut by the fault: connect again
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
            self.busy_answers += 1  # the lease of a stream cut by the fault, until it lapses
            time.sleep(0.2)
        elif frame == "o":
            self.problems.append("session lost: a receiver opened a new one")
        elif frame.startswith("c["):
            self.problems.append(f"session closed: {frame}")
        elif frame not in ("h", "") and not frame.startswith("hhhh"):
            self.problems.append(f"unexpected frame {frame[:100]!r}")


def websocket_echo(base: str, stop: threading.Event, outcome: dict[str, object]) -> None:
    """A websocket session echoing through the fault: it must keep echoing."""
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


class LiveLoad:
    """CLIENTS_PER_TRANSPORT sessions of each transport over bases (the processes'
    base URLs), and a websocket echo on the last one; with a channel, one more
    session, a stream of the broadcast service."""

    def __init__(self, bases: list[str], *, channel: bool = False) -> None:
        self.clients = [Client(t, bases) for t in TRANSPORTS for _ in range(CLIENTS_PER_TRANSPORT)]
        if channel:
            self.clients.append(Client("xhr_streaming", bases, service="broadcast"))
        self.websocket: dict[str, object] = {}
        self._stop_sending, self._stop_receiving = threading.Event(), threading.Event()
        self._senders = [threading.Thread(target=c.send_until, args=(self._stop_sending,))
                         for c in self.clients]
        self._senders.append(threading.Thread(
            target=websocket_echo, args=(bases[-1], self._stop_sending, self.websocket)))
        self._receivers = [threading.Thread(target=c.receive_until,
                                            args=(self._stop_receiving,))
                           for c in self.clients]

    def start(self) -> None:
        """Every session open and echoing (a few messages each) before the fault."""
        for client in self.clients:
            client.open()
        for thread in [*self._senders, *self._receivers]:
            thread.start()
        wait_for(lambda: all(len(c.received) >= 5 for c in self.clients), 20,
                 message="every client echoed before the fault")

    def wait_resumed(self, timeout: float = 60) -> None:
        """Every client's last RESUMED_SENDS sends answered 204 (a client with a
        problem stops: check reports it)."""
        wait_for(lambda: all(c.problems or c.acked_since_refused() >= RESUMED_SENDS
                             for c in self.clients), timeout, interval=0.1,
                 message=f"every client's last {RESUMED_SENDS} sends answered 204")

    def acknowledged(self) -> int:
        """Sends answered 204 so far, of every client."""
        return sum(len(c.acked) for c in self.clients)

    def resumed_after(self, since: float) -> float:
        return max(c.resumed(since) or 0.0 for c in self.clients)

    def stop_sending(self) -> None:
        self._stop_sending.set()
        for thread in self._senders:
            thread.join(HTTP_TIMEOUT)

    def finish(self) -> None:
        """After stop_sending: until each client's last acknowledged message arrived."""
        try:
            for client in self.clients:
                if client.acked:
                    wait_for(lambda c=client: c.acked[-1] in c.received or c.problems, 30,
                             message=f"{client.transport} {client.session}: the last "
                                     "acknowledged message arrived")
        finally:
            self._stop_receiving.set()
            for thread in self._receivers:
                thread.join(HTTP_TIMEOUT)

    def check(self) -> None:
        """What happened, printed; then the module docstring's checks."""
        refused = [r for c in self.clients for r in c.refused]
        print(f"sends: {self.acknowledged()} answered 204, {len(refused)} "
              f"answered 503 (slowest {max((t for _, t, _ in refused), default=0):.2f} s)")
        for c in self.clients:
            lost = sorted(set(c.acked) - set(c.received))
            unacked_delivered = sorted(set(c.received) - set(c.acked))
            print(f"  {c.transport:14} acked {len(c.acked):4} received {len(c.received):4} "
                  f"refused {len(c.refused):3} lost {len(lost)} re-sent "
                  f"{c.resends()} refused-but-delivered "
                  f"{len(unacked_delivered)} reconnects {c.reconnects} 2010s {c.busy_answers}")
        print(f"  websocket: {self.websocket}")

        for c in self.clients:
            assert not c.problems, (c.transport, c.problems)
            assert not sorted(set(c.acked) - set(c.received)), (c.transport,
                                                                 "acknowledged but lost")
            first_seen = list(dict.fromkeys(c.received))
            assert first_seen == sorted(first_seen), (c.transport, "out of order", c.received)
            for i, message in enumerate(c.received):  # again only as a repeat, never out of turn
                assert message > max(c.received[:i], default=-1) or message in c.received[:i]
            # A poll's take is durable: only streams repeat a tail.
            assert c.transport != "xhr" or not c.resends(), (c.transport, c.received)
        for _, took, retry_after in refused:
            assert took < MOST_503_SECONDS, took
            assert retry_after, "503 without Retry-After"
        # Its session ends with the connection: it rides the fault out, open.
        assert "closed" not in self.websocket, self.websocket
        assert int(self.websocket.get("echoed", 0)) > 0, self.websocket
