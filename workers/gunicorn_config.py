"""gunicorn configuration for serving an app of your own (library use) as `sockhop serve`
serves the hub:

    SOCKHOP_REDIS_URL=redis://host:6379/0 \
        gunicorn -c python:sockhop.workers.gunicorn_config mymodule:app

The same worker class, connection limit, timeouts, drain on SIGTERM and GC tuning, from
the same function (gunicorn_settings.server_settings). SOCKHOP_BIND, SOCKHOP_WORKERS,
SOCKHOP_LOG_LEVEL and the SOCKHOP_* settings are read and checked here, in gunicorn's
master before any worker starts: a bad value or a missing SOCKHOP_REDIS_URL stops the start
with one line and exit code 2. gunicorn's own options (-b, -w, ...) still override these.
Only gunicorn setting names may be bound at this module's top level: gunicorn reads them all.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from sockhop.workers.config import (
    ConfigError,
    launch_from_env,
    require_redis_url,
    settings_from_env,
)
from sockhop.workers.gunicorn_settings import (
    configure_logging,
    log_redis,
    raise_open_files_limit,
    server_settings,
)


def _from_env() -> dict[str, Any]:
    try:
        launch = launch_from_env(os.environ)
        settings = settings_from_env(os.environ)
        require_redis_url(settings)
    except ConfigError as exc:
        print(f"sockhop: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(launch.log_level)
    log_redis(settings.redis_url)
    # Imported here, as in server_settings: the hooks import gevent.
    from sockhop.workers.gunicorn_hooks import prepare_metrics_dir

    prepare_metrics_dir(Path(tempfile.gettempdir()) / f"sockhop-metrics-{os.getpid()}")
    raise_open_files_limit(settings.max_connections)
    return server_settings(launch, settings.max_connections, settings.drain_delay)


globals().update(_from_env())
