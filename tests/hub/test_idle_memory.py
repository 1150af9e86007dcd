"""An idle subscribed websocket costs the worker little memory: while it waits it holds
no greenlet (a greenlet's saved stack, the request's objects kept alive by its frames
and its reader cost ~40 KiB more), only its objects, an io watcher and timers.

Measured as bench/hub/run.py's idle scenario does, smaller: the worker's RSS between
two counts of idle subscribed connections, per connection. Issue 8's target is Socket.IO
4.8's ~8-10 KiB; with one greenlet kept per connection this is ~25 KiB or more."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers import ProcessRegistry, start_redis

from .test_api import HUB_CONFIG, Hub, HubConnection, start_hub

WARM_UP = 200  # first connections: the allocator's pools and the process's tables grow
MEASURED = 500
# Well above the ~7.5 KiB measured, well below what one greenlet per connection costs.
MAX_KIB_PER_CONNECTION = 16.0


@pytest.fixture
def one_worker_hub(process_registry: ProcessRegistry) -> Iterator[Hub]:
    redis = start_redis(process_registry, "idle-memory-redis")
    hub = start_hub(process_registry, redis, "idle-memory-hub", HUB_CONFIG, workers=1)
    yield hub
    process_registry.stop([hub.proc, redis.proc])


def worker_rss(hub: Hub) -> int:
    """VmRSS of the hub's one gunicorn worker (the master's only child), in bytes."""
    master = hub.proc.pid
    (worker,) = (Path(f"/proc/{master}/task/{master}/children").read_text().split())
    for line in Path(f"/proc/{worker}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for worker {worker}")


def open_idle(hub: Hub, count: int, opened: list[HubConnection]) -> None:
    for _ in range(count):
        connection = HubConnection(hub, f"idle-{len(opened)}")
        opened.append(connection)
        connection.subscribe("plain:idle")  # no presence or history: as the benchmark


def test_idle_subscribed_websocket_costs_no_greenlet(one_worker_hub: Hub) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    opened: list[HubConnection] = []
    try:
        open_idle(one_worker_hub, WARM_UP, opened)
        before = worker_rss(one_worker_hub)
        open_idle(one_worker_hub, MEASURED, opened)
        per_connection = (worker_rss(one_worker_hub) - before) / MEASURED / 1024
        assert per_connection <= MAX_KIB_PER_CONNECTION, (
            f"{per_connection:.1f} KiB per idle subscribed websocket")
    finally:
        for connection in opened:
            with contextlib.suppress(Exception):
                connection.ws.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
