"""The receiver hand-over (issue 7): a genuinely concurrent second receiver is
refused with 2010 at once, and a receiver that arrives after the previous one
answered is never refused, whichever process each request reaches.

Run with `-s` to see the measured figures.
"""

from __future__ import annotations

import json
import math
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from cluster import TIMEOUT, Cluster, new_session, session_path
from support import http
from support.sockjs import ANOTHER_CONNECTION, PRELUDE, array_frame, xhr_poll, xhr_send
from support.waiting import wait_for

BUSY = (ANOTHER_CONNECTION + "\n").encode()
TRIES = 200
REFUSAL_LIMIT = 0.1  # s: the p99 a second receiver waits for its 2010
# A try may take longer than the limit, so that a slow answer (the first design
# waited ~1 s before answering 2010) is measured and reported, not lost in a timeout.
ANSWER_TIMEOUT = 2.0
# Tries over the limit that still leave p99 (nearest rank) under it: 2 of 200.
SLOW_ALLOWED = TRIES - math.ceil(0.99 * TRIES)


def nearest_rank(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def figures(latencies: list[float]) -> str:
    if not latencies:
        return "no figures"
    ordered = sorted(latencies)
    p50, p99 = nearest_rank(ordered, 0.5), nearest_rank(ordered, 0.99)
    return (f"p50 {1000 * p50:.1f} ms, p99 {1000 * p99:.1f} ms, "
            f"max {1000 * ordered[-1]:.1f} ms")


def wait_released(c: Cluster, sid: str) -> None:
    """Wait until no receiver holds the session, so that the next one to hold it is
    known to be the request sent next."""
    wait_for(lambda: c.lease_holder("echo", sid) is None, TIMEOUT,
             message=f"the previous receiver of {sid} let go")


def wait_held(c: Cluster, sid: str, previous: bytes | None) -> bytes:
    """Wait until a new receiver (not `previous`) holds the session's lease."""

    def new_holder() -> bytes | None:
        holder = c.lease_holder("echo", sid)
        return holder if holder != previous else None

    return wait_for(new_holder, TIMEOUT, message=f"a new receiver holds the lease of {sid}")


class FirstReceiver(ABC):
    """The receiver that holds the session while second receivers are refused."""

    transport = ""

    def __init__(self, c: Cluster, process: int, sid: str) -> None:
        self.c, self.process, self.sid = c, process, sid
        self.path = session_path("echo", sid)
        self.holder: bytes | None = None

    @abstractmethod
    def ended(self) -> bool:
        """Whether it has answered (and so holds the session no more)."""

    @abstractmethod
    def renew(self) -> None:
        """Hold the session again from the same process, as a client would."""

    @abstractmethod
    def refuse_second(self, process: int) -> float | None:
        """Seconds a second receiver on `process` took to get exactly the 2010 answer;
        None if the try does not count (this receiver ended meanwhile)."""

    @abstractmethod
    def expect_message(self, message: str) -> None:
        """Assert that `message`, sent to the session, reaches it."""

    @abstractmethod
    def close(self) -> None:
        """Drop the connection."""


class HeldPoll(FirstReceiver):
    """An xhr poll, held by the server until it has data or its heartbeat is due."""

    transport = "xhr"

    def __init__(self, c: Cluster, process: int, sid: str) -> None:
        super().__init__(c, process, sid)
        assert c.poll(process, "echo", sid) == "o\n"
        self.renew()

    def _hold(self, request: http.PendingRequest) -> None:
        self.request = request
        self.holder = wait_held(self.c, self.sid, self.holder)

    def renew(self) -> None:
        wait_released(self.c, self.sid)
        self._hold(http.PendingRequest(self.c.target(self.process), "POST",
                                       self.path + "/xhr", timeout=TIMEOUT))

    def ended(self) -> bool:
        if not self.request.ready(0):
            return False
        r = self.request.response(TIMEOUT)
        # Nothing was sent to the session: a held poll may only end at its heartbeat.
        assert (r.status, r.body) == (200, b"h\n"), (r.status, r.body[:200])
        self.request.close()
        return True

    def refuse_second(self, process: int) -> float | None:
        started = time.perf_counter()
        second = http.PendingRequest(self.c.target(process), "POST", self.path + "/xhr",
                                     timeout=ANSWER_TIMEOUT)
        answer = second.response(ANSWER_TIMEOUT) if second.ready(ANSWER_TIMEOUT) else None
        elapsed = time.perf_counter() - started
        if answer is not None and (answer.status, answer.body) == (200, BUSY):
            second.close()
            return elapsed
        # Not refused: right only if the first poll ended at its heartbeat meanwhile
        # and the second (the only other receiver) took over the session.
        got = "no answer" if answer is None else f"{answer.status} {answer.body[:200]!r}"
        assert self.ended(), (f"a second xhr receiver on process {process}: {got} after "
                              f"{elapsed:.3f}s while the first still held the session")
        self.process = process
        if answer is None:
            self._hold(second)
        else:  # it even reached its own heartbeat
            second.close()
            assert (answer.status, answer.body) == (200, b"h\n"), got
            self.renew()
        return None

    def expect_message(self, message: str) -> None:
        r = self.request.response(TIMEOUT)
        if r.body == b"h\n":  # its heartbeat went out just before the send: poll again
            r = xhr_poll(self.c.target(self.process), self.path, timeout=TIMEOUT)
        assert (r.status, r.text) == (200, array_frame(message) + "\n"), (r.status, r.body)

    def close(self) -> None:
        self.request.close()


class HeldStream(FirstReceiver):
    """An xhr_streaming response: it sends heartbeats and stays open."""

    transport = "xhr_streaming"

    def __init__(self, c: Cluster, process: int, sid: str) -> None:
        super().__init__(c, process, sid)
        self._open(b"o\n")

    def _open(self, opening: bytes) -> None:
        self.stream = http.open_stream(self.c.target(self.process), "POST",
                                       self.path + "/xhr_streaming", timeout=TIMEOUT)
        assert self.stream.status == 200
        self.stream.expect(PRELUDE + opening, TIMEOUT)
        self.holder = wait_held(self.c, self.sid, self.holder)

    def renew(self) -> None:
        self.stream.close()
        wait_released(self.c, self.sid)
        self._open(b"")

    def ended(self) -> bool:
        while self.stream.ready(0):
            chunk = self.stream.read_chunk(TIMEOUT)
            if chunk is None:
                return True
            assert chunk == b"h\n", chunk[:200]
        return False

    def refuse_second(self, process: int) -> float | None:
        started = time.perf_counter()
        with http.open_stream(self.c.target(process), "POST", self.path + "/xhr_streaming",
                              timeout=ANSWER_TIMEOUT) as second:
            assert second.status == 200
            second.expect(PRELUDE + BUSY, ANSWER_TIMEOUT)
            elapsed = time.perf_counter() - started
            second.expect_end()
        return elapsed

    def expect_message(self, message: str) -> None:
        while (chunk := self.stream.read_chunk(TIMEOUT)) == b"h\n":
            pass
        assert chunk == (array_frame(message) + "\n").encode(), chunk

    def close(self) -> None:
        self.stream.close()


@pytest.mark.parametrize("where", ["one_process", "across_processes"])
@pytest.mark.parametrize("kind", [HeldPoll, HeldStream], ids=["xhr", "xhr_streaming"])
def test_a_concurrent_second_receiver_gets_2010_at_once(
    cluster: Cluster, kind: type[FirstReceiver], where: str
) -> None:
    """One held first receiver serves every try: a 2010 leaves it undisturbed."""
    sid = new_session()
    first = kind(cluster, 0, sid)
    latencies: list[float] = []
    void = 0
    try:
        for n in range(2 * TRIES):  # bounded: a void try (heartbeat race) is rare
            if len(latencies) == TRIES or sum(t > REFUSAL_LIMIT for t in latencies) > SLOW_ALLOWED:
                break  # done, or p99 can no longer be under the limit
            if first.ended():
                first.renew()
            offset = 0 if where == "one_process" else 1 + n % 2
            elapsed = first.refuse_second((first.process + offset) % 3)
            if elapsed is None:
                void += 1
            else:
                latencies.append(elapsed)
        if first.ended():
            first.renew()
        assert cluster.send(first.process + 1, "echo", sid, "still here").status_code == 204
        first.expect_message("still here")
    finally:
        first.close()
    slow = sum(t > REFUSAL_LIMIT for t in latencies)
    report = (f"{kind.transport} {where}: {len(latencies)} refusals, {figures(latencies)}, "
              f"{slow} over {1000 * REFUSAL_LIMIT:.0f} ms ({void} void tries)")
    print(report)
    assert slow <= SLOW_ALLOWED, f"stopped early, p99 cannot be under the limit: {report}"
    assert len(latencies) == TRIES, report
    assert nearest_rank(sorted(latencies), 0.99) < REFUSAL_LIMIT, report


# -- the hand-over storm --

SESSIONS = 50
POLLS = 2000
POLLS_PER_SESSION = POLLS // SESSIONS
# Messages a session's sender keeps ahead of what its polls received: polls
# rarely wait, and sends land while polls are in flight on other processes.
WINDOW = 3
STORM_DEADLINE = 60.0


@dataclass
class StormSession:
    """One xhr-polling session: a poller hopping processes and a sender feeding it."""

    c: Cluster
    index: int
    sid: str = field(default_factory=new_session)
    received: list[str] = field(default_factory=list)
    sent: int = 0
    polls: int = 0
    drain_polls: int = 0
    heartbeats: int = 0
    refusals: int = 0
    unexpected: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    progress: threading.Condition = field(default_factory=threading.Condition)
    opened: threading.Event = field(default_factory=threading.Event)
    polling_done: threading.Event = field(default_factory=threading.Event)
    sending_done: threading.Event = field(default_factory=threading.Event)

    @property
    def path(self) -> str:
        return session_path("echo", self.sid)

    def poll(self, process: int) -> None:
        """One poll on `process`; each following one goes to the next process."""
        started = time.perf_counter()
        body = xhr_poll(self.c.target(process), self.path, timeout=TIMEOUT).text
        self.latencies.append(time.perf_counter() - started)
        if body == "h\n":
            self.heartbeats += 1
        elif body.startswith("a["):
            with self.progress:
                self.received.extend(json.loads(body[1:]))
                self.progress.notify_all()
        elif body == ANOTHER_CONNECTION + "\n":
            self.refusals += 1
        else:
            self.unexpected.append(body)

    def run_polls(self, deadline: float) -> None:
        process = self.index % 3
        try:
            body = xhr_poll(self.c.target(process), self.path, timeout=TIMEOUT).text
            assert body == "o\n", body
            self.opened.set()
            self.polls = 1
            while self.polls < POLLS_PER_SESSION:
                process += 1
                self.polls += 1
                self.poll(process % 3)
        finally:
            self.polling_done.set()
        # What the sender sent after the last counted poll: polled on, still hopping.
        self.sending_done.wait(TIMEOUT)
        while len(self.received) < self.sent and time.monotonic() < deadline:
            process += 1
            self.drain_polls += 1
            self.poll(process % 3)

    def run_sends(self) -> None:
        try:
            assert self.opened.wait(TIMEOUT), "the session did not open"
            while not self.polling_done.is_set():
                with self.progress:
                    fed = self.progress.wait_for(
                        lambda: self.sent < len(self.received) + WINDOW
                        or self.polling_done.is_set(), TIMEOUT)
                assert fed, f"{self.sid}: nothing received for {TIMEOUT}s"
                if self.polling_done.is_set():
                    break
                # The sends hop processes too, on another rhythm than the polls.
                r = xhr_send(self.c.target(self.index + 2 * self.sent), self.path,
                             json.dumps([str(self.sent)]), timeout=TIMEOUT)
                assert r.status == 204, (r.status, r.body[:200])
                self.sent += 1
        finally:
            self.sending_done.set()


def test_hand_over_storm_never_refuses_a_poll_and_loses_nothing(cluster: Cluster) -> None:
    """Polls are strictly sequential per session, so a 2010 is always a wrong refusal."""
    sessions = [StormSession(cluster, n) for n in range(SESSIONS)]
    started = time.monotonic()
    deadline = started + STORM_DEADLINE
    with ThreadPoolExecutor(max_workers=2 * SESSIONS) as pool:
        futures = [pool.submit(s.run_polls, deadline) for s in sessions]
        futures += [pool.submit(s.run_sends) for s in sessions]
        for f in futures:
            f.result()
    elapsed = time.monotonic() - started
    totals = {name: sum(getattr(s, name) for s in sessions)
              for name in ("polls", "drain_polls", "heartbeats", "refusals", "sent")}
    print(f"storm: {SESSIONS} sessions, {totals['polls']} polls (+{totals['drain_polls']} "
          f"to drain), {totals['sent']} messages sent, "
          f"{sum(len(s.received) for s in sessions)} received, {totals['heartbeats']} "
          f"heartbeats, {totals['refusals']} answered 2010, in {elapsed:.1f}s; "
          f"polls: {figures([t for s in sessions for t in s.latencies])}")
    assert totals["polls"] == POLLS
    assert totals["refusals"] == 0, f"{totals['refusals']} polls refused with 2010"
    assert [s.unexpected for s in sessions if s.unexpected] == []
    for s in sessions:
        # Exactly once, in order: the sender's sequence, nothing missing or repeated.
        assert s.received == [str(j) for j in range(s.sent)], s.sid
