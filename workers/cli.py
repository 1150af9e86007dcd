"""`sockhop serve`: gunicorn with gevent workers, and a private Redis unless one is given."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from workers.config import ConfigError, Settings, settings_from_env
from workers.embedded_redis import EmbeddedRedis


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """Builds the app in each worker, after fork and after gevent's monkey-patching:
    importing redis (and ssl) in the master first would leave them unpatched."""

    def __init__(self, settings: Settings, examples: bool, options: dict[str, Any]) -> None:
        self.settings = settings
        self.examples = examples
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from workers.app import create_app
        from workers.examples import example_services

        return create_app(self.settings, example_services() if self.examples else [])


def gunicorn_options(bind: str, workers: int, max_connections: int, log_level: str) -> dict:
    from workers import gunicorn_hooks

    return {
        "bind": [bind],
        "workers": workers,
        # gunicorn's gevent worker with sockhop's own HTTP/1.1 handling (workers/httpserver).
        "worker_class": "workers.httpserver.worker.SockhopWorker",
        # Held polls and streams are connections too: size for them, not for requests/s.
        "worker_connections": max_connections,
        "graceful_timeout": 10,
        "keepalive": 5,
        # gunicorn 27 puts a control socket in ~/.gunicorn; HOME is read-only in Kubernetes.
        "control_socket_disable": True,
        "post_worker_init": gunicorn_hooks.post_worker_init,
        "loglevel": log_level,
        "accesslog": None,
    }


def serve(args: argparse.Namespace) -> int:
    log_level = os.environ.get("SOCKHOP_LOG_LEVEL", "info").lower()
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr,
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    embedded = None
    try:
        settings = settings_from_env()
        if not settings.redis_url:
            embedded = EmbeddedRedis()
            settings = settings.replace(redis_url=embedded.start())
            logging.getLogger("sockhop").info("embedded Valkey at %s", settings.redis_url)
    except ConfigError as exc:
        print(f"sockhop: configuration error: {exc}", file=sys.stderr)
        return 2
    options = gunicorn_options(args.bind, args.workers, settings.max_connections, log_level)
    try:
        GunicornServer(settings, args.examples, options).run()
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sockhop", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the server")
    serve_cmd.add_argument("--bind", default=os.environ.get("SOCKHOP_BIND", "127.0.0.1:8080"),
                           help="HOST:PORT to listen on (default 127.0.0.1:8080)")
    serve_cmd.add_argument("--workers", type=int,
                           default=int(os.environ.get("SOCKHOP_WORKERS", "2")),
                           help="gevent worker processes (default 2)")
    serve_cmd.add_argument("--examples", action="store_true",
                           help="mount /echo, /close, /disabled_websocket_echo, "
                                "/cookie_needed_echo and /broadcast")
    args = parser.parse_args(argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
