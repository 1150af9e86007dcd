"""The gunicorn settings every sockhop server runs with, in one place: `sockhop serve` passes
them to its embedded gunicorn, and library use loads them through
sockhop.workers.gunicorn_config, so an app of its own is served as the hub is."""

from __future__ import annotations

import logging
import math
import resource
import sys
from typing import Any

from sockhop.workers.config import Launch, redacted_url

log = logging.getLogger("sockhop")


# After the drain delay: how long held polls, streams and websockets get to end before
# gunicorn kills the worker (the drain answers them within ~1 s).
DRAIN_TIMEOUT = 10


def server_settings(launch: Launch, max_connections: int, drain_delay: float
                    ) -> dict[str, Any]:
    # Imported here: the hooks import gevent, which only the workers need.
    from sockhop.workers import gunicorn_hooks

    return {
        "bind": [launch.bind],
        "workers": launch.workers,
        # gunicorn's gevent worker with sockhop's own HTTP/1.1 handling (workers/httpserver).
        "worker_class": "sockhop.workers.httpserver.worker.SockhopWorker",
        # Held polls and streams are connections too: size for them, not for requests/s.
        "worker_connections": max_connections,
        # From SIGTERM: the drain delay (still serving, /readyz 503), then the drain.
        "graceful_timeout": math.ceil(drain_delay) + DRAIN_TIMEOUT,  # gunicorn takes an int
        "keepalive": 5,
        # gunicorn 27 puts a control socket in ~/.gunicorn; HOME is read-only in Kubernetes.
        "control_socket_disable": True,
        # GC tuning and the drain on SIGTERM.
        "post_worker_init": gunicorn_hooks.post_worker_init,
        # A worker's live gauges leave with it (prometheus-client's multiprocess mode).
        "child_exit": gunicorn_hooks.child_exit,
        "loglevel": launch.log_level,
        "accesslog": None,
    }


# Descriptors a worker uses besides its connections: Redis, listeners, logs, imports.
SPARE_FILES = 100


def raise_open_files_limit(max_connections: int) -> None:
    """Every connection is a file descriptor: lift the soft limit to the hard one (many
    container runtimes start processes at 1,024), and say so when even that is short of
    `max_connections` per worker. The workers inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, max_connections
                                                                 + SPARE_FILES)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d: %s", soft, exc)
    if soft < max_connections + SPARE_FILES:
        log.warning("open files limit %d is below max_connections %d + %d: connections past "
                    "it are refused (raise the hard limit: ulimit -Hn)", soft, max_connections,
                    SPARE_FILES)


def configure_logging(level: str) -> None:
    """sockhop's own loggers, set up in the launching process (the workers inherit it)."""
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr,
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
    )


def log_redis(url: str) -> None:
    """Which Redis this server uses, on its first lines (the password masked)."""
    log.info("Redis at %s", redacted_url(url))
