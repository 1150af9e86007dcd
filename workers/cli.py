"""`sockhop serve`: the hub on gunicorn with gevent workers, and a private Valkey unless a Redis
is configured. `sockhop genconfig`: a configuration file with fresh secrets."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import html
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from sockhop.workers.config import DEFAULT_BIND, DEFAULT_WORKERS, ConfigError, launch_from_env
from sockhop.workers.embedded_redis import EmbeddedRedis
from sockhop.workers.gunicorn_settings import (
    configure_logging,
    log_redis,
    raise_open_files_limit,
    server_settings,
)
from sockhop.workers.hub.config import HubConfig, config_text, generate_config, load_config

DEFAULT_CONFIG_FILE = "config.json"
DEFAULT_CENTRIFUGE_URL = "https://cdn.jsdelivr.net/npm/centrifuge@5.7.4/dist/centrifuge.js"
# Read by the launcher for --demo only: not an option of the hub's configuration.
CENTRIFUGE_URL_ENV = "SOCKHOP_DEMO_CENTRIFUGE_URL"
CHAT_PAGE_DIR = Path(__file__).resolve().parent.parent / "examples" / "chat"
SCRIPT_URL_SCHEMES = ("http://", "https://", "/")

# The demo's channels (those without a namespace): clients may join, publish, and ask
# presence and history; join/leave pushes; publications kept for recovery.
DEMO_CHANNEL_OPTIONS: dict[str, Any] = {
    "allow_subscribe_for_client": True,
    "allow_publish_for_client": True,
    "allow_presence_for_client": True,
    "allow_history_for_client": True,
    "presence": True,
    "join_leave": True,
    "force_push_join_leave": True,
    "history_size": 100,
    "history_ttl": "300s",
    "force_recovery": True,
}


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """Builds the app in each worker, after fork and after gevent's monkey-patching:
    importing redis (or falcon, jwt) in the master first would leave them unpatched."""

    def __init__(self, config: HubConfig, examples: bool, demo_dir: Path | None,
                 options: dict[str, Any]) -> None:
        self.hub_config = config
        self.examples = examples
        self.demo_dir = demo_dir
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from sockhop.workers.hub.service import hub_app

        return hub_app(self.hub_config, self.examples, self.demo_dir)


def demo_config(env: Mapping[str, str], workdir: Path) -> HubConfig:
    """A generated configuration (fresh secrets) with the demo's channels, read back the way
    a file is, so environment overrides and checks apply to it as to any other."""
    data = generate_config()
    data.setdefault("channel", {})["without_namespace"] = DEMO_CHANNEL_OPTIONS
    # Any origin: the page may be opened under any host name (generated configurations say
    # so today; the demo must not depend on that).
    data.setdefault("client", {})["allowed_origins"] = ["*"]
    path = workdir / "demo-config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return load_config(str(path), env)


def centrifuge_url(option: str | None, env: Mapping[str, str]) -> str:
    if option is not None:
        name, url = "--centrifuge-url", option
    else:
        name, url = CENTRIFUGE_URL_ENV, env.get(CENTRIFUGE_URL_ENV, DEFAULT_CENTRIFUGE_URL)
    if not url.startswith(SCRIPT_URL_SCHEMES):
        raise ConfigError(f"{name}: must start with one of {', '.join(SCRIPT_URL_SCHEMES)}, "
                          f"got {url!r}")
    return url


def prepare_chat_page(target: Path, centrifuge_url: str, sockjs_url: str) -> Path:
    """examples/chat with its script URLs filled in, for the workers to serve."""
    if not CHAT_PAGE_DIR.is_dir():
        raise ConfigError(f"--demo: the chat page is not at {CHAT_PAGE_DIR}; "
                          "install from a source checkout (pip install -e .)")
    shutil.copytree(CHAT_PAGE_DIR, target)
    index = target / "index.html"
    page = index.read_text(encoding="utf-8")
    for name, url in (("centrifuge_url", centrifuge_url), ("sockjs_url", sockjs_url)):
        page = page.replace("{{" + name + "}}", html.escape(url))
    index.write_text(page, encoding="utf-8")
    return target


def page_url(bind: str) -> str:
    """Where a browser on this machine finds the demo page."""
    if bind.startswith("unix:"):
        return f"{bind} (a unix socket: behind your proxy)"
    host, _, port = bind.rpartition(":")
    if host in ("", "0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/"


def hub_config(args: argparse.Namespace, env: Mapping[str, str], workdir: Path) -> HubConfig:
    """--config FILE (or defaults) with environment overrides; --demo alone: demo_config.
    --demo with --config keeps FILE's configuration as it is and only adds the page."""
    if args.demo and args.config is None:
        return demo_config(env, workdir)
    config = load_config(args.config, env)
    if args.demo and not config.client.token.hmac_secret_key:
        raise ConfigError(f"--demo signs its tokens with client.token.hmac_secret_key, "
                          f"which {args.config} does not set")
    return config


def configuration_error(exc: ConfigError) -> int:
    print(f"sockhop: configuration error: {exc}", file=sys.stderr)
    return 2


def serve(args: argparse.Namespace) -> int:
    try:
        launch = launch_from_env(os.environ, args.bind, args.workers)
    except ConfigError as exc:
        return configuration_error(exc)
    configure_logging(launch.log_level)
    log = logging.getLogger("sockhop")
    env = {k: v for k, v in os.environ.items() if k != CENTRIFUGE_URL_ENV}
    launcher = os.getpid()
    with contextlib.ExitStack() as cleanup:
        # Not TemporaryDirectory: its finalizer would also run in every worker at exit.
        workdir = Path(tempfile.mkdtemp(prefix="sockhop-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        demo_dir = None
        try:
            config = hub_config(args, env, workdir)
            if args.demo:
                demo_dir = prepare_chat_page(
                    workdir / "chat", centrifuge_url(args.centrifuge_url, os.environ),
                    config.sockjs_url)
            if not config.settings.redis_url:
                embedded = EmbeddedRedis()
                cleanup.callback(embedded.stop)
                settings = config.settings.replace(redis_url=embedded.start())
                config = dataclasses.replace(config, settings=settings)
                log.info("embedded Valkey at %s", settings.redis_url)
            else:
                log_redis(config.settings.redis_url)
        except ConfigError as exc:
            return configuration_error(exc)
        if demo_dir is not None:
            log.warning("demo mode: POST /demo/token gives a token to anyone who asks; "
                        "never expose this server")
            if args.config is None:
                # Generated for this run only: how a person can try /api against the page.
                print(f"sockhop: server API key of this run: {config.http_api.key}")
            print(f"sockhop: the demo chat is at {page_url(launch.bind)}", flush=True)
        from sockhop.workers.gunicorn_hooks import prepare_metrics_dir

        prepare_metrics_dir(workdir / "metrics")
        raise_open_files_limit(config.settings.max_connections)
        options = server_settings(launch, config.settings.max_connections,
                                  config.settings.drain_delay)
        try:
            GunicornServer(config, args.examples, demo_dir, options).run()
        finally:
            if os.getpid() != launcher:
                # A worker leaving (gunicorn ends them with SystemExit, which comes up
                # through here): the page and Valkey are the launcher's to remove.
                cleanup.pop_all()
    return 0


def genconfig(args: argparse.Namespace) -> int:
    """Write a fresh configuration, JSON or YAML as the file's name says; never over an
    existing file (it holds secrets)."""
    path = Path(args.file)
    try:
        text = config_text(generate_config(), path)
    except ConfigError as exc:
        return configuration_error(exc)
    try:
        # Created readable by its owner only, and only if it does not exist yet.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"sockhop: {path} already exists; not overwriting it", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sockhop: cannot create {path}: {exc.strerror}", file=sys.stderr)
        return 1
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"sockhop: configuration written to {path.resolve()}")
    return 0


def installed_version() -> str:
    try:
        return version("sockhop")
    except PackageNotFoundError:
        return "(not installed: run from a checkout)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sockhop", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the hub")
    serve_cmd.add_argument("--config", metavar="FILE",
                           help="Centrifugo v6 configuration, JSON or YAML (SOCKHOP_* "
                                "environment variables override it)")
    # Checked in serve (launch_from_env), as their SOCKHOP_ variables are: one-line errors.
    serve_cmd.add_argument("--bind", metavar="HOST:PORT",
                           help=f"HOST:PORT or unix:PATH to listen on (default SOCKHOP_BIND "
                                f"or {DEFAULT_BIND})")
    serve_cmd.add_argument("--workers", metavar="N",
                           help=f"gevent worker processes (default SOCKHOP_WORKERS or "
                                f"{DEFAULT_WORKERS})")
    serve_cmd.add_argument("--examples", action="store_true",
                           help="mount /echo, /close, /disabled_websocket_echo, "
                                "/cookie_needed_echo and /broadcast beside the hub")
    serve_cmd.add_argument("--demo", action="store_true",
                           help="serve the chat page at / with a token for any name; alone, "
                                "with a generated demo configuration; with --config, with "
                                "that file's")
    serve_cmd.add_argument("--centrifuge-url", metavar="URL",
                           help="centrifuge-js script of the demo page (default "
                                f"{CENTRIFUGE_URL_ENV} or {DEFAULT_CENTRIFUGE_URL})")
    genconfig_cmd = commands.add_parser("genconfig", help="write a configuration with fresh "
                                                          "secrets")
    genconfig_cmd.add_argument("file", nargs="?", default=DEFAULT_CONFIG_FILE,
                               help=f"where to write it: .json, .yaml or .yml "
                                    f"(default {DEFAULT_CONFIG_FILE})")
    args = parser.parse_args(argv)
    if args.command == "genconfig":
        return genconfig(args)
    if args.centrifuge_url is not None and not args.demo:
        parser.error("--centrifuge-url is an option of --demo")
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
