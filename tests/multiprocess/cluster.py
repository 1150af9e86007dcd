"""Three sockhop processes (two gevent workers each) on one Redis (or the shards
SOCKHOP_TEST_REDIS asks for), addressed directly.

Races and faults are driven by choosing which process gets each request,
which is a stricter test of "no sticky sessions" than any balancer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import requests
from support.procs import ManagedProcess
from support.servers import (
    Address,
    ProcessRegistry,
    RedisStore,
    start_sockhop_processes,
    start_store,
)
from support.waiting import wait_for

TIMEOUT = 10.0
# Clients get the default 5 s to come back: shorter, a loaded CI machine can
# outlast it between two requests of a test and expire a session under it.
DISCONNECT_DELAY = 5.0
CLUSTER_ENV = {
    "SOCKHOP_HEARTBEAT_DELAY": "3",
    "SOCKHOP_DISCONNECT_DELAY": str(DISCONNECT_DELAY),
}


@dataclass
class Cluster:
    redis: RedisStore
    processes: list[ManagedProcess]
    addresses: list[tuple[str, int]]

    def target(self, i: int) -> Address:
        """Process i (modulo the count) as an address for support.http's raw requests."""
        return Address(*self.addresses[i % len(self.addresses)])

    def base(self, i: int) -> str:
        host, port = self.addresses[i % len(self.addresses)]
        return f"http://{host}:{port}"

    def url(self, i: int, service: str, session: str, transport: str) -> str:
        return f"{self.base(i)}{session_path(service, session)}/{transport}"

    def send(self, i: int, service: str, session: str, *messages: str) -> requests.Response:
        return requests.post(self.url(i, service, session, "xhr_send"),
                             data=json.dumps(list(messages)), timeout=TIMEOUT)

    def poll(self, i: int, service: str, session: str, timeout: float = TIMEOUT) -> str:
        r = requests.post(self.url(i, service, session, "xhr"), timeout=timeout)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.text

    def receive_until(self, i: int, service: str, session: str, last: str,
                      timeout: float = 20.0) -> list[str]:
        """Poll process i until the message `last` arrives; every message polled, in order.

        A 2010 answer (a holder that is still taken for alive) is polled again;
        a new session or a close means the session was lost.
        """
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while last not in got and time.monotonic() < deadline:
            body = self.poll(i, service, session)
            assert body != "o\n", f"session {session} was lost: a poll opened a new one"
            if body.startswith("a["):
                got.extend(json.loads(body[1:]))
            else:
                assert body.startswith("c[2010,"), f"unexpected answer {body!r}"
                time.sleep(0.05)
        return got

    def open_session(self, i: int, service: str = "echo") -> str:
        """A new session, opened by a poll on process i that has let go of its lease.

        The poll's client has the answer a moment before the lease is released:
        waiting for the release means the next lease holder seen is the next receiver.
        """
        session = new_session()
        assert self.poll(i, service, session) == "o\n"
        wait_for(lambda: self.lease_holder(service, session) is None, TIMEOUT,
                 message="the opening poll released the lease")
        return session

    def lease_holder(self, service: str, session: str) -> bytes | None:
        """Who holds the session's receiver lease, read straight from Redis."""
        meta = f"sh:{{{service}:{session}}}:m"
        return self.redis.client_for(meta).hget(meta, "rcv")

    def kill(self, i: int) -> float:
        """kill -9 of process i's whole group (gunicorn master and workers); returns when."""
        os.killpg(self.processes[i].pid, signal.SIGKILL)
        return time.monotonic()

    def freeze(self, i: int) -> float:
        """SIGSTOP process i's whole group: from then on it writes and acknowledges
        nothing, as if killed, but its connections stay open. Returns when."""
        os.killpg(self.processes[i].pid, signal.SIGSTOP)
        return time.monotonic()

    def logs(self) -> str:
        return "".join(p.log_text() for p in self.processes)

    def close_hook_runs(self, service: str) -> dict[str, int]:
        """How many times on_close ran per session, across every process's log."""
        counts: dict[str, int] = {}
        for m in re.finditer(rf"on_close service={service} session=(\S+)", self.logs()):
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        return counts


def new_session() -> str:
    return uuid.uuid4().hex


def read_stream(url: str, seen: list[str], times: list[float] | None = None) -> int:
    """Read an xhr_streaming response to its end; raises if it ends malformed.

    seen gets each frame; times, if given, when each was read (time.monotonic()).
    """
    with requests.post(url, stream=True, timeout=(TIMEOUT, 30)) as r:
        assert r.status_code == 200
        for chunk in r.iter_content(chunk_size=None):
            now = time.monotonic()
            for line in chunk.decode().split("\n"):
                if line:
                    seen.append(line)
                    if times is not None:
                        times.append(now)
        return r.status_code


def messages_of(frames: list[str]) -> list[str]:
    return [m for f in frames if f.startswith("a[") for m in json.loads(f[1:])]


def session_path(service: str, sid: str) -> str:
    """The session's URL path, as support.sockjs's helpers take it."""
    return f"/{service}/000/{sid}"


def start_cluster(registry: ProcessRegistry, name: str,
                  env: Mapping[str, str] | None = None) -> Cluster:
    store = start_store(registry, name)
    procs, addresses = start_sockhop_processes(
        registry, name, store.url, count=3, workers=2, env={**CLUSTER_ENV, **(env or {})}
    )
    return Cluster(store, procs, addresses)


@contextlib.contextmanager
def own_cluster(registry: ProcessRegistry, name: str,
                env: Mapping[str, str] | None = None) -> Iterator[Cluster]:
    """A cluster for one test or module, stopped when it ends."""
    c = start_cluster(registry, name, env)
    try:
        yield c
    finally:
        registry.stop([*c.processes, *c.redis.procs])
