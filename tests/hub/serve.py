"""Hub processes as users run them: `sockhop serve --config FILE`, several on one Redis,
each addressed directly (the test picks the process every client talks to)."""

from __future__ import annotations

import json
import sys
from typing import Any

from support.procs import LOCALHOST, free_port
from support.servers import (
    REPO_ROOT,
    ProcessRegistry,
    RedisServer,
    sockhop_env,
    wait_http_ready,
    wait_workers_accepting,
)

from .test_api import Hub

# Answers GET 200 once a worker serves the hub (the config must set `sockjs: true`).
READY_PATH = "/connection/sockjs/info"


def serve_hubs(registry: ProcessRegistry, redis: RedisServer, name: str,
               config: dict[str, Any], *, count: int = 1, workers: int = 2) -> list[Hub]:
    """count processes started together, returned once every worker of each accepts."""
    assert config.get("sockjs"), "the readiness probe is SockJS's /info"
    path = registry.log_dir / f"{name}-config.json"
    path.write_text(json.dumps(config))
    hubs = []
    for i in range(count):
        port = free_port()
        argv = [sys.executable, "-m", "sockhop.workers.cli", "serve", "--config", str(path),
                "--bind", f"{LOCALHOST}:{port}", "--workers", str(workers)]
        proc = registry.start(f"{name}{i}", argv, env=sockhop_env(redis.url), cwd=REPO_ROOT)
        hubs.append(Hub(proc, LOCALHOST, port))
    procs = [hub.proc for hub in hubs]
    wait_http_ready(procs, [(hub.host, hub.port) for hub in hubs], READY_PATH)
    wait_workers_accepting(procs, workers)
    return hubs
