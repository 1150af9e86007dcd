"""Fixtures of the demo tests: `sockhop serve --demo` as the README runs it (embedded
Valkey, default workers), with the page's scripts served from tests/js/node_modules
instead of the CDN.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from clients.conftest import chromium, js_packages, js_runner, node  # noqa: F401 - fixtures
from clients.deployment import NODE_MODULES
from support.procs import LOCALHOST, free_port
from support.servers import (
    REPO_ROOT,
    Deployment,
    ProcessRegistry,
    wait_http_ready,
    wait_workers_accepting,
)

CENTRIFUGE_VERSION = "5.7.4"
CENTRIFUGE_SCRIPT = "/centrifuge/dist/centrifuge.js"
SOCKJS_SCRIPT = "/sockjs-client/dist/sockjs.min.js"
DEFAULT_WORKERS = 2  # `sockhop serve`'s default, which the README's command uses


@dataclass
class DemoServer(Deployment):
    """A Deployment (so the harness prints its log on failure) plus the script URLs it got."""

    centrifuge_url: str = ""
    sockjs_url: str = ""


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Not on the test's stderr: a failed request shows in the page's diagnostics."""


@pytest.fixture(scope="session")
def centrifuge_package(js_packages: None) -> None:  # noqa: F811 - the fixture imported above
    manifest = NODE_MODULES / "centrifuge" / "package.json"
    version = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
    if version != CENTRIFUGE_VERSION:
        pytest.fail(
            f"tests/js/node_modules has centrifuge {version or 'nothing'}, expected "
            f"{CENTRIFUGE_VERSION}: run `npm install --prefix tests/js`",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def local_scripts(centrifuge_package: None) -> Iterator[str]:
    """Base URL of tests/js/node_modules, served on 127.0.0.1 by a thread of the test."""
    handler = functools.partial(QuietFiles, directory=str(NODE_MODULES))
    server = ThreadingHTTPServer((LOCALHOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="node-modules", daemon=True)
    thread.start()
    yield f"http://{LOCALHOST}:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def demo_server(process_registry: ProcessRegistry, local_scripts: str) -> Iterator[DemoServer]:
    port = free_port()
    centrifuge_url = local_scripts + CENTRIFUGE_SCRIPT
    sockjs_url = local_scripts + SOCKJS_SCRIPT
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKHOP_")}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "SOCKHOP_DEMO_CENTRIFUGE_URL": centrifuge_url,
        "SOCKHOP_SOCKJS_URL": sockjs_url,
    }
    argv = [sys.executable, "-m", "sockhop.workers.cli", "serve", "--demo",
            "--bind", f"{LOCALHOST}:{port}"]
    proc = process_registry.start("demo-sockhop", argv, env=env, cwd=REPO_ROOT)
    wait_http_ready([proc], [(LOCALHOST, port)], "/")
    wait_workers_accepting([proc], DEFAULT_WORKERS)
    yield DemoServer("demo", "sockhop", LOCALHOST, port, [proc],
                     centrifuge_url=centrifuge_url, sockjs_url=sockjs_url)
    process_registry.stop([proc], grace=15.0)
