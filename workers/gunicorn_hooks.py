"""gunicorn server hooks: per-process start-up after fork, and graceful drain.

On SIGTERM gunicorn sets worker.alive = False and stops accepting; our
watcher then ends every held poll and stream with a complete response and
closes websockets with 1001, so clients reconnect to another process at once
instead of getting a bare EOF at the graceful timeout.
"""

from __future__ import annotations

from typing import Any

import gevent


def post_worker_init(worker: Any) -> None:
    app = worker.wsgi  # built in this worker, after fork (see cli.GunicornServer)
    runtime = app.runtime.get()

    def watch() -> None:
        while worker.alive:
            gevent.sleep(0.1)
        runtime.drain()

    gevent.spawn(watch)
