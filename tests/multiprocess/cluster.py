"""Three sockhop processes (two gevent workers each) on one Redis, addressed directly.

Races and faults are driven by choosing which process gets each request,
which is a stricter test of "no sticky sessions" than any balancer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import redis
import requests
from support.procs import ManagedProcess
from support.servers import (
    Address,
    ProcessRegistry,
    RedisServer,
    start_redis,
    start_sockhop_processes,
)

TIMEOUT = 10.0
# Clients get the default 5 s to come back: shorter, a loaded CI machine can
# outlast it between two requests of a test and expire a session under it.
CLUSTER_ENV = {
    "SOCKHOP_HEARTBEAT_DELAY": "3",
    "SOCKHOP_DISCONNECT_DELAY": "5",
}


@dataclass
class Cluster:
    redis: RedisServer
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


def session_path(service: str, sid: str) -> str:
    """The session's URL path, as support.sockjs's helpers take it."""
    return f"/{service}/000/{sid}"


def lease_holder(c: Cluster, service: str, sid: str) -> bytes | None:
    """Who holds the session's receiver lease, read straight from Redis."""
    return redis.Redis.from_url(c.redis.url).hget(f"sh:{{{service}:{sid}}}:m", "rcv")


def start_cluster(registry: ProcessRegistry, name: str,
                  env: Mapping[str, str] | None = None) -> Cluster:
    redis = start_redis(registry, f"{name}-redis")
    procs, addresses = start_sockhop_processes(
        registry, name, redis.url, count=3, workers=2, env={**CLUSTER_ENV, **(env or {})}
    )
    return Cluster(redis, procs, addresses)
